"""Withdrawals after provision (Intrekking verstrekking, ADR 0015) on the real servers.

What the police withdraw after it was mailed gets each recipient one withdrawal notice naming
the mails that carried it and what to delete, registered as a WITHDRAWAL provision; what was
not sent yet is dropped without costing the other records of its mail anything; a retention
deletion sends nothing; a redelivered tombstone changes nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest

from services.distributor.app import open_store
from services.distributor.config import DistributorSettings
from services.distributor.dispatch import Dispatcher
from services.distributor.sender import OutboxSender
from services.distributor.store import Store
from tests.integration.distributor.conftest import (
    SAFETY,
    TEAM_LEADER,
    SettingsFactory,
    SmtpServer,
)
from tests.samples import signal_key
from tests.unit.distributor.samples import (
    DAY,
    IN_DAY,
    PLATE,
    SUSPECT_NAME,
    approved_person,
    known_day,
    vehicle_signal,
)

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
PERSONS = "persons.approved"


def _clock() -> datetime:
    return NOW


Parts = tuple[DistributorSettings, Store, Dispatcher, OutboxSender]


@pytest.fixture
async def parts(make_settings: SettingsFactory) -> AsyncIterator[Parts]:
    """A distributor's store, dispatcher and sender on this test's schema and SMTP server."""
    settings = make_settings(supplement_interval_seconds=0.01)
    store = await open_store(settings)
    try:
        yield (
            settings,
            store,
            Dispatcher(store, settings, clock=_clock),
            OutboxSender(store, settings, clock=_clock),
        )
    finally:
        await store.pool.close()


def _text(mail: EmailMessage) -> str:
    return str(mail.get_body(("plain",)).get_content())  # type: ignore[union-attr]


def _withdrawals(smtp_server: SmtpServer) -> list[EmailMessage]:
    return [m for m in smtp_server.mails() if m["Subject"].startswith("Intrekking verstrekking")]


async def _register(store: Store) -> list[dict[str, Any]]:
    rows = await store.pool.fetch(
        "SELECT provision_id, kind, category, recipient_address, record_keys, withdraws "
        "FROM provisions ORDER BY sent_at, provision_id"
    )
    return [dict(r) | {"record_keys": json.loads(r["record_keys"])} for r in rows]


async def test_a_withdrawn_notice_gets_its_recipients_one_withdrawal_each(
    parts: Parts, smtp_server: SmtpServer
) -> None:
    _settings, store, dispatcher, sender = parts
    await store.upsert_notice(PERSONS, "req-a", "person_notice", approved_person("req-a"))
    await store.upsert_notice(PERSONS, "req-b", "person_notice", approved_person("req-b"))
    await dispatcher.batch_notices()
    await sender.send_due()
    provided = {r["recipient_address"]: r["provision_id"] for r in await _register(store)}
    assert sorted(provided) == sorted([SAFETY, TEAM_LEADER])

    assert await store.withdraw_record(PERSONS, "req-a") == (1, 0)
    outcomes = await dispatcher.ensure_withdrawals()
    assert [(o.kind, o.stored) for o in outcomes] == [("withdrawal", 1)] * 2
    await sender.send_due()

    mails = _withdrawals(smtp_server)
    assert sorted(m["To"] for m in mails) == sorted(provided)
    for mail in mails:
        assert SUSPECT_NAME not in mail["Subject"], "no personal data in a subject"
        assert mail["Subject"] == "Intrekking verstrekking 28-11-2026: persoonsgegevens"
        text = _text(mail)
        assert SUSPECT_NAME in text, "what to delete, as the recipient received it"
        assert provided[mail["To"]] in text, "the provision it withdraws"
        assert "Nergensweg" not in text, "nothing more than the name and the reference"
    withdrawals = [r for r in await _register(store) if r["kind"] == "WITHDRAWAL"]
    assert sorted(
        (r["recipient_address"], r["withdraws"], r["record_keys"]) for r in withdrawals
    ) == sorted(
        (address, [pid], [{"topic": PERSONS, "key": "req-a"}]) for address, pid in provided.items()
    )
    assert {r["category"] for r in withdrawals} == {"person_notice"}

    # Done: forgotten. A redelivered tombstone, or another sweep, sends nothing more.
    assert await store.withdrawn_count() == 0
    assert await store.withdraw_record(PERSONS, "req-a") == (0, 0)
    assert await dispatcher.ensure_withdrawals() == []
    await sender.send_due()
    assert len(_withdrawals(smtp_server)) == 2
    # req-b, in the same mail, is not withdrawn: nothing is said about it.
    assert all("req-b" not in json.dumps(r["record_keys"]) for r in withdrawals)


async def test_an_unsent_batch_is_made_again_without_the_withdrawn_record(
    parts: Parts, smtp_server: SmtpServer
) -> None:
    _settings, store, dispatcher, sender = parts
    await store.upsert_notice(PERSONS, "req-a", "person_notice", approved_person("req-a"))
    other = approved_person("req-b")
    other["person"] = other["person"] | {"first_names": "Ander", "surname": "Proefpersoon"}
    await store.upsert_notice(PERSONS, "req-b", "person_notice", other)
    await dispatcher.batch_notices()  # stored, not sent (SMTP not tried yet)

    deleted, purged = await store.withdraw_record(PERSONS, "req-a")
    assert (deleted, purged) == (1, 2), "both recipients' unsent mails carried it"
    outcomes = await dispatcher.ensure_withdrawals()
    assert [(o.kind, o.records) for o in outcomes] == [("notice", 1)] * 2
    await sender.send_due()
    mails = smtp_server.mails()
    assert sorted(m["To"] for m in mails) == sorted([SAFETY, TEAM_LEADER])
    for mail in mails:
        text = _text(mail)
        assert "Ander" in text and SUSPECT_NAME not in text
    assert _withdrawals(smtp_server) == [], "never provided: nothing to withdraw"
    register = await _register(store)
    assert [r["record_keys"] for r in register] == [[{"topic": PERSONS, "key": "req-b"}]] * 2
    assert await store.withdrawn_count() == 0


async def test_a_retention_deletion_sends_no_withdrawal(
    parts: Parts, smtp_server: SmtpServer
) -> None:
    _settings, store, dispatcher, sender = parts
    key = signal_key(vehicle_signal()["registration_number"], PLATE)
    await store.upsert_notice("vehicles.signals", key, "vehicle_notice", vehicle_signal())
    await dispatcher.batch_notices()
    await sender.send_due()
    assert await store.delete_record("vehicles.signals", key) == (1, 0)
    assert await dispatcher.ensure_withdrawals() == []
    assert await store.withdrawn_count() == 0


async def test_a_withdrawn_vehicle_and_entry_name_what_was_received(
    parts: Parts, smtp_server: SmtpServer
) -> None:
    settings, store, dispatcher, sender = parts
    key = signal_key(vehicle_signal()["registration_number"], PLATE)
    await store.upsert_notice("vehicles.signals", key, "vehicle_notice", vehicle_signal())
    for value in known_day():
        await store.upsert_entry(value)
    await dispatcher.batch_notices()
    await dispatcher.ensure_daily(DAY)
    await sender.send_due()

    await store.withdraw_record("vehicles.signals", key)  # recovered: stolen = false
    await store.withdraw_record("dagmonitor.entries", IN_DAY[0])
    await dispatcher.ensure_withdrawals()
    await sender.send_due()
    mails = _withdrawals(smtp_server)
    vehicle = [m for m in mails if "kenteken" in m["Subject"]]
    assert [m["To"] for m in vehicle] == [TEAM_LEADER]
    assert PLATE in _text(vehicle[0])
    entries = [m for m in mails if m["Subject"].endswith("incident Dagmonitor")]
    daily_recipients = {
        a for addresses in settings.distributor_recipients.values() for a in addresses
    }
    assert {m["To"] for m in entries} == daily_recipients
    text = _text(entries[0])
    assert "Dagmonitor 27-11-2026" in text, "the mail that provided it"
    assert IN_DAY[0] not in text, "recipients never see registration numbers"
    # The supplement does not announce it a second time.
    await asyncio.sleep(0.05)
    assert await dispatcher.ensure_supplements() == []


async def test_a_mail_on_the_wire_when_the_withdrawal_comes_is_withdrawn_after_it_is_sent(
    parts: Parts, smtp_server: SmtpServer
) -> None:
    _settings, store, dispatcher, sender = parts
    await store.upsert_notice(PERSONS, "req-a", "person_notice", approved_person("req-a"))
    await dispatcher.batch_notices()
    ids = [r["message_id"] for r in await store.pool.fetch("SELECT message_id FROM outbox")]
    async with store.pool.acquire() as conn:
        claimed = [await store.claim(conn, mid) for mid in ids]
    assert all(c is not None for c in claimed)

    assert await store.withdraw_record(PERSONS, "req-a") == (1, 0), "on the wire: kept"
    async with store.pool.acquire() as conn:
        first, second = claimed
        assert first is not None and second is not None
        await store.mark_sent(conn, first, sent_at=NOW, legal_basis="art. 20 Wpg", purpose="test")
        await store.mark_attempt_failed(
            conn, second.message_id, error="421", retry_in=0, give_up=False
        )
        assert await store.claim(conn, second.message_id) is None, "never again"
    outcomes = await dispatcher.ensure_withdrawals()
    assert [(o.kind, o.stored) for o in outcomes] == [("withdrawal", 1)]
    await sender.send_due()
    (mail,) = smtp_server.mails()
    assert mail["To"] == first.recipient_address
    assert mail["Subject"].startswith("Intrekking verstrekking")
    states = await store.pool.fetch("SELECT kind, state FROM outbox ORDER BY kind")
    assert [(r["kind"], r["state"]) for r in states] == [
        ("notice", "sent"),
        ("withdrawal", "sent"),
    ], "the failed one was purged, not retried"
    assert await store.withdrawn_count() == 0
