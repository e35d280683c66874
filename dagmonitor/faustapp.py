"""faust apps the way this project runs them: inside ``run_service``, on the raw bytes.

- Values and keys stay raw bytes in faust; the agent decodes with ``dagmonitor.codec`` itself,
  so an undecodable record is a dead letter, not a crashed stream (see STYLE.md pitfalls).
- faust's own web server is off; ``run_service`` serves /metrics, /healthz and /readyz.
- Tables use the memory store: faust restores them from their changelog topics at start.
- The app id is the service's consumer group under the deployment's topic prefix, so internal
  topics (``<app id>-<table>-changelog``) are prefixed too.
- Agents take events in batches (``stream.take_events``): a handler queues its outputs on a
  ``Batch``; the batch waits for the broker's acks of all of them (every in-sync replica) before
  faust may acknowledge — and so commit — any event of it. A crash can repeat an output, never
  lose one. Tables are written with ``use_partitioner=True``: the changelog partition follows
  from the key, so writing outside the per-event stream context stays correct.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import EventT, Message, TableT
from opentelemetry import trace

from dagmonitor.deadletter import DeadLetters, Reason, Source, reason_for
from dagmonitor.errors import CodecError
from dagmonitor.settings import DagmonitorSettings, local_dir
from dagmonitor.streaming import CONSUMER_LAG, TRANSIENT_ERRORS, RecordRejected
from dagmonitor.telemetry import PROCESSING_SECONDS, RECORDS_IN, extract_trace_context, get_logger

_log = get_logger(__name__)


def create_app(settings: DagmonitorSettings, service: str, **conf: Any) -> faust.App:
    """A faust app for ``service`` on the configured brokers (raw keys and values)."""
    faust_dir = local_dir() / "faust"
    faust_dir.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "broker": [f"kafka://{server}" for server in settings.bootstrap_servers],
        "store": "memory://",
        "web_enabled": False,
        "autodiscover": False,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "producer_acks": -1,
        "producer_linger_ms": 1,
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_every": 100,
        "broker_commit_interval": 1.0,
        "topic_replication_factor": 1,
        "table_standby_replicas": 0,
        # faust makes a folder per app even with the memory store: keep it out of the cwd.
        "datadir": str(faust_dir / "{conf.name}-data"),
        # A killed worker's partitions move to a live one within ~10 s, not faust's 60 s.
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 1.0,
        "topic_allow_declare": settings.kafka_declare_topics,
    }
    if settings.kafka_security_protocol == "SASL_SSL":
        password = settings.kafka_sasl_password
        options["broker_credentials"] = faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=password.get_secret_value() if password else None,
            ssl_context=settings.kafka_ssl_context(),
            mechanism="SCRAM-SHA-512",
        )
    options.update(conf)
    return faust.App(settings.group(service), **options)


class FaustProducer:
    """Gives faust's producer the ``send_and_wait`` shape ``DeadLetters`` expects."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> object:
        timestamp = timestamp_ms / 1000 if timestamp_ms is not None else None
        return await self._app.producer.send_and_wait(
            topic, key, value, partition, timestamp, list(headers or ())
        )

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Awaitable[Any]:
        """Queue one record; await the returned future for the broker's acknowledgement."""
        return await self._app.producer.send(topic, key, value, None, None, list(headers))


class Batch:
    """What the events of one batch produce and change, made durable in a safe order.

    Handlers queue outputs (``send``) and table changes (``set``); ``flush`` first waits for the
    broker's acknowledgement of every output, then applies the table changes. ``get`` reads a
    table through the changes not yet applied, so later events of the batch see earlier ones.
    """

    def __init__(self, producer: FaustProducer) -> None:
        self._producer = producer
        self._pending: list[Awaitable[Any]] = []
        self._writes: dict[tuple[int, bytes], tuple[TableT, Any]] = {}

    async def send(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        self._pending.append(await self._producer.send(topic, value, key, headers))

    def get(self, table: TableT, key: bytes) -> Any:
        written = self._writes.get((id(table), key))
        if written is not None:
            return written[1]
        return table.get(key)

    def set(self, table: TableT, key: bytes, value: Any) -> None:
        """Change ``table[key]`` once the outputs are acknowledged (None deletes the key)."""
        self._writes[(id(table), key)] = (table, value)

    async def flush(self) -> int:
        """Wait for every queued output's acknowledgement, then apply the table changes."""
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)
        writes, self._writes = self._writes, {}
        for (_, key), (table, value) in writes.items():
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
        return len(pending)


Handler = Callable[[EventT, Batch], Awaitable[None]]


