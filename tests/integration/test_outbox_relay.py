"""The shared outbox relay on the real PostgreSQL and Kafka, over a minimal outbox of its own:
a standby replica takes over from a relay that crashed between publish and mark, a relay whose
lock session is killed stops publishing until it holds the lock again, and a failing producer
is retried with a backoff that a stop cuts short. Every row reaches the topic exactly once."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaConnectionError

from dagmonitor import kafka_clients
from dagmonitor.clock import Checkpoint, no_checkpoint
from dagmonitor.outbox_relay import (
    Outbound,
    ProducerFactory,
    Relay,
    RelayEvents,
    id_from_headers,
    id_headers,
    lock_key,
    partitions_of,
)
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.streaming import new_producer

pytestmark = pytest.mark.integration

TOPIC = "approval.decisions"  # any topic of the table: this test's prefix makes it its own
EVENTS = RelayEvents("test_relay_standby", "test_relay_recovered", "test_relay_failed")


class SimulatedCrash(BaseException):
    """Stands for the process dying: no ``except Exception`` catches it."""


class Rows:
    """A minimal outbox: one table, records found again by their id header."""

    topics = (TOPIC,)

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self.pool = pool
        self.schema = schema

    async def add(self, n: int) -> None:
        await self.pool.executemany(
            f"INSERT INTO {self.schema}.rows (key) VALUES ($1)",
            [(f"k-{uuid.uuid4().hex[:6]}",) for _ in range(n)],
        )

    async def backlog(self) -> int:
        return int(
            await self.pool.fetchval(
                f"SELECT count(*) FROM {self.schema}.rows WHERE published_at IS NULL"
            )
        )

    async def drained(self) -> bool:
        return await self.backlog() == 0

    async def ids(self) -> set[int]:
        return {r["id"] for r in await self.pool.fetch(f"SELECT id FROM {self.schema}.rows")}

    async def pending(self, limit: int) -> list[asyncpg.Record]:
        return list(
            await self.pool.fetch(
                f"SELECT id, key FROM {self.schema}.rows WHERE published_at IS NULL "
                "ORDER BY id LIMIT $1",
                limit,
            )
        )

    def outbound(self, row: asyncpg.Record) -> Outbound[int]:
        headers = id_headers(row["id"], self.schema)
        return Outbound(row["id"], TOPIC, row["key"], b"value", headers)

    def identify(self, record: ConsumerRecord[bytes, bytes]) -> int | None:
        row_id = id_from_headers(record, self.schema)
        return None if row_id is None else int(row_id)

    async def recover_since(self) -> datetime | None:
        oldest: datetime | None = await self.pool.fetchval(
            f"SELECT min(created_at) FROM {self.schema}.rows WHERE published_at IS NULL"
        )
        return oldest

    async def mark_published(self, ids: Collection[int]) -> int:
        status = await self.pool.execute(
            f"UPDATE {self.schema}.rows SET published_at = now() "
            "WHERE id = ANY($1::bigint[]) AND published_at IS NULL",
            list(ids),
        )
        return int(status.split()[-1])

    async def after_round(self, published: int) -> None:
        pass


@dataclass
class Setup:
    settings: DagmonitorSettings
    rows: Rows

    @property
    def lock_name(self) -> str:
        return f"test-relay:{self.rows.schema}"

    def relay(
        self,
        *,
        producer: AIOKafkaProducer | ProducerFactory | None = None,
        checkpoint: Checkpoint = no_checkpoint,
        interval: float = 0.05,
    ) -> Relay[asyncpg.Record, int]:
        return Relay(
            self.rows,
            self.rows.pool,
            self.settings,
            service="test",
            lock_name=self.lock_name,
            producer=producer or (lambda: new_producer(self.settings, "test-relay")),
            batch_size=2,  # several rounds per test
            interval=interval,
            recovery_margin=timedelta(minutes=10),
            events=EVENTS,
            checkpoint=checkpoint,
        )

    async def on_topic(self) -> Counter[int]:
        """How often each row id of this outbox is on the topic, from its beginning."""
        producer = kafka_clients.producer(self.settings)
        await producer.start()
        try:
            partitions = await partitions_of(producer, self.settings, [TOPIC])
        finally:
            await producer.stop()
        consumer = kafka_clients.consumer(self.settings, group_id=None, enable_auto_commit=False)
        await consumer.start()
        found: Counter[int] = Counter()
        try:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            remaining = {tp for tp, end in ends.items() if end > 0}
            async with asyncio.timeout(20):
                while remaining:
                    for records in (await consumer.getmany(timeout_ms=200)).values():
                        found.update(i for i in map(self.rows.identify, records) if i is not None)
                    remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
        finally:
            await consumer.stop()
        return found


@pytest.fixture
async def setup(fresh_settings: DagmonitorSettings) -> AsyncIterator[Setup]:
    schema = f"relay_{uuid.uuid4().hex[:8]}"
    url = fresh_settings.database_url.get_secret_value()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=6)
    await pool.execute(
        f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.rows ("
        "id bigserial PRIMARY KEY, key text NOT NULL, "
        "created_at timestamptz NOT NULL DEFAULT now(), published_at timestamptz)"
    )
    try:
        yield Setup(fresh_settings, Rows(pool, schema))
    finally:
        await pool.execute(f"DROP SCHEMA {schema} CASCADE")
        await pool.close()


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 20) -> None:
    """Wait until ``check`` (a function or a coroutine function) holds."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(0.05)


