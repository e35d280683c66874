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

    settings = DagmonitorSettings.load(topic_prefix=f"stream-{uuid.uuid4().hex[:8]}.")
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
