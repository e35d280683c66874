-- Nothing outlives its retention period (ADR 0019). When the retention sweep deletes a record,
-- the distributor forgets its key everywhere: the provision register keeps the provision (who,
-- when, which category, how many records, on what legal basis) but no longer the key, counting it
-- here instead.
ALTER TABLE provisions ADD COLUMN records_forgotten integer NOT NULL DEFAULT 0
    CHECK (records_forgotten >= 0);
