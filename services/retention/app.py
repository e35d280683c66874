"""Wiring of the retention service: migrations, pool, the indexing consumer, the daily sweep,
segment rolls and gauges.

``python -m services.retention`` runs it (HTTP on the contract's port 8085 for /metrics,
/healthz, /readyz). ``dagmonitor retention sweep`` uses the same parts (``open_sweeper``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer

from dagmonitor import db
from dagmonitor.clock import Checkpoint, Clock, last_daily_run, no_checkpoint, utc_now
from dagmonitor.deadletter import DeadLetters
from dagmonitor.retry import pause
from dagmonitor.service import ServiceParts, run_parts, serve_parts, stop_in_order
from dagmonitor.streaming import TRANSIENT_ERRORS, Incoming, RecordConsumer, new_producer
from dagmonitor.telemetry import ReadinessCheck, get_logger
from services.retention.config import RetentionSettings
from services.retention.indexer import KEYS_ONLY, Indexer
from services.retention.metrics import OLDEST_PROVIDED_AGE, OVERDUE
from services.retention.policy import PROVIDED_TOPICS, is_expired
from services.retention.publisher import Publisher
from services.retention.store import Store
from services.retention.sweep import Sweeper

SERVICE = "retention"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"

RETRYABLE: tuple[type[BaseException], ...] = (
    *TRANSIENT_ERRORS,
    # PostgreSQL shutting down or restarting under a running query (admin or crash shutdown,
    # cannot connect now): worth a retry too, like the shared transient errors.
    asyncpg.exceptions.OperatorInterventionError,
)

_log = get_logger(__name__)


async def open_store(settings: RetentionSettings, *, max_size: int = 5) -> Store:
    """Migrate the schema and open a pool on it."""
    return Store(await db.open_service_schema(settings, MIGRATIONS, max_size=max_size))


@asynccontextmanager
async def open_sweeper(
    settings: RetentionSettings, *, checkpoint: Checkpoint = no_checkpoint
) -> AsyncIterator[Sweeper]:
    """A sweeper with its own pool and producer (for the command), closed afterwards."""
    store = await open_store(settings, max_size=2)
    producer = new_producer(settings, SERVICE)
    try:
        await producer.start()
        yield Sweeper(
            store,
            Publisher(producer, settings, SERVICE),
            batch_size=settings.retention_batch_size,
            checkpoint=checkpoint,
        )
    finally:
        await producer.stop()
        await store.pool.close()


class RetentionApp(ServiceParts):
    """All parts of the running service; ``start``, ``run(stop)``, ``stop``.

    ``clock`` gives the sweep's "now" and drives the daily schedule (tests move it by hand);
    segment rolls follow the wall clock, because they wait for Kafka's own timestamps.
    """

    def __init__(
        self,
        settings: RetentionSettings,
        *,
        clock: Clock = utc_now,
        wall_clock: Clock = utc_now,
        group: str | None = None,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.wall_clock = wall_clock
        self.group = group
        self._checkpoint = checkpoint
        self.store: Store | None = None
        self.publisher: Publisher | None = None
        self.sweeper: Sweeper | None = None
        self.consumer: RecordConsumer | None = None
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Migrate, connect to PostgreSQL and Kafka, subscribe to the provided topics."""
        settings = self.settings
        self.store = await open_store(settings)
        self._producer = new_producer(settings, SERVICE)
        await self._producer.start()
        self.publisher = Publisher(self._producer, settings, SERVICE)
        self.sweeper = Sweeper(
            self.store,
            self.publisher,
            batch_size=settings.retention_batch_size,
            checkpoint=self._checkpoint,
            wall_clock=self.wall_clock,
        )
        indexer = Indexer(
            self.store,
            roll_delay=timedelta(seconds=settings.retention_roll_delay_seconds),
            roll_bucket=timedelta(seconds=settings.retention_roll_bucket_seconds),
        )
        letters = DeadLetters(self._producer, service=SERVICE, topic_prefix=settings.topic_prefix)

        async def index(record: Incoming) -> None:
            try:
                await indexer.handle(record)
            except asyncpg.exceptions.OperatorInterventionError as exc:
                # Retried by the consumer without committing, never dead-lettered: a record
                # missing from the index would never expire.
                raise ConnectionError(f"PostgreSQL unavailable ({type(exc).__name__})") from exc

        self.consumer = RecordConsumer(
            settings,
            service=SERVICE,
            topics=list(PROVIDED_TOPICS),
            handler=index,
            dead_letters=letters,
            group=self.group,
            codec=KEYS_ONLY,
        )
        await self.consumer.start()
        _log.info("retention_started", schema=settings.db_schema, topics=len(PROVIDED_TOPICS))

    async def run(self, stop: asyncio.Event) -> None:
        """Consume and keep the schedule until ``stop`` is set, each supervised
        (``dagmonitor.service.run_parts``): a transient failure restarts the part, any other
        crash stops both."""
        if self.consumer is None:
            raise RuntimeError("start() the retention service first")
        consumer = self.consumer
        await run_parts(
            {"consumer": lambda: consumer.run(stop), "schedule": lambda: self.keep_schedule(stop)},
            stop,
        )

    async def keep_schedule(self, stop: asyncio.Event) -> None:
        """Every tick: a sweep when due, owed segment rolls, the gauges."""
        while not stop.is_set():
            try:
                await self.sweep_if_due()
                await self.roll_due_segments()
                await self.refresh_gauges()
            except RETRYABLE as exc:
                # Kafka or PostgreSQL away: the next tick tries again (a half-done sweep
                # resumes where it stopped, see sweep.py).
                _log.warning("schedule_tick_failed", error=type(exc).__name__)
            await pause(stop, self.settings.retention_tick_seconds)

    async def sweep_if_due(self) -> str | None:
        """Sweep when due; returns the trigger of the sweep it ran, or None.

        - "schedule": no scheduled sweep ran since the latest daily run time (so a service
          that was down then catches up at once);
        - "due": between daily runs, the oldest indexed record has expired. Checked every
          tick with one index lookup, so no record outlives its 365 days by more than a tick
          plus the sweep, which is what an alert on the oldest record's age relies on.
        """
        assert self.store is not None and self.sweeper is not None
        settings = self.settings
        now = self.clock()
        scheduled = last_daily_run(now, settings.retention_sweep_time, settings.tz)
        last = await self.store.last_scheduled_sweep()
        if last is None or last < scheduled:
            await self.sweeper.sweep(now, trigger="schedule")
            return "schedule"
        first = await self.store.next_expiry()
        if first is not None and is_expired(first, now):
            await self.sweeper.sweep(now, trigger="due")
            return "due"
        return None

    async def roll_due_segments(self) -> int:
        """Append segment-roll markers to the topics that owe one; returns how many topics."""
        assert self.store is not None and self.publisher is not None
        async with self.store.due_rolls(self.wall_clock()) as owing:
            for topic in owing:
                await self.publisher.roll(topic)
        if owing:
            _log.info("segments_rolled", topics=owing)
        return len(owing)

    async def refresh_gauges(self) -> None:
        assert self.store is not None
        now = self.clock()
        oldest = await self.store.oldest_provided()
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        OLDEST_PROVIDED_AGE.set(max(0.0, age))
        first = await self.store.next_expiry()
        overdue = (now - first).total_seconds() if first is not None else 0.0
        OVERDUE.set(max(0.0, overdue))

    async def stop(self) -> None:
        await stop_in_order(self.consumer, self._producer)
        self.consumer = self._producer = None
        if self.store is not None:
            await self.store.pool.close()
            self.store = None

    def checks(self) -> dict[str, ReadinessCheck]:
        """Readiness: PostgreSQL answers and the consumer is subscribed."""

        async def postgres() -> bool:
            return self.store is not None and await self.store.ping()

        async def kafka() -> bool:
            return self.consumer is not None and await self.consumer.ready()

        return {"postgres": postgres, "kafka": kafka}


async def serve(settings: RetentionSettings | None = None) -> None:
    """Run the retention service until SIGTERM/SIGINT (``python -m services.retention``)."""
    settings = settings or RetentionSettings.load()
    await serve_parts(SERVICE, RetentionApp(settings), settings)