async def test_a_standby_takes_over_from_a_relay_that_crashed_between_publish_and_mark(
    setup: Setup,
) -> None:
    rows = setup.rows

    def crash_once(stage: str) -> None:
        if stage == "published":
            raise SimulatedCrash(stage)

    stop = asyncio.Event()
    active = setup.relay(checkpoint=crash_once)
    standby = setup.relay()
    first = asyncio.create_task(active.run(stop))
    await eventually(lambda: active.started)
    second = asyncio.create_task(standby.run(stop))
    try:
        await asyncio.sleep(0.5)
        assert not standby.started, "the lock is held: the second relay waits"
        await rows.add(2)
        with pytest.raises(SimulatedCrash):
            await first  # published both, marked neither, and is gone
        assert await rows.backlog() == 2
        await eventually(lambda: standby.started)
        await eventually(rows.drained)  # recovered, not published again
        await rows.add(3)
        await eventually(rows.drained)
    finally:
        stop.set()
        await second
    assert not standby.started
    assert await setup.on_topic() == Counter(await rows.ids()), "every row exactly once"


async def test_a_relay_whose_lock_session_ends_publishes_only_once_it_holds_the_lock_again(
    setup: Setup,
) -> None:
    rows = setup.rows
    stop = asyncio.Event()
    relay = setup.relay()
    running = asyncio.create_task(relay.run(stop))
    try:
        await eventually(lambda: relay.started)
        await rows.add(3)
        await eventually(rows.drained)
        killed = await rows.pool.fetchval(
            "SELECT pg_terminate_backend(pid) FROM pg_locks "
            "WHERE locktype = 'advisory' AND objid = $1::bigint::oid AND granted",
            lock_key(setup.lock_name),
        )
        assert killed
        await rows.add(3)
        await eventually(rows.drained)
        assert await _lock_holders(rows.pool, setup.lock_name) == 1
    finally:
        stop.set()
        await running
    assert await _lock_holders(rows.pool, setup.lock_name) == 0, "released on stop"
    assert await setup.on_topic() == Counter(await rows.ids())


async def test_a_failing_producer_is_retried_and_a_stop_cuts_the_backoff_short(
    setup: Setup,
) -> None:
    rows = setup.rows
    await rows.add(3)
    made = 0

    def flaky() -> AIOKafkaProducer:
        nonlocal made
        made += 1
        if made <= 2:
            raise KafkaConnectionError("broker unreachable")
        return new_producer(setup.settings, "test-relay")

    stop = asyncio.Event()
    running = asyncio.create_task(setup.relay(producer=flaky).run(stop))
    try:
        await eventually(rows.drained)
    finally:
        stop.set()
        await running
    assert made == 3
    assert await setup.on_topic() == Counter(await rows.ids())

    def broken() -> AIOKafkaProducer:
        raise KafkaConnectionError("broker unreachable")

    stop = asyncio.Event()
    running = asyncio.create_task(setup.relay(producer=broken, interval=30).run(stop))
    await asyncio.sleep(0.3)  # failed once, pausing 30 s
    assert not running.done()
    stop.set()
    async with asyncio.timeout(2):
        await running
    assert await _lock_holders(rows.pool, setup.lock_name) == 0


async def _lock_holders(pool: asyncpg.Pool, name: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM pg_locks "
            "WHERE locktype = 'advisory' AND objid = $1::bigint::oid AND granted",
            lock_key(name),
        )
    )
