"""The classifier's agents on the real broker: retraction by tombstone and new versions,
E35 escalation requests, and detail under an approved escalation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dagmonitor import kafka_clients
from dagmonitor.codec import ESCALATION, INCIDENT_EVENT, default_codec
from dagmonitor.settings import DagmonitorSettings
from services.classifier.app import Classifier
from services.classifier.config import ClassifierSettings
from tests.kafkautil import produce, read_all
from tests.samples import escalation, incident, signal_key

pytestmark = pytest.mark.integration


@pytest.fixture
async def classifier(fresh_settings: DagmonitorSettings) -> AsyncIterator[ClassifierSettings]:
    settings = ClassifierSettings.load(
        topic_prefix=fresh_settings.topic_prefix, team_districts="DC01", e35_threshold=3
    )
    app = Classifier(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        async with asyncio.timeout(30):
            while not await app.ready():
                await asyncio.sleep(0.1)
        yield settings
    finally:
        stop.set()
        await task


def _latest(records: list[tuple[str | None, Any]]) -> dict[str | None, Any]:
    latest: dict[str | None, Any] = {}
    for key, value in records:
        latest[key] = value
    return latest


async def _wait_latest(settings: ClassifierSettings, topic: str, check: Any) -> dict:
    latest: dict = {}
    for _ in range(40):
        latest = _latest(await read_all(settings, topic, idle=0.5))
        if check(latest):
            return latest
        await asyncio.sleep(0.25)
    return latest


async def test_tombstones_and_new_versions_retract_derived_records(
    classifier: ClassifierSettings,
) -> None:
    codec = default_codec()
    reg = "PL0900-2026000500"
    v1 = incident(reg, version=1, mk_code="B20")  # victim + suspect + stolen scooter
    v2 = incident(reg, version=2, mk_code="B20")
    v2["vehicles"] = []  # the scooter turned out not to be stolen
    other = incident("PL0900-2026000501", version=1, mk_code="A20")
    await produce(
        classifier,
        "ingest.incidents",
        [
            (reg.encode(), codec.encode(INCIDENT_EVENT, v1)),
            (reg.encode(), codec.encode(INCIDENT_EVENT, v2)),
            (b"PL0900-2026000501", codec.encode(INCIDENT_EVENT, other)),
        ],
    )
    signals = await _wait_latest(
        classifier, "vehicles.signals", lambda d: d.get(signal_key(reg, "XX-000-X"), 1) is None
    )
    assert set(signals) == {
        signal_key(reg, "XX-000-X"),
        signal_key("PL0900-2026000501", "XX-000-X"),
    }
    assert signals[signal_key(reg, "XX-000-X")] is None  # v2 no longer has the stolen scooter
    assert signals[signal_key("PL0900-2026000501", "XX-000-X")]["kind"] == "SCOOTER"
    entries = await _wait_latest(classifier, "dagmonitor.entries", lambda d: len(d) == 2)
    assert entries[reg]["version"] == 2

    # The police withdraw the registration: everything derived from it goes.
    await produce(classifier, "ingest.incidents", [(reg.encode(), None)])
    entries = await _wait_latest(classifier, "dagmonitor.entries", lambda d: d.get(reg, 1) is None)
    assert entries[reg] is None
    assert entries["PL0900-2026000501"] is not None
    requests = await _wait_latest(
        classifier,
        "approval.requests",
        lambda d: sum(v is None for v in d.values()) == 2,
    )
    gone = [k for k, v in requests.items() if v is None]
    alive = [v for v in requests.values() if v is not None]
    assert len(gone) == 2  # the suspect's and the victim's request of the withdrawn one
    assert {v["source_key"] for v in alive} == {"PL0900-2026000501"}


async def test_e35_threshold_asks_once_and_escalation_gives_detail(
    classifier: ClassifierSettings,
) -> None:
    codec = default_codec()
    now = datetime.now(UTC)
    reports = []
    for i in range(5):
        event = incident(f"PL0900-20260006{i:02d}", mk_code="E35")
        event["reported_at"] = now - timedelta(hours=5 - i)
        event["committed_from"] = None
        event["location"]["postcode"] = "3511 CC"
        reports.append((event["registration_number"].encode(), codec.encode(INCIDENT_EVENT, event)))
    await produce(classifier, "ingest.incidents", reports[:4])
    requests = await _wait_latest(
        classifier, "approval.requests", lambda d: any(v for v in d.values())
    )
    (request,) = [v for v in requests.values() if v]
    assert request["category"] == "YOUTH_NUISANCE_DETAIL"
    assert request["approver_role"] == "POLICE_DISTRICT"
    assert request["postcode"] == "3511CC"
    assert request["subject"] is None
    entries = await _wait_latest(classifier, "dagmonitor.entries", lambda d: len(d) == 4)
    assert all(e["street"] is None for e in entries.values())

    # The district approves; from then on E35 reports there carry the street "ter hoogte van".
    approved = escalation("3511CC")
    approved["valid_until"] = now + timedelta(days=28)
    await produce(
        classifier, "escalations.approved", [(b"3511CC", codec.encode(ESCALATION, approved))]
    )
    await asyncio.sleep(2)
    await produce(classifier, "ingest.incidents", reports[4:])
    entries = await _wait_latest(classifier, "dagmonitor.entries", lambda d: len(d) == 5)
    last = entries["PL0900-2026000604"]
    assert (last["street"], last["house_number"], last["location_qualifier"]) == (
        "Voorbeeldstraat",
        12,
        "ter hoogte van",
    )
    requests = await _wait_latest(classifier, "approval.requests", lambda d: True)
    assert len([v for v in requests.values() if v]) == 1  # still one request for the postcode


async def test_a_starting_classifier_holds_every_escalation_before_its_first_incident(
    fresh_settings: DagmonitorSettings,
) -> None:
    """An escalation approved while the classifier was down: the view is rebuilt from the
    compacted topic before any incident is handled, so the first one is already detailed; and
    the internal E35 topic carries only what the window counts (ADR 0016)."""
    codec = default_codec()
    now = datetime.now(UTC)
    settings = ClassifierSettings.load(
        topic_prefix=fresh_settings.topic_prefix, team_districts="DC01", e35_threshold=3
    )
    approved = {**escalation("3511CC"), "valid_until": now + timedelta(days=28)}
    await produce(
        settings, "escalations.approved", [(b"3511CC", codec.encode(ESCALATION, approved))]
    )
    event = incident("PL0900-2026000650", mk_code="E35")  # a suspect, a victim, their phones
    event["location"]["postcode"] = "3511 CC"
    await produce(
        settings, "ingest.incidents", [(b"PL0900-2026000650", codec.encode(INCIDENT_EVENT, event))]
    )
    app = Classifier(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        (entry,) = [v for _, v in await read_all(settings, "dagmonitor.entries", expect=1)]
        assert entry is not None
        assert (entry["street"], entry["house_number"], entry["location_qualifier"]) == (
            "Voorbeeldstraat",
            12,
            "ter hoogte van",
        )
        envelopes = await _read_raw(settings, app.e35_topic, expect=1)
    finally:
        stop.set()
        await task
    assert envelopes == [
        (
            b"3511CC",
            {
                "registration_number": "PL0900-2026000650",
                "report": {
                    "reported_at": int(event["reported_at"].timestamp() * 1000),
                    "district_code": "DC01",
                },
            },
        )
    ]


async def _read_raw(
    settings: ClassifierSettings, physical: str, *, expect: int
) -> list[tuple[bytes | None, Any]]:
    """(key, JSON value) of an internal topic, from the beginning, once ``expect`` arrived."""
    reader = kafka_clients.consumer(
        settings, physical, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await reader.start()
    found: list[tuple[bytes | None, Any]] = []
    try:
        async with asyncio.timeout(30):
            while len(found) < expect:
                for records in (await reader.getmany(timeout_ms=500)).values():
                    found += [(r.key, json.loads(r.value or b"null")) for r in records]
    finally:
        await reader.stop()
    return found
