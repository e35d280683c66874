"""The outbox relay: publishes rows a PostgreSQL transaction committed to Kafka, exactly once.

A service commits the records it must emit as rows of its own schema, in the transaction that
changes its state (an outbox). A ``Relay`` then, in a loop: reads pending rows, sends them with
an idempotent producer, waits for every ack and marks the rows published. What differs per
service is data, given as an ``Outbox``: which rows are pending, how a row becomes a record,
how a published record is recognised on the topic again (by its key, or by the headers
``id_headers`` adds) and how rows are marked.

Exactly once across crashes rests on three things:

- one relay per schema: the active relay holds a PostgreSQL session advisory lock; another
  replica waits as standby and takes over when the holder's session ends;
- "published but not marked" (a crash, or a failed send, between the broker's ack and the
  mark) is recovered before anything is (re)published: the relay reads its topics from shortly
  before the oldest row that may be on them up to their end, and marks the rows it recognises;
- after any failure the relay starts over: the lock checked (a lost one is taken again, as
  standby while another relay has it), a new producer when it owns one, recovery, and only
  then publishing.

See docs/adr/0004-approval-outbox.md and docs/adr/0005-distributor-outbox.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

import asyncpg
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition

from dagmonitor import kafka_clients
from dagmonitor.clock import Checkpoint, no_checkpoint
from dagmonitor.errors import DagmonitorError
from dagmonitor.retry import Backoff, pause
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.streaming import TRANSIENT_ERRORS
from dagmonitor.telemetry import RECORDS_OUT, get_logger, inject_trace_headers

OUTBOX_ID_HEADER = "dagmonitor-outbox-id"
OUTBOX_SOURCE_HEADER = "dagmonitor-outbox-source"
MAX_BACKOFF_SECONDS = 10.0
SCAN_TIMEOUT_SECONDS = 60.0

RowT = TypeVar("RowT")
IdT = TypeVar("IdT", bound=Hashable)
Key = TypeVar("Key", bound=Hashable)
ProducerFactory = Callable[[], AIOKafkaProducer]

_log = get_logger(__name__)


class RelayError(DagmonitorError):
    """The outbox relay cannot go on as asked."""


class PublishFailed(RelayError, Generic[IdT]):
    """Some records of a batch were not acknowledged; ``published`` lists those that were."""

    def __init__(self, published: Sequence[IdT], cause: BaseException) -> None:
        super().__init__(f"publishing the outbox failed: {type(cause).__name__}")
        self.published = list(published)


class LockLost(RelayError):
    """The session holding the relay's advisory lock ended, and the lock with it."""


RELAY_ERRORS: tuple[type[BaseException], ...] = (RelayError, *TRANSIENT_ERRORS)
"""What the relay survives by starting over (lock, new producer, recovery) after a pause."""


@dataclass(frozen=True, slots=True)
class Outbound(Generic[IdT]):
    """A row as the relay sends it: ``topic`` is the contract name, ``id`` the row's id."""

    id: IdT
    topic: str
    key: str
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class Outbox(Protocol[RowT, IdT]):
    """What a service's outbox tells the relay; implemented with the service's store queries."""

    @property
    def topics(self) -> Sequence[str]:
        """The contract topics the rows go to (and recovery reads back)."""
        ...

    async def pending(self, limit: int) -> Sequence[RowT]:
        """Up to ``limit`` unpublished rows in publishing order. Whatever must be on record
        before a row may reach the topic is committed here."""
        ...

    def outbound(self, row: RowT) -> Outbound[IdT]:
        """The record ``row`` is published as."""
        ...

    def identify(self, record: ConsumerRecord[bytes, bytes]) -> IdT | None:
        """The id of the row a record on the topics was published for; None: not ours."""
        ...

    async def recover_since(self) -> datetime | None:
        """When the oldest unmarked row that may be on the topics already was written; None
        when there is none (and recovery reads nothing)."""
        ...

    async def mark_published(self, ids: Collection[IdT]) -> int:
        """Mark the unpublished rows among ``ids`` published; returns how many."""
        ...

    async def after_round(self, published: int) -> None:
        """Told after each publishing round how many rows it published and marked."""
        ...


@dataclass(frozen=True, slots=True)
class RelayEvents:
    """The log event names of one service's relay."""

    standby: str
    recovered: str
    failed: str


def lock_key(name: str) -> int:
    """The advisory lock key of the relay called ``name`` (stable across versions)."""
    return zlib.crc32(name.encode())


def id_headers(row_id: object, source: str) -> tuple[tuple[str, bytes], ...]:
    """The headers that let recovery find a record by its row id. ``source`` (the schema)
    keeps two deployments that share topics from marking each other's rows."""
    return ((OUTBOX_ID_HEADER, str(row_id).encode()), (OUTBOX_SOURCE_HEADER, source.encode()))


