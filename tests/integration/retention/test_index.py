"""Indexing the provided topics from the real broker: first provision time, withdrawals,
idempotent replays, owed segment rolls."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta

import asyncpg
import pytest
from prometheus_client import REGISTRY

from dagmonitor.settings import DagmonitorSettings
from services.retention.app import RetentionApp
from services.retention.config import RetentionSettings
from services.retention.publisher import roll_keys
from tests.integration.retention.conftest import (
    Record,
    caught_up,
    eventually,
    index_rows,
    now_ms,
    produce,
    retention_settings,
)
from tests.samples import escalation

pytestmark = pytest.mark.integration


async def _consume_all(app: RetentionApp) -> None:
    """Run the app's consumer until it handled and committed everything on its topics."""
    assert app.consumer is not None
    consumer = app.consumer
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await eventually(lambda: caught_up(consumer))
    finally:
        stop.set()
        await task


async def _rolls(settings: RetentionSettings) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        return list(
            await conn.fetch(f"SELECT topic, due_at FROM {settings.db_schema}.segment_rolls")
        )
    finally:
        await conn.close()


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_index_keeps_the_first_provision_forgets_on_tombstones_and_replays_the_same(
    prefixed_as_in_production: DagmonitorSettings, schemas: Callable[[str], str]
) -> None:
    prefixed = prefixed_as_in_production
    topic = "escalations.approved"
    # Hours, not days, in the past: a segment rolls when its first record is older than
    # segment.ms (a day), by the records' own timestamps, and the cleaner may then compact
    # ``first``'s older value away before the index read it (it did, 1 run in 3).
    t1 = now_ms() - timedelta(hours=4)
    t2, t3, t4 = (t1 + timedelta(hours=h) for h in (1, 2, 3))
    first, withdrawn, again, junk = (f"{n}{uuid.uuid4().hex[:4].upper()}" for n in range(4))
    marker = roll_keys(3)[0]
    records = [
        Record(topic, first, escalation(first), t1),
        Record(topic, first, escalation(first), t2),  # a newer value: still provided at t1
        Record(topic, withdrawn, escalation(withdrawn), t1),
        Record(topic, withdrawn, None, t3),  # withdrawn before it expired
        Record(topic, again, escalation(again), t1),
        Record(topic, again, None, t2),
        Record(topic, again, escalation(again), t4),  # provided anew after the tombstone
        Record(topic, marker, None, t3),  # a segment-roll marker: owes no roll itself
        # A value nobody can decode is still on the topic: still provided, still expires.
        Record(topic, junk, b"not avro", t1),
    ]
    await produce(prefixed, records)

    settings = retention_settings(prefixed, schemas("retention"))
    withdrawn_before = _metric(
        "dagmonitor_retention_records_withdrawn_total", topic="escalations.approved"
    )
    app = RetentionApp(settings, group=f"test-{uuid.uuid4().hex[:8]}")
    await app.start()
    try:
        await _consume_all(app)
    finally:
        await app.stop()
    expected = {(topic, first): t1, (topic, again): t4, (topic, junk): t1}
    assert await index_rows(settings) == expected
    assert (
        _metric("dagmonitor_retention_records_withdrawn_total", topic="escalations.approved")
        == withdrawn_before + 2  # `withdrawn`, and `again` before it came back
    )
    rolls = await _rolls(settings)
    assert {r["topic"] for r in rolls} == {topic}
    delay = timedelta(seconds=settings.retention_roll_delay_seconds)
    assert min(r["due_at"] for r in rolls) >= t2 + delay
    assert max(r["due_at"] for r in rolls) >= t3 + delay
    assert len(rolls) == 2  # the tombstones at t2 and t3; the marker's owes nothing

    # Replaying everything (a new consumer group from the beginning) changes nothing; on a
    # compacted log the replay sees only the newest value of ``first``, and the row keeps t1.
    replay = RetentionApp(settings, group=f"test-{uuid.uuid4().hex[:8]}")
    await replay.start()
    try:
        await _consume_all(replay)
    finally:
        await replay.stop()
    assert await index_rows(settings) == expected
