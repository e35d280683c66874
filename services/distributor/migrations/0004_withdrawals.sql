-- Withdrawals after provision (Intrekking verstrekking, docs/adr/0015-withdrawals.md).
--
-- withdrawn_records: a record the police withdrew (a tombstone without the retention reason)
-- and how the recipients who were provided with it identify it (`shown`: the entry or notice
-- as stored when the tombstone came). The dispatcher sends each recipient of a sent provision
-- that carried it one withdrawal notice; the row goes once no unsent mail carries the record
-- any more and every provision that carried it has its notice.
CREATE TABLE withdrawn_records (
    topic text NOT NULL,
    key text NOT NULL,
    shown jsonb,
    withdrawn_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, key)
);

-- A withdrawal notice names the provisions it withdraws: each provision is withdrawn once.
ALTER TABLE outbox ADD COLUMN withdraws text[] NOT NULL DEFAULT '{}';
CREATE INDEX outbox_withdraws ON outbox USING gin (withdraws) WHERE kind = 'withdrawal';

-- The register says which rows are withdrawals, and of which provisions.
ALTER TABLE provisions ADD COLUMN kind text NOT NULL DEFAULT 'PROVISION'
    CHECK (kind IN ('PROVISION', 'WITHDRAWAL'));
ALTER TABLE provisions ADD COLUMN withdraws text[] NOT NULL DEFAULT '{}';

-- Notice batches whose unsent mail to one recipient a withdrawal purged: the distributor
-- makes the batch again for that recipient with the batch's other records, so a withdrawal
-- costs no other record its mail.
CREATE TABLE notice_remakes (
    batch_id text NOT NULL,
    recipient_address text NOT NULL,
    recipient_role text NOT NULL,
    PRIMARY KEY (batch_id, recipient_address)
);