def id_from_headers(record: ConsumerRecord[bytes, bytes], source: str) -> str | None:
    """The row id ``id_headers`` put on ``record``, if it was published from ``source``."""
    headers = dict(record.headers or ())
    row_id = headers.get(OUTBOX_ID_HEADER)
    if row_id is None or headers.get(OUTBOX_SOURCE_HEADER) != source.encode():
        return None
    return row_id.decode()


def id_from_key(record: ConsumerRecord[bytes, bytes]) -> str | None:
    """The key of ``record``: the id of rows that are published keyed by their own id."""
    return None if record.key is None else record.key.decode("utf-8")


def scan_ranges(starts: Mapping[Key, int | None], ends: Mapping[Key, int]) -> dict[Key, int]:
    """Where a recovery scan reads each partition from (up to ``ends``, taken when the scan
    began): its first offset at or after the start time; partitions with nothing to read in
    between are left out."""
    return {tp: start for tp, start in starts.items() if start is not None and start < ends[tp]}


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


async def scan_topics(
    settings: DagmonitorSettings,
    partitions: Collection[TopicPartition],
    identify: Callable[[ConsumerRecord[bytes, bytes]], IdT | None],
    *,
    since: datetime,
    client_id: str,
    timeout: float = SCAN_TIMEOUT_SECONDS,
) -> set[IdT]:
    """The ids ``identify`` finds on the committed records of ``partitions`` written since
    ``since``, read up to the end of every partition as it was when the scan began."""
    consumer = kafka_clients.reader(settings, isolation_level="read_committed", client_id=client_id)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(list(partitions))
        since_ms = int(since.timestamp() * 1000)
        found_at = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
        starts = {tp: None if at is None else at.offset for tp, at in found_at.items()}
        first = scan_ranges(starts, ends)
        if not first:
            return set()
        consumer.assign(list(first))
        for tp, offset in first.items():
            consumer.seek(tp, offset)
        found: set[IdT] = set()
        remaining = set(first)
        async with asyncio.timeout(timeout):
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=200)
                for tp, records in batches.items():
                    for record in records:
                        row_id = identify(record) if record.offset < ends[tp] else None
                        if row_id is not None:
                            found.add(row_id)
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
        return found
    finally:
        await consumer.stop()


