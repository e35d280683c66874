"""A sweep interrupted half-way and run again ends exactly where an uninterrupted one ends; two
sweeps at once share the work. Real PostgreSQL and Kafka; the index is seeded directly."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from dagmonitor.codec import RETENTION_EVENT, default_codec
from dagmonitor.settings import DagmonitorSettings
from services.retention import policy
from services.retention.app import open_sweeper
from services.retention.config import RetentionSettings
from services.retention.policy import PROVIDED_TOPICS
from tests.integration.retention.conftest import (
    index_rows,
    latest,
    now_ms,
    read_topic,
    retention_settings,
    seed_index,
)

pytestmark = pytest.mark.integration


class Crash(Exception):
    """The simulated crash."""


def crash_at(stage: str, batch: int) -> Callable[[str], None]:
    """A checkpoint that raises at ``stage`` of the ``batch``-th batch (1-based)."""
    seen: Counter[str] = Counter()

    def checkpoint(name: str) -> None:
        seen[name] += 1
        if name == stage and seen[name] == batch:
            raise Crash(f"simulated crash at {stage} of batch {batch}")

    return checkpoint


def _lasts(topic: str) -> timedelta:
    """How long after provision a record of ``topic`` expires (no end date in the seed)."""
    return PROVIDED_TOPICS[topic] - policy.DELETION_LEAD


def rows(tag: str, now: datetime) -> tuple[list[tuple[str, str, datetime]], set[tuple[str, str]]]:
    """23 expired rows spread over the topics and days, and 4 young ones; returns (rows,
    expired keys)."""
    out, expired = [], set()
    for i in range(23):
        topic = sorted(PROVIDED_TOPICS)[i % len(PROVIDED_TOPICS)]
        key = f"{tag}-old-{i}"
        out.append((topic, key, now - _lasts(topic) - timedelta(hours=i + 1)))
        expired.add((topic, key))
    for i in range(4):
        topic = sorted(PROVIDED_TOPICS)[i]
        out.append((topic, f"{tag}-young-{i}", now - _lasts(topic) + timedelta(hours=i)))
    return out, expired


async def _end_state(
    settings: RetentionSettings, prefixed: DagmonitorSettings, tag: str
) -> tuple[set[tuple[str, str]], set[tuple[str, str]], Counter[str]]:
    """(index rows, keys whose last word on their topic is a tombstone, events per key)."""
    index = {k for k in await index_rows(settings) if k[1].startswith(tag)}
    tombstoned = set()
    for topic in PROVIDED_TOPICS:
        last = latest(await read_topic(prefixed, topic))
        tombstoned |= {(topic, k) for k, v in last.items() if v is None and k.startswith(tag)}
    codec = default_codec()
    events: Counter[str] = Counter()
    for read in await read_topic(prefixed, "retention.events"):
        record = codec.decode(read.value or b"", expect=RETENTION_EVENT).record
        if record["key"].startswith(tag):
            assert read.key == f"{record['topic']}:{record['key']}"
            events[read.key] += 1
    return index, tombstoned, events


@pytest.mark.parametrize("stage", ["committed", "published"])
async def test_a_sweep_interrupted_half_way_and_run_again_ends_as_an_uninterrupted_one(
    prefixed: DagmonitorSettings, schemas: Callable[[str], str], stage: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    now = now_ms()
    seeded, expired = rows(tag, now)
    settings = retention_settings(prefixed, schemas("retention"), retention_batch_size=5)
    await seed_index(settings, seeded)

    with pytest.raises(Crash):
        async with open_sweeper(settings, checkpoint=crash_at(stage, 2)) as sweeper:
            await sweeper.sweep(now)
    index, tombstoned, _ = await _end_state(settings, prefixed, tag)
    done = 10 if stage == "committed" else 5  # batch 2 was published but not committed
    assert len(expired & index) == len(expired) - done
    assert len(tombstoned) == 10  # both batches' tombstones are out either way

    async with open_sweeper(settings) as sweeper:
        result = await sweeper.sweep(now)
    assert result.total == len(expired) - done

    index, tombstoned, events = await _end_state(settings, prefixed, tag)
    assert index == {(t, k) for t, k, _ in seeded} - expired  # the young ones, untouched
    assert tombstoned == expired
    assert set(events) == {f"{t}:{k}" for t, k in expired}
    # A batch published but not committed is published again: same keys, nothing else.
    repeated = {key for key, n in events.items() if n > 1}
    assert len(repeated) == (5 if stage == "published" else 0)

    # Nothing is left to do: a third sweep deletes nothing and writes nothing.
    async with open_sweeper(settings) as sweeper:
        assert (await sweeper.sweep(now)).total == 0
    assert (await _end_state(settings, prefixed, tag))[2] == events


async def test_two_sweeps_at_once_share_the_work_without_doubling_it(
    prefixed: DagmonitorSettings, schemas: Callable[[str], str]
) -> None:
    tag = uuid.uuid4().hex[:8]
    now = now_ms()
    seeded, expired = rows(tag, now)
    settings = retention_settings(prefixed, schemas("retention"), retention_batch_size=2)
    await seed_index(settings, seeded)

    async with open_sweeper(settings) as one, open_sweeper(settings) as other:
        results = await asyncio.gather(one.sweep(now), other.sweep(now))
    assert sum(r.total for r in results) == len(expired)
    index, tombstoned, events = await _end_state(settings, prefixed, tag)
    assert tombstoned == expired
    assert dict(events) == {f"{t}:{k}": 1 for t, k in expired}
    assert index == {(t, k) for t, k, _ in seeded} - expired
