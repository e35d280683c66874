-- The covenant's term and its evaluation report (docs/adr/0018-covenant-term.md).

-- The term as the approval service recorded it (covenant.term, latest record per covenant
-- wins): renewals and early ends reach the distributor without a redeployment.
CREATE TABLE covenant_terms (
    start_date    date PRIMARY KEY,
    end_date      date NOT NULL,
    period_start  date NOT NULL,
    ended_at      timestamptz,
    revision      integer NOT NULL,
    event         text NOT NULL,
    evaluation_id text,
    received_at   timestamptz NOT NULL DEFAULT now()
);

-- What the evaluation report counts from topics that others own: one row per consumed record
-- (its topic, partition and offset make a redelivery count once), with only what is counted.
-- No key, no name, no address, no registration number, no district: a decision keeps its
-- category, authority, outcome and waiting time; a dead letter its reason and service; a
-- retention event its topic and reason.
CREATE TABLE evaluation_facts (
    topic        text NOT NULL,
    partition    integer NOT NULL,
    record_offset bigint NOT NULL,
    occurred_at  timestamptz NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('decision', 'dead_letter', 'retention')),
    dimension_1  text NOT NULL,
    dimension_2  text NOT NULL DEFAULT '',
    dimension_3  text NOT NULL DEFAULT '',
    wait_seconds double precision,
    PRIMARY KEY (topic, partition, record_offset)
);
CREATE INDEX evaluation_facts_by_time ON evaluation_facts (kind, occurred_at);
