"""The topic table on the real broker, and records through the codec over Kafka."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from dagmonitor import kafka_clients
from dagmonitor.codec import default_codec
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.topic_admin import Action, apply_topics
from dagmonitor.topics import INTERNAL_TOPICS, TOPICS, Cleanup, TopicSpec, get
from tests.samples import incident

pytestmark = pytest.mark.integration


async def _configs(settings: DagmonitorSettings, names: list[str]) -> dict[str, dict[str, str]]:
    admin = kafka_clients.admin(settings)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    result: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            result[resource["resource_name"]] = {
                e["config_names"]: e["config_value"] for e in resource["config_entries"]
            }
    for entry in described:
        result[entry["topic"]]["partitions"] = str(len(entry["partitions"]))
    return result


async def test_every_topic_exists_with_the_tables_configs(
    kafka_settings: DagmonitorSettings,
) -> None:
    names = [kafka_settings.topic(spec.name) for spec in TOPICS]
    actual = await _configs(kafka_settings, names)
    for spec in TOPICS:
        broker = actual[kafka_settings.topic(spec.name)]
        for key, value in spec.configs().items():
            assert broker[key] == value, (spec.name, key)
        assert broker["partitions"] == str(spec.partitions)


async def test_apply_is_idempotent(kafka_settings: DagmonitorSettings) -> None:
    changes = await apply_topics(kafka_settings)
    assert [c.action for c in changes] == [Action.UNCHANGED] * len(TOPICS + INTERNAL_TOPICS)


async def test_apply_repairs_drift_and_grows_partitions(stack: DagmonitorSettings) -> None:
    prefix = f"test-drift-{uuid.uuid4().hex[:8]}."
    spec = TopicSpec("probe", "k", "nl.dagmonitor.Escalation", 2, Cleanup.COMPACT_DELETE, 366)
    (created,) = await apply_topics(stack, prefix=prefix, specs=[spec])
    assert created.action is Action.CREATED

    drifted = ConfigResource(
        ConfigResourceType.TOPIC, f"{prefix}probe", configs={"retention.ms": "1000"}
    )
    admin = kafka_clients.admin(stack)
    await admin.start()
    try:
        await admin.alter_configs([drifted])
        grown = TopicSpec(spec.name, spec.key, spec.schema, 4, spec.cleanup, spec.retention_days)
        (repaired,) = await apply_topics(stack, prefix=prefix, specs=[grown])
        assert repaired.action is Action.UPDATED
        assert any(d.startswith("retention.ms: 1000 ->") for d in repaired.details)
        assert "partitions: 2 -> 4" in repaired.details
        actual = (await _configs(stack, [f"{prefix}probe"]))[f"{prefix}probe"]
        assert actual["retention.ms"] == str(366 * 24 * 3600 * 1000)
        assert actual["max.compaction.lag.ms"] == spec.configs()["max.compaction.lag.ms"]
        assert actual["partitions"] == "4"
    finally:
        await admin.delete_topics([f"{prefix}probe"])
        await admin.close()


async def test_record_and_tombstone_round_trip_through_kafka(
    kafka_settings: DagmonitorSettings,
) -> None:
    codec = default_codec()
    topic = kafka_settings.topic("ingest.incidents")
    record = incident("PL0900-2026099999", version=3)
    producer = kafka_clients.producer(kafka_settings, acks="all")
    await producer.start()
    try:
        key = record["registration_number"].encode()
        value = codec.encode(get("ingest.incidents").schema, record)
        await producer.send_and_wait(topic, value, key=key)
        await producer.send_and_wait(topic, None, key=key)
    finally:
        await producer.stop()

    consumer = kafka_clients.consumer(
        kafka_settings,
        topic,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    received = []
    try:
        async with asyncio.timeout(30):
            while len(received) < 2:
                batch = await consumer.getmany(timeout_ms=1000)
                for messages in batch.values():
                    received += [m for m in messages if m.key == key]
    finally:
        await consumer.stop()

    value, tombstone = received
    assert value.value[:2] == b"\xc3\x01"
    decoded = codec.decode(value.value, expect="nl.politie.bvh.IncidentEvent")
    assert decoded.record == record
    assert tombstone.value is None
