-- Free text never outlives its request's personal data (ADR 0019). An officer's reason for a
-- decision or a step may name the person; the audit log is append-only and keeps who did what,
-- when and with which outcome for good, so the text lives beside it, in a table that the
-- erasure of the request's personal data (the retention sweep, or a withdrawal) empties.
-- (No foreign key to audit_log: a TRUNCATE of the audit log must meet its append-only trigger,
-- not a constraint; both rows are written in one transaction.)
CREATE TABLE audit_reasons (
    audit_id   bigint PRIMARY KEY,
    request_id text,
    reason     text NOT NULL
);
CREATE INDEX audit_reasons_by_request ON audit_reasons (request_id);

INSERT INTO audit_reasons (audit_id, request_id, reason)
    SELECT id, request_id, reason FROM audit_log WHERE reason IS NOT NULL AND actor <> 'system';
-- The one UPDATE the audit log ever sees: moving that text out, as the table's owner.
ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_or_delete;
UPDATE audit_log SET reason = NULL WHERE reason IS NOT NULL AND actor <> 'system';
ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update_or_delete;

GRANT SELECT, INSERT, DELETE ON audit_reasons TO dagmonitor_approval_app;

-- What an auditor reads: the audit log with each officer's reason while it is kept.
CREATE VIEW audit_trail AS
    SELECT a.id, a.occurred_at, a.actor, a.action, a.request_id, a.outcome,
           coalesce(r.reason, a.reason) AS reason, a.consent_id, a.approver_role,
           a.covenant_event_id
    FROM audit_log a LEFT JOIN audit_reasons r ON r.audit_id = a.id;
GRANT SELECT ON audit_trail TO dagmonitor_approval_app;
GRANT DELETE ON outbox TO dagmonitor_approval_app;
