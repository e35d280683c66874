"""Throughput and latency of the pipeline's hops, side by side on one broker, in one run.

Three stages, each measured the same two ways on the same generated incidents:

- relay:      a bare aiokafka consume-and-produce relay copying bytes between two topics
              (the practical limit of one Python hop; the baseline);
- classifier: the classifier hop (stream processor: decode, policy, encode, acks) from
              ingest.incidents to dagmonitor.entries;
- pipeline:   ingest and classifier as separate processes, bvh.incidents to dagmonitor.entries;
- mail:       the distributor's daily Dagmonitor for the same number of entries (render, store,
              send to three recipients over SMTP), from ``bench.report_mail``.

Throughput: N records already on the input topic, time until the stage has handled them all.
Latency: records offered at a fixed rate; for each output, arrival time minus send time;
p50 and p99. Ratios are against the relay measured in the same run.

    .venv/bin/python -m bench.pipeline --count 5000 --rate 200 --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bench.classifier import bench_classifier, bench_relay, running_classifier
from dagmonitor import kafka_clients
from dagmonitor.codec import INCIDENT_EVENT, default_codec
from dagmonitor.jsonio import record_from_json
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.topic_admin import apply_topics
from dagmonitor.topics import TopicSpec, get
from dagmonitor_cli.generate import Generator
from dagmonitor_cli.platform.process import free_port
from dagmonitor_cli.platform.services import ready
from services.classifier.config import ClassifierSettings

TEAM = "WK034405,WK034404"


@dataclass
class Result:
    stage: str
    records_per_s: float
    p50_ms: float
    p99_ms: float


def incidents(count: int, day_offset: int = 1, first: int = 1) -> list[tuple[bytes, bytes]]:
    """(key, value) of ``count`` shared-looking incidents reported recently (valid for ingest)."""
    codec = default_codec()
    day = (datetime.now(UTC) - timedelta(days=day_offset)).date()
    pairs: list[tuple[bytes, bytes]] = []
    for sequence, line in enumerate(Generator(seed=21, day=day).incidents(count * 2)):
        if len(pairs) == count:
            break
        line = dict(line, registration_number=f"PL0900-{day.year}{sequence + first:06d}", version=1)
        line["event_id"] = f"EVT-{line['registration_number']}"
        record = record_from_json(INCIDENT_EVENT, line)
        pairs.append((line["registration_number"].encode(), codec.encode(INCIDENT_EVENT, record)))
    return pairs


async def fill(settings: DagmonitorSettings, topic: str, pairs: list[tuple[bytes, bytes]]) -> None:
    producer = kafka_clients.producer(settings, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(settings.topic(topic), v, key=k) for k, v in pairs]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def latency(
    settings: DagmonitorSettings,
    source: str,
    target: str,
    pairs: list[tuple[bytes, bytes]],
    rate: float,
    seconds: float,
) -> list[float]:
    """Offer records at ``rate``/s to ``source``; latencies (s) of their outputs on ``target``."""
    sent: dict[bytes, float] = {}
    latencies: list[float] = []
    consumer = kafka_clients.consumer(
        settings,
        settings.topic(target),
        auto_offset_reset="latest",
        group_id=None,
    )
    await consumer.start()
    await consumer.seek_to_end()
    producer = kafka_clients.producer(settings, acks="all", linger_ms=0)
    await producer.start()
    total = min(len(pairs), int(rate * seconds))

    async def offer() -> None:
        start = time.perf_counter()
        for index, (key, value) in enumerate(pairs[:total]):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[key] = time.perf_counter()
            await producer.send(settings.topic(source), value, key=key)
        await producer.flush()

    task = asyncio.create_task(offer())
    deadline = time.perf_counter() + seconds + 30
    try:
        while time.perf_counter() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.perf_counter()
            for messages in batch.values():
                for message in messages:
                    key = message.key.split(b":")[0] if message.key else b""
                    if key in sent:
                        latencies.append(now - sent.pop(key))
            if task.done() and not sent:
                break
            if task.done() and time.perf_counter() > deadline - 25:
                break  # the rest were not shared by the policy: they have no output
    finally:
        task.cancel()
        await producer.stop()
        await consumer.stop()
    return latencies


def percentiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return float("nan"), float("nan")
    cuts = statistics.quantiles(values, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


async def with_classifier(
    settings: ClassifierSettings, work: Callable[[], Awaitable[object]]
) -> object:
    async with running_classifier(settings):
        return await work()


def start_services(prefix: str, names: list[str]) -> list[tuple[subprocess.Popen[bytes], int]]:
    env = {
        **os.environ,
        "DAGMONITOR_TOPIC_PREFIX": prefix,
        "DAGMONITOR_TEAM_DISTRICTS": TEAM,
        "DAGMONITOR_LOG_LEVEL": "WARNING",
    }
    started = []
    for name in names:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            env={**env, "DAGMONITOR_HTTP_PORT": str(port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append((proc, port))
    for proc, port in started:
        while not ready(port):
            if proc.poll() is not None:
                raise RuntimeError("a service exited")
            time.sleep(0.2)
    return started


async def entries_done(settings: DagmonitorSettings, want: int) -> float:
    """Seconds until ``want`` records are on dagmonitor.entries."""
    from aiokafka import TopicPartition

    consumer = kafka_clients.consumer(settings)
    await consumer.start()
    topic = settings.topic("dagmonitor.entries")
    partitions = [TopicPartition(topic, p) for p in range(get("dagmonitor.entries").partitions)]
    started = time.perf_counter()
    try:
        while sum((await consumer.end_offsets(partitions)).values()) < want:
            await asyncio.sleep(0.05)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    results: list[Result] = []

    def prefixed() -> ClassifierSettings:
        return ClassifierSettings.load(
            topic_prefix=f"test-bench-{uuid.uuid4().hex[:8]}.", team_districts=TEAM
        )

    relay_spec = TopicSpec("bench.relay", "k", INCIDENT_EVENT, 6, get("bvh.incidents").cleanup, 1)
    burst = incidents(args.count)
    # Other registration numbers than the burst's: ingest would rightly drop them as repeats.
    steady = incidents(int(args.rate * args.seconds), day_offset=2, first=500_001)

    # relay and classifier: throughput on a full topic, then latency at the offered rate.
    settings = prefixed()
    await apply_topics(settings)
    await apply_topics(settings, specs=[relay_spec])
    await fill(settings, "ingest.incidents", burst)
    relay_s = await bench_relay(settings, [v for _, v in burst])
    classifier_s = await bench_classifier(settings, len(burst))

    settings = prefixed()
    await apply_topics(settings)
    await apply_topics(settings, specs=[relay_spec])
    relay_task = asyncio.create_task(bench_relay(settings, [b""] * 10**9))
    await asyncio.sleep(2)
    relay_lat = await latency(
        settings, "ingest.incidents", "bench.relay", steady, args.rate, args.seconds
    )
    relay_task.cancel()
    results.append(Result("relay", len(burst) / relay_s, *percentiles(relay_lat)))

    settings = prefixed()
    await apply_topics(settings)
    classifier_lat = await with_classifier(
        settings,
        lambda: latency(
            settings, "ingest.incidents", "dagmonitor.entries", steady, args.rate, args.seconds
        ),
    )
    results.append(Result("classifier", len(burst) / classifier_s, *percentiles(classifier_lat)))  # type: ignore[arg-type]

    # The pipeline: ingest and classifier as processes, bvh.incidents -> dagmonitor.entries.
    settings = prefixed()
    await apply_topics(settings)
    await fill(settings, "bvh.incidents", burst)
    codec = default_codec()
    from services.classifier.annex import load_annex
    from services.classifier.policy import classify_incident

    policy = settings.policy()
    want = sum(
        classify_incident(
            codec.decode(v).record, policy, load_annex(), now=datetime.now(UTC)
        ).shared
        for _, v in burst
    )
    began = time.perf_counter()
    procs = start_services(settings.topic_prefix, ["ingest", "classifier"])
    try:
        startup = time.perf_counter() - began
        pipeline_s = await entries_done(settings, want)
        pipeline_lat = await latency(
            settings, "bvh.incidents", "dagmonitor.entries", steady, args.rate, args.seconds
        )
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(30)
    results.append(Result("pipeline", len(burst) / pipeline_s, *percentiles(pipeline_lat)))

    relay_rate = results[0].records_per_s
    print(
        f"offered rate for latency: {args.rate:.0f} records/s for {args.seconds:.0f} s; "
        f"throughput over {len(burst)} records (pipeline start-up {startup:.1f} s excluded)"
    )
    print(f"{'stage':<12}{'records/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'ratio':>8}")
    for r in results:
        print(
            f"{r.stage:<12}{r.records_per_s:>12,.0f}{r.p50_ms:>10.1f}{r.p99_ms:>10.1f}"
            f"{r.records_per_s / relay_rate:>8.2f}"
        )

    mail = subprocess.run(
        [sys.executable, "-m", "bench.report_mail", "--entries", str(len(burst))],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DAGMONITOR_LOG_LEVEL": "WARNING"},
    )
    print("mail (distributor daily Dagmonitor, same number of entries):")
    print("\n".join("  " + line for line in mail.stdout.strip().splitlines()))


if __name__ == "__main__":
    asyncio.run(main())
