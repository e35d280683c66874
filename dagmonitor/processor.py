"""Stateful stream processing on aiokafka: the driver of the ingest and classifier hops.

Why not faust (ADR 0009): faust's consumer keeps its own bookkeeping of read and acknowledged
offsets next to aiokafka's positions. Records fetched while a partition is assigned but its
tables are still recovering are dropped from faust's queues, yet faust's read offset has moved
past them; after recovery they are skipped ("DROPPED MESSAGE ROFF") and counted as a gap that
may be committed. A stretch of a partition is then committed with no output at all. This
module keeps one source of truth instead: the consumer's position, and a commit only of what
was handled.

The guarantee, per batch of records (``getmany``):

1. every record is handled: its outputs are queued, or it is dead-lettered with a reason;
2. the broker acknowledges every output (all in-sync replicas);
3. only then the table changes go to the tables' changelog topics and are acknowledged;
4. only then the batch's offsets are committed.

A crash anywhere repeats the batch (outputs may repeat, never go missing; the handlers are
idempotent by key and version). A partition is handled only once its tables are restored
from their changelogs: newly assigned partitions are paused while the restore runs in the
background (so the group's heartbeats go on), and ``ready`` is false meanwhile. A rebalance
waits for the batch in flight, including its commit, before partitions are taken away.

Tables are partitioned like their input: the state of input partition ``p`` lives in
partition ``p`` of the table's changelog and is written there explicitly, so co-partitioned
topics (same key, same partition count; the range assignor gives their partition ``p`` to
one member) share state without a repartition.

A replicated view (``ReplicatedView``, a "global table") is the opposite: a small compacted
topic that every instance holds whole, read from all its partitions outside the group, so
that every route of every partition can look a key up. It is read to its end before the
group is joined (a restart rebuilds it from the topic), then followed; it commits nothing
and is never written by the processor.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from prometheus_client import Counter, Gauge

from dagmonitor import kafka_clients
from dagmonitor.codec import Codec, default_codec
from dagmonitor.deadletter import DeadLetters, Source
from dagmonitor.rejection import Reason, RecordRejected
from dagmonitor.retry import Backoff, pause
from dagmonitor.service import ServiceParts, stop_in_order
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.streaming import CONSUMER_LAG, TRANSIENT_ERRORS, commit_offsets, handle_one
from dagmonitor.telemetry import ReadinessCheck, get_logger
from dagmonitor.topics import TopicSpec

_log = get_logger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]

RESTORE_REMAINING = Gauge(
    "dagmonitor_state_restore_remaining",
    "Changelog records still to read before a table's assigned partitions are restored.",
    ["service", "table"],
)
RECORDS_HANDLED = Counter(
    "dagmonitor_records_handled_total",
    "Input records whose batch is complete: outputs and dead letters acknowledged, tables "
    "written. Compare with dagmonitor_consumer_offset_advance_total.",
    ["service", "topic"],
)
OFFSET_ADVANCE = Counter(
    "dagmonitor_consumer_offset_advance_total",
    "How far the committed offsets of a service's input partitions moved (records).",
    ["service", "topic"],
)
PRODUCERS_RENEWED = Counter(
    "dagmonitor_producers_renewed_total",
    "Producers replaced because the broker refused their sequence state (e.g. after a broker "
    "restart); each is followed by the batch being produced again.",
    ["service"],
)
STALLED = Gauge(
    "dagmonitor_consumer_stalled",
    "1 while a service has input to handle but handled nothing in the last interval.",
    ["service"],
)


_PARTITIONER = DefaultPartitioner()
"""The producers' partitioner (aiokafka's default: murmur2 of the key, as Java's)."""


def _encode_value(value: Any) -> bytes | None:
    """A table value as its changelog bytes: compact JSON (orjson: a tenth of the standard
    library's cost, per table write of every record; keys made strings as ``json`` does).

    Copied into a bytes object of its own size: the table keeps it in memory, and orjson's
    own result keeps the ~4 KiB buffer it was written into (200,000 keys held 800 MB)."""
    if value is None:
        return None
    return bytes(memoryview(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)))


