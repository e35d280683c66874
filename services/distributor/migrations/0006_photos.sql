-- Persons' photos from ingest.photos (ADR 0017), inline in the notice mails. A photo lives as
-- long as a notice refers to it (its person's photo_ref 'bvh://photos/<photo_id>'): a
-- withdrawal or retention tombstone of the last such notice deletes it; one no notice refers
-- to goes after DAGMONITOR_PHOTO_UNCLAIMED_DAYS (a request that was rejected or never made).
CREATE TABLE photos (
    photo_id text PRIMARY KEY,
    media_type text NOT NULL CHECK (media_type IN ('JPEG', 'PNG')),
    data bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX photos_by_received_at ON photos (received_at);
-- A notice's photo id, for the lookups above without parsing every notice's JSON.
CREATE INDEX notices_by_photo ON notices ((value -> 'person' ->> 'photo_ref'))
    WHERE value -> 'person' ->> 'photo_ref' IS NOT NULL;
