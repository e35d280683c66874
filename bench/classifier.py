"""Throughput of the classifier: the pure policy function, and the hop on the real broker.

Each number is reported with a baseline measured in the same run, on the same data:

- policy:  ``classify_incident`` per record   vs  decoding the same record (codec) per record;
- hop:     the classifier (stream processor: decode, policy, encode, produce with acks) from
           ``ingest.incidents``   vs  a bare aiokafka relay copying the same bytes between two
           topics (the practical limit of one Python consume-and-produce hop).

Run (the local stack must be up: ``dagmonitor up``)::

    .venv/bin/python -m bench.classifier --count 5000
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime

from dagmonitor import kafka_clients
from dagmonitor.codec import INCIDENT_EVENT, default_codec
from dagmonitor.jsonio import record_from_json
from dagmonitor.topic_admin import apply_topics
from dagmonitor.topics import TopicSpec, get
from dagmonitor_cli.generate import Generator
from services.classifier.annex import load_annex
from services.classifier.app import Classifier
from services.classifier.config import ClassifierSettings
from services.classifier.policy import PolicyConfig, classify_incident

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


def make_records(count: int) -> list[bytes]:
    codec = default_codec()
    lines = list(Generator(seed=3, day=date(2026, 11, 27)).incidents(count))[:count]
    return [codec.encode(INCIDENT_EVENT, record_from_json(INCIDENT_EVENT, line)) for line in lines]


def bench_policy(raw: list[bytes], rounds: int = 3) -> tuple[float, float]:
    codec = default_codec()
    annex = load_annex()
    config = PolicyConfig("GM0344", frozenset({"WK034405", "WK034404"}), b"bench")
    decoded = [codec.decode(r).record for r in raw]
    best_decode = best_policy = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for r in raw:
            codec.decode(r)
        best_decode = min(best_decode, time.perf_counter() - started)
        started = time.perf_counter()
        for record in decoded:
            classify_incident(record, config, annex, now=NOW)
        best_policy = min(best_policy, time.perf_counter() - started)
    return len(raw) / best_policy, len(raw) / best_decode


async def bench_relay(settings: ClassifierSettings, raw: list[bytes]) -> float:
    """Seconds for a bare consume-and-produce relay to copy every record (acks=all)."""
    source, target = settings.topic("ingest.incidents"), settings.topic("bench.relay")
    consumer = kafka_clients.consumer(
        settings,
        source,
        group_id=f"{settings.topic_prefix}bench-relay",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = kafka_clients.producer(settings, acks="all")
    await consumer.start()
    await producer.start()
    copied = 0
    started = time.perf_counter()
    try:
        while copied < len(raw):
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for tp, messages in batches.items():
                futures = [await producer.send(target, m.value, key=m.key) for m in messages]
                await asyncio.gather(*futures)
                await consumer.commit({tp: messages[-1].offset + 1})
                copied += len(messages)
        return time.perf_counter() - started
    finally:
        await consumer.stop()
        await producer.stop()


@asynccontextmanager
async def running_classifier(settings: ClassifierSettings) -> AsyncIterator[Classifier]:
    """The classifier running in this process, ready (partitions held); stopped on exit."""
    classifier = Classifier(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(classifier.run(stop))
    try:
        while not await classifier.ready():
            await asyncio.sleep(0.05)
        yield classifier
    finally:
        stop.set()
        await task


async def bench_classifier(settings: ClassifierSettings, count: int) -> float:
    """Seconds for the classifier to handle every record of ``ingest.incidents``."""
    async with running_classifier(settings) as classifier:
        started = time.perf_counter()
        # Done when every record's batch is flushed: outputs acknowledged, tables written.
        while classifier.processor.handled.get("ingest.incidents", 0) < count:
            await asyncio.sleep(0.01)
        return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    raw = make_records(args.count)

    policy_rate, decode_rate = bench_policy(raw)
    print(f"policy:     {policy_rate:>10,.0f} records/s")
    print(f"baseline:   {decode_rate:>10,.0f} records/s (codec decode of the same records)")
    print(f"ratio:      {policy_rate / decode_rate:>10.2f}")

    settings = ClassifierSettings.load(
        topic_prefix=f"test-bench-{uuid.uuid4().hex[:8]}.", team_districts="WK034405,WK034404"
    )
    relay_topic = TopicSpec("bench.relay", "k", INCIDENT_EVENT, 6, get("bvh.incidents").cleanup, 1)
    await apply_topics(settings)
    await apply_topics(settings, specs=[relay_topic])
    codec = default_codec()
    producer = kafka_clients.producer(settings, acks="all")
    await producer.start()
    try:
        futures = []
        for value in raw:
            key = codec.decode(value).record["registration_number"].encode()
            futures.append(await producer.send(settings.topic("ingest.incidents"), value, key=key))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()

    relay_seconds = await bench_relay(settings, raw)
    hop_seconds = await bench_classifier(settings, len(raw))
    relay_rate, hop_rate = len(raw) / relay_seconds, len(raw) / hop_seconds
    print(f"relay:      {relay_rate:>10,.0f} records/s (bare aiokafka consume-and-produce)")
    print(f"classifier: {hop_rate:>10,.0f} records/s (processor, decode, policy, encode, acks)")
    print(f"ratio:      {hop_rate / relay_rate:>10.2f}")


if __name__ == "__main__":
    asyncio.run(main())
