"""Every input record is accounted for across start-up, rebalances and a broker restart.

For ingest and for the classifier (each as real processes on the real broker): a producer
publishes continuously while

1. the service starts with a large changelog to restore (60,000 table entries written first),
2. a second instance joins the group (rebalance), then the first is killed with SIGKILL
   (rebalance after the session timeout),
3. the broker restarts (when the test runs its own broker).

Then every record on the input topic is exactly one of: passed on (its bytes, or its version,
on the output topic), dead-lettered (its partition and offset on ``pipeline.deadletter``), or
deduplicated (a version at least as new on the output topic). A record in none of these was
lost: the defect of issue 18, where a stretch of a partition was committed with no output.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from dagmonitor import kafka_clients
from dagmonitor.codec import DEAD_LETTER, INCIDENT_EVENT, default_codec
from dagmonitor.jsonio import record_from_json
from dagmonitor.settings import DagmonitorSettings
from dagmonitor_cli.generate import Generator
from dagmonitor_cli.platform import kafka, process
from dagmonitor_cli.platform.stack import LocalStack
from services.classifier.annex import load_annex
from services.classifier.policy import ENTRIES, PolicyConfig, classify_incident
from tests.processes import ServiceProcess

pytestmark = pytest.mark.integration

TEAM = "WK034405,WK034404,WK034402"
CHANGELOG_ENTRIES = 60_000
RATE = 100  # records per second: publishing goes on for the whole run (about 35 s)
ROUTES = {
    # service: (input, output, changelog table, the table's value for a prefilled key)
    "ingest": ("bvh.incidents", "ingest.incidents", "incident-versions", {"version": 1}),
    "classifier": (
        "ingest.incidents",
        "dagmonitor.entries",
        "incident-outputs",
        {"version": 1, "outputs": [], "e35_postcode": None},
    ),
}


@dataclass(frozen=True)
class Raw:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def _inputs(service: str, seed: int) -> list[tuple[bytes | None, bytes | None]]:
    """Valid records in several versions (some out of order, some repeated), bad bytes,
    tombstones. For the classifier only incidents that yield a Dagmonitor entry outside E35."""
    codec = default_codec()
    rng = random.Random(seed)
    day = datetime.now(UTC).date() - timedelta(days=1)
    policy = PolicyConfig("GM0344", frozenset(TEAM.split(",")), b"dagmonitor-development-id-key")
    annex = load_annex()
    valid: list[dict[str, Any]] = []
    for line in Generator(seed=seed, day=day).incidents(6000):
        record = record_from_json(INCIDENT_EVENT, line)
        if service == "classifier":
            decision = classify_incident(record, policy, annex, now=record["reported_at"])
            if decision.e35_postcode or not any(o.topic == ENTRIES for o in decision.outputs):
                continue
        valid.append(record)
        if len(valid) == 2500:
            break
    items: list[tuple[bytes | None, bytes | None]] = []
    for record in valid:
        key = record["registration_number"].encode()
        first = codec.encode(INCIDENT_EVENT, record)
        second = codec.encode(INCIDENT_EVENT, {**record, "version": record["version"] + 1})
        roll = rng.random()
        if roll < 0.6:
            items.append((key, first))
        elif roll < 0.75:
            items += [(key, first), (key, second)]
        elif roll < 0.85:
            items += [(key, second), (key, first)]  # the older version comes late
        elif roll < 0.95:
            items += [(key, first), (key, first)]  # the same version twice
        else:
            items += [(key, first), (key, None)]  # withdrawn
    bad = [b"", b"\xc3\x01" + b"\x00" * 8 + b"junk", b'{"json": true}', b"\xc3\x01"]
    for i in range(60):
        items.insert(
            rng.randrange(len(items)), (f"PL0900-2026{9_000_000 + i}".encode(), bad[i % 4])
        )
    return items


async def _prefill_changelog(settings: DagmonitorSettings, service: str) -> None:
    """A large table to restore: entries for keys no input uses, on every partition."""
    _, _, table, value = ROUTES[service]
    topic = f"{settings.group(service)}-{table}-changelog"
    producer = kafka_clients.producer(settings, acks="all", linger_ms=20)
    await producer.start()
    try:
        from dagmonitor import topics

        partitions = topics.get(ROUTES[service][0]).partitions
        body = json.dumps(value).encode()
        futures = [
            await producer.send(
                topic, body, key=f"PL9999-{i:010d}".encode(), partition=i % partitions
            )
            for i in range(CHANGELOG_ENTRIES)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class Publisher:
    """Publishes ``items`` at ``RATE`` per second; keeps going through a broker restart."""

    def __init__(self, settings: DagmonitorSettings, topic: str, items: list[Any]) -> None:
        self.settings = settings
        self.topic = settings.topic(topic)
        self.items = items
        self.sent = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> Publisher:
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        producer = kafka_clients.producer(
            self.settings,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=60_000,
        )
        await producer.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            for key, value in self.items:
                while True:
                    try:
                        await producer.send_and_wait(self.topic, value, key=key)
                        break
                    except Exception:  # the broker restarting: send it again
                        await asyncio.sleep(0.5)
                self.sent += 1
                ahead = self.sent / RATE - (loop.time() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        finally:
            await producer.stop()

    async def wait(self) -> None:
        assert self.task is not None
        await self.task


async def _partitions(consumer: AIOKafkaConsumer, physical: str) -> list[TopicPartition]:
    await consumer._client.force_metadata_update()
    partitions = consumer._client.cluster.partitions_for_topic(physical)
    assert partitions, f"no topic {physical}"
    return [TopicPartition(physical, p) for p in sorted(partitions)]


async def _read_raw(settings: DagmonitorSettings, topic: str) -> list[Raw]:
    """Every record of a topic up to its current end, with partition and offset."""
    consumer = kafka_clients.consumer(settings, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = await _partitions(consumer, settings.topic(topic))
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: list[Raw] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                found += [Raw(r.partition, r.offset, r.key, r.value) for r in records]
        return found
    finally:
        await consumer.stop()


async def _caught_up(settings: DagmonitorSettings, service: str, topic: str) -> bool:
    """The service's group has committed the end of every partition of ``topic``."""
    consumer = kafka_clients.consumer(
        settings,
        group_id=settings.group(service),
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tps = await _partitions(consumer, settings.topic(topic))
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            if (await consumer.committed(tp) or 0) < ends[tp]:
                return False
        return True
    finally:
        await consumer.stop()


def _restart_broker() -> bool:
    """Restart the local broker if this test run manages it; False when it is reused."""
    local = LocalStack()
    state = local._load_state()
    if not state["kafka"].managed:
        return False
    pid = process.read_pid(local.kafka.pid_file)
    assert pid is not None
    process.stop_pid(pid, timeout=60)
    port = int(state["kafka"].address.rsplit(":", 1)[1])
    controller = local.settings.local_kafka_controller_port
    kafka.start(local.kafka, port=port, controller_port=controller, timeout=120)
    return True


def _version(value: bytes) -> int:
    return int(default_codec().decode(value).record["version"])


def account(
    service: str, inputs: list[Raw], outputs: list[Raw], letters: list[Raw], source: str
) -> dict[str, int]:
    """Each input's outcome: ``output``, ``deadletter``, ``deduplicated``; raises on a loss."""
    codec = default_codec()
    dead: set[tuple[int, int]] = set()
    for letter in letters:
        if letter.value is None:
            continue
        record = codec.decode(letter.value, expect=DEAD_LETTER).record
        if record["source_topic"] == source:
            dead.add((record["source_partition"], record["source_offset"]))
    seen_bytes: dict[bytes, set[bytes | None]] = defaultdict(set)
    versions: dict[bytes, set[int]] = defaultdict(set)
    for out in outputs:
        if out.key is None:
            continue
        seen_bytes[out.key].add(out.value)
        if out.value is not None:
            versions[out.key].add(_version(out.value))
    counts: dict[str, int] = defaultdict(int)
    lost: list[tuple[int, int]] = []
    for record in inputs:
        where = (record.partition, record.offset)
        if where in dead:
            counts["deadletter"] += 1
            continue
        if record.key is None:
            lost.append(where)
            continue
        if record.value is None:
            outcome = "output" if None in seen_bytes[record.key] else None
        else:
            version = _version(record.value)
            if (service == "ingest" and record.value in seen_bytes[record.key]) or (
                service == "classifier" and version in versions[record.key]
            ):
                outcome = "output"
            elif any(v >= version for v in versions[record.key]):
                outcome = "deduplicated"
            else:
                outcome = None
        if outcome is None:
            lost.append(where)
        else:
            counts[outcome] += 1
    assert not lost, f"{len(lost)} of {len(inputs)} records lost, first at {sorted(lost)[:5]}"
    return dict(counts)


class Route:
    """One service's run: its own topic prefix, publisher, two instances and the accounting."""

    def __init__(self, service: str, settings: DagmonitorSettings, tmp_path: Path) -> None:
        self.service = service
        self.settings = settings
        self.source, self.target, _, _ = ROUTES[service]
        self.items = _inputs(service, seed=int(os.environ.get("DAGMONITOR_TEST_SEED", "18")))
        env = {
            "DAGMONITOR_TOPIC_PREFIX": settings.topic_prefix,
            "DAGMONITOR_TEAM_DISTRICTS": TEAM,
            "DAGMONITOR_MUNICIPALITY_CODE": "GM0344",
            "DAGMONITOR_LOG_LEVEL": os.environ.get("DAGMONITOR_TEST_SERVICE_LOG_LEVEL", "WARNING"),
        }
        self.first = ServiceProcess(service, env, tmp_path)
        self.second = ServiceProcess(service, env, tmp_path)
        self.second.log_file = tmp_path / f"{service}-2.log"
        self.publisher = Publisher(settings, self.source, self.items)

    async def disturb(self) -> None:
        """Start while records arrive and a changelog restores, join a second, kill the first."""
        await _prefill_changelog(self.settings, self.service)
        self.publisher.start()
        await asyncio.sleep(1.0)  # records are arriving while the first instance restores
        await asyncio.to_thread(self.first.start, 120)
        await asyncio.sleep(4)
        await asyncio.to_thread(self.second.start, 120)  # rebalance: the group splits
        await asyncio.sleep(4)
        self.first.kill()  # rebalance again, after the session timeout

    async def finish(self) -> dict[str, int]:
        """Wait until the survivor has committed everything, then account for every input."""
        await self.publisher.wait()
        for _ in range(240):
            if await _caught_up(self.settings, self.service, self.source):
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"{self.service} did not catch up: {self.second.tail()}")
        inputs = await _read_raw(self.settings, self.source)
        outputs = await _read_raw(self.settings, self.target)
        letters = await _read_raw(self.settings, "pipeline.deadletter")
        assert len(inputs) >= len(self.items)
        counts = account(self.service, inputs, outputs, letters, self.source)
        print(f"{self.service}: {len(inputs)} inputs accounted for: {counts}")
        return counts

    def stop(self) -> None:
        task = self.publisher.task
        if task is not None and not task.done():
            task.cancel()
        self.second.stop()
        self.first.stop()

    def assert_no_traceback(self) -> None:
        for proc in (self.first, self.second):
            log = proc.log_file.read_text(errors="replace") if proc.log_file.is_file() else ""
            assert "Traceback" not in log, proc.tail()


async def test_every_record_accounted_for_across_restore_rebalance_and_broker_restart(
    fresh_settings: DagmonitorSettings, other_fresh_settings: DagmonitorSettings, tmp_path: Path
) -> None:
    """Ingest and the classifier side by side, each on a prefix of its own, through one broker
    restart (one restart for both keeps the suite's time down; each route is disturbed alone
    by its own restore, rebalance and kill)."""
    routes = [
        Route("ingest", fresh_settings, tmp_path),
        Route("classifier", other_fresh_settings, tmp_path),
    ]
    try:
        await asyncio.gather(*(route.disturb() for route in routes))
        await asyncio.sleep(12)
        restarted = await asyncio.to_thread(_restart_broker)
        print(f"broker restarted: {restarted}")
        results = await asyncio.gather(*(route.finish() for route in routes))
    finally:
        for route in routes:
            route.stop()
    for route, counts in zip(routes, results, strict=True):
        assert counts.get("deadletter", 0) >= 60, route.service
        assert counts.get("deduplicated", 0) > 0, route.service
        route.assert_no_traceback()
