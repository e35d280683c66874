"""The sweep: every record whose retention period has ended by "now" is deleted everywhere.

Per batch of the first expired index rows (``policy.expires_at``: its topic's period, at most
365 days, less the deletion lead; or sooner, by the record's own end date), in one PostgreSQL
transaction:

1. the rows are deleted (``DELETE ... RETURNING``; others see them, locked, until the commit);
2. a ``RetentionEvent`` per record on ``retention.events`` (``deleted_at``: the wall-clock time
   of the deletion, even when the sweep was given another "now"), acknowledged;
3. a tombstone (key, null) per record on its topic, acknowledged: every service that keeps a
   copy deletes it when it consumes the tombstone (approval: the request's personal data;
   distributor: the entry or notice and every unsent mail carrying it; classifier: an
   escalation), and compaction removes the value from the topic;
4. the commit: only now are the rows gone for good. Any failure before it rolls the deletion
   back.

A sweep interrupted anywhere leaves each batch either committed (done) or with its rows still
in the index; the next sweep sends those records' events and tombstones again. Both are keyed
(by ``topic:key`` and by the record's key), so a repeat changes no end state: a tombstone on a
deleted key deletes nothing, and the events carry the same key (consumers de-duplicate by it).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

from dagmonitor.clock import Checkpoint, Clock, no_checkpoint, utc_now
from dagmonitor.telemetry import get_logger
from services.retention.metrics import LAST_SWEEP, RECORDS_EXPIRED, SWEEP_SECONDS
from services.retention.policy import Provided
from services.retention.publisher import Publisher
from services.retention.store import Store

_log = get_logger(__name__)


@dataclass(frozen=True)
class SweepResult:
    """What one sweep deleted: records per topic, for "now" and the cutoff it used."""

    now: datetime
    cutoff: datetime
    expired: dict[str, int] = field(default_factory=dict)
    batches: int = 0

    @property
    def total(self) -> int:
        return sum(self.expired.values())


class Sweeper:
    """Runs sweeps over the index; see the module docstring for the order of writes."""

    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        *,
        batch_size: int,
        checkpoint: Checkpoint = no_checkpoint,
        wall_clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._batch_size = batch_size
        self._checkpoint = checkpoint
        self._wall_clock = wall_clock

    async def sweep(self, now: datetime, *, trigger: str = "command") -> SweepResult:
        """Delete every record expired before ``now``; returns the counts.

        ``trigger`` is "schedule" (the daily run), "due" (an expiry seen between daily runs) or
        "command" (on demand); each sweep is logged in the ``sweeps`` table with its "now".
        """
        cutoff = now
        started = time.perf_counter()
        sweep_id = await self._store.start_sweep(trigger, now, cutoff, self._wall_clock())
        expired: Counter[str] = Counter()
        batches = 0
        _log.info("sweep_started", trigger=trigger, now=now.isoformat(), cutoff=cutoff.isoformat())
        while True:
            async with self._store.expired_batch(cutoff, self._batch_size) as records:
                if not records:
                    break
                await self._publisher.expire(records, deleted_at=self._wall_clock())
                self._checkpoint("published")
            batches += 1
            for record in records:
                expired[record.topic] += 1
                RECORDS_EXPIRED.labels(record.topic).inc()
            self._checkpoint("committed")
        total = sum(expired.values())
        await self._store.finish_sweep(sweep_id, self._wall_clock(), total)
        elapsed = time.perf_counter() - started
        SWEEP_SECONDS.observe(elapsed)
        LAST_SWEEP.set(time.time())
        _log.info(
            "sweep_finished",
            trigger=trigger,
            expired=total,
            batches=batches,
            seconds=round(elapsed, 3),
            **{f"expired_{topic.replace('.', '_')}": n for topic, n in sorted(expired.items())},
        )
        return SweepResult(now, cutoff, dict(expired), batches)

    def pending(self, now: datetime) -> AsyncIterator[Provided]:
        """What a sweep at ``now`` would delete, oldest first (the dry run): reads only."""
        return self._store.expired(now)
