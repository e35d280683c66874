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
from typing import Any

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
    tracer: trace.Tracer,
) -> None:
    """The per-record core of both consume drivers (``RecordConsumer`` and the stream
    processor): count it, run ``work`` in a span linked to the producer's trace, and turn
    whatever makes the record unhandleable into a dead letter with its reason.

    Transient errors (Kafka or PostgreSQL away) propagate: the caller retries the record and
    commits nothing meanwhile. A ``RecordRejected`` or a codec error is the record's fault; any
    other exception is a bug met on this record: logged with its traceback, dead-lettered as
    ``processing_error``, and the stream goes on.
    """
    series = _per_record_series(service, source.topic)
    series.records_in.inc()
    started = time.perf_counter()
    ctx = extract_trace_context(headers)
    attributes = {
        "messaging.destination.name": source.topic,
        "messaging.kafka.partition": source.partition,
        "messaging.kafka.offset": source.offset,
    }
    with tracer.start_as_current_span(series.span_name, context=ctx, attributes=attributes):
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
    series.processing_seconds.observe(time.perf_counter() - started)


@dataclass(frozen=True, slots=True)
class _Series:
    span_name: str
    records_in: Any
    processing_seconds: Any


@functools.cache
def _per_record_series(service: str, topic: str) -> _Series:
    """The metric series ``handle_one`` updates per record, looked up once (labels() takes a
    lock and builds a key: a measurable share of a record's cost)."""
    return _Series(
        f"{service} {topic}",
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
        self._consumer: AIOKafkaConsumer | None = None
        self._tracer = trace.get_tracer(f"dagmonitor.{service}")
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
        """Consume until ``stop`` is set; commits after each handled batch."""
        consumer = self.consumer
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=self._max_records)
            for tp, records in batches.items():
                handled = 0
                for record in records:
                    await self._handle_with_retry(record, stop)
                    handled += 1
                    if stop.is_set():
                        break
                await self._commit(tp, records[handled - 1].offset + 1, stop)
            await self._update_lag()

    async def _commit(self, tp: TopicPartition, offset: int, stop: asyncio.Event) -> None:
        await commit_offsets(
            self.consumer, {tp: offset}, stop, Backoff(*self._backoff), service=self._service
        )

    async def _handle_with_retry(
        self, record: ConsumerRecord[bytes, bytes], stop: asyncio.Event
    ) -> None:
        backoff = Backoff(*self._backoff)
        while True:
            try:
                await self._handle(record)
                return
            except TRANSIENT_ERRORS as exc:
                _log.warning(
                    "transient_failure_retrying",
                    error=type(exc).__name__,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    retry_in_s=round(delay := backoff.next(), 2),
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
                tracer=self._tracer,
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
    "new_producer",
]
