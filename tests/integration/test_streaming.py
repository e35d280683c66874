"""The shared consume-handle-commit loop on the real broker."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from dagmonitor import kafka_clients
from dagmonitor.codec import DEAD_LETTER, ESCALATION, default_codec
from dagmonitor.deadletter import DeadLetters
from dagmonitor.rejection import Reason, RecordRejected
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.streaming import Incoming, Outputs, RecordConsumer, new_producer
from tests.samples import escalation

pytestmark = pytest.mark.integration


async def _run_until(consumer: RecordConsumer, done: asyncio.Event, timeout: float = 30) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        async with asyncio.timeout(timeout):
            await done.wait()
    finally:
        stop.set()
        await task


async def test_good_bad_rejected_and_transient_records(stack: DagmonitorSettings) -> None:
    import uuid

    from dagmonitor.topic_admin import apply_topics
    from dagmonitor.topics import get

    settings = DagmonitorSettings.load(topic_prefix=f"test-stream-{uuid.uuid4().hex[:8]}.")
    specs = [get("escalations.approved"), get("pipeline.deadletter")]
    await apply_topics(settings, specs=specs)

    producer = new_producer(settings, "test")
    await producer.start()
    outputs = Outputs(producer, settings, "test")
    raw = kafka_clients.producer(settings)
    await raw.start()
    topic = settings.topic("escalations.approved")
    try:
        await outputs.send("escalations.approved", "3511AB", escalation("3511AB"))
        await raw.send_and_wait(topic, b"not avro at all", key=b"bad")
        await outputs.send("escalations.approved", "9999ZZ", escalation("9999ZZ"))
        await outputs.send("escalations.approved", "1234CD", escalation("1234CD"))
        await outputs.send("escalations.approved", "1234CD", None)
    finally:
        await raw.stop()

    seen: list[tuple[str | None, bool]] = []
    failures = {"1234CD": 2}
    done = asyncio.Event()

    async def handler(record: Incoming) -> None:
        if record.key == "9999ZZ":
            raise RecordRejected(Reason.INVALID_FIELD, "postcode outside the municipality")
        if record.value is not None and failures.get(record.key or "", 0) > 0:
            failures[record.key or ""] -= 1
            raise ConnectionError("postgres went away")
        seen.append((record.key, record.value is None))
        if len(seen) == 3:
            done.set()

    letters = DeadLetters(producer, service="test", topic_prefix=settings.topic_prefix)
    consumer = RecordConsumer(
        settings,
        service="test",
        topics=["escalations.approved"],
        handler=handler,
        dead_letters=letters,
        retry_backoff=(0.05, 0.1),
    )
    await consumer.start()
    try:
        await _run_until(consumer, done)
    finally:
        await consumer.stop()

    # The transient failure was retried (twice) and then handled; per key, order holds.
    assert sorted(seen) == [("1234CD", False), ("1234CD", True), ("3511AB", False)]
    assert seen.index(("1234CD", False)) < seen.index(("1234CD", True))
    assert failures["1234CD"] == 0

    # Both bad records are on the dead-letter topic with their reason codes.
    codec = default_codec()
    reader = kafka_clients.consumer(
        settings,
        settings.topic("pipeline.deadletter"),
        auto_offset_reset="earliest",
        group_id=None,
    )
    await reader.start()
    letters_seen = []
    try:
        async with asyncio.timeout(20):
            while len(letters_seen) < 2:
                for messages in (await reader.getmany(timeout_ms=500)).values():
                    letters_seen += [
                        codec.decode(m.value, expect=DEAD_LETTER).record for m in messages
                    ]
    finally:
        await reader.stop()
    by_key = {letter["source_key"]: letter for letter in letters_seen}
    assert by_key["bad"]["reason"] == "not_avro"
    assert by_key["bad"]["raw"] == b"not avro at all"
    assert by_key["9999ZZ"]["reason"] == "invalid_field"
    assert codec.decode(by_key["9999ZZ"]["raw"], expect=ESCALATION).record["postcode"] == "9999ZZ"

    # Offsets were committed: the same group, restarted, gets nothing more.
    again: list[Incoming] = []

    async def count(record: Incoming) -> None:
        again.append(record)

    restarted = RecordConsumer(
        settings,
        service="test",
        topics=["escalations.approved"],
        handler=count,
        dead_letters=letters,
    )
    await restarted.start()
    try:
        with contextlib.suppress(TimeoutError):
            await _run_until(restarted, asyncio.Event(), timeout=5)
    finally:
        await restarted.stop()
        await producer.stop()
    assert again == []


async def test_a_replicated_view_is_read_whole_before_any_route(
    fresh_settings: DagmonitorSettings,
) -> None:
    """Every partition of the view's topic is read to its end before the first record is
    handled (tombstones applied, a bad value dead-lettered), then followed while running."""
    from dagmonitor.processor import Batch, Record, StreamProcessor
    from dagmonitor.topics import get
    from tests.kafkautil import produce, read_all

    settings = fresh_settings
    codec = default_codec()

    def encoded(postcode: str) -> bytes:
        return codec.encode(ESCALATION, escalation(postcode))

    before = [(f"{n}000AA".encode(), encoded(f"{n}000AA")) for n in range(1, 10)]
    await produce(settings, "escalations.approved", before)
    await produce(settings, "escalations.approved", [(b"1000AA", None), (b"bad", b"not avro")])
    await produce(settings, "ingest.municipal", [(b"sig-1", b"counted")])

    processor = StreamProcessor(settings, service="viewtest", retry_backoff=(0.05, 0.1))
    view = processor.view(
        settings.topic("escalations.approved"),
        "escalations.approved",
        get("escalations.approved").partitions,
        lambda value: codec.decode(value, expect=ESCALATION).record["postcode"],
    )
    seen: list[int] = []

    async def handler(_record: Record, _batch: Batch) -> None:
        seen.append(len(view))

    processor.route(settings.topic("ingest.municipal"), "ingest.municipal", handler)
    stop = asyncio.Event()
    task = asyncio.create_task(processor.serve(stop))
    try:
        async with asyncio.timeout(30):
            while not (seen and await processor.ready()):
                await asyncio.sleep(0.1)
        assert seen == [8]  # the whole topic, with its tombstone, before the first record
        assert view.get(b"1000AA") is None and view.get(b"9000AA") == "9000AA"
        await produce(settings, "escalations.approved", [(b"3511AB", encoded("3511AB"))])
        async with asyncio.timeout(20):
            while view.get(b"3511AB") is None:
                await asyncio.sleep(0.1)
        assert await processor.ready()
    finally:
        stop.set()
        await task
    letters = [v for _, v in await read_all(settings, "pipeline.deadletter", expect=1) if v]
    assert [(letter["source_key"], letter["reason"]) for letter in letters] == [("bad", "not_avro")]
