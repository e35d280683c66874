"""The distributor's intake writes a consumer batch of entries in one statement (ADR 0022), on
the real broker and PostgreSQL, through the service's own consumer: the stored result is what
writing the records one by one would leave, a bad record is the only one dead-lettered, and no
offset is committed before its batch is written."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from dagmonitor import deletion, kafka_clients
from dagmonitor.codec import DAGMONITOR_ENTRY, default_codec
from dagmonitor.deadletter import DeadLetters
from dagmonitor.deletion import Deletion
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.streaming import RecordConsumer, new_producer
from services.distributor.app import open_store
from services.distributor.intake import ENTRIES_TOPIC, Intake
from services.distributor.store import Store
from tests.integration.distributor.conftest import SettingsFactory
from tests.kafkautil import read_all
from tests.unit.distributor.samples import entry

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
Item = tuple[str, dict[str, Any] | None, tuple[tuple[str, bytes], ...]]


def _entry(number: str, version: int) -> dict[str, Any]:
    return entry(number, mk_code="A10", mk_description="DIEFSTAL", reported_at=AT, version=version)


def _counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _produce(settings: DagmonitorSettings, items: list[Item]) -> None:
    codec = default_codec()
    producer = kafka_clients.producer(settings, acks="all")
    await producer.start()
    try:
        for key, value, headers in items:
            payload = None if value is None else codec.encode(DAGMONITOR_ENTRY, value)
            await producer.send_and_wait(
                settings.topic(ENTRIES_TOPIC), payload, key=key.encode(), headers=list(headers)
            )
    finally:
        await producer.stop()


class Running:
    """The distributor's intake consumer (its handler and write-behind), on its own group."""

    def __init__(self, settings: DagmonitorSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.group = f"{settings.topic_prefix}intake-batches"
        self.producer = new_producer(settings, "distributor")
        self.intake = Intake(store)
        self.consumer: RecordConsumer | None = None

    async def start(self) -> None:
        await self.producer.start()
        letters = DeadLetters(
            self.producer, service="distributor", topic_prefix=self.settings.topic_prefix
        )
        self.consumer = RecordConsumer(
            self.settings,
            service="distributor",
            topics=[ENTRIES_TOPIC],
            handler=self.intake.handle,
            dead_letters=letters,
            group=self.group,
            retry_backoff=(0.05, 0.2),
            write_behind=self.intake.entries,
        )
        await self.consumer.start()

    async def committed(self) -> int:
        """The sum of the group's committed offsets on the entries topic."""
        admin = kafka_clients.admin(self.settings)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(self.group)
        finally:
            await admin.close()
        topic = self.settings.topic(ENTRIES_TOPIC)
        return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic)

    async def stored(self) -> dict[str, int]:
        rows = await self.store.pool.fetch("SELECT registration_number, version FROM entries")
        return {row["registration_number"]: row["version"] for row in rows}


@contextlib.asynccontextmanager
async def running(settings: DagmonitorSettings, store: Store) -> AsyncIterator[Running]:
    parts = Running(settings, store)
    await parts.start()
    assert parts.consumer is not None
    stop = asyncio.Event()
    task = asyncio.create_task(parts.consumer.run(stop))
    try:
        yield parts
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await task
        await parts.consumer.stop()
        await parts.producer.stop()


async def _until(condition: Any, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.1)


@pytest.fixture
async def store(
    make_settings: SettingsFactory, fresh_settings: DagmonitorSettings
) -> AsyncIterator[Store]:
    opened = await open_store(make_settings(topic_prefix=fresh_settings.topic_prefix))
    try:
        yield opened
    finally:
        await opened.pool.close()


async def test_a_batch_leaves_what_one_by_one_would(
    fresh_settings: DagmonitorSettings, store: Store
) -> None:
    """Versions out of order, a stored newer version, a tombstone after its entry: all in one
    consumer batch, and the result is that of writing them in order."""
    await store.upsert_entry(_entry("PL-STORED", 5))
    retention = deletion.headers(Deletion.RETENTION)
    items: list[Item] = [
        ("PL-A", _entry("PL-A", 1), ()),
        ("PL-A", _entry("PL-A", 3), ()),
        ("PL-A", _entry("PL-A", 2), ()),
        ("PL-GONE", _entry("PL-GONE", 1), ()),
        ("PL-GONE", None, retention),
        ("PL-STORED", _entry("PL-STORED", 4), ()),
        *((f"PL-{n}", _entry(f"PL-{n}", 1), ()) for n in range(20)),
    ]
    await _produce(fresh_settings, items)
    superseded = _counter(
        "dagmonitor_distributor_records_total", topic=ENTRIES_TOPIC, outcome="superseded"
    )
    async with running(fresh_settings, store) as parts:
        await _until(lambda: _done(parts, len(items)))
        stored = await parts.stored()
    assert stored.pop("PL-A") == 3
    assert stored.pop("PL-STORED") == 5
    assert "PL-GONE" not in stored
    assert stored == {f"PL-{n}": 1 for n in range(20)}
    # PL-A's versions 1 and 2 never reached the table: they were written in one statement.
    after = _counter(
        "dagmonitor_distributor_records_total", topic=ENTRIES_TOPIC, outcome="superseded"
    )
    assert after - superseded == 2


