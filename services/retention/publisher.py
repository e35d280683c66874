"""Kafka adapter of the retention service: tombstones, retention events and segment-roll markers.

Everything goes through ``dagmonitor.streaming.Outputs`` (idempotent producer, ``acks=all``,
trace headers), and every call returns only once the broker acknowledged all its records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from functools import cache

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from dagmonitor import deletion, topics
from dagmonitor.deletion import Deletion
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.streaming import Outputs
from services.retention.metrics import SEGMENT_ROLLS, TOMBSTONES_EMITTED
from services.retention.policy import ROLL_KEY_PREFIX, Provided

EVENTS_TOPIC = "retention.events"
_RETENTION = deletion.headers(Deletion.RETENTION)
"""Every tombstone of the sweep says it is one: its consumers send no withdrawal notice."""


@cache
def roll_keys(partitions: int) -> tuple[str, ...]:
    """One marker key per partition, index = partition, under Kafka's default partitioner
    (murmur2 of the key, as the Java client and aiokafka compute it)."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < partitions:
        key = f"{ROLL_KEY_PREFIX}{n}"
        found.setdefault((murmur2(key.encode()) & 0x7FFFFFFF) % partitions, key)
        n += 1
    return tuple(found[p] for p in range(partitions))


class Publisher:
    """Writes what the sweep and the segment rolls produce."""

    def __init__(
        self, producer: AIOKafkaProducer, settings: DagmonitorSettings, service: str
    ) -> None:
        self._producer = producer
        self._settings = settings
        self._outputs = Outputs(producer, settings, service)

    async def expire(self, records: Sequence[Provided], deleted_at: datetime) -> None:
        """A ``RetentionEvent`` for each record, then a tombstone on its topic; returns when the
        broker acknowledged all of them. Events first: a tombstone on the topic always has its
        event, even when a sweep dies between the two (each group is sent concurrently, so a
        batch costs two round trips, not two per record)."""
        await asyncio.gather(
            *(
                self._outputs.send(EVENTS_TOPIC, r.event_key, r.retention_event(deleted_at))
                for r in records
            )
        )
        await asyncio.gather(
            *(self._outputs.send(r.topic, r.key, None, _RETENTION) for r in records)
        )
        for r in records:
            TOMBSTONES_EMITTED.labels(r.topic).inc()

    async def roll(self, topic: str) -> int:
        """Append a marker to every partition of ``topic``; returns how many were appended."""
        partitions = await self._producer.partitions_for(self._settings.topic(topic))
        count = len(partitions) if partitions else topics.get(topic).partitions
        keys = roll_keys(count)
        await asyncio.gather(*(self._outputs.send(topic, key, None, _RETENTION) for key in keys))
        SEGMENT_ROLLS.labels(topic).inc(len(keys))
        return len(keys)
