-- Retention periods per topic (services/retention/periods.csv, ADR 0019): each index row carries
-- when it expires, computed by the service from its topic's period and the record's own end date
-- (an area ban's valid_until). Rows indexed before this migration get the periods of the table as
-- it was written with it, less the two-day deletion lead that lets compaction finish in time.
ALTER TABLE provided ADD COLUMN expires_at timestamptz;
UPDATE provided SET expires_at = provided_at + CASE topic
    WHEN 'approval.requests' THEN interval '28 days'
    WHEN 'victims.approved' THEN interval '88 days'
    ELSE interval '363 days' END;
ALTER TABLE provided ALTER COLUMN expires_at SET NOT NULL;
DROP INDEX provided_by_time;
CREATE INDEX provided_by_expiry ON provided (expires_at);
