"""Supplements (Aanvulling Dagmonitor, ADR 0011) on the real servers: what arrives or changes
for a day after its report was sent goes out to the same recipients, at most one per interval,
registered as provisions; an entry moved to another day is named as it was received; an unsent
report that a withdrawal purged is made again."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from services.distributor.app import open_store
from services.distributor.dispatch import Dispatcher
from services.distributor.reports import CONFIDENTIAL
from services.distributor.sender import OutboxSender
from services.distributor.store import Store
from tests.integration.distributor.conftest import SAFETY, SettingsFactory, SmtpServer
from tests.unit.distributor.samples import DAY, IN_DAY, entry, known_day

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
INTERVAL = 1.0
NEW = "PL0900-2026000077"


def _clock() -> datetime:
    return NOW


async def _supplements(store: Store) -> list[tuple[str, str, int]]:
    rows = await store.pool.fetch(
        "SELECT period, subject, record_count FROM outbox WHERE kind = 'supplement' "
        "AND recipient_address = $1 ORDER BY created_at",
        SAFETY,
    )
    return [(r["period"], r["subject"], r["record_count"]) for r in rows]


def _csv_changes(mail_bytes: bytes) -> list[tuple[str, str]]:
    import email
    from email.policy import default

    message = email.message_from_bytes(mail_bytes, policy=default)
    (part,) = [p for p in message.iter_attachments() if p.get_filename().endswith(".csv")]
    marking, *rows = csv.reader(io.StringIO(part.get_content().lstrip("\ufeff")), delimiter=";")
    assert marking == [CONFIDENTIAL]
    assert rows[0][0] == "wijziging"
    return sorted((r[0], r[12]) for r in rows[1:])


async def test_changes_after_the_report_go_out_as_supplements_once_per_interval(
    make_settings: SettingsFactory, smtp_server: SmtpServer
) -> None:
    settings = make_settings(supplement_interval_seconds=INTERVAL)
    store = await open_store(settings)
    try:
        dispatcher = Dispatcher(store, settings, clock=_clock)
        sender = OutboxSender(store, settings, clock=_clock)
        for value in known_day():
            await store.upsert_entry(value)
        await dispatcher.ensure_daily(DAY)
        await sender.send_due()
        assert len(smtp_server.mails()) == 3
        await asyncio.sleep(INTERVAL)
        assert await dispatcher.ensure_supplements() == [], "nothing changed"

        a, b, c, _d = IN_DAY
        days = {v["registration_number"]: v for v in known_day()}
        await store.upsert_entry(days[a] | {"version": 2, "mk_description": "WONINGINBRAAK"})
        await store.upsert_entry(days[b] | {"version": 2})  # shows the same: no news
        await store.upsert_entry(days[b] | {"version": 2})  # redelivered: still no news
        # moved to the next day by a newer version (a withdrawal has its own notice, ADR 0015)
        await store.upsert_entry(days[c] | {"version": 2, "reported_at": NOW})
        late = entry(
            NEW,
            mk_code="B70",
            mk_description="DIEFSTAL/INBRAAK BOX/GARAGE/SCHUUR",
            reported_at=datetime(2026, 11, 27, 15, 0, tzinfo=UTC),
        )
        await store.upsert_entry(late)

        outcomes = await dispatcher.ensure_supplements()
        assert [(o.kind, o.stored, o.records) for o in outcomes] == [("supplement", 1, 2)] * 3
        assert await _supplements(store) == [
            ("2026-11-27.aanvulling-1", "Aanvulling Dagmonitor 27-11-2026", 2)
        ]
        # Stored but not yet sent: no second supplement however long it waits.
        await store.upsert_entry(late | {"version": 2, "mk_description": "INBRAAK SCHUUR"})
        await asyncio.sleep(INTERVAL)
        assert await dispatcher.ensure_supplements() == []
        await sender.send_due()
        mails = [m for m in smtp_server.mails() if m["Subject"].startswith("Aanvulling")]
        assert sorted(m["To"] for m in mails) == sorted(
            a for addresses in settings.distributor_recipients.values() for a in addresses
        )
        assert _csv_changes(mails[0].as_bytes()) == [
            ("gewijzigd", "A10"),
            ("nieuw", "B70"),
            ("vervallen", "E35"),
        ]
        text = mails[0].get_body(("plain",)).get_content()
        assert "1 nieuw, 1 gewijzigd, 1 vervallen" in text
        # Registered: a provision per recipient naming the new and the changed entry.
        keys = await store.pool.fetch(
            "SELECT p.record_keys FROM provisions p JOIN outbox o USING (message_id) "
            "WHERE o.kind = 'supplement'"
        )
        assert len(keys) == 3
        for row in keys:
            assert sorted(k["key"] for k in json.loads(row["record_keys"])) == sorted([a, NEW])

        # The interval counts from the previous supplement; then the next one has number 2.
        await store.pool.execute("UPDATE outbox SET created_at = created_at - interval '1 s'")
        outcomes = await dispatcher.ensure_supplements()
        assert [(o.period, o.records) for o in outcomes] == [("2026-11-27.aanvulling-2", 1)] * 3
        await sender.send_due()
        assert (await _supplements(store))[-1][1] == "Aanvulling Dagmonitor 27-11-2026 (2)"
        await asyncio.sleep(INTERVAL)
        assert await dispatcher.ensure_supplements() == [], "everything has been told"
    finally:
        await store.pool.close()


async def test_a_withdrawal_before_sending_remakes_the_report_and_nothing_is_told_twice(
    make_settings: SettingsFactory, smtp_server: SmtpServer
) -> None:
    settings = make_settings(supplement_interval_seconds=INTERVAL)
    store = await open_store(settings)
    try:
        dispatcher = Dispatcher(store, settings, clock=_clock)
        sender = OutboxSender(store, settings, clock=_clock)
        for value in known_day():
            await store.upsert_entry(value)
        await dispatcher.ensure_daily(DAY)
        # Withdrawn while the report waits for SMTP: the unsent report is purged ...
        assert await store.withdraw_record("dagmonitor.entries", IN_DAY[0]) == (1, 3)
        # ... and made again, without it, at the next supplement run.
        outcomes = await dispatcher.ensure_supplements()
        assert [(o.kind, o.stored, o.records) for o in outcomes] == [("daily", 3, 3)]
        await sender.send_due()
        mails = smtp_server.mails()
        assert [m["Subject"] for m in mails] == ["Dagmonitor 27-11-2026"] * 3
        assert all("Voorbeeldstraat" not in m.as_string() for m in mails)
        await asyncio.sleep(INTERVAL)
        assert await dispatcher.ensure_supplements() == [], "the withdrawn entry was never told"
    finally:
        await store.pool.close()


async def test_days_past_the_horizon_get_no_supplement_and_are_forgotten(
    make_settings: SettingsFactory, smtp_server: SmtpServer
) -> None:
    settings = make_settings(supplement_interval_seconds=INTERVAL, supplement_horizon_days=7)
    store = await open_store(settings)
    try:
        sender = OutboxSender(store, settings, clock=_clock)
        await Dispatcher(store, settings, clock=_clock).ensure_daily(DAY)  # an empty day
        await sender.send_due()
        for value in known_day():
            await store.upsert_entry(value)  # ... that then fills
        await asyncio.sleep(INTERVAL)
        later = Dispatcher(store, settings, clock=lambda: NOW + timedelta(days=8))
        assert await later.ensure_supplements() == []
        outcomes = await Dispatcher(store, settings, clock=_clock).ensure_supplements()
        assert [o.records for o in outcomes] == [4] * 3  # within the horizon it would go
        await sender.send_due()
        assert await store.pool.fetchval("SELECT count(*) FROM daily_provided") == 4 * 3
        assert await later.ensure_supplements() == []
        assert await store.pool.fetchval("SELECT count(*) FROM daily_provided") == 0
    finally:
        await store.pool.close()
