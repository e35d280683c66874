"""The distributor holds what has no standing consent of the OM in force (dagmonitor/gates.py):
a daily report, a hotspot report or a batch of stolen-vehicle notices is not made, the records
stay, ``dagmonitor_provisions_held`` counts it, and once a consent is in force it goes out.
On the real PostgreSQL and SMTP servers; the consents arrive as the intake stores them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from services.distributor.app import open_store
from services.distributor.consents import ConsentGate
from services.distributor.dispatch import Dispatcher
from services.distributor.entitlements import Category
from services.distributor.ondemand import report_on_demand
from services.distributor.scheduler import Scheduler
from services.distributor.sender import OutboxSender
from services.distributor.store import Store
from tests.consents import consent_record
from tests.integration.distributor.conftest import SettingsFactory, SmtpServer
from tests.samples import signal_key
from tests.unit.distributor.samples import (
    DAY,
    approved_person,
    entry,
    known_day,
    vehicle_signal,
)

pytestmark = pytest.mark.integration

GRANTED = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _clock() -> datetime:
    """The morning after DAY, the consent a month old."""
    return datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def held(category: str) -> float:
    value = REGISTRY.get_sample_value("dagmonitor_provisions_held", {"category": category})
    return -1.0 if value is None else value


async def _revoke(gate: ConsentGate, category: str) -> None:
    await gate.store(category, consent_record(category, revoked_at=datetime.now(UTC)))


async def _held_reports(store: Store) -> list[tuple[str, str]]:
    rows = await store.pool.fetch("SELECT kind, period FROM held_reports ORDER BY kind, period")
    return [(r["kind"], r["period"]) for r in rows]


async def _outbox(store: Store, kind: str) -> int:
    return int(await store.pool.fetchval("SELECT count(*) FROM outbox WHERE kind = $1", kind))


@pytest.mark.parametrize("without", ["revoked", "lapsed", "never_granted"])
async def test_a_daily_report_is_held_without_consent_and_sent_after_a_grant(
    make_settings: SettingsFactory, smtp_server: SmtpServer, without: str
) -> None:
    settings = make_settings()
    store = await open_store(settings)
    try:
        gate = ConsentGate(store.pool)
        if without == "revoked":
            await _revoke(gate, "DAGMONITOR")
        elif without == "lapsed":
            past = datetime.now(UTC) - timedelta(days=30)
            await gate.store(
                "DAGMONITOR",
                consent_record("DAGMONITOR", granted_at=past, valid_until=past + timedelta(1)),
            )
        else:
            await gate.store("DAGMONITOR", None)  # nothing on record for the category
        for value in known_day():
            await store.upsert_entry(value)
        dispatcher = Dispatcher(store, settings)

        outcome = await dispatcher.ensure_daily(DAY)
        assert (outcome.recipients, outcome.stored) == (3, 0)
        assert await _outbox(store, "daily") == 0  # nothing made, nothing to send
        assert await _held_reports(store) == [("daily", DAY.isoformat())]
        assert held("dagmonitor_daily") == 1
        assert await store.pool.fetchval("SELECT count(*) FROM entries") == len(known_day())
        assert await dispatcher.consents.release(dispatcher) == 0  # still no consent

        await gate.store("DAGMONITOR", consent_record("DAGMONITOR"))  # the OM grants
        assert await dispatcher.consents.release(dispatcher) == 1
        assert await _held_reports(store) == []
        assert held("dagmonitor_daily") == 0
        assert await _outbox(store, "daily") == 3
    finally:
        await store.pool.close()
    run = await report_on_demand(settings, "daily", DAY)  # sends what was stored
    assert run.complete and run.states == {"sent": 3}
    assert len(smtp_server.mails()) == 3


async def test_a_revoke_holds_again(
    make_settings: SettingsFactory, smtp_server: SmtpServer
) -> None:
    settings = make_settings(supplement_interval_seconds=0.01)
    store = await open_store(settings)
    try:
        gate = ConsentGate(store.pool, clock=_clock)
        await gate.store("DAGMONITOR", consent_record("DAGMONITOR", granted_at=GRANTED))
        for value in known_day():
            await store.upsert_entry(value)
        run = await report_on_demand(settings, "daily", DAY, clock=_clock)  # in force: sent
        assert run.complete and len(smtp_server.mails()) == 3

        await _revoke(gate, "DAGMONITOR")
        late = entry(
            "PL0900-2026000777",
            mk_code="A20",
            mk_description="WONINGINBRAAK",
            reported_at=known_day()[0]["reported_at"],
        )
        await store.upsert_entry(late)  # a late arrival: a supplement, once allowed
        dispatcher = Dispatcher(store, settings, clock=_clock)
        next_day = DAY + timedelta(days=1)
        assert await dispatcher.ensure_supplements() == []  # held
        assert (await dispatcher.ensure_daily(next_day)).stored == 0
        assert (await dispatcher.ensure_hotspots(next_day)).stored == 0
        assert sorted(k for k, _ in await _held_reports(store)) == ["daily", "hotspots"]
        assert held("dagmonitor_daily") == 1 and held("hotspots") == 1
        assert await _outbox(store, "supplement") == 0

        await gate.store("DAGMONITOR", consent_record("DAGMONITOR", granted_at=GRANTED))
        supplements = await dispatcher.ensure_supplements()
        assert sorted(o.stored for o in supplements) == [1, 1, 1]
    finally:
        await store.pool.close()


async def test_vehicle_notices_are_held_while_person_notices_pass_by_their_chain(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings()
    store = await open_store(settings)
    try:
        gate = ConsentGate(store.pool)
        await _revoke(gate, "VEHICLE_SIGNAL")
        signal = vehicle_signal()
        key = signal_key(signal["registration_number"], signal["plate"])
        await store.upsert_notice("vehicles.signals", key, "vehicle_notice", signal)
        person = approved_person()
        await store.upsert_notice("persons.approved", person["request_id"], "person_notice", person)
        dispatcher = Dispatcher(store, settings)

        batches = await dispatcher.batch_notices()
        assert [b.category for b in batches] == [Category.PERSON_NOTICE]
        assert held("vehicle_notice") == 1  # one record held
        unbatched = await store.unbatched_notices("vehicle_notice")
        assert [ref.key for ref, _ in unbatched] == [key]  # the record stays

        await gate.store("VEHICLE_SIGNAL", consent_record("VEHICLE_SIGNAL"))
        assert held("vehicle_notice") == 0
        batches = await dispatcher.batch_notices()
        assert [(b.category, b.records) for b in batches] == [(Category.VEHICLE_NOTICE, 1)]
    finally:
        await store.pool.close()


async def test_the_scheduler_sends_what_was_held_once_the_consent_arrives(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings()
    store = await open_store(settings)
    try:
        gate = ConsentGate(store.pool)
        await _revoke(gate, "DAGMONITOR")
        for value in known_day():
            await store.upsert_entry(value)
        dispatcher = Dispatcher(store, settings)
        scheduler = Scheduler(dispatcher, settings, slice_seconds=60)
        assert (await dispatcher.ensure_daily(DAY)).stored == 0  # the 07:00 run: held
        stop = asyncio.Event()
        loop = asyncio.create_task(scheduler.run_supplements(stop))
        try:
            await asyncio.sleep(0.5)
            assert await _outbox(store, "daily") == 0  # still held
            await gate.store("DAGMONITOR", consent_record("DAGMONITOR"))
            scheduler.wake_held()  # what the intake does on a consent: no minute's wait
            async with asyncio.timeout(10):
                while await _outbox(store, "daily") < 3:
                    await asyncio.sleep(0.1)
        finally:
            stop.set()
            await loop
        assert await _held_reports(store) == []
    finally:
        await store.pool.close()


async def test_a_revoke_stops_mails_stored_before_it_but_not_their_withdrawals(
    make_settings: SettingsFactory, smtp_server: SmtpServer
) -> None:
    settings = make_settings()
    store = await open_store(settings)
    try:
        gate = ConsentGate(store.pool, clock=_clock)
        await gate.store("DAGMONITOR", consent_record("DAGMONITOR", granted_at=GRANTED))
        await gate.store("VEHICLE_SIGNAL", consent_record("VEHICLE_SIGNAL", granted_at=GRANTED))
        dispatcher = Dispatcher(store, settings, clock=_clock)
        sender = OutboxSender(store, settings, clock=_clock)
        key = signal_key(vehicle_signal()["registration_number"], vehicle_signal()["plate"])
        await store.upsert_notice("vehicles.signals", key, "vehicle_notice", vehicle_signal())
        await dispatcher.batch_notices()
        await sender.send_due()  # the vehicle notice is provided ...
        for value in known_day():
            await store.upsert_entry(value)
        await dispatcher.ensure_daily(DAY)  # ... the daily report stored, not yet sent

        await _revoke(gate, "DAGMONITOR")
        await _revoke(gate, "VEHICLE_SIGNAL")
        await store.withdraw_record("vehicles.signals", key)
        await dispatcher.ensure_withdrawals()
        result = await sender.send_due()
        assert result.blocked == 3, "the three daily mails wait"
        subjects = [m["Subject"] for m in smtp_server.mails()]
        assert not any(s.startswith("Dagmonitor") for s in subjects)
        assert subjects[-1] == "Intrekking verstrekking 28-11-2026: kenteken", "deleting is allowed"
        blocked = await store.pool.fetch(
            "SELECT DISTINCT blocked_reason FROM outbox WHERE state = 'pending'"
        )
        assert [r["blocked_reason"] for r in blocked] == ["consent_missing"]

        await gate.store("DAGMONITOR", consent_record("DAGMONITOR", granted_at=GRANTED))
        await sender.send_due()
        assert sum(m["Subject"] == "Dagmonitor 27-11-2026" for m in smtp_server.mails()) == 3
    finally:
        await store.pool.close()