class BatchAgents:
    """Builds faust agents that handle events in batches, safely.

    Per event: a span continuing the producer's trace, metrics, and a dead letter (with the
    raw bytes and a reason) when the handler rejects the record or fails on it. Per batch: the
    outputs are acknowledged before the table changes are applied and before faust acknowledges
    the events. A transient failure (Kafka unreachable) repeats the whole batch after a pause.
    """

    def __init__(
        self,
        app: faust.App,
        *,
        service: str,
        producer: FaustProducer,
        dead_letters: DeadLetters,
        batch_size: int = 500,
        batch_within: float = 0.05,
        lag_interval: float = 5.0,
    ) -> None:
        self.app = app
        self.service = service
        self.producer = producer
        self.dead_letters = dead_letters
        self.batch_size = batch_size
        self.batch_within = batch_within
        self._tracer = trace.get_tracer(f"dagmonitor.{service}")
        self.completed: dict[str, int] = {}
        """Events per source whose batch is flushed (outputs acknowledged, tables written)."""
        self.sources: dict[str, str] = {}
        """Physical topic name -> contract source name, of every agent's channel."""
        self._lag_labels: set[tuple[str, str]] = set()
        app.timer(lag_interval, name=f"{service}-consumer-lag")(self.update_lag)

    def agent(self, channel: Any, name: str, source: str, handler: Handler) -> None:
        """Register an agent on ``channel``; ``source`` is the contract topic name it reads."""

        async def agent(stream: Any) -> AsyncIterator[None]:
            async for events in stream.take_events(self.batch_size, within=self.batch_within):
                await self._batch(source, events, handler)
                yield None

        self.app.agent(channel, name=name)(agent)
        self.sources.update({topic: source for topic in channel.topics})

    async def _batch(self, source: str, events: Sequence[EventT], handler: Handler) -> None:
        delay = 0.2
        while True:
            batch = Batch(self.producer)
            try:
                for event in events:
                    await self._one(source, event, handler, batch)
                await batch.flush()
                self.completed[source] = self.completed.get(source, 0) + len(events)
                return
            except TRANSIENT_ERRORS as exc:
                _log.warning("transient_failure_retrying_batch", error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _one(self, source: str, event: EventT, handler: Handler, batch: Batch) -> None:
        message = event.message
        RECORDS_IN.labels(self.service, source).inc()
        started = time.perf_counter()
        ctx = extract_trace_context(message_headers(message))
        with self._tracer.start_as_current_span(f"{self.service} {source}", context=ctx) as span:
            span.set_attribute("messaging.kafka.partition", message.partition)
            span.set_attribute("messaging.kafka.offset", message.offset)
            try:
                await handler(event, batch)
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:
                # A bad record (or a bug met on it): keep it with a reason, move on.
                if isinstance(exc, RecordRejected):
                    reason, detail = exc.reason, exc.detail
                elif isinstance(exc, CodecError):
                    reason, detail = reason_for(exc), str(exc)
                else:
                    _log.exception("handler_failed", source=source)
                    reason, detail = reason_for(exc), f"handler failed: {type(exc).__name__}"
                raw = message.value if isinstance(message.value, bytes) else None
                where = Source(source, message.key, message.partition, message.offset)
                await self.dead_letters.send(reason, detail, where, raw)
        PROCESSING_SECONDS.labels(self.service, source).observe(time.perf_counter() - started)

    async def update_lag(self) -> None:
        """Set ``dagmonitor_consumer_lag`` for each assigned partition of the agents' topics.

        Lag is the partition's high watermark minus the consumer's fetch position (records
        buffered in faust's streams are counted as consumed). Partitions no longer assigned
        lose their series, so a rebalance leaves no stale value behind. Never raises: a timer
        that raised would stop the app.
        """
        try:
            consumer = self.app.consumer
            seen: set[tuple[str, str]] = set()
            for tp in consumer.assignment():
                source = self.sources.get(tp.topic)
                if source is None:
                    continue  # a changelog or the leader topic: not an agent's input
                highwater = consumer.highwater(tp)
                position = await asyncio.wait_for(consumer.position(tp), timeout=5.0)
                if highwater is None or position is None:
                    continue
                labels = (source, str(tp.partition))
                CONSUMER_LAG.labels(self.service, *labels).set(max(0, highwater - position))
                seen.add(labels)
            for gone in self._lag_labels - seen:
                CONSUMER_LAG.remove(self.service, *gone)
            self._lag_labels = seen
        except Exception as exc:
            # Not started, rebalancing, or the broker slow to answer: try again next time.
            _log.debug("consumer_lag_unavailable", error=type(exc).__name__)


def message_headers(message: Message) -> list[tuple[str, bytes]]:
    """A faust message's headers as a list of (name, bytes)."""
    headers = message.headers or ()
    if isinstance(headers, Mapping):
        return list(headers.items())
    return [(str(k), bytes(v)) for k, v in headers]


def message_key(message: Message) -> bytes:
    """The record key; a record without one is rejected (keys are the records' ids)."""
    if message.key is None:
        raise RecordRejected(Reason.KEY_MISMATCH, "record without a key")
    return bytes(message.key)


def message_time(message: Message) -> datetime:
    """The record's Kafka timestamp: "now" for policies, identical when the record is replayed."""
    return datetime.fromtimestamp(message.timestamp, tz=UTC)


async def run_app(app: faust.App, stop: asyncio.Event) -> None:
    """Run ``app`` until ``stop`` is set."""
    await app.start()
    try:
        await stop.wait()
    finally:
        await app.stop()


class FaustService:
    """Running a service built around one faust ``app`` under ``run_service``."""

    app: faust.App
    started: bool = False

    async def ready(self) -> bool:
        """Readiness: the app runs and holds a partition assignment."""
        return self.started and app_ready(self.app)

    async def run(self, stop: asyncio.Event) -> None:
        """Run the app until ``stop`` is set (the ``body`` of ``run_service``)."""
        self.started = True
        try:
            await run_app(self.app, stop)
        finally:
            self.started = False


def app_ready(app: faust.App) -> bool:
    """Started, and holding a partition assignment (so records are being consumed)."""
    try:
        return bool(app.started and app.consumer.assignment())
    except Exception:
        # The consumer does not exist before the app starts: not ready.
        return False
