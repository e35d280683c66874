-- Gates as data (docs/adr/0014-gates-and-consents.md): approval chains and standing consents.

-- A request is decided by each authority of its chain in turn (dagmonitor/gates.py): step is
-- the index of the authority whose turn it is; approver_role is that authority's role.
ALTER TABLE requests ADD COLUMN step smallint NOT NULL DEFAULT 0 CHECK (step >= 0);

-- The OM's standing consents per category (Dagmonitor, stolen-vehicle plates): who at the OM,
-- when, the reference of its letter, until when (at most the covenant's end), and, revoked,
-- who, when and why. Rows are never deleted; at most one consent per category is unrevoked
-- (a new grant supersedes the one before it, in the same transaction).
CREATE TABLE consents (
    consent_id    text PRIMARY KEY,
    category      text NOT NULL CHECK (category IN ('DAGMONITOR', 'VEHICLE_SIGNAL')),
    granted_by    text NOT NULL,
    granted_at    timestamptz NOT NULL,
    reference     text NOT NULL CHECK (length(btrim(reference)) > 0),
    valid_until   timestamptz NOT NULL CHECK (valid_until > granted_at),
    revoked_at    timestamptz,
    revoked_by    text,
    revoke_reason text,
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL)),
    CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL))
);
CREATE UNIQUE INDEX consents_one_unrevoked_per_category ON consents (category)
    WHERE revoked_at IS NULL;
CREATE INDEX consents_listing ON consents (granted_at DESC, consent_id);

-- The audit log records steps of a chain and consents too: a row is about a request or about
-- a consent, never both; approver_role is the role a decision or step was taken in.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_action_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_action_check CHECK (action IN
    ('view', 'step', 'decision', 'expiry', 'erasure', 'consent_grant', 'consent_revoke'));
ALTER TABLE audit_log ALTER COLUMN request_id DROP NOT NULL;
ALTER TABLE audit_log ADD COLUMN consent_id text;
ALTER TABLE audit_log ADD COLUMN approver_role text CHECK (approver_role IN
    ('OM', 'POLICE_BURGLARY_TEAM', 'POLICE_DISTRICT'));
ALTER TABLE audit_log ADD CONSTRAINT audit_log_request_or_consent
    CHECK ((request_id IS NULL) <> (consent_id IS NULL));
CREATE INDEX audit_log_by_consent ON audit_log (consent_id, id) WHERE consent_id IS NOT NULL;

-- A consent's state goes to approval.consents through the same outbox, in the transaction
-- that changed it.
ALTER TABLE outbox ALTER COLUMN request_id DROP NOT NULL;
ALTER TABLE outbox ADD COLUMN consent_id text;
ALTER TABLE outbox ADD CONSTRAINT outbox_request_or_consent
    CHECK ((request_id IS NULL) <> (consent_id IS NULL));

GRANT SELECT, INSERT, UPDATE ON consents TO dagmonitor_approval_app;