class Table:
    """A key -> JSON value table, partitioned like its input, kept in a changelog topic.

    Memory holds each value as its changelog bytes (compact JSON), decoded on ``get``: a
    replay of a year keeps a few hundred thousand keys per table (ADR 0020)."""

    def __init__(self, name: str, changelog: str, partitions: int) -> None:
        self.name = name
        self.changelog = changelog
        self.partitions = partitions
        self._data: dict[int, dict[bytes, bytes]] = defaultdict(dict)
        self._position: dict[int, int] = {}
        """Next changelog offset to read per partition (what the memory holds up to)."""

    def get(self, partition: int, key: bytes) -> Any:
        encoded = self._data[partition].get(key)
        return None if encoded is None else orjson.loads(encoded)

    def items(self, partition: int) -> Iterable[tuple[bytes, Any]]:
        return ((key, orjson.loads(encoded)) for key, encoded in self._data[partition].items())

    def __len__(self) -> int:
        return sum(len(data) for data in self._data.values())

    def position(self, partition: int) -> int:
        return self._position.get(partition, 0)

    def apply(self, partition: int, key: bytes, encoded: bytes | None, offset: int) -> None:
        """Apply one changelog record (``offset``, its JSON value) to memory; None deletes."""
        if encoded is None:
            self._data[partition].pop(key, None)
        else:
            self._data[partition][key] = encoded
        self._position[partition] = max(self._position.get(partition, 0), offset + 1)

    def reset(self, partition: int) -> None:
        """Forget a partition's memory, to read its changelog from the start."""
        self._data.pop(partition, None)
        self._position.pop(partition, None)

    def changelog_tp(self, partition: int) -> TopicPartition:
        return TopicPartition(self.changelog, partition)


class ReplicatedView:
    """A compacted topic held whole by every instance: key -> decoded value ("global table").

    Built from every partition of ``physical`` from the beginning, then kept up to date by
    following it (``StreamProcessor.view``). ``decode`` turns a record's value into what the
    view holds; a tombstone deletes the key, and so does a value that does not decode (the
    view is then what a rebuild from the compacted topic gives: never the value it replaced).
    For topics small enough to keep in memory in every instance (a few thousand keys).
    """

    def __init__(
        self,
        name: str,
        physical: str,
        source: str,
        partitions: int,
        decode: Callable[[bytes], Any],
    ) -> None:
        self.name = name
        self.physical = physical
        self.source = source
        self.partitions = partitions
        self._decode = decode
        self._data: dict[bytes, Any] = {}
        self.caught_up = False
        """True once the view holds the topic up to its end as of the processor's start."""

    def get(self, key: bytes) -> Any:
        return self._data.get(key)

    def __len__(self) -> int:
        return len(self._data)

    def topic_partitions(self) -> list[TopicPartition]:
        return [TopicPartition(self.physical, p) for p in range(self.partitions)]

    def apply(self, key: bytes, value: bytes | None) -> None:
        """Apply one record of the topic; a value that does not decode raises (after the key
        is removed), for the caller to dead-letter."""
        self._data.pop(key, None)
        if value is not None:
            self._data[key] = self._decode(value)

    def clear(self) -> None:
        """Forget everything, to read the topic from the beginning again."""
        self._data.clear()
        self.caught_up = False


Message: TypeAlias = tuple[str, int | None, bytes, bytes | None, list[tuple[str, bytes]]]
"""One record to produce: topic, partition (None: by key, as the default partitioner does),
key, value, headers."""
Sent: TypeAlias = tuple["asyncio.Future[Any]", list[tuple[int, int]]]
"""A record batch handed to the producer: its delivery future, and its members' (index among
the messages submitted, offset within the record batch)."""


