"""The outbox relay: publishes the outbox rows that decisions committed, exactly once.

The decision and its outbox rows commit in one PostgreSQL transaction (``workflow``). This
relay then, in a loop: reads unpublished rows in id order, publishes them with an idempotent
producer (each record carries the headers ``dagmonitor-outbox-id`` and
``dagmonitor-outbox-source``), waits for the broker's acks and marks the rows published.

A crash can leave rows "published but not marked". So before it publishes anything, and
after any failed send, the relay recovers: it reads the target topics from shortly before the
oldest unpublished row was written to their end, collects the outbox ids found in the headers
and marks exactly those rows published. Only then does it (re)publish what is left. Only one
relay per schema runs at a time (a PostgreSQL advisory lock), so nothing publishes the same
rows concurrently. See docs/adr/0004-approval-outbox.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition

from dagmonitor import kafka_clients
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.streaming import TRANSIENT_ERRORS, new_producer
from dagmonitor.telemetry import RECORDS_OUT, get_logger, inject_trace_headers
from services.approval import metrics
from services.approval.config import ApprovalSettings
from services.approval.domain import APPROVED_TOPIC, DECISIONS_TOPIC
from services.approval.errors import ApprovalError
from services.approval.store import OutboxRow, Store

SERVICE = "approval"
OUTBOX_ID_HEADER = "dagmonitor-outbox-id"
OUTBOX_SOURCE_HEADER = "dagmonitor-outbox-source"
RELAY_TOPICS: tuple[str, ...] = (DECISIONS_TOPIC, *sorted(set(APPROVED_TOPIC.values())))
"""Every topic the outbox publishes to (and recovery reads back)."""

_log = get_logger(__name__)
ProducerFactory = Callable[[], AIOKafkaProducer]


class PublishFailed(ApprovalError):
    """Some records of a batch were not acknowledged; ``published`` lists those that were."""

    def __init__(self, published: Sequence[int], cause: BaseException) -> None:
        super().__init__(f"publishing the outbox failed: {type(cause).__name__}")
        self.published = list(published)
        self.cause = cause


RELAY_ERRORS: tuple[type[BaseException], ...] = (PublishFailed, *TRANSIENT_ERRORS)
"""What the relay survives by starting over (new producer, recovery) after a pause."""


async def partitions_of(
    producer: AIOKafkaProducer, settings: DagmonitorSettings, topic_names: Collection[str]
) -> list[TopicPartition]:
    """Every partition of the contract topics ``topic_names``, as the broker has them now."""
    found = []
    for name in topic_names:
        physical = settings.topic(name)
        found += [
            TopicPartition(physical, p) for p in sorted(await producer.partitions_for(physical))
        ]
    return found


async def published_outbox_ids(
    settings: DagmonitorSettings,
    partitions: Collection[TopicPartition],
    *,
    source: str,
    since: datetime,
    timeout: float = 60,
) -> set[int]:
    """The outbox ids (of ``source``) on the records of ``partitions`` written since ``since``,
    read up to the end of every partition as it was when the scan began."""
    consumer = kafka_clients.consumer(
        settings,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        client_id=f"dagmonitor-{SERVICE}-outbox-recovery",
    )
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
        since_ms = int(since.timestamp() * 1000)
        starts = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
        first: dict[TopicPartition, int] = {}
        for tp in partitions:
            start = starts.get(tp)
            if start is not None and start.offset < ends[tp]:
                first[tp] = start.offset
        if not first:
            return set()
        consumer.assign(list(first))
        for tp, offset in first.items():
            consumer.seek(tp, offset)
        remaining = {tp: ends[tp] for tp in first}
        found: set[int] = set()
        wanted = source.encode()
        async with asyncio.timeout(timeout):
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=200)
                for tp, records in batches.items():
                    for record in records:
                        if record.offset >= remaining.get(tp, 0):
                            continue
                        headers = dict(record.headers or ())
                        if headers.get(OUTBOX_SOURCE_HEADER) == wanted:
                            found.add(int(headers[OUTBOX_ID_HEADER]))
                for tp in list(remaining):
                    if await consumer.position(tp) >= remaining[tp]:
                        del remaining[tp]
        return found
    finally:
        await consumer.stop()


class OutboxRelay:
    """Publishes the outbox of one schema to Kafka; one active relay per schema."""

    def __init__(
        self,
        store: Store,
        settings: ApprovalSettings,
        *,
        producer_factory: ProducerFactory | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._source = settings.db_schema
        self._factory = producer_factory or (lambda: new_producer(settings, SERVICE))
        self._producer: AIOKafkaProducer | None = None
        self._lock_conn: asyncpg.pool.PoolConnectionProxy | None = None
        self._lock_key = zlib.crc32(f"dagmonitor-approval-relay:{settings.db_schema}".encode())
        self._wake = asyncio.Event()
        self.batch_size = settings.approval_relay_batch_size
        self.interval = settings.approval_relay_interval_seconds
        self.margin = timedelta(seconds=settings.approval_relay_recovery_margin_seconds)

    @property
    def started(self) -> bool:
        return self._producer is not None

    def wake(self) -> None:
        """Publish soon: a decision has just committed outbox rows."""
        self._wake.set()

    # -- life cycle ------------------------------------------------------------------------

    async def start(self, stop: asyncio.Event | None = None) -> bool:
        """Become the active relay (waiting while another holds the lock), start the producer
        and recover. False when ``stop`` was set while waiting."""
        stop = stop or asyncio.Event()
        conn = await self._store.pool.acquire()
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                _log.info("outbox_relay_standby", source=self._source)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.interval * 5)
                if stop.is_set():
                    await self._store.pool.release(conn)
                    return False
        except BaseException:
            await self._store.pool.release(conn)
            raise
        self._lock_conn = conn
        await self._start_producer()
        await self.recover()
        return True

    async def stop(self) -> None:
        """Stop publishing (after the current batch), release the lock."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        await self._release_lock()

    async def abandon(self) -> None:
        """Vanish as a crashed process would: no marking, no flushing of our state."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._lock_conn is not None:
            self._lock_conn.terminate()
            with contextlib.suppress(Exception):
                await self._store.pool.release(self._lock_conn)
            self._lock_conn = None

    async def _release_lock(self) -> None:
        if self._lock_conn is not None:
            with contextlib.suppress(Exception):
                await self._lock_conn.execute("SELECT pg_advisory_unlock($1)", self._lock_key)
            await self._store.pool.release(self._lock_conn)
            self._lock_conn = None

    async def _start_producer(self) -> None:
        producer = self._factory()
        await producer.start()
        self._producer = producer

    # -- the steps -------------------------------------------------------------------------

    async def recover(self) -> int:
        """Mark the unpublished rows whose records are on Kafka already; returns how many."""
        backlog, oldest = await self._store.outbox_backlog()
        if not backlog or oldest is None:
            return 0
        if self._producer is None:
            raise ApprovalError("the outbox relay is not started")
        partitions = await partitions_of(self._producer, self._settings, RELAY_TOPICS)
        found = await published_outbox_ids(
            self._settings, partitions, source=self._source, since=oldest - self.margin
        )
        marked = await self._store.mark_published(found)
        if marked:
            _log.warning("outbox_recovered", marked=marked, source=self._source)
        return marked

    async def publish(self, rows: Sequence[OutboxRow]) -> list[int]:
        """Send ``rows`` in id order and wait for every ack; returns their ids.

        Raises PublishFailed naming the rows that were acknowledged when any was not.
        """
        producer = self._producer
        if producer is None:
            raise ApprovalError("the outbox relay is not started")
        sent: list[tuple[OutboxRow, asyncio.Future[object]]] = []
        error: BaseException | None = None
        for row in rows:
            headers = inject_trace_headers(
                [
                    (OUTBOX_ID_HEADER, str(row.id).encode()),
                    (OUTBOX_SOURCE_HEADER, self._source.encode()),
                ]
            )
            try:
                future = await producer.send(
                    self._settings.topic(row.topic),
                    row.payload,
                    key=row.key.encode("utf-8"),
                    headers=headers,
                )
            except TRANSIENT_ERRORS as exc:
                error = exc
                break
            sent.append((row, future))
        results = await asyncio.gather(*(f for _, f in sent), return_exceptions=True)
        published = []
        for (row, _), result in zip(sent, results, strict=True):
            if isinstance(result, BaseException):
                error = error or result
            else:
                published.append(row.id)
                RECORDS_OUT.labels(SERVICE, row.topic).inc()
        if error is not None:
            raise PublishFailed(published, error)
        return published

    async def run_once(self) -> int:
        """Publish one batch and mark it; returns how many rows were published."""
        rows = await self._store.fetch_unpublished(self.batch_size)
        if not rows:
            return 0
        try:
            published = await self.publish(rows)
        except PublishFailed as exc:
            await self._store.mark_published(exc.published)
            raise
        await self._store.mark_published(published)
        return len(published)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set: start, then publish whenever woken or every interval."""
        if not await self.start(stop):
            return
        delay = self.interval
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    published = await self.run_once()
                    delay = self.interval
                except RELAY_ERRORS as exc:
                    _log.warning("outbox_publish_failed", error=type(exc).__name__)
                    await asyncio.sleep(min(delay, 10))
                    delay = min(delay * 2, 10)
                    with contextlib.suppress(*TRANSIENT_ERRORS):
                        await self._restart_producer()
                    continue
                if published >= self.batch_size:
                    continue  # more are waiting
                await self._update_backlog()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(stop, self._wake), timeout=self.interval)
        finally:
            await self.stop()

    async def _restart_producer(self) -> None:
        """After a failed send a record may be on Kafka without its ack: start over with a new
        producer and recover before publishing again."""
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None
        await self._start_producer()
        await self.recover()

    async def _update_backlog(self) -> None:
        backlog, _ = await self._store.outbox_backlog()
        metrics.OUTBOX_BACKLOG.set(backlog)


async def _first(*events: asyncio.Event) -> None:
    """Wait until any of ``events`` is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
