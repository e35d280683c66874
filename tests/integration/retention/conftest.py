"""Fixtures of the retention service's integration tests, on the real Kafka and PostgreSQL.

Each test gets its own topic prefix (every topic of the table; the compacted ones configured so
that the broker's cleaner acts within seconds, the local broker checking every second) and
its own PostgreSQL schemas, dropped afterwards. Records are produced with explicit Kafka
timestamps in the past (the broker refuses timestamps more than an hour ahead), and the sweep
is given a "now" 365 days after them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiokafka.structs import TopicPartition
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dagmonitor import kafka_clients, topics
from dagmonitor.codec import default_codec
from dagmonitor.db import migrate_service
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.streaming import RecordConsumer
from dagmonitor.topic_admin import apply_topics
from services.retention.app import MIGRATIONS
from services.retention.config import RetentionSettings
from services.retention.policy import expires_at

# The broker's cleaner compacts a closed segment within seconds with these; tombstones stay a
# minute, so that every consumer of the test sees them before they go too.
FAST_COMPACTION = {
    "segment.ms": "1000",
    "max.compaction.lag.ms": "1000",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "60000",
}


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def now_ms() -> datetime:
    """The current instant at Kafka's precision (milliseconds)."""
    return from_ms(ms(datetime.now(UTC)))


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


async def _prefixed_topics(fast: bool) -> AsyncIterator[DagmonitorSettings]:
    settings = DagmonitorSettings.load(topic_prefix=f"test-ret-{uuid.uuid4().hex[:8]}.")
    specs = [
        replace(spec, extra_config=FAST_COMPACTION) if fast and spec.compacted else spec
        for spec in topics.TOPICS
    ]
    await apply_topics(settings, specs=specs)
    yield settings
    admin = kafka_clients.admin(settings)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


@pytest.fixture
async def prefixed(stack: DagmonitorSettings) -> AsyncIterator[DagmonitorSettings]:
    """Settings with a topic prefix of this test alone, every topic of the table created,
    the compacted ones with ``FAST_COMPACTION``; the topics are deleted afterwards."""
    async for settings in _prefixed_topics(fast=True):
        yield settings


@pytest.fixture
async def prefixed_as_in_production(
    stack: DagmonitorSettings,
) -> AsyncIterator[DagmonitorSettings]:
    """Like ``prefixed``, with the topic table's own configs (nothing compacts during a test)."""
    async for settings in _prefixed_topics(fast=False):
        yield settings


async def caught_up(consumer: RecordConsumer) -> bool:
    """Whether ``consumer`` has handled and committed everything up to the partitions' ends."""
    inner = consumer.consumer
    assignment = list(inner.assignment())
    if not assignment:
        return False
    ends = await inner.end_offsets(assignment)
    for tp in assignment:
        if (await inner.committed(tp) or 0) < ends[tp]:
            return False
    return True


@pytest.fixture
async def schemas(stack: DagmonitorSettings) -> AsyncIterator[Callable[[str], str]]:
    """Makes unique PostgreSQL schema names (``make("retention")``) and drops them afterwards."""
    made: list[str] = []

    def make(service: str) -> str:
        made.append(f"{service}_{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield make
    conn = await asyncpg.connect(stack.database_url.get_secret_value())
    try:
        for schema in made:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


def public_key_pem() -> str:
    """A public key for the approval service's token check (its API is not used here)."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def retention_settings(
    base: DagmonitorSettings, schema: str, **overrides: Any
) -> RetentionSettings:
    """Settings for the service under test: the test's topics and schema, fast rolls."""
    values: dict[str, Any] = {
        "topic_prefix": base.topic_prefix,
        "db_schema": schema,
        "retention_roll_delay_seconds": 1.5,
        "retention_roll_bucket_seconds": 0.5,
        "retention_tick_seconds": 0.2,
        "retention_batch_size": 5,
    }
    values.update(overrides)
    return RetentionSettings.load(**values)


@dataclass(frozen=True)
class Record:
    """One record to produce: contract topic, key, value (None: tombstone; bytes: sent as
    they are), Kafka timestamp."""

    topic: str
    key: str
    value: dict[str, Any] | bytes | None
    at: datetime


async def produce(settings: DagmonitorSettings, records: Iterable[Record]) -> None:
    """Produce ``records`` in order, with their timestamps, encoded with the topic's schema."""
    codec = default_codec()
    producer = kafka_clients.producer(settings, acks="all")
    await producer.start()
    try:
        for r in records:
            value = r.value
            if isinstance(value, dict):
                value = codec.encode(topics.get(r.topic).schema, value)
            await producer.send_and_wait(
                settings.topic(r.topic), value, key=r.key.encode(), timestamp_ms=ms(r.at)
            )
    finally:
        await producer.stop()


@dataclass(frozen=True)
class Read:
    key: str
    value: bytes | None
    at: datetime


async def read_topic(settings: DagmonitorSettings, topic: str) -> list[Read]:
    """Every record of ``topic`` from the beginning up to its end when the call began."""
    name = settings.topic(topic)
    consumer = kafka_clients.consumer(settings, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(name, p) for p in range(topics.get(topic).partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        out: list[Read] = []
        async with asyncio.timeout(20):
            for tp in partitions:
                while await consumer.position(tp) < ends[tp]:
                    batch = await consumer.getmany(tp, timeout_ms=200)
                    for record in batch.get(tp, []):
                        if record.offset < ends[tp]:
                            out.append(
                                Read(record.key.decode(), record.value, from_ms(record.timestamp))
                            )
        return out
    finally:
        await consumer.stop()


def latest(reads: list[Read]) -> dict[str, bytes | None]:
    """The last value per key (None: a tombstone), as a compacted topic's reader sees it."""
    out: dict[str, bytes | None] = {}
    for r in reads:
        out[r.key] = r.value
    return out


async def index_rows(settings: RetentionSettings) -> dict[tuple[str, str], datetime]:
    """The index: (topic, key) -> provided_at."""
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        rows = await conn.fetch(
            f"SELECT topic, key, provided_at FROM {settings.db_schema}.provided"
        )
    finally:
        await conn.close()
    return {(r["topic"], r["key"]): r["provided_at"] for r in rows}


async def seed_index(
    settings: RetentionSettings, rows: Iterable[tuple[str, str, datetime]]
) -> None:
    """Migrate the schema and COPY ``rows`` (topic, key, provided_at) into the index, each
    expiring when its topic's period (less the deletion lead) is over."""
    await migrate_service(settings, MIGRATIONS)
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        await conn.copy_records_to_table(
            "provided",
            schema_name=settings.db_schema,
            columns=["topic", "key", "provided_at", "expires_at"],
            records=[(t, k, at, expires_at(t, at, None)) for t, k, at in rows],
        )
    finally:
        await conn.close()
