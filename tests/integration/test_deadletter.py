"""The dead-letter path on the real broker: bad bytes kept with a reason, and counted."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace

from dagmonitor import deadletter, kafka_clients
from dagmonitor.codec import DEAD_LETTER, default_codec
from dagmonitor.deadletter import DeadLetters, Source
from dagmonitor.errors import CodecError
from dagmonitor.rejection import Reason, reason_for
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.telemetry import DEAD_LETTERS, configure_tracing

pytestmark = pytest.mark.integration


async def test_undecodable_record_lands_on_deadletter_with_reason(
    kafka_settings: DagmonitorSettings,
) -> None:
    codec = default_codec()
    raw = b"\xc3\x01" + b"\x00" * 8 + b"garbage"
    with pytest.raises(CodecError) as caught:
        codec.decode(raw)
    reason = reason_for(caught.value)
    assert reason is Reason.UNKNOWN_SCHEMA
    before = DEAD_LETTERS.labels("ingest", reason.value)._value.get()

    producer = kafka_clients.producer(kafka_settings, acks="all")
    await producer.start()
    try:
        letters = DeadLetters(producer, service="ingest", topic_prefix=kafka_settings.topic_prefix)
        source = Source("bvh.incidents", key=b"PL0900-2026000001", partition=2, offset=41)
        configure_tracing("ingest")
        with trace.get_tracer("test").start_as_current_span("handle") as span:
            await letters.send(reason, str(caught.value), source, raw)
            trace_id = f"{span.get_span_context().trace_id:032x}"
    finally:
        await producer.stop()
    assert DEAD_LETTERS.labels("ingest", reason.value)._value.get() == before + 1

    consumer = kafka_clients.consumer(
        kafka_settings,
        kafka_settings.topic(deadletter.TOPIC),
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            # Other tests of the session may dead-letter onto the same topic: find ours.
            message = await consumer.getone()
            while message.key != b"PL0900-2026000001":
                message = await consumer.getone()
    finally:
        await consumer.stop()
    assert message.key == b"PL0900-2026000001"
    (traceparent,) = [value for key, value in message.headers if key == "traceparent"]
    assert traceparent.decode().split("-")[1] == trace_id
    letter = codec.decode(message.value, expect=DEAD_LETTER).record
    assert letter["reason"] == "unknown_schema"
    assert letter["raw"] == raw
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == (
        "bvh.incidents",
        2,
        41,
    )
    assert letter["service"] == "ingest"
    assert "0000000000000000" in letter["detail"]
