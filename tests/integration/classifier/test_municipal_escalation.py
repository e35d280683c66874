"""Police E35 and municipal youth-nuisance reports counted in one window per postcode area, on
the real broker (ADR 0013): one request per area, entries only for the police's reports, and
under PC4 an escalation that covers every postcode of the four digits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dagmonitor.codec import ESCALATION, INCIDENT_EVENT, MUNICIPAL_REPORT, default_codec
from dagmonitor.settings import DagmonitorSettings
from services.classifier.app import Classifier
from services.classifier.config import ClassifierSettings
from tests.kafkautil import produce, read_all
from tests.samples import escalation, incident
from tests.unit.ingest.samples import report

pytestmark = pytest.mark.integration


async def _classifier(
    fresh_settings: DagmonitorSettings, area: str
) -> AsyncIterator[ClassifierSettings]:
    settings = ClassifierSettings.load(
        topic_prefix=fresh_settings.topic_prefix,
        team_districts="DC01",
        e35_threshold=3,
        escalation_area=area,
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


@pytest.fixture
async def pc6(fresh_settings: DagmonitorSettings) -> AsyncIterator[ClassifierSettings]:
    async for settings in _classifier(fresh_settings, "pc6"):
        yield settings


@pytest.fixture
async def pc4(fresh_settings: DagmonitorSettings) -> AsyncIterator[ClassifierSettings]:
    async for settings in _classifier(fresh_settings, "pc4"):
        yield settings


def _e35(registration: str, postcode: str, at: datetime) -> tuple[bytes, bytes]:
    event = incident(registration, mk_code="E35")
    event["reported_at"] = at
    event["committed_from"] = None
    event["location"]["postcode"] = postcode
    return registration.encode(), default_codec().encode(INCIDENT_EVENT, event)


def _municipal(report_id: str, postcode: str, at: datetime) -> tuple[bytes, bytes]:
    value = default_codec().encode(
        MUNICIPAL_REPORT, report(report_id, postcode=postcode, reported_at=at)
    )
    return report_id.encode(), value


async def _requests(settings: ClassifierSettings, expect: int) -> list[dict[str, Any]]:
    """The requests, once ``expect`` arrived and a second passed without more."""
    await read_all(settings, "approval.requests", expect=expect, timeout=30)
    await asyncio.sleep(1)
    return [v for _, v in await read_all(settings, "approval.requests", idle=1.0) if v]


async def test_police_and_municipal_reports_cross_the_threshold_together(
    pc6: ClassifierSettings,
) -> None:
    now = datetime.now(UTC)
    await produce(
        pc6,
        "ingest.municipal",
        [
            _municipal("sig-1", "3511CC", now - timedelta(hours=3)),
            _municipal("sig-2", "3511 cc", now - timedelta(hours=2)),
        ],
    )
    await produce(
        pc6, "ingest.incidents", [_e35("PL0900-2026000800", "3511CC", now - timedelta(hours=1))]
    )
    (request,) = await _requests(pc6, expect=1)
    assert (request["category"], request["postcode"]) == ("YOUTH_NUISANCE_DETAIL", "3511CC")
    assert request["district_code"] == "DC01"
    entries = await read_all(pc6, "dagmonitor.entries", idle=1.0)
    assert {k for k, _ in entries} == {"PL0900-2026000800"}  # municipal reports: counted only


async def test_pc4_counts_and_escalates_the_four_digit_area(pc4: ClassifierSettings) -> None:
    now = datetime.now(UTC)
    codec = default_codec()
    await produce(
        pc4,
        "ingest.municipal",
        [
            _municipal("sig-1", "3511AA", now - timedelta(hours=3)),
            _municipal("sig-2", "3511BB", now - timedelta(hours=2)),
        ],
    )
    await produce(
        pc4, "ingest.incidents", [_e35("PL0900-2026000801", "3511CC", now - timedelta(hours=1))]
    )
    (request,) = await _requests(pc4, expect=1)
    assert request["postcode"] == "3511"

    approved = escalation("3511")
    approved["valid_until"] = now + timedelta(days=28)
    await produce(pc4, "escalations.approved", [(b"3511", codec.encode(ESCALATION, approved))])
    # A later report in another postcode of the area: detailed once the classifier holds the
    # escalation (a new report each try, so no wait has to be guessed).
    detailed = None
    for attempt in range(20):
        registration = f"PL0900-20260008{10 + attempt}"
        await produce(pc4, "ingest.incidents", [_e35(registration, "3511 DD", now)])
        entries: dict[str | None, Any] = {}
        for _ in range(40):
            entries = dict(await read_all(pc4, "dagmonitor.entries", idle=0.5))
            if registration in entries:
                break
        if entries[registration]["house_number"] is not None:
            detailed = entries[registration]
            break
        await asyncio.sleep(0.5)
    assert detailed is not None
    assert (detailed["house_number"], detailed["location_qualifier"]) == (12, "ter hoogte van")
    assert entries["PL0900-2026000801"]["house_number"] is None
