"""The distributor on the real stack: Kafka in, mails out to the entitled roles only, and the
provision register in PostgreSQL and on ``distribution.provisions``, one to one with the mails."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import Awaitable, Callable
from email.message import EmailMessage

import pytest

from dagmonitor import kafka_clients
from dagmonitor.codec import PROVISION, default_codec
from dagmonitor.streaming import Outputs, new_producer
from dagmonitor.topic_admin import apply_topics
from dagmonitor.topics import get
from services.distributor.app import Distributor
from services.distributor.config import DistributorSettings
from services.distributor.intake import TOPICS as CONSUMED
from services.distributor.reports import CONFIDENTIAL
from tests.integration.distributor.conftest import (
    MEETING,
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
    VICTIM_PHONE,
    approved_person,
    approved_victim,
    entry,
    known_day,
    vehicle_signal,
)

pytestmark = pytest.mark.integration

INPUTS = ["dagmonitor.entries", "persons.approved", "victims.approved", "vehicles.signals"]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


async def read_provisions(settings: DistributorSettings, expected: int) -> list[dict[str, object]]:
    """Every record on this prefix's provisions topic (waits for ``expected``, then 1 s more)."""
    codec = default_codec()
    reader = kafka_clients.consumer(
        settings,
        settings.topic("distribution.provisions"),
        auto_offset_reset="earliest",
        group_id=None,
    )
    await reader.start()
    seen: list[dict[str, object]] = []
    try:
        async with asyncio.timeout(20):
            while len(seen) < expected:
                for batch in (await reader.getmany(timeout_ms=300)).values():
                    seen += [codec.decode(m.value, expect=PROVISION).record for m in batch]
        for batch in (await reader.getmany(timeout_ms=1000)).values():
            seen += [codec.decode(m.value, expect=PROVISION).record for m in batch]
    finally:
        await reader.stop()
    return seen


def by_category(mails: list[EmailMessage]) -> dict[str, list[EmailMessage]]:
    grouped: dict[str, list[EmailMessage]] = {}
    for mail in mails:
        grouped.setdefault(mail["X-Dagmonitor-Category"], []).append(mail)
    return grouped


def recipients(mails: list[EmailMessage]) -> list[str]:
    return sorted(mail["X-Envelope-To"] for mail in mails)


def text_of(mail: EmailMessage) -> str:
    return mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def html_of(mail: EmailMessage) -> str:
    return mail.get_body(("html",)).get_content()  # type: ignore[union-attr]


