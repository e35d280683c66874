-- Withdrawals after approval (docs/adr/0015-withdrawals.md): when the police withdraw the
-- source of an approved request, the outbox publishes a tombstone on the approved topic. A
-- tombstone row has no payload from the start; `tombstone` says it is one, so the check that
-- an unpublished row carries something to publish still holds for every other row.
ALTER TABLE outbox ADD COLUMN tombstone boolean NOT NULL DEFAULT false;
ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_has_payload
    CHECK (published_at IS NOT NULL OR payload IS NOT NULL OR tombstone);
