"""Outside the covenant's term ingest still validates and dead-letters: ingest provides nothing
to anyone (the approval service and the distributor hold), so the term changes nothing here
and the police's input is never lost (docs/adr/0018-covenant-term.md)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from dagmonitor.codec import INCIDENT_EVENT, default_codec
from dagmonitor.settings import DagmonitorSettings
from services.ingest.app import Ingest
from services.ingest.config import IngestSettings
from tests.kafkautil import produce, read_all
from tests.samples import incident

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end"),
    [(date(2024, 1, 1), date(2024, 12, 31)), (date(2027, 1, 1), date(2027, 12, 31))],
    ids=["after-the-end", "before-the-start"],
)
async def test_outside_the_term_input_is_still_validated_and_dead_lettered(
    fresh_settings: DagmonitorSettings, start: date, end: date
) -> None:
    settings = IngestSettings.load(
        topic_prefix=fresh_settings.topic_prefix,
        covenant_start_date=start,
        covenant_end_date=end,
    )
    assert not settings.covenant_term.in_term(NOW, ZoneInfo("Europe/Amsterdam"))
    ingest = Ingest(settings, clock=lambda: NOW)
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop))
    try:
        async with asyncio.timeout(30):
            while not await ingest.ready():
                await asyncio.sleep(0.1)
        reg = "PL0900-2026000001"
        await produce(
            fresh_settings,
            "bvh.incidents",
            [
                (reg.encode(), default_codec().encode(INCIDENT_EVENT, incident(reg))),
                (b"garbage", b"\x00\x01not avro"),
            ],
        )
        passed = await read_all(fresh_settings, "ingest.incidents", expect=1)
        assert [k for k, _ in passed] == [reg]
        letters = await read_all(fresh_settings, "pipeline.deadletter", expect=1)
        assert [(k, v["reason"]) for k, v in letters if v] == [("garbage", "not_avro")]
    finally:
        stop.set()
        await task
