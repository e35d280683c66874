"""The provision register on Kafka: rows of ``provisions`` relayed to ``distribution.provisions``.

The register row is written in the same transaction that marks a mail sent; this relay then
publishes it, keyed by its deterministic ``provision_id``, exactly once:

- one relay at a time (a PostgreSQL session lock; a second replica waits);
- ``publish_started_at`` is committed before a row is published, ``published_at`` after the
  broker's ack;
- a row that was started but never marked (the relay died between the ack and the mark, or
  the publish failed) is first looked up on the topic, from shortly before its start time;
  only when its ``provision_id`` is not there is it published (again).
"""

from __future__ import annotations

import asyncio
import zlib
from datetime import datetime
from typing import Any

from aiokafka import TopicPartition

from dagmonitor import kafka_clients, topics
from dagmonitor.clock import Checkpoint, no_checkpoint
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.streaming import TRANSIENT_ERRORS, Outputs
from dagmonitor.telemetry import get_logger
from services.distributor.metrics import PROVISIONS_PUBLISHED
from services.distributor.store import Store, Unpublished, recent

TOPIC = "distribution.provisions"
_SCAN_TIMEOUT_SECONDS = 60.0
_log = get_logger(__name__)


def provision_record(row: Unpublished) -> dict[str, Any]:
    """The ``Provision`` value of a register row."""
    return {
        "provision_id": row.provision_id,
        "record_keys": [{"topic": r.topic, "key": r.key} for r in row.record_keys],
        "category": row.category,
        "recipient_role": row.recipient_role,
        "recipient_address": row.recipient_address,
        "sent_at": row.sent_at,
        "message_id": row.message_id,
        "legal_basis": row.legal_basis,
        "purpose": row.purpose,
    }


class ProvisionRelay:
    """Publishes unpublished provisions; ``run`` loops until stopped."""

    def __init__(
        self,
        store: Store,
        outputs: Outputs,
        settings: DagmonitorSettings,
        *,
        schema: str,
        poll_seconds: float = 2.0,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        self._store = store
        self._outputs = outputs
        self._settings = settings
        self._lock = zlib.crc32(f"dagmonitor-distributor-relay:{schema}".encode())
        self._poll = poll_seconds
        self._checkpoint = checkpoint
        self.wake = asyncio.Event()

    async def publish_pending(self, limit: int = 200) -> int:
        """Publish what is unpublished (one batch); returns how many went on the topic."""
        async with self._store.pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock):
                return 0
            try:
                rows = await self._store.unpublished(conn, limit)
                started = [r.publish_started_at for r in rows if r.publish_started_at is not None]
                if started:
                    on_topic = await self._keys_on_topic(recent(min(started)))
                    done = [r.provision_id for r in rows if r.provision_id in on_topic]
                    await self._store.mark_published(conn, done)
                    rows = [r for r in rows if r.provision_id not in on_topic]
                if not rows:
                    return 0
                ids = [r.provision_id for r in rows]
                await self._store.mark_publish_started(conn, ids)
                for row in rows:
                    await self._outputs.send(TOPIC, row.provision_id, provision_record(row))
                self._checkpoint("published")
                await self._store.mark_published(conn, ids)
                PROVISIONS_PUBLISHED.inc(len(ids))
                return len(ids)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", self._lock)

    async def _keys_on_topic(self, since: datetime) -> set[str]:
        """Keys of the records on the provisions topic from ``since`` to its current end."""
        topic = self._settings.topic(TOPIC)
        consumer = kafka_clients.consumer(
            self._settings,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        keys: set[str] = set()
        try:
            # The topic is created from the topic table, so its partitions are known.
            partitions = [TopicPartition(topic, p) for p in range(topics.get(TOPIC).partitions)]
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            starts = await consumer.offsets_for_times(
                {tp: int(since.timestamp() * 1000) for tp in partitions}
            )
            for tp in partitions:
                found = starts.get(tp)
                consumer.seek(tp, found.offset if found is not None else ends[tp])
            remaining = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
            async with asyncio.timeout(_SCAN_TIMEOUT_SECONDS):
                while remaining:
                    batches = await consumer.getmany(*remaining, timeout_ms=1000)
                    for records in batches.values():
                        keys.update(r.key.decode("utf-8") for r in records if r.key is not None)
                    for tp in list(remaining):
                        if await consumer.position(tp) >= ends[tp]:
                            remaining.discard(tp)
        finally:
            await consumer.stop()
        return keys

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake.clear()
            try:
                while await self.publish_pending():
                    pass
            except TRANSIENT_ERRORS as exc:
                _log.warning("provision_relay_failed", error=type(exc).__name__)
            waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(self.wake.wait())]
            try:
                await asyncio.wait(waiters, timeout=self._poll, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