class Relay(Generic[RowT, IdT]):
    """Publishes one schema's outbox to Kafka; one active relay per ``lock_name``.

    ``producer`` is either a started producer the relay borrows (its owner starts and stops
    it) or a factory of producers the relay owns, replacing its producer after a failure.
    """

    def __init__(
        self,
        outbox: Outbox[RowT, IdT],
        pool: asyncpg.Pool,
        settings: DagmonitorSettings,
        *,
        service: str,
        lock_name: str,
        producer: AIOKafkaProducer | ProducerFactory,
        batch_size: int,
        interval: float,
        recovery_margin: timedelta,
        events: RelayEvents,
        wake: asyncio.Event | None = None,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        self._outbox = outbox
        self._pool = pool
        self._settings = settings
        self._service = service
        self._lock_name = lock_name
        self._lock_key = lock_key(lock_name)
        self._borrowed = producer if isinstance(producer, AIOKafkaProducer) else None
        self._factory = None if isinstance(producer, AIOKafkaProducer) else producer
        self._batch_size = batch_size
        self._interval = interval
        self._margin = recovery_margin
        self._events = events
        self._wake = wake or asyncio.Event()
        self._checkpoint = checkpoint
        self._producer: AIOKafkaProducer | None = None
        self._lock_conn: asyncpg.pool.PoolConnectionProxy | None = None

    @property
    def started(self) -> bool:
        """Holding the lock, with a producer: publishing is up to this relay."""
        return self._lock_conn is not None and self._producer is not None

    # -- life cycle ------------------------------------------------------------------------

    async def start(self, stop: asyncio.Event | None = None) -> bool:
        """Become the active relay (standby while another holds the lock), get a producer and
        recover. False when ``stop`` was set while waiting."""
        return await self._start_over(stop or asyncio.Event())

    async def stop(self) -> None:
        """Stop publishing (after the current batch) and release the lock."""
        await self._drop_producer()
        if self._lock_conn is not None:
            conn, self._lock_conn = self._lock_conn, None
            with contextlib.suppress(*TRANSIENT_ERRORS):
                await conn.execute("SELECT pg_advisory_unlock($1)", self._lock_key)
            await self._pool.release(conn)

    async def abandon(self) -> None:
        """Vanish as a crashed process would: nothing more marked, the lock's session killed."""
        await self._drop_producer()
        await self._drop_lock()

    async def _start_over(self, stop: asyncio.Event) -> bool:
        await self._drop_producer()
        if not await self._holds_lock():
            await self._drop_lock()
            if not await self._take_lock(stop):
                return False
        await self._new_producer()
        await self.recover()
        return True

    async def _take_lock(self, stop: asyncio.Event | None) -> bool:
        """Take the lock; while another relay holds it, wait as standby until ``stop`` is set
        (None: do not wait)."""
        conn = await self._pool.acquire()
        taken = False
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                if stop is None:
                    return False
                _log.info(self._events.standby, relay=self._lock_name)
                await pause(stop, self._interval * 5)
                if stop.is_set():
                    return False
            taken = True
        finally:
            if not taken:
                await self._pool.release(conn)
        self._lock_conn = conn
        return True

    async def _holds_lock(self) -> bool:
        """Whether the lock's session is alive (a session lock lasts as long as its session)."""
        if self._lock_conn is None:
            return False
        try:  # a lost connection's proxy answers InterfaceError to everything
            await self._lock_conn.fetchval("SELECT 1")
        except TRANSIENT_ERRORS:
            return False
        return True

    async def _drop_lock(self) -> None:
        if self._lock_conn is not None:
            conn, self._lock_conn = self._lock_conn, None
            with contextlib.suppress(Exception):  # already lost: the pool has let it go
                conn.terminate()
                await self._pool.release(conn)

    async def _new_producer(self) -> None:
        if self._factory is None:
            self._producer = self._borrowed
            return
        producer = self._factory()
        await producer.start()
        self._producer = producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None and self._factory is not None:
            with contextlib.suppress(Exception):  # a broken producer is dropped all the same
                await producer.stop()

    def _active_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RelayError(f"the outbox relay {self._lock_name} is not started")
        return self._producer

    # -- the steps -------------------------------------------------------------------------

    async def recover(self) -> int:
        """Mark the pending rows whose records are on the topics already; returns how many."""
        since = await self._outbox.recover_since()
        if since is None:
            return 0
        producer = self._active_producer()
        found = await scan_topics(
            self._settings,
            await partitions_of(producer, self._settings, self._outbox.topics),
            self._outbox.identify,
            since=since - self._margin,
            client_id=f"dagmonitor-{self._service}-outbox-recovery",
        )
        marked = await self._outbox.mark_published(found) if found else 0
        if marked:
            _log.warning(self._events.recovered, marked=marked, relay=self._lock_name)
        return marked

    async def publish(self, rows: Sequence[RowT]) -> list[IdT]:
        """Send ``rows`` in order and wait for every ack; returns their ids.

        Raises PublishFailed naming the rows that were acknowledged when any was not.
        """
        producer = self._active_producer()
        sent: list[tuple[Outbound[IdT], asyncio.Future[Any]]] = []
        error: BaseException | None = None
        for record in map(self._outbox.outbound, rows):
            try:
                future = await producer.send(
                    self._settings.topic(record.topic),
                    record.value,
                    key=record.key.encode("utf-8"),
                    headers=inject_trace_headers(record.headers),
                )
            except TRANSIENT_ERRORS as exc:
                error = exc
                break
            sent.append((record, future))
        results = await asyncio.gather(*(f for _, f in sent), return_exceptions=True)
        published = []
        for (record, _), result in zip(sent, results, strict=True):
            if isinstance(result, BaseException):
                error = error or result
            else:
                published.append(record.id)
                RECORDS_OUT.labels(self._service, record.topic).inc()
        if error is not None:
            raise PublishFailed(published, error) from error
        return published

    async def run_once(self) -> int:
        """Publish one batch of pending rows and mark it; returns how many were published."""
        rows = await self._outbox.pending(self._batch_size)
        published: list[IdT] = []
        if rows:
            try:
                published = await self.publish(rows)
            except PublishFailed as exc:
                await self._outbox.mark_published(exc.published)
                raise
            self._checkpoint("published")
            await self._outbox.mark_published(published)
        await self._outbox.after_round(len(published))
        return len(published)

    async def publish_pending(self) -> int:
        """One batch now, beside (not instead of) a running service: 0 when another relay
        holds the lock; else lock, recover, publish, mark and unlock. Returns how many."""
        if not await self._take_lock(None):
            return 0
        try:
            await self._new_producer()
            await self.recover()
            return await self.run_once()
        finally:
            await self.stop()

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set: become the active relay (standby until then), then
        publish whenever woken and at least every interval. After a failure, a pause (doubling
        up to ``MAX_BACKOFF_SECONDS``, cut short by ``stop``), then the relay starts over."""
        ready = False
        backoff = Backoff(self._interval, MAX_BACKOFF_SECONDS)
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    if not ready:
                        if not await self._start_over(stop):
                            return
                        ready = True
                    elif not await self._holds_lock():
                        raise LockLost(f"the session holding {self._lock_name} has ended")
                    published = await self.run_once()
                except RELAY_ERRORS as exc:
                    _log.warning(self._events.failed, error=type(exc).__name__)
                    ready = False
                    await pause(stop, backoff.next())
                    continue
                backoff.reset()
                if published < self._batch_size:
                    await pause(stop, self._interval, wake=self._wake)
        finally:
            await self.stop()