async def _done(parts: Running, count: int) -> bool:
    return await parts.committed() == count


async def test_a_bad_record_is_the_only_one_dead_lettered(
    fresh_settings: DagmonitorSettings, store: Store
) -> None:
    """PostgreSQL refuses a NUL in a text column: the batch statement fails, the batch is
    written record by record, and only the bad one goes to the dead-letter topic."""
    bad = _entry("PL-BAD", 1) | {"street": "Dom\x00straat"}
    items: list[Item] = [(f"PL-{n}", _entry(f"PL-{n}", 1), ()) for n in range(10)]
    items.insert(4, ("PL-BAD", bad, ()))
    await _produce(fresh_settings, items)
    one_by_one = _counter("dagmonitor_deferred_writes_one_by_one_total", service="distributor")
    async with running(fresh_settings, store) as parts:
        await _until(lambda: _done(parts, len(items)))
        stored = await parts.stored()
    assert stored == {f"PL-{n}": 1 for n in range(10)}
    assert (
        _counter("dagmonitor_deferred_writes_one_by_one_total", service="distributor")
        == one_by_one + 1
    )
    letters = [v for _, v in await read_all(fresh_settings, "pipeline.deadletter", expect=1) if v]
    assert [(x["source_key"], x["source_topic"]) for x in letters] == [("PL-BAD", ENTRIES_TOPIC)]
    assert letters[0]["reason"] == "processing_error"
    assert "straat" not in letters[0]["detail"]  # the detail never carries the value
    decoded = default_codec().decode(letters[0]["raw"], expect=DAGMONITOR_ENTRY).record
    assert decoded["registration_number"] == "PL-BAD"


async def test_nothing_is_committed_before_its_batch_is_written(
    fresh_settings: DagmonitorSettings, store: Store
) -> None:
    """While another session holds the entries table locked, the batch write waits and the
    group's offsets stay where they were; once the lock goes, all is written, then committed."""
    items: list[Item] = [(f"PL-{n}", _entry(f"PL-{n}", 1), ()) for n in range(30)]
    await _produce(fresh_settings, items[:10])
    async with running(fresh_settings, store) as parts:
        await _until(lambda: _done(parts, 10))
        async with store.pool.acquire() as conn:
            lock = conn.transaction()
            await lock.start()
            await conn.execute("LOCK TABLE entries IN EXCLUSIVE MODE")
            await _produce(fresh_settings, items[10:])
            await asyncio.sleep(3)
            assert await parts.committed() == 10
            assert len(await conn.fetch("SELECT 1 FROM entries")) == 10
            await lock.rollback()
        await _until(lambda: _done(parts, 30))
        assert len(await parts.stored()) == 30


async def test_what_a_stopped_run_left_deferred_is_not_written_later(
    fresh_settings: DagmonitorSettings, store: Store
) -> None:
    """A run that stopped mid-batch committed nothing, so its records come again; what it had
    deferred is dropped when the consumer runs again (its partition may belong to another
    consumer by then), not written with the next batch."""
    from dagmonitor.streaming import Incoming

    await _produce(fresh_settings, [("PL-1", _entry("PL-1", 1), ())])
    parts = Running(fresh_settings, store)
    left = Incoming(ENTRIES_TOPIC, "PL-LEFT", _entry("PL-LEFT", 1), None, 0, 0, 0)
    parts.intake.entries.add(left, _entry("PL-LEFT", 1), None)
    await parts.start()
    assert parts.consumer is not None
    stop = asyncio.Event()
    task = asyncio.create_task(parts.consumer.run(stop))
    try:
        await _until(lambda: _done(parts, 1))
        assert await parts.stored() == {"PL-1": 1}
    finally:
        stop.set()
        await task
        await parts.consumer.stop()
        await parts.producer.stop()
