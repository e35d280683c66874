"""The classifier's copy of a provided record: an approved escalation (postcode -> valid until)
in its replicated view of ``escalations.approved`` (ADR 0016). When the sweep tombstones an
escalation, the classifier forgets it: E35 reports in that postcode lose their house-number
detail, while a younger escalation keeps it.
(Its other tables hold output keys for retraction, not provided data: docs/adr/0007.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dagmonitor.codec import DAGMONITOR_ENTRY, default_codec
from dagmonitor.processor import ReplicatedView
from dagmonitor.settings import DagmonitorSettings
from services.classifier.app import Classifier
from services.classifier.config import ClassifierSettings
from services.retention import policy
from services.retention.app import RetentionApp
from tests.integration.retention.conftest import (
    Record,
    eventually,
    index_rows,
    now_ms,
    produce,
    read_topic,
    retention_settings,
)
from tests.samples import escalation, incident

pytestmark = pytest.mark.integration


def e35_report(registration: str, postcode: str) -> dict[str, Any]:
    event = incident(registration, mk_code="E35")
    event["reported_at"] = datetime.now(UTC) - timedelta(minutes=5)
    event["committed_from"] = None
    event["location"]["postcode"] = postcode
    return event


async def test_a_swept_escalation_is_forgotten_by_the_classifier(
    prefixed: DagmonitorSettings, schemas: Callable[[str], str]
) -> None:
    n = uuid.uuid4().int % 9000 + 1000
    old_pc, young_pc = f"{n}AA", f"{n}BB"
    t0 = now_ms() - timedelta(days=10)
    # in force past the sweep's "now": the period, not the end date, decides here
    valid = {"valid_until": datetime.now(UTC) + timedelta(days=400)}
    await produce(
        prefixed,
        [
            Record(
                "escalations.approved",
                old_pc,
                {**escalation(old_pc), **valid},
                t0 - timedelta(days=1),
            ),
            Record(
                "escalations.approved",
                young_pc,
                {**escalation(young_pc), **valid},
                t0 + timedelta(days=1),
            ),
        ],
    )
    settings = retention_settings(prefixed, schemas("retention"))
    retention = RetentionApp(settings)
    classifier = Classifier(
        ClassifierSettings.load(topic_prefix=prefixed.topic_prefix, team_districts="DC01")
    )
    stop = asyncio.Event()
    await retention.start()
    assert retention.consumer and retention.sweeper
    tasks = [
        asyncio.create_task(retention.run(stop)),  # consumer, and the segment rolls
        asyncio.create_task(classifier.run(stop)),
    ]
    view = classifier.escalations
    try:
        await eventually(classifier.ready, timeout=60)
        await eventually(lambda: _holds(view, {old_pc, young_pc}))

        async def indexed() -> bool:
            return len(await index_rows(settings)) == 2

        await eventually(indexed)
        result = await retention.sweeper.sweep(t0 + policy.MAX_PERIOD - policy.DELETION_LEAD)
        assert result.expired == {"escalations.approved": 1}
        # The tombstone (then a segment-roll marker on each of the topic's partitions, which
        # the view takes in its stride): the swept escalation is gone from the view.
        await eventually(lambda: _holds(view, {young_pc}))

        codec = default_codec()
        reg_old, reg_young = f"PL0900-2026{n}01", f"PL0900-2026{n}02"
        await produce(
            prefixed,
            [
                Record("ingest.incidents", reg_old, e35_report(reg_old, old_pc), now_ms()),
                Record("ingest.incidents", reg_young, e35_report(reg_young, young_pc), now_ms()),
            ],
        )

        async def both_entries() -> bool:
            keys = {r.key for r in await read_topic(prefixed, "dagmonitor.entries") if r.value}
            return {reg_old, reg_young} <= keys

        await eventually(both_entries, timeout=30)
        entries = {
            r.key: codec.decode(r.value, expect=DAGMONITOR_ENTRY).record
            for r in await read_topic(prefixed, "dagmonitor.entries")
            if r.value
        }
        assert entries[reg_young]["location_qualifier"] == "ter hoogte van"
        assert entries[reg_young]["street"] == "Voorbeeldstraat"
        assert entries[reg_old]["street"] is None  # the escalation went with its tombstone
        assert entries[reg_old]["location_qualifier"] is None
        assert await read_topic(prefixed, "pipeline.deadletter") == []
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await retention.stop()


async def _holds(view: ReplicatedView, postcodes: set[str]) -> bool:
    return {p for p in postcodes if view.get(p.encode()) is not None} == postcodes and len(
        view
    ) == len(postcodes)
