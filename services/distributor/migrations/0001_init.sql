-- The distributor's schema (its name is configurable: every name here is unqualified and
-- resolved through the search_path that dagmonitor.db.migrate sets).

-- Dagmonitor entries for the reports, one row per registration, newest version only.
CREATE TABLE entries (
    registration_number text PRIMARY KEY,
    version integer NOT NULL,
    mk_code text NOT NULL,
    mk_description text NOT NULL,
    reported_at timestamptz NOT NULL,
    committed_from timestamptz,
    committed_until timestamptz,
    municipality_code text NOT NULL,
    district_code text,
    district_name text,
    neighbourhood_code text,
    neighbourhood_name text,
    city text,
    postcode text,
    street text,
    house_number integer,
    house_number_suffix text,
    location_qualifier text,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX entries_by_reported_at ON entries (reported_at);

-- Approved persons and victims and stolen-vehicle signals, waiting for (or done with) their
-- notice batch. The value is the decoded record as JSON; batch_id is set once, atomically
-- with the outbox rows of that batch.
CREATE TABLE notices (
    topic text NOT NULL,
    key text NOT NULL,
    category text NOT NULL,
    value jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    batch_id text,
    PRIMARY KEY (topic, key)
);
CREATE INDEX notices_unbatched ON notices (category, received_at) WHERE batch_id IS NULL;

-- The outbox: one row per (report, recipient), stored before any SMTP conversation.
-- state: pending (to send, maybe after next_attempt_at), sending (an SMTP transaction may be
-- under way or may have completed: see docs/adr/0005), sent (body dropped), failed (gave up
-- after smtp_max_attempts; retried after smtp_failed_retry_seconds or on demand).
CREATE TABLE outbox (
    message_id text PRIMARY KEY,
    provision_id text NOT NULL UNIQUE,
    kind text NOT NULL,
    period text NOT NULL,
    category text NOT NULL,
    recipient_role text NOT NULL,
    recipient_address text NOT NULL,
    subject text NOT NULL,
    body bytea,
    record_count integer NOT NULL,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    blocked_reason text,
    resent_after_crash integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    sending_since timestamptz,
    sent_at timestamptz,
    UNIQUE (kind, period, recipient_address),
    CHECK (state = 'sent' OR body IS NOT NULL)
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state IN ('pending', 'failed');
CREATE INDEX outbox_sending ON outbox (message_id) WHERE state = 'sending';

-- Which records each outbox message provides: for the register, and so that a tombstone
-- finds (and deletes) every unsent mail that carries the record.
CREATE TABLE outbox_records (
    message_id text NOT NULL REFERENCES outbox (message_id) ON DELETE CASCADE,
    topic text NOT NULL,
    key text NOT NULL,
    PRIMARY KEY (message_id, topic, key)
);
CREATE INDEX outbox_records_by_record ON outbox_records (topic, key);

-- The provision register (verstrekkingenregister): one row per delivery, written in the same
-- transaction that marks the mail sent; published_at is set once it is on
-- distribution.provisions (publish_started_at just before the publish, see ADR 0005).
CREATE TABLE provisions (
    provision_id text PRIMARY KEY,
    message_id text NOT NULL UNIQUE,
    category text NOT NULL,
    recipient_role text NOT NULL,
    recipient_address text NOT NULL,
    record_keys jsonb NOT NULL,
    sent_at timestamptz NOT NULL,
    legal_basis text NOT NULL,
    purpose text NOT NULL,
    publish_started_at timestamptz,
    published_at timestamptz
);
CREATE INDEX provisions_unpublished ON provisions (sent_at) WHERE published_at IS NULL;