async def test_consumed_records_reach_exactly_the_entitled_recipients_and_the_register(
    make_settings: SettingsFactory, smtp_server: SmtpServer
) -> None:
    settings = make_settings(topic_prefix=f"test-dist-{uuid.uuid4().hex[:8]}.")
    # Every topic the distributor consumes (the OM's standing consents too: the schema's
    # consents are recorded already, tests/consents.py), and what it writes.
    names = sorted({*CONSUMED, "distribution.provisions", "pipeline.deadletter"})
    specs = [get(t) for t in names]
    await apply_topics(settings, specs=specs)

    producer = new_producer(settings, "test")
    await producer.start()
    outputs = Outputs(producer, settings, "test")
    try:
        for value in known_day():
            await outputs.send("dagmonitor.entries", value["registration_number"], value)
        # A newer version replaces, an older one arriving later does not.
        newer = entry(
            "PL0900-2026000003",
            version=2,
            mk_code="E35",
            mk_description="MELDING OVERLAST JEUGD",
            reported_at=known_day()[2]["reported_at"],
            district=("WK034403", "Oost"),
            postcode="3581AC",
        )
        await outputs.send("dagmonitor.entries", "PL0900-2026000003", newer)
        await outputs.send("dagmonitor.entries", "PL0900-2026000003", known_day()[2])
        # A tombstone deletes; a record whose key contradicts its value is dead-lettered.
        await outputs.send("dagmonitor.entries", "PL0900-2026000006", None)
        await outputs.send("dagmonitor.entries", "PL0900-WRONGKEY", known_day()[4])
        await outputs.send("persons.approved", "req-person-1", approved_person())
        await outputs.send("victims.approved", "req-victim-1", approved_victim())
        vehicle = vehicle_signal()
        await outputs.send(
            "vehicles.signals",
            signal_key(vehicle["registration_number"], vehicle["plate"]),
            vehicle,
        )
        raw = kafka_clients.producer(settings)
        await raw.start()
        await raw.send_and_wait(settings.topic("persons.approved"), b"not avro", key=b"junk")
        await raw.stop()
    finally:
        await producer.stop()

    distributor = Distributor(settings)
    await distributor.start()
    assert distributor.store and distributor.consumer and distributor.sender
    assert distributor.relay and distributor.dispatcher
    store = distributor.store
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(distributor.consumer.run(stop)),
        asyncio.create_task(distributor.sender.run(stop)),
        asyncio.create_task(distributor.relay.run(stop)),
    ]
    try:

        async def consumed() -> bool:
            entries = await store.pool.fetchval("SELECT count(*) FROM entries")
            notices = await store.pool.fetchval("SELECT count(*) FROM notices")
            version = await store.pool.fetchval(
                "SELECT version FROM entries WHERE registration_number = 'PL0900-2026000003'"
            )
            return bool(entries == 5 and notices == 3 and version == 2)

        await eventually(consumed)
        consumer = distributor.consumer

        async def all_thirteen_handled() -> bool:
            # The junk record changes no table, so "consumed" can hold before it is handled.
            return consumer.processed >= 13

        await eventually(all_thirteen_handled)
        daily = await distributor.dispatcher.ensure_daily(DAY)
        assert (daily.recipients, daily.stored, daily.records) == (3, 3, 4)
        batches = await distributor.dispatcher.batch_notices()
        assert sorted((b.category.value, b.stored) for b in batches) == [
            ("person_notice", 2),
            ("vehicle_notice", 1),
            ("victim_notice", 1),
        ]
        assert await distributor.dispatcher.batch_notices() == [], "a notice is batched once"

        async def delivered_and_published() -> bool:
            unsent = await store.pool.fetchval("SELECT count(*) FROM outbox WHERE state <> 'sent'")
            unpublished = await store.pool.fetchval(
                "SELECT count(*) FROM provisions WHERE published_at IS NULL"
            )
            return bool(unsent == 0 and unpublished == 0 and len(smtp_server.mails()) == 7)

        await eventually(delivered_and_published)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await distributor.stop()

    mails = smtp_server.mails()
    grouped = by_category(mails)
    # Entitlement: each category reaches its roles and no other.
    assert recipients(grouped["dagmonitor_daily"]) == sorted([SAFETY, MEETING, TEAM_LEADER])
    assert recipients(grouped["person_notice"]) == sorted([SAFETY, TEAM_LEADER])
    assert recipients(grouped["victim_notice"]) == [SAFETY]
    assert recipients(grouped["vehicle_notice"]) == [TEAM_LEADER]
    assert {m["X-Dagmonitor-Category"] for m in mails if m["X-Envelope-To"] == MEETING} == {
        "dagmonitor_daily"
    }

    # The daily Dagmonitor: grouping, precision, the CSV, and no personal data.
    for mail in grouped["dagmonitor_daily"]:
        assert mail["Subject"] == "Dagmonitor 27-11-2026"
        text = text_of(mail)
        assert text.index("== Binnenstad: 2") < text.index("== Oost: 2")
        assert "WK0344" not in text + html_of(mail), "names, not codes, where a person reads"
        assert (
            "09:15  A10  DIEFSTAL UIT/VANAF PERSONENAUTO | ter hoogte van Voorbeeldstraat 12 bis"
            in text
        )
        assert "00:30  A20  GEKWAL. DIEFSTAL IN/UIT WONING | Proefsteeg 3A" in text
        assert "-- 3581AC: 1" in text and "3581AB" not in text, "the newer version is reported"
        assert text.index("-- 3581AC") < text.index("-- Postcode onbekend")
        assert "ter hoogte van Voorbeeldstraat 12 bis" in html_of(mail)
        attachment = next(mail.iter_attachments())
        assert attachment.get_filename() == "dagmonitor-2026-11-27.csv"
        marking, _, table = attachment.get_payload(decode=True).decode("utf-8-sig").partition("\n")
        assert marking.rstrip("\r") == CONFIDENTIAL
        rows = list(csv.DictReader(io.StringIO(table), delimiter=";"))
        assert [(r["postcode"], r["mk_code"], r["tijd_melding"]) for r in rows] == [
            ("3511AB", "A20", "00:30"),
            ("3511AB", "A10", "09:15"),
            ("3581AC", "E35", "20:05"),
            ("", "F530", "13:00"),
        ]
        raw = mail.as_string()
        for personal in (
            SUSPECT_NAME,
            "Verzonnen",
            "Persoonsma",
            VICTIM_PHONE,
            PLATE,
            "Nergensweg",
        ):
            assert personal not in raw
        for key in IN_DAY:
            assert key not in raw, "registration numbers stay out of the mail"

    person = grouped["person_notice"][0]
    assert SUSPECT_NAME in text_of(person) and "bvh://photos/0001" not in html_of(person)
    assert "Foto: nog niet ontvangen" in html_of(person), "no photo delivered in this test"
    victim = grouped["victim_notice"][0]
    assert VICTIM_PHONE in text_of(victim) and "Achterdeur geforceerd" in text_of(victim)
    assert PLATE in text_of(grouped["vehicle_notice"][0])

    # The register: PostgreSQL, the topic and the SMTP server agree, one to one.
    received = sorted((m["Message-ID"], m["X-Envelope-To"]) for m in mails)
    assert len(set(received)) == len(received) == 7
    rows = await store_rows(settings)
    assert sorted((r["message_id"], r["recipient_address"]) for r in rows) == received
    on_topic = await read_provisions(settings, expected=7)
    assert len(on_topic) == 7, "each provision once on the topic"
    assert sorted((p["message_id"], p["recipient_address"]) for p in on_topic) == received
    assert {p["provision_id"] for p in on_topic} == {r["provision_id"] for r in rows}
    for p in on_topic:
        assert p["legal_basis"] == "art. 20 Wpg" and p["purpose"]
    keys = {p["category"]: {(k["topic"], k["key"]) for k in p["record_keys"]} for p in on_topic}  # type: ignore[attr-defined]
    assert keys["dagmonitor_daily"] == {("dagmonitor.entries", k) for k in IN_DAY}
    assert keys["person_notice"] == {("persons.approved", "req-person-1")}
    assert keys["victim_notice"] == {("victims.approved", "req-victim-1")}
    assert keys["vehicle_notice"] == {("vehicles.signals", signal_key("PL0900-2026000009", PLATE))}


async def store_rows(settings: DistributorSettings) -> list[dict[str, object]]:
    import asyncpg

    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        rows = await conn.fetch(f"SELECT * FROM {settings.db_schema}.provisions")
        return [dict(r) | {"record_keys": json.loads(r["record_keys"])} for r in rows]
    finally:
        await conn.close()
