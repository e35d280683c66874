-- Supplements (Aanvulling Dagmonitor, docs/adr/0011-supplements.md).
--
-- daily_provided: what each recipient has been told about each reported day: per entry the
-- version and the entry as it was shown, so that what arrives or changes for the day later
-- goes out as a supplement, and a withdrawn entry is named as the recipient received it.
-- Written only when a mail is marked sent (from its outbox_tells, in the same transaction),
-- so a mail that never went out never counts as told. Rows of days past the supplement
-- horizon are deleted.
CREATE TABLE daily_provided (
    day date NOT NULL,
    recipient_address text NOT NULL,
    registration_number text NOT NULL,
    version integer NOT NULL,
    shown jsonb NOT NULL,
    PRIMARY KEY (day, recipient_address, registration_number)
);

-- What an unsent daily report or supplement will have told once sent: version and shown for
-- an entry it carries, NULL for an entry whose withdrawal it announces.
CREATE TABLE outbox_tells (
    message_id text NOT NULL REFERENCES outbox (message_id) ON DELETE CASCADE,
    day date NOT NULL,
    registration_number text NOT NULL,
    version integer,
    shown jsonb,
    PRIMARY KEY (message_id, registration_number)
);

-- Daily reports whose unsent mail a tombstone purged (it carried a withdrawn entry): the
-- distributor makes them again, without that entry, for the recipients named here.
CREATE TABLE report_remakes (
    period text NOT NULL,
    recipient_address text NOT NULL,
    PRIMARY KEY (period, recipient_address)
);
