-- Gates as data (docs/adr/0014-gates-and-consents.md): the OM's standing consents as consumed
-- from approval.consents (the current one per category, latest record wins), and the reports
-- held because none was in force when they were due.

CREATE TABLE consents (
    category    text PRIMARY KEY,
    consent_id  text NOT NULL,
    granted_by  text NOT NULL,
    granted_at  timestamptz NOT NULL,
    reference   text NOT NULL,
    valid_until timestamptz NOT NULL,
    revoked_at  timestamptz,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- A report not made for want of a consent in force: made (and the row deleted) once one is.
-- day: the day reported on (daily) or the last of the 14 days (hotspots).
CREATE TABLE held_reports (
    kind       text NOT NULL,
    period     text NOT NULL,
    day        date NOT NULL,
    category   text NOT NULL,
    held_since timestamptz NOT NULL,
    PRIMARY KEY (kind, period)
);
