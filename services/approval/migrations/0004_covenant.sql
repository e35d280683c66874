-- The covenant's term (docs/adr/0018-covenant-term.md): renewals and early ends as recorded
-- events, and the evaluation reports a renewal may rest on.

-- Every renewal (verlenging) and early end (tussentijdse beëindiging): who, when, the term
-- before and after, and for a renewal the evaluation it rests on. Append-only like the audit
-- log: the current term is the configured one changed by these rows in order.
CREATE TABLE covenant_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('RENEWAL', 'EARLY_END')),
    covenant_start date NOT NULL,
    end_before    date NOT NULL,
    end_after     date NOT NULL,
    period_start  date NOT NULL,
    ended_at      timestamptz,
    revision      integer NOT NULL CHECK (revision > 0),
    evaluation_id text,
    actor         text NOT NULL,
    occurred_at   timestamptz NOT NULL,
    reason        text,
    UNIQUE (covenant_start, revision),
    CHECK ((kind = 'RENEWAL') = (evaluation_id IS NOT NULL)),
    CHECK ((kind = 'EARLY_END') = (ended_at IS NOT NULL))
);
CREATE TRIGGER covenant_events_no_update_or_delete BEFORE UPDATE OR DELETE ON covenant_events
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();

-- The evaluation reports the distributor sent (its provisions of category
-- covenant_evaluation on distribution.provisions): one row per mail, no address kept.
CREATE TABLE covenant_evaluations (
    evaluation_id  text PRIMARY KEY,
    covenant_start date NOT NULL,
    recipient_role text NOT NULL,
    sent_at        timestamptz NOT NULL
);
CREATE INDEX covenant_evaluations_by_covenant ON covenant_evaluations (covenant_start, sent_at);

-- The audit log records covenant events too: a row is about a request, a consent or a
-- covenant event, exactly one of them.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_action_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_action_check CHECK (action IN
    ('view', 'step', 'decision', 'expiry', 'erasure', 'consent_grant', 'consent_revoke',
     'covenant_renewal', 'covenant_end'));
ALTER TABLE audit_log ADD COLUMN covenant_event_id bigint;
ALTER TABLE audit_log DROP CONSTRAINT audit_log_request_or_consent;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_one_subject CHECK (
    (request_id IS NOT NULL)::int + (consent_id IS NOT NULL)::int
    + (covenant_event_id IS NOT NULL)::int = 1);

-- A term's state goes to covenant.term through the same outbox, in the event's transaction.
ALTER TABLE outbox ADD COLUMN covenant_event_id bigint;
ALTER TABLE outbox DROP CONSTRAINT outbox_request_or_consent;
ALTER TABLE outbox ADD CONSTRAINT outbox_one_subject CHECK (
    (request_id IS NOT NULL)::int + (consent_id IS NOT NULL)::int
    + (covenant_event_id IS NOT NULL)::int = 1);

GRANT SELECT, INSERT ON covenant_events TO dagmonitor_approval_app;
GRANT SELECT, INSERT ON covenant_evaluations TO dagmonitor_approval_app;
DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA %I TO dagmonitor_approval_app',
        current_schema());
END
$$;
