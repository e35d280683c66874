-- The retention service's schema (its name is configurable: every name here is unqualified
-- and resolved through the search_path that dagmonitor.db.migrate sets).

-- The index of provided records: one row per (topic, key) currently holding a value on a
-- compacted output topic. provided_at is the Kafka timestamp of the first value under the key
-- since the key was last tombstoned (docs/adr/0007-retention.md). Keys only, no values.
CREATE TABLE provided (
    topic text NOT NULL,
    key text NOT NULL,
    provided_at timestamptz NOT NULL,
    PRIMARY KEY (topic, key)
);
-- The sweep reads the oldest rows first: its cost follows the expired rows, not the index.
CREATE INDEX provided_by_time ON provided (provided_at);

-- Segment-roll markers owed: a tombstone compacts its key's older values only once the
-- segment holding it is closed, which takes an append after the segment's lifetime. One row
-- per topic and due instant (bucketed); the service appends the markers once due.
CREATE TABLE segment_rolls (
    topic text NOT NULL,
    due_at timestamptz NOT NULL,
    PRIMARY KEY (topic, due_at)
);

-- Every sweep that ran: why (the daily run, an expiry seen between runs, the command), for
-- which "now", when, and how many records it deleted. Counts only, never keys.
CREATE TABLE sweeps (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trigger text NOT NULL CHECK (trigger IN ('schedule', 'due', 'command')),
    swept_for timestamptz NOT NULL,
    cutoff timestamptz NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    expired bigint NOT NULL DEFAULT 0
);
CREATE INDEX sweeps_scheduled ON sweeps (swept_for)
    WHERE trigger = 'schedule' AND finished_at IS NOT NULL;
