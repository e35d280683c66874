"""Outside the covenant's term the classifier keeps classifying and dead-lettering: its
outputs stay inside the police's pipeline (the approval service puts no request before an
officer and the distributor sends no mail outside the term), and a withdrawal must still
retract what was derived (docs/adr/0018-covenant-term.md)."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from dagmonitor.codec import INCIDENT_EVENT, default_codec
from dagmonitor.settings import DagmonitorSettings
from services.classifier.app import Classifier
from services.classifier.config import ClassifierSettings
from tests.kafkautil import produce, read_all
from tests.samples import incident

pytestmark = pytest.mark.integration


async def test_after_the_end_input_is_still_classified_and_dead_lettered(
    fresh_settings: DagmonitorSettings,
) -> None:
    settings = ClassifierSettings.load(
        topic_prefix=fresh_settings.topic_prefix,
        team_districts="DC01",
        covenant_start_date=date(2024, 1, 1),
        covenant_end_date=date(2024, 12, 31),
    )
    app = Classifier(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        async with asyncio.timeout(30):
            while not await app.ready():
                await asyncio.sleep(0.1)
        reg = "PL0900-2026000700"
        await produce(
            settings,
            "ingest.incidents",
            [
                (reg.encode(), default_codec().encode(INCIDENT_EVENT, incident(reg))),
                (b"garbage", b"\x00\x01not avro"),
            ],
        )
        entries = await read_all(settings, "dagmonitor.entries", expect=1)
        assert [k for k, _ in entries] == [reg]
        letters = await read_all(settings, "pipeline.deadletter", expect=1)
        assert [(v["service"], v["reason"]) for _, v in letters if v] == [
            ("classifier", "not_avro")
        ]
    finally:
        stop.set()
        await task
