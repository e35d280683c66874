"""``dagmonitor subscribe TOPIC``: the subscriber kit's reader (docs/subscribers.md).

Reads one of the topics a downstream subscriber may read (``deploy.k8s.access.SUBSCRIBED``) as
the subscriber principal, in a consumer group of the subscriber's prefix, from the group's
committed position; prints each record as one JSON line (the value decoded with ``schemas/``,
``null`` for a tombstone: the subscriber must delete its copy) and commits what it printed.
A progress line (counts and lag, never record contents) goes to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TextIO

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from dagmonitor import kafka_clients
from dagmonitor.codec import default_codec
from dagmonitor.errors import ConfigError
from dagmonitor.jsonio import to_json
from dagmonitor.settings import DagmonitorSettings
from deploy.k8s.access import BY_PRINCIPAL, SUBSCRIBED, SUBSCRIBER, ExternalAccess


def group_id(settings: DagmonitorSettings, group: str) -> str:
    """The consumer group of subscriber ``group`` under the deployment's prefix."""
    row = BY_PRINCIPAL[SUBSCRIBER]
    assert isinstance(row, ExternalAccess) and row.group_prefix
    return f"{settings.topic_prefix}{row.group_prefix}{group}"


async def subscribe(
    settings: DagmonitorSettings,
    topic: str,
    *,
    group: str = "cli",
    limit: int | None = None,
    idle: float | None = None,
    out: TextIO | None = None,
    progress: Callable[[str], None] = lambda _line: None,
) -> int:
    """Print the records of ``topic`` after the group's committed position; returns how many.

    Stops after ``limit`` records or ``idle`` seconds without a new one (never, without both).
    """
    if topic not in SUBSCRIBED:
        raise ConfigError(
            f"{topic!r} is not for subscribers; they may read {', '.join(sorted(SUBSCRIBED))} "
            "(personal data goes by e-mail only, as the covenant says)"
        )
    out = out or sys.stdout
    settings = settings.default_principal(SUBSCRIBER)
    codec = default_codec()
    consumer = kafka_clients.consumer(
        settings,
        settings.topic(topic),
        group_id=group_id(settings, group),
        client_id=f"dagmonitor-subscribe-{group}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    printed = 0
    waited = 0.0
    try:
        while limit is None or printed < limit:
            batch = await consumer.getmany(timeout_ms=500)
            done: dict[TopicPartition, OffsetAndMetadata] = {}
            for partition, records in batch.items():
                for record in records:
                    if limit is not None and printed >= limit:
                        break
                    value = None if record.value is None else codec.decode(record.value).record
                    line = {
                        "topic": topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "timestamp": record.timestamp,
                        "key": None if record.key is None else record.key.decode(),
                        "value": None if value is None else to_json(value),
                    }
                    out.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
                    printed += 1
                    done[partition] = OffsetAndMetadata(record.offset + 1, "")
            if done:
                out.flush()
                await consumer.commit(done)
                waited = 0.0
                progress(await _progress(consumer, topic, printed))
            else:
                waited += 0.5
                if idle is not None and waited >= idle:
                    break
    finally:
        try:  # the last progress line needs the broker; the consumer is closed either way
            progress(await _progress(consumer, topic, printed) + " (stopped; position committed)")
        finally:
            await consumer.stop()
    return printed


async def _progress(consumer: AIOKafkaConsumer, topic: str, printed: int) -> str:
    lag = 0
    for partition in consumer.assignment():
        highwater = consumer.highwater(partition)
        if highwater is not None:
            lag += max(0, highwater - await consumer.position(partition))
    return f"subscribe: {printed} records of {topic} printed, lag {lag}"
