-- The approval service's tables. Names are unqualified: dagmonitor.db.migrate runs this with
-- the service's schema (DAGMONITOR_DB_SCHEMA, default "approval") first on the search_path.

-- One row per request; no personal data here (that lives in request_subjects).
CREATE TABLE requests (
    request_id    text PRIMARY KEY,
    category      text NOT NULL CHECK (category IN
                      ('SUSPECT', 'VICTIM', 'PERSON_OF_INTEREST', 'YOUTH_NUISANCE_DETAIL')),
    approver_role text NOT NULL CHECK (approver_role IN
                      ('OM', 'POLICE_BURGLARY_TEAM', 'POLICE_DISTRICT')),
    mk_code       text,
    district_code text,
    status        text NOT NULL DEFAULT 'PENDING' CHECK (status IN
                      ('PENDING', 'APPROVED', 'REJECTED', 'EXPIRED')),
    created_at    timestamptz NOT NULL,
    -- The deadline: the request's expires_at, or created_at + the configured period if sooner.
    expires_at    timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    decided_by    text,
    decided_at    timestamptz,
    reason        text,
    CHECK ((status = 'PENDING') = (decided_at IS NULL)),
    CHECK ((status = 'PENDING') = (decided_by IS NULL))
);
CREATE INDEX requests_pending_by_deadline ON requests (expires_at) WHERE status = 'PENDING';
CREATE INDEX requests_listing ON requests (status, approver_role, created_at, request_id);

-- The personal data of a request, apart so that deleting it (rejected, expired, tombstoned)
-- is one DELETE: the ApprovalRequest exactly as received (Avro single-object encoding).
CREATE TABLE request_subjects (
    request_id text PRIMARY KEY REFERENCES requests (request_id) ON DELETE CASCADE,
    request    bytea NOT NULL
);

-- Append-only: who (token sub, or 'system'), what, which request, when, why. Ids only.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL CHECK (action IN ('view', 'decision', 'expiry', 'erasure')),
    request_id  text NOT NULL,
    outcome     text CHECK (outcome IN ('APPROVED', 'REJECTED', 'EXPIRED')),
    reason      text
);
CREATE INDEX audit_log_by_request ON audit_log (request_id, id);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
-- Even the owner cannot change history without first dropping these triggers (DDL, visible).
CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;

-- Records to publish, written in the decision's transaction; the relay publishes them in id
-- order and marks them (see docs/adr/0004-approval-outbox.md). The payload is cleared once
-- published: the copy of the personal data lives on only on the topic, under retention.
CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id   text NOT NULL,
    topic        text NOT NULL,
    record_key   text NOT NULL,
    payload      bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    CHECK (published_at IS NOT NULL OR payload IS NOT NULL)
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- The role the service's queries run as (DAGMONITOR_APPROVAL_DB_ROLE): it may append to the
-- audit log but never change or delete a row of it. Roles are cluster-wide; one serves every
-- schema (deployment) of the cluster, with grants per schema.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dagmonitor_approval_app') THEN
        BEGIN
            CREATE ROLE dagmonitor_approval_app NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;  -- created concurrently
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'role dagmonitor_approval_app is missing and this login may '
                    'not create it: ask the DBA to CREATE ROLE dagmonitor_approval_app NOLOGIN '
                    'and GRANT it to the service''s login';
        END;
    END IF;
    -- The login that migrates may act as the role (the service's pool does SET ROLE).
    IF NOT pg_has_role(current_user, 'dagmonitor_approval_app', 'MEMBER') THEN
        EXECUTE format('GRANT dagmonitor_approval_app TO %I', current_user);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO dagmonitor_approval_app', current_schema());
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA %I TO dagmonitor_approval_app',
                   current_schema());
END
$$;
GRANT SELECT, INSERT, UPDATE, DELETE ON requests TO dagmonitor_approval_app;
GRANT SELECT, INSERT, DELETE ON request_subjects TO dagmonitor_approval_app;
GRANT SELECT, INSERT ON audit_log TO dagmonitor_approval_app;
GRANT SELECT, INSERT, UPDATE ON outbox TO dagmonitor_approval_app;
