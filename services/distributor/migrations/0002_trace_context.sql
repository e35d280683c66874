-- The W3C traceparent of the span that stored each record (operations, issue 7): the mail
-- that provides the record links its span to it, so one incident can be followed from ingest
-- to the mail. Ids only, never personal data.
ALTER TABLE entries ADD COLUMN traceparent text;
ALTER TABLE notices ADD COLUMN traceparent text;
