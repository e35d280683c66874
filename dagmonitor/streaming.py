"""The consume-handle-commit loop and the producer every aiokafka-based service shares.

Order that cannot lose a record: a record's offset is committed only after its handler has
finished (the handler writes Postgres and/or produces first). A crash before the commit
redelivers the record, so handlers are idempotent by key and version.

What happens to a record that fails:

- it does not decode, or its handler raises ``RecordRejected`` or any unexpected exception:
  it goes to ``pipeline.deadletter`` with a reason code and the raw bytes, and the loop moves
  on (one bad record never blocks its partition);
- its handler meets an infrastructure failure (Kafka, PostgreSQL or the network down): the
  same record is retried with backoff until it succeeds, and nothing is committed meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from opentelemetry import trace
from prometheus_client import Counter, Gauge

from dagmonitor import kafka_clients, topics
from dagmonitor.codec import Codec, default_codec
from dagmonitor.deadletter import DeadLetters, Source
from dagmonitor.errors import CodecError
from dagmonitor.rejection import RecordRejected, reason_for
from dagmonitor.retry import Backoff, pause
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.telemetry import (
    PROCESSING_SECONDS,
    RECORDS_IN,
    RECORDS_OUT,
    extract_trace_context,
    get_logger,
    inject_trace_headers,
)

CONSUMER_LAG = Gauge(
    "dagmonitor_consumer_lag",
    "Records behind the end of the partition, per consumed topic and partition.",
    ["service", "topic", "partition"],
)

_log = get_logger(__name__)


def _transient_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, TimeoutError, KafkaError]
    try:
        import asyncpg

        errors += [asyncpg.PostgresConnectionError, asyncpg.InterfaceError]
        errors += [asyncpg.exceptions.CannotConnectNowError, asyncpg.TooManyConnectionsError]
        # A server shutting down or restarting (admin_shutdown, crash_shutdown, ...).
        errors += [asyncpg.exceptions.OperatorInterventionError]
        # A pooled connection whose protocol state a server shutdown broke mid-operation
        # ("cannot switch to state 12; another operation is in progress", asyncpg #1069):
        # the pool discards it on release; the next attempt gets a new connection.
        errors += [asyncpg.exceptions.InternalClientError]
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        pass
    return tuple(errors)


TRANSIENT_ERRORS = _transient_errors()


@dataclass(frozen=True)
class Incoming:
    """One consumed record, decoded. ``value`` is None for a tombstone."""

    topic: str
    """The contract topic name (without the deployment's prefix)."""
    key: str | None
    value: dict[str, Any] | None
    schema_name: str | None
    partition: int
    offset: int
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = field(default=())
    raw: bytes | None = None


Handler = Callable[[Incoming], Awaitable[None]]


class WriteBehind(Protocol):
    """Writes a handler deferred, to be done for a whole consumer batch in one statement
    (ADR 0022). The consumer flushes them before it hands over any record that is not
    deferrable (a tombstone, or a record of another topic), so order per key is kept, and
    before every commit, so nothing is committed that is not written."""

    topics: frozenset[str]
    """Topics whose records (not their tombstones) the handler may defer."""

    def pending(self) -> Sequence[Incoming]:
        """The deferred records, in the order the handler took them."""
        ...

    async def flush(self) -> None:
        """Write every pending record at once and forget them; on an exception nothing was
        written and they stay pending."""
        ...

    async def write_one(self, record: Incoming) -> None:
        """Write one pending record alone (after ``flush`` failed on something that is not
        transient: so that only the bad record is dead-lettered)."""
        ...

    def clear(self) -> None:
        """Forget every pending record (they are written one by one, or the batch is
        abandoned uncommitted)."""
        ...


DEFERRED_ONE_BY_ONE = Counter(
    "dagmonitor_deferred_writes_one_by_one_total",
    "Batch writes that failed on something not transient and were written record by record "
    "instead (so that only the bad record is dead-lettered).",
    ["service"],
)


class Outputs:
    """Produces encoded records to contract topics, with trace context and metrics."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        settings: DagmonitorSettings,
        service: str,
        codec: Codec | None = None,
    ) -> None:
        self.producer = producer
        self._settings = settings
        self._service = service
        self._codec = codec or default_codec()

    async def send(
        self,
        topic: str,
        key: str,
        value: dict[str, Any] | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Encode ``value`` with the topic's schema (None sends a tombstone) and wait for acks;
        ``headers`` go with the trace context."""
        spec = topics.get(topic)
        payload = None if value is None else self._codec.encode(spec.schema, value)
        await self.producer.send_and_wait(
            self._settings.topic(topic),
            payload,
            key=key.encode("utf-8"),
            headers=[*inject_trace_headers(), *headers],
        )
        RECORDS_OUT.labels(self._service, topic).inc()


def new_producer(settings: DagmonitorSettings, service: str) -> AIOKafkaProducer:
    """The producer of ``service``: idempotent, waiting for every in-sync replica."""
    return kafka_clients.reliable_producer(settings, f"dagmonitor-{service}")


async def handle_one(
    work: Callable[[], Awaitable[None]],
    *,
    service: str,
    source: Source,
    headers: Sequence[tuple[str, bytes]],
    value: bytes | None,
    dead_letters: DeadLetters,
    counted: bool = True,
) -> None:
    """The per-record core of both consume drivers (``RecordConsumer`` and the stream
    processor): count it, run ``work`` in a span linked to the producer's trace, and turn
    whatever makes the record unhandleable into a dead letter with its reason.

    Transient errors (Kafka or PostgreSQL away) propagate: the caller retries the record and
    commits nothing meanwhile. A ``RecordRejected`` or a codec error is the record's fault; any
    other exception is a bug met on this record: logged with its traceback, dead-lettered as
    ``processing_error``, and the stream goes on. ``counted=False`` for a second pass over a
    record already counted (a deferred write done alone).
    """
    series = _per_record_series(service, source.topic)
    if counted:
        series.records_in.inc()
    started = time.perf_counter()
    ctx = extract_trace_context(headers)
    attributes = {
        "messaging.destination.name": source.topic,
        "messaging.kafka.partition": source.partition,
        "messaging.kafka.offset": source.offset,
    }
    with series.tracer.start_as_current_span(series.span_name, context=ctx, attributes=attributes):
        try:
            await work()
        except TRANSIENT_ERRORS:
            raise
        except RecordRejected as exc:
            await dead_letters.send(exc.reason, exc.detail, source, value)
        except CodecError as exc:
            await dead_letters.send(reason_for(exc), str(exc), source, value)
        except Exception as exc:
            _log.exception(
                "handler_failed",
                topic=source.topic,
                partition=source.partition,
                offset=source.offset,
            )
            await dead_letters.send(
                reason_for(exc), f"handler failed: {type(exc).__name__}", source, value
            )
    if counted:
        series.processing_seconds.observe(time.perf_counter() - started)


@dataclass(frozen=True, slots=True)
class _Series:
    span_name: str
    tracer: trace.Tracer
    records_in: Any
    processing_seconds: Any


@functools.cache
def _per_record_series(service: str, topic: str) -> _Series:
    """The tracer and metric series ``handle_one`` uses per record, looked up once, at the
    first record: by then the service has installed its tracer provider, so the tracer is
    the provider's own, not the proxy that delegates every call; ``labels()`` takes a lock
    and builds a key. Both are a measurable share of a record's cost."""
    return _Series(
        f"{service} {topic}",
        trace.get_tracer(f"dagmonitor.{service}"),
        RECORDS_IN.labels(service, topic),
        PROCESSING_SECONDS.labels(service, topic),
    )


COMMITS_REFUSED = Counter(
    "dagmonitor_commits_refused_total",
    "Commits the group refused after a rebalance (they are handled again).",
    ["service"],
)


async def commit_offsets(
    consumer: AIOKafkaConsumer,
    offsets: Mapping[TopicPartition, int],
    stop: asyncio.Event,
    backoff: Backoff,
    *,
    service: str,
) -> bool:
    """Commit ``offsets`` for both consume drivers, retrying transient failures (until
    ``stop``). A commit the group refuses after a rebalance is not an error: the partitions'
    new owner handles those records again from the last commit, idempotently. Returns whether
    the commit went through."""
    while True:
        try:
            await consumer.commit(dict(offsets))
            return True
        except (CommitFailedError, IllegalStateError):
            COMMITS_REFUSED.labels(service).inc()
            _log.warning("commit_refused_after_rebalance", partitions=len(offsets))
            return False
        except TRANSIENT_ERRORS as exc:
            if stop.is_set():
                raise
            _log.warning("commit_failed_retrying", error=type(exc).__name__)
            await pause(stop, backoff.next())


class RecordConsumer:
    """Consumes contract topics as one consumer group and hands each record to ``handler``."""

    def __init__(
        self,
        settings: DagmonitorSettings,
        *,
        service: str,
        topics: Sequence[str],
        handler: Handler,
        dead_letters: DeadLetters,
        group: str | None = None,
        codec: Codec | None = None,
        max_records: int = 500,
        retry_backoff: tuple[float, float] = (0.2, 10.0),
        write_behind: WriteBehind | None = None,
    ) -> None:
        self._settings = settings
        self._service = service
        self._topics = list(topics)
        self._by_physical = {settings.topic(t): t for t in self._topics}
        self._handler = handler
        self._dead_letters = dead_letters
        self._group = group or settings.group(service)
        self._codec = codec or default_codec()
        self._max_records = max_records
        self._backoff = retry_backoff
        self._write_behind = write_behind
        self._consumer: AIOKafkaConsumer | None = None
        self.processed = 0

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("consumer not started")
        return self._consumer

    async def start(self) -> None:
        self._consumer = kafka_clients.group_consumer(
            self._settings, self._group, self._service, *self._by_physical
        )
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def ready(self) -> bool:
        """Readiness: started and holding an assignment (or at least a subscription)."""
        return self._consumer is not None and bool(self._consumer.subscription())

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; writes what the handler deferred and commits after
        each handled batch."""
        consumer = self.consumer
        if self._write_behind is not None:
            # Left by a run that stopped mid-batch (uncommitted, so consumed again): not
            # written now, when the partition may have gone to another consumer meanwhile.
            self._write_behind.clear()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=self._max_records)
            offsets: dict[TopicPartition, int] = {}
            for tp, records in batches.items():
                for record in records:
                    await self._handle_with_retry(record, stop)
                    offsets[tp] = record.offset + 1
                    if stop.is_set():
                        break
                if stop.is_set():
                    break
            if offsets:
                await self._flush(stop)
                await commit_offsets(
                    consumer, offsets, stop, Backoff(*self._backoff), service=self._service
                )
            await self._update_lag()

    def _deferrable(self, record: ConsumerRecord[bytes, bytes]) -> bool:
        wb = self._write_behind
        if wb is None or record.value is None:
            return False
        return self._by_physical.get(record.topic, record.topic) in wb.topics

    async def _flush(self, stop: asyncio.Event) -> None:
        """Write what the handler deferred: in one go, retried while the failure is transient;
        on any other failure record by record, each through the per-record core, so that only
        a bad record is dead-lettered."""
        wb = self._write_behind
        if wb is None or not wb.pending():
            return
        try:
            await self._retrying(wb.flush, stop, deferred=len(wb.pending()))
            return
        except TRANSIENT_ERRORS:
            raise  # stopped while retrying: uncommitted, consumed again (``run`` clears them)
        except Exception as exc:
            DEFERRED_ONE_BY_ONE.labels(self._service).inc()
            _log.warning(
                "deferred_writes_one_by_one", error=type(exc).__name__, deferred=len(wb.pending())
            )
        records = list(wb.pending())
        wb.clear()
        for incoming in records:
            await self._retrying(
                functools.partial(self._write_one, wb, incoming),
                stop,
                topic=incoming.topic,
                partition=incoming.partition,
                offset=incoming.offset,
            )

    async def _write_one(self, wb: WriteBehind, incoming: Incoming) -> None:
        await handle_one(
            lambda: wb.write_one(incoming),
            service=self._service,
            source=Source(
                incoming.topic,
                None if incoming.key is None else incoming.key.encode("utf-8"),
                incoming.partition,
                incoming.offset,
            ),
            headers=incoming.headers,
            value=incoming.raw,
            dead_letters=self._dead_letters,
            counted=False,
        )

    async def _handle_with_retry(
        self, record: ConsumerRecord[bytes, bytes], stop: asyncio.Event
    ) -> None:
        if not self._deferrable(record):
            await self._flush(stop)  # what was deferred is written before this record
        await self._retrying(
            lambda: self._handle(record),
            stop,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )

    async def _retrying(
        self, attempt: Callable[[], Awaitable[None]], stop: asyncio.Event, **where: object
    ) -> None:
        """Run ``attempt`` until it succeeds, with backoff while it fails on something
        transient (logged with ``where``); raises it once ``stop`` is set."""
        backoff = Backoff(*self._backoff)
        while True:
            try:
                await attempt()
                return
            except TRANSIENT_ERRORS as exc:
                _log.warning(
                    "transient_failure_retrying",
                    error=type(exc).__name__,
                    retry_in_s=round(delay := backoff.next(), 2),
                    **where,
                )
                await pause(stop, delay)
                if stop.is_set():
                    raise

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        topic = self._by_physical.get(record.topic, record.topic)
        headers = tuple(record.headers or ())

        async def work() -> None:
            await self._handler(self._decode(topic, record, headers))

        try:
            await handle_one(
                work,
                service=self._service,
                source=Source(topic, record.key, record.partition, record.offset),
                headers=headers,
                value=record.value,
                dead_letters=self._dead_letters,
            )
        finally:
            self.processed += 1

    def _decode(
        self,
        topic: str,
        record: ConsumerRecord[bytes, bytes],
        headers: tuple[tuple[str, bytes], ...],
    ) -> Incoming:
        key = record.key.decode("utf-8") if record.key is not None else None
        if record.value is None:
            return Incoming(
                topic, key, None, None, record.partition, record.offset, record.timestamp, headers
            )
        expected = topics.get(topic).schema if topic in topics.BY_NAME else None
        decoded = self._codec.decode(record.value, expect=expected)
        return Incoming(
            topic,
            key,
            decoded.record,
            decoded.schema_name,
            record.partition,
            record.offset,
            record.timestamp,
            headers,
            record.value,
        )

    async def _update_lag(self) -> None:
        consumer = self.consumer
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            position = await consumer.position(tp)
            topic = self._by_physical.get(tp.topic, tp.topic)
            lag = max(0, highwater - position)
            CONSUMER_LAG.labels(self._service, topic, str(tp.partition)).set(lag)


__all__ = [
    "TRANSIENT_ERRORS",
    "Handler",
    "Incoming",
    "Outputs",
    "RecordConsumer",
    "RecordRejected",
    "WriteBehind",
    "new_producer",
]
