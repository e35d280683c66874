"""Why the service appends segment-roll markers: on the real broker, a tombstone alone leaves
the value it replaces readable for as long as nothing else is written to the partition (the
cleaner never touches the active segment); the marker closes the segment and the cleaner then
removes the value within seconds."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest

from dagmonitor.settings import DagmonitorSettings
from services.retention.app import RetentionApp
from tests.integration.retention.conftest import (
    Record,
    eventually,
    now_ms,
    produce,
    read_topic,
    retention_settings,
)
from tests.samples import escalation

pytestmark = pytest.mark.integration

TOPIC = "escalations.approved"


async def _values(settings: DagmonitorSettings, key: str) -> int:
    return sum(1 for r in await read_topic(settings, TOPIC) if r.key == key and r.value)


async def test_a_tombstoned_value_lingers_until_a_marker_closes_its_segment(
    prefixed: DagmonitorSettings, schemas: Callable[[str], str]
) -> None:
    key = f"9{uuid.uuid4().hex[:3].upper()}ZZ"
    await produce(
        prefixed,
        [
            Record(TOPIC, key, escalation(key), now_ms() - timedelta(days=2)),
            Record(TOPIC, key, None, now_ms()),
        ],
    )
    # The cleaner checks every second and the segment lifetime is one second: it had every
    # chance, but the tombstone sits in the active segment.
    await asyncio.sleep(4)
    assert await _values(prefixed, key) == 1

    app = RetentionApp(retention_settings(prefixed, schemas("retention")))
    await app.start()
    try:
        assert app.publisher is not None
        appended = await app.publisher.roll(TOPIC)
        started = time.monotonic()
        assert appended == 3  # one marker per partition
        await eventually(lambda: _no_value(prefixed, key), timeout=60)
        print(f"\nvalue compacted away {time.monotonic() - started:.1f} s after the marker")
    finally:
        await app.stop()
    tombstones = [r for r in await read_topic(prefixed, TOPIC) if r.key == key]
    assert tombstones and all(r.value is None for r in tombstones)


async def _no_value(settings: DagmonitorSettings, key: str) -> bool:
    return await _values(settings, key) == 0