class Batch:
    """What the records of one batch produce and change, made durable in a safe order.

    Handlers queue outputs (``send``) and table changes (``set``, on the partition of the
    record being handled); ``get`` reads through the changes not yet written, so later records
    of the batch see earlier ones. Outputs go out in record batches, one per partition
    (``create_batch``/``send_batch``: a fraction of the cost of ``send`` per record, ADR 0020),
    every ``chunk`` outputs while the batch is handled and the rest in ``flush``, which waits
    for all of them to be acknowledged and only then writes the table changes.
    """

    def __init__(self, producer: AIOKafkaProducer, chunk: int = 250) -> None:
        self._producer = producer
        self._chunk = chunk
        self._outputs: list[Message] = []
        self._submitting: asyncio.Task[list[Sent]] | None = None
        self.outputs = 0
        """Outputs queued so far."""
        self._writes: dict[tuple[str, int, bytes], tuple[Table, Any]] = {}
        self._partitions: dict[str, list[int]] = {}
        self.partition = 0
        """The partition of the record being handled: table reads and writes use it."""

    async def send(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Queue one output, partitioned by its key; ``flush`` waits for the broker's
        acknowledgement."""
        self._outputs.append((topic, None, key, value, list(headers)))
        self.outputs += 1
        if len(self._outputs) >= self._chunk:
            # Submitted in the background, after the chunk before (order per partition): a
            # record batch waits for the one before it on its partition to be drained, and the
            # handlers need not wait for that.
            outputs, self._outputs = self._outputs, []
            self._submitting = asyncio.get_running_loop().create_task(
                self._submit_after(self._submitting, outputs)
            )

    async def _submit_after(
        self, before: asyncio.Task[list[Sent]] | None, messages: list[Message]
    ) -> list[Sent]:
        sent = [] if before is None else await before
        return sent + await self._submit(messages)

    def get(self, table: Table, key: bytes) -> Any:
        written = self._writes.get((table.name, self.partition, key))
        if written is not None:
            return written[1]
        return table.get(self.partition, key)

    def set(self, table: Table, key: bytes, value: Any) -> None:
        """Change ``table[key]`` once the outputs are acknowledged (None deletes the key)."""
        self._writes[(table.name, self.partition, key)] = (table, value)

    async def flush(self) -> int:
        """Outputs acknowledged, then the table changes written and applied; returns outputs."""
        outputs, self._outputs = self._outputs, []
        submitting, self._submitting = self._submitting, None
        await self._acknowledged(await self._submit_after(submitting, outputs), 0)
        writes, self._writes = self._writes, {}
        changes: list[Message] = [
            (table.changelog, partition, key, _encode_value(value), [])
            for (_, partition, key), (table, value) in writes.items()
        ]
        offsets = await self._produce(changes)
        for ((_, partition, key), (table, _value)), change, offset in zip(
            writes.items(), changes, offsets, strict=True
        ):
            table.apply(partition, key, change[3], offset)
        return self.outputs

    async def _produce(self, messages: Sequence[Message]) -> list[int]:
        """Send ``messages`` and return each one's offset once all are acknowledged."""
        return await self._acknowledged(await self._submit(messages), len(messages))

    @staticmethod
    async def _acknowledged(sent: Sequence[Sent], count: int) -> list[int]:
        """Wait for every sent record batch; the offsets of the ``count`` messages in them."""
        offsets = [0] * count
        for future, members in sent:
            base = (await future).offset
            for index, relative in members:
                if index < count:
                    offsets[index] = base + relative
        return offsets

    async def _submit(self, messages: Sequence[Message]) -> list[Sent]:
        """Send ``messages`` in one record batch per partition (more where one fills up);
        the delivery futures, each with its members' (index, offset in the record batch)."""
        producer = self._producer
        open_batches: dict[tuple[str, int], tuple[BatchBuilder, list[tuple[int, int]]]] = {}
        sent: list[Sent] = []
        for index, (topic, partition, key, value, headers) in enumerate(messages):
            if partition is None:
                partition = await self._partition_of(topic, key)
            entry = open_batches.get((topic, partition))
            if entry is None:
                entry = open_batches[(topic, partition)] = (producer.create_batch(), [])
            metadata = entry[0].append(key=key, value=value, timestamp=None, headers=headers)
            if metadata is None:  # the record batch is full: send it, start the next
                sent.append(
                    (await producer.send_batch(entry[0], topic, partition=partition), entry[1])
                )
                entry = open_batches[(topic, partition)] = (producer.create_batch(), [])
                metadata = entry[0].append(key=key, value=value, timestamp=None, headers=headers)
            if metadata is None:  # larger than a record batch: the producer sizes one for it
                single = await producer.send(
                    topic, value, key=key, partition=partition, headers=headers
                )
                sent.append((single, [(index, 0)]))
                continue
            entry[1].append((index, metadata.offset))
        for (topic, partition), (builder, members) in open_batches.items():
            if members:
                sent.append(
                    (await producer.send_batch(builder, topic, partition=partition), members)
                )
        return sent

    async def _partition_of(self, topic: str, key: bytes) -> int:
        """The partition the producer's default partitioner would choose for ``key``."""
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = self._partitions[topic] = sorted(
                await self._producer.partitions_for(topic)
            )
        return int(_PARTITIONER(key, partitions, partitions))


Handler = Callable[[Record, Batch], Awaitable[None]]


@dataclass
class Route:
    """One input topic: its physical name, contract name, handler and the tables it uses."""

    physical: str
    source: str
    handler: Handler
    tables: tuple[Table, ...] = field(default=())


class StreamProcessor:
    """Consumes a service's input topics as one group and handles them in safe batches."""

    def __init__(
        self,
        settings: DagmonitorSettings,
        *,
        service: str,
        codec: Codec | None = None,
        internal_topics: Sequence[TopicSpec] = (),
        max_records: int = 5000,
        retry_backoff: tuple[float, float] = (0.2, 10.0),
        lag_interval: float = 5.0,
    ) -> None:
        self.settings = settings
        self.service = service
        self.group = settings.group(service)
        self._internal_topics = tuple(internal_topics)
        self._codec = codec or default_codec()
        self._max_records = max_records
        self._backoff = retry_backoff
        self._lag_interval = lag_interval
        self._routes: dict[str, Route] = {}
        self._tables: dict[str, Table] = {}
        self._views: dict[str, ReplicatedView] = {}
        self._view_reader: AIOKafkaConsumer | None = None
        self._view_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._assigned: set[TopicPartition] = set()
        self._ready_tps: set[TopicPartition] = set()
        self._restore_task: asyncio.Task[None] | None = None
        self._restore_generation = 0
        self._committed: dict[TopicPartition, int] = {}
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.dead_letters: DeadLetters | None = None
        self.started = False
        self.handled: dict[str, int] = defaultdict(int)
        """Records per contract source whose batch is complete and committed."""

    # -- declaration -------------------------------------------------------------------------

    def table(self, name: str, partitions: int) -> Table:
        """Declare a table; its changelog is ``<group>-<name>-changelog``."""
        table = Table(name, f"{self.group}-{name}-changelog", partitions)
        self._tables[name] = table
        return table

    def route(
        self, physical: str, source: str, handler: Handler, tables: Sequence[Table] = ()
    ) -> None:
        """Handle ``physical`` (contract name ``source``) with ``handler``, using ``tables``."""
        self._routes[physical] = Route(physical, source, handler, tuple(tables))

    def view(
        self, physical: str, source: str, partitions: int, decode: Callable[[bytes], Any]
    ) -> ReplicatedView:
        """Declare a replicated view of the compacted topic ``physical`` (contract name
        ``source``, ``partitions`` partitions), values turned by ``decode``: held whole,
        read to its end before any route handles a record, then followed."""
        view = ReplicatedView(source, physical, source, partitions, decode)
        self._views[physical] = view
        return view

    @property
    def tables(self) -> Mapping[str, Table]:
        return self._tables

    def consumed(self) -> set[str]:
        """The contract topics this processor reads (its internal topics excluded)."""
        routed = {r.source for r in self._routes.values() if not r.physical.startswith(self.group)}
        return routed | {view.source for view in self._views.values()}

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError(f"{self.service}: the processor is not started")
        return self._producer

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError(f"{self.service}: the processor is not started")
        return self._consumer

    async def start(self) -> None:
        declared = {
            spec.physical_name(self.settings.topic_prefix) for spec in self._internal_topics
        }
        undeclared = sorted(
            {t.changelog for t in self._tables.values()} - declared
            | {r.physical for r in self._routes.values() if r.physical.startswith(self.group)}
            - declared
        )
        if undeclared:
            raise ValueError(
                f"{self.service}: internal topics not in the topic table: {undeclared}"
            )
        if self.settings.kafka_declare_topics and self._internal_topics:
            from dagmonitor.topic_admin import apply_topics

            await apply_topics(self.settings, specs=self._internal_topics)
        await self._start_producer()
        await self._start_views()
        self._consumer = kafka_clients.group_consumer(
            self.settings,
            self.group,
            self.service,
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            max_poll_interval_ms=300_000,
        )
        self._consumer.subscribe(list(self._routes), listener=_Listener(self))
        await self._consumer.start()
        self.started = True

    async def stop(self) -> None:
        self.started = False
        for task in (self._restore_task, self._view_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._view_task = None
        await stop_in_order(self._view_reader, self._consumer, self._producer)
        self._view_reader = self._consumer = self._producer = None

    async def ready(self) -> bool:
        """Ready: started, holding partitions, every assigned partition restored, and every
        replicated view caught up and followed."""
        views = all(view.caught_up for view in self._views.values()) and (
            not self._views or (self._view_task is not None and not self._view_task.done())
        )
        return self.started and views and bool(self._assigned) and self._ready_tps >= self._assigned

    def restoring(self) -> bool:
        return bool(self._assigned - self._ready_tps)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set."""
        consumer = self.consumer
        last_lag = 0.0
        last_handled = -1
        while not stop.is_set():
            self._check_views()
            try:
                records = await consumer.getmany(timeout_ms=200, max_records=self._max_records)
            except KafkaError as exc:
                _log.warning("fetch_failed_retrying", error=type(exc).__name__)
                await asyncio.sleep(self._backoff[0])
                continue
            if records:
                async with self._lock:
                    await self._handle_batch(records, stop)
            if time.monotonic() - last_lag > self._lag_interval:
                last_lag = time.monotonic()
                lag = await self._update_lag()
                handled = sum(self.handled.values())
                stalled = lag > 0 and handled == last_handled
                STALLED.labels(self.service).set(1 if stalled else 0)
                if stalled:
                    _log.warning(
                        "consumer_stalled",
                        lag=lag,
                        assigned=len(self._assigned),
                        ready=len(self._ready_tps),
                        paused=len(consumer.paused()),
                    )
                if handled != max(last_handled, 0):
                    _log.info(
                        "consumer_progress",
                        handled=handled - max(last_handled, 0),
                        lag=lag,
                        partitions=len(self._ready_tps),
                    )
                last_handled = handled

    async def serve(self, stop: asyncio.Event) -> None:
        """Start, consume until ``stop`` is set, and always stop."""
        await self.start()
        try:
            await self.run(stop)
        finally:
            await self.stop()

    async def __aenter__(self) -> StreamProcessor:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # -- batches -----------------------------------------------------------------------------

    async def _handle_batch(
        self, fetched: Mapping[TopicPartition, list[Record]], stop: asyncio.Event
    ) -> None:
        """Handle what was fetched for partitions that are (still) ours and restored."""
        consumer = self.consumer
        batches: dict[TopicPartition, list[Record]] = {}
        for tp, records in fetched.items():
            if not records:
                continue
            if tp in self._ready_tps:
                batches[tp] = records
            elif tp in self._assigned:
                # Fetched before the partition was paused for its restore: give them back.
                consumer.seek(tp, records[0].offset)
            # else: revoked meanwhile; the new owner handles them from the committed offset.
        if not batches:
            return
        backoff = Backoff(*self._backoff)
        while True:
            batch = Batch(self.producer)
            try:
                for records in batches.values():
                    for record in records:
                        await self._one(record, batch)
                await batch.flush()
                break
            except TRANSIENT_ERRORS as exc:
                _log.warning("transient_failure_retrying_batch", error=type(exc).__name__)
                if stop.is_set():
                    raise
                if isinstance(exc, kafka_clients.PRODUCER_STATE_ERRORS):
                    await self._renew_producer()
                await pause(stop, backoff.next())
        await self._commit(batches, stop)

    async def _start_producer(self) -> None:
        self._producer = kafka_clients.producer(
            self.settings,
            client_id=f"dagmonitor-{self.service}",
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            max_batch_size=256 * 1024,
        )
        await self._producer.start()
        self.dead_letters = DeadLetters(
            self._producer,
            service=self.service,
            topic_prefix=self.settings.topic_prefix,
            codec=self._codec,
        )

    async def _renew_producer(self) -> None:
        """A new producer (a new producer id) in place of one whose sequence state the broker
        refuses: after a broker restart an idempotent producer can get OutOfOrderSequenceNumber
        for ever (aiokafka #1017), and the batch would be retried without end. The batch's
        input offsets are not committed, so it is produced again: at least once, never lost."""
        old, self._producer = self._producer, None
        if old is not None:
            try:
                await asyncio.wait_for(old.stop(), timeout=10)
            except Exception as exc:  # it is broken already: nothing more to lose
                _log.warning("producer_stop_failed", error=type(exc).__name__)
        await self._start_producer()
        PRODUCERS_RENEWED.labels(self.service).inc()
        _log.warning("producer_renewed", service=self.service)

    async def _one(self, record: Record, batch: Batch) -> None:
        route = self._routes[record.topic]
        batch.partition = record.partition
        await self._handle(route.source, record, lambda: route.handler(record, batch))

    async def _handle(
        self, source: str, record: Record, work: Callable[[], Awaitable[None]]
    ) -> None:
        """``work`` on ``record`` of the contract topic ``source``, through ``handle_one``
        (counted, traced, dead-lettered when the record is at fault)."""
        assert self.dead_letters is not None
        await handle_one(
            work,
            service=self.service,
            source=Source(source, record.key, record.partition, record.offset),
            headers=record.headers,
            value=record.value,
            dead_letters=self.dead_letters,
        )

    async def _commit(self, batches: Mapping[TopicPartition, list[Record]], stop: Any) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
        committed = await commit_offsets(
            self.consumer, offsets, stop, Backoff(*self._backoff), service=self.service
        )
        if not committed:
            return
        for tp, records in batches.items():
            source = self._routes[tp.topic].source
            self.handled[source] += len(records)
            RECORDS_HANDLED.labels(self.service, source).inc(len(records))
            previous = self._committed.get(tp, records[0].offset)
            OFFSET_ADVANCE.labels(self.service, source).inc(max(0, offsets[tp] - previous))
            self._committed[tp] = offsets[tp]

    # -- rebalancing and restore -------------------------------------------------------------

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:  # the batch in flight finishes, and commits, first
            self._ready_tps -= revoked
            self._assigned -= revoked
            for tp in revoked:
                self._committed.pop(tp, None)
            self._restore_generation += 1
        _log.info("partitions_revoked", partitions=len(revoked))

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self.consumer
        self._assigned = set(assigned)
        self._ready_tps &= self._assigned
        waiting = self._assigned - self._ready_tps
        if waiting:
            consumer.pause(*waiting)
        self._restore_generation += 1
        generation = self._restore_generation
        if self._restore_task is not None:
            self._restore_task.cancel()
        self._restore_task = asyncio.get_running_loop().create_task(
            self._restore(waiting, generation)
        )
        _log.info("partitions_assigned", partitions=len(assigned), restoring=len(waiting))

    async def _restore(self, tps: set[TopicPartition], generation: int) -> None:
        """Bring the tables of ``tps`` up to their changelogs' ends, then resume them."""
        backoff = Backoff(*self._backoff)
        while True:
            try:
                needed = {
                    (table.name, tp.partition): table
                    for tp in tps
                    for table in self._routes[tp.topic].tables
                }
                await self._read_changelogs(needed)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.warning("restore_failed_retrying", error=type(exc).__name__)
                await pause(None, backoff.next())
        if generation != self._restore_generation:
            return  # another rebalance came first; its own restore resumes the partitions
        current = tps & self._assigned
        self._ready_tps |= current
        if current:
            self.consumer.resume(*current)
        _log.info("state_restored", partitions=len(current))

    async def _read_changelogs(self, needed: Mapping[tuple[str, int], Table]) -> None:
        if not needed:
            return
        reader = kafka_clients.reader(
            self.settings,
            client_id=f"dagmonitor-{self.service}-restore",
            # A kept position below the log start (retention deleted old segments) restarts
            # from the oldest record, never from the end.
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await reader.start()
        try:
            by_tp = {
                table.changelog_tp(partition): table for (_, partition), table in needed.items()
            }
            reader.assign(list(by_tp))
            ends = await reader.end_offsets(list(by_tp))
            remaining: dict[TopicPartition, int] = {}
            for tp, table in by_tp.items():
                start = table.position(tp.partition)
                if start > ends[tp]:
                    table.reset(tp.partition)  # the changelog was recreated: read it anew
                    start = 0
                if start < ends[tp]:
                    reader.seek(tp, start)
                    remaining[tp] = ends[tp]
            self._report_remaining(by_tp, remaining, ends)
            started = time.perf_counter()
            count = 0
            while remaining:
                fetched = await reader.getmany(*remaining, timeout_ms=1000, max_records=10_000)
                for tp, records in fetched.items():
                    table = by_tp[tp]
                    for record in records:
                        if record.key is not None:
                            table.apply(tp.partition, record.key, record.value, record.offset)
                        count += 1
                    if tp in remaining and await reader.position(tp) >= remaining[tp]:
                        del remaining[tp]
                for tp in list(remaining):
                    if await reader.position(tp) >= remaining[tp]:
                        del remaining[tp]
                self._report_remaining(by_tp, remaining, {})
            _log.info(
                "changelogs_read",
                records=count,
                partitions=len(by_tp),
                seconds=round(time.perf_counter() - started, 3),
            )
        finally:
            for table in {id(t): t for t in needed.values()}.values():
                RESTORE_REMAINING.labels(self.service, table.name).set(0)
            await reader.stop()

    def _report_remaining(
        self,
        by_tp: Mapping[TopicPartition, Table],
        remaining: Mapping[TopicPartition, int],
        _ends: Mapping[TopicPartition, int],
    ) -> None:
        per_table: dict[str, int] = defaultdict(int)
        for tp, table in by_tp.items():
            per_table[table.name] += 0
            if tp in remaining:
                per_table[table.name] += max(0, remaining[tp] - table.position(tp.partition))
        for name, count in per_table.items():
            RESTORE_REMAINING.labels(self.service, name).set(count)

    # -- replicated views --------------------------------------------------------------------

    async def _start_views(self) -> None:
        """Read every view to the end of its topic, then follow the topics in the background.
        Until this returns the group is not joined, so no route handles a record before the
        views hold everything written before the start."""
        if not self._views:
            return
        backoff = Backoff(*self._backoff)
        while True:
            reader = kafka_clients.reader(
                self.settings,
                client_id=f"dagmonitor-{self.service}-views",
                auto_offset_reset="earliest",
                isolation_level="read_committed",
            )
            try:
                await reader.start()
                await self._catch_up_views(reader)
                break
            except asyncio.CancelledError:
                await reader.stop()
                raise
            except Exception as exc:
                await reader.stop()
                _log.warning("view_catch_up_failed_retrying", error=type(exc).__name__)
                await pause(None, backoff.next())
        self._view_reader = reader
        self._view_task = asyncio.get_running_loop().create_task(self._follow_views(reader))

    async def _catch_up_views(self, reader: AIOKafkaConsumer) -> None:
        by_tp = {tp: view for view in self._views.values() for tp in view.topic_partitions()}
        for view in self._views.values():
            view.clear()  # a retry reads from the beginning: deletions compacted away stay gone
        reader.assign(list(by_tp))
        await reader.seek_to_beginning(*by_tp)
        ends = await reader.end_offsets(list(by_tp))
        remaining = {tp: end for tp, end in ends.items() if await reader.position(tp) < end}
        started = time.perf_counter()
        count = 0
        while remaining:
            left: dict[str, int] = defaultdict(int)
            for tp, end in remaining.items():
                left[by_tp[tp].name] += max(0, end - await reader.position(tp))
            for name, count_left in left.items():
                RESTORE_REMAINING.labels(self.service, name).set(count_left)
            fetched = await reader.getmany(*remaining, timeout_ms=1000, max_records=10_000)
            for tp, records in fetched.items():
                for record in records:
                    await self._apply_view(by_tp[tp], record)
                count += len(records)
            for tp in list(remaining):
                if await reader.position(tp) >= remaining[tp]:
                    del remaining[tp]
        for view in self._views.values():
            RESTORE_REMAINING.labels(self.service, view.name).set(0)
            view.caught_up = True
        _log.info(
            "views_read",
            records=count,
            keys=sum(len(view) for view in self._views.values()),
            seconds=round(time.perf_counter() - started, 3),
        )

    async def _follow_views(self, reader: AIOKafkaConsumer) -> None:
        """Apply what is written to the views' topics from now on, for as long as we run."""
        by_tp = {tp: view for view in self._views.values() for tp in view.topic_partitions()}
        while True:
            try:
                fetched = await reader.getmany(timeout_ms=500, max_records=1000)
            except KafkaError as exc:
                _log.warning("view_fetch_failed_retrying", error=type(exc).__name__)
                await asyncio.sleep(self._backoff[0])
                continue
            for tp, records in fetched.items():
                for record in records:
                    await self._apply_view(by_tp[tp], record)

    async def _apply_view(self, view: ReplicatedView, record: Record) -> None:
        """One record of a view's topic, dead-lettered if it does not decode (again after a
        restart, which reads the topic anew: same source partition and offset)."""
        backoff = Backoff(*self._backoff)
        while True:
            try:
                await self._handle(
                    view.source, record, lambda: self._apply_view_record(view, record)
                )
                return
            except TRANSIENT_ERRORS as exc:  # the dead letter could not be sent: again
                _log.warning("view_record_retrying", error=type(exc).__name__)
                await pause(None, backoff.next())

    @staticmethod
    async def _apply_view_record(view: ReplicatedView, record: Record) -> None:
        if record.key is None:
            raise RecordRejected(Reason.KEY_MISMATCH, "record without a key")
        view.apply(bytes(record.key), record.value)

    def _check_views(self) -> None:
        """A view that stopped following its topic is a crash of the service, not a stale
        view to go on with."""
        task = self._view_task
        if task is None or not task.done():
            return
        failure = None if task.cancelled() else task.exception()
        raise RuntimeError(f"{self.service}: a replicated view stopped following") from failure

    # -- metrics -----------------------------------------------------------------------------

    async def _update_lag(self) -> int:
        """Set ``dagmonitor_consumer_lag`` per assigned input partition; returns the sum."""
        consumer = self.consumer
        total = 0
        for tp in list(self._assigned):
            route = self._routes.get(tp.topic)
            highwater = consumer.highwater(tp)
            if route is None or highwater is None:
                continue
            try:
                position = await asyncio.wait_for(consumer.position(tp), timeout=1.0)
            except Exception:  # nosec B112
                continue  # revoked meanwhile, or no position yet: next time
            lag = max(0, highwater - position)
            CONSUMER_LAG.labels(self.service, route.source, str(tp.partition)).set(lag)
            total += lag
        await self._update_view_lag()
        return total

    async def _update_view_lag(self) -> None:
        """``dagmonitor_consumer_lag`` of the views' topics too (not counted as stalled work:
        a view's records are applied, not handled and committed)."""
        reader = self._view_reader
        if reader is None:
            return
        for view in self._views.values():
            for tp in view.topic_partitions():
                highwater = reader.highwater(tp)
                if highwater is None:
                    continue
                try:
                    position = await asyncio.wait_for(reader.position(tp), timeout=1.0)
                except Exception:  # as above: a gauge, measured again next time  # nosec B112
                    continue
                lag = max(0, highwater - position)
                CONSUMER_LAG.labels(self.service, view.source, str(tp.partition)).set(lag)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, processor: StreamProcessor) -> None:
        self._processor = processor

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._processor._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self._processor._on_assigned(set(assigned))


def record_time(record: Record) -> datetime:
    """The record's Kafka timestamp: "now" for policies, identical when the record is replayed."""
    return datetime.fromtimestamp(record.timestamp / 1000, tz=UTC)


def record_key(record: Record) -> bytes:
    """The record key; a record without one is rejected (keys are the records' ids)."""
    if record.key is None:
        raise RecordRejected(Reason.KEY_MISMATCH, "record without a key")
    return bytes(record.key)


def record_headers(record: Record) -> list[tuple[str, bytes]]:
    return [(str(k), bytes(v)) for k, v in (record.headers or ())]


class ProcessorService(ServiceParts):
    """A service whose work is one stream processor (ingest, the classifier): it runs the
    processor until stopped and is ready once every assigned partition's tables are restored."""

    processor: StreamProcessor

    async def run(self, stop: asyncio.Event) -> None:
        await self.processor.serve(stop)

    async def ready(self) -> bool:
        return await self.processor.ready()

    def checks(self) -> dict[str, ReadinessCheck]:
        return {"kafka": self.ready}
