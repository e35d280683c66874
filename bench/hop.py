"""The classifier hop against its peers, the pipeline and a year's replay, in one run.

Every stage runs as its own process on the same broker and the same generated incidents, and
does the same work per record where it is a peer of the classifier: decode (project codec),
policy (``classify_incident``), encode every output (project codec), produce it with acks,
and write the key's state (version and output refs, as the classifier's table) per record.

Stages (``--stages``, comma-separated, in this order):

- ``relay``:      bare aiokafka consume-and-produce of the bytes (acks=all): the ceiling;
- ``aiokafka``:   a plain aiokafka batch loop doing the work, state to a changelog topic:
                  the practical limit of a Python hop (no tracing, metrics, dead letters);
- ``quix``:       Quix Streams (bench-only extra ``bench``) doing the work, state in its
                  RocksDB store with its changelog topic (at-least-once, a commit every
                  1,000 records);
- ``classifier``: the project's classifier service (``python -m services.classifier``);
- ``classifier2``: two classifier processes in one group on the same partitions;
- ``pipeline``:   ingest and classifier as two processes, ``bvh.incidents`` to
                  ``dagmonitor.entries``;
- ``replay``:     the pipeline over ``--replay`` incidents (a year of a large city), then the
                  distributor's intake of the entries (``python -m services.distributor`` on
                  a database schema of its own).

Throughput: all records are on the input topic before the stage starts; the rate is taken
between the stage's first and last commit as seen by the broker (committed offsets of its
group, polled every 20 ms), so process start-up is excluded and outputs are acknowledged.
RSS: the peak resident set (``VmHWM``) of each process at the end.

    .venv/bin/python -m bench.hop --count 20000
    .venv/bin/python -m bench.hop --stages replay --replay 200000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from bench.support import drop_schema
from dagmonitor import kafka_clients, topics
from dagmonitor.codec import INCIDENT_EVENT, default_codec
from dagmonitor.covenant import development_term
from dagmonitor.jsonio import record_from_json
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.topic_admin import apply_topics
from dagmonitor.topics import TopicSpec
from dagmonitor_cli.generate import Generator
from dagmonitor_cli.platform.process import free_port
from deploy.k8s import access

TEAM = "WK034405,WK034404"
# Every service requires the covenant's term (ADR 0018): a development term unless set.
_TERM = development_term(date.today())
os.environ.setdefault("DAGMONITOR_COVENANT_START_DATE", _TERM.start.isoformat())
os.environ.setdefault("DAGMONITOR_COVENANT_END_DATE", _TERM.end.isoformat())
OUT = TopicSpec("bench.out", "k", INCIDENT_EVENT, 6, topics.get("bvh.incidents").cleanup, 1)
STATE = TopicSpec("bench.state", "k", INCIDENT_EVENT, 6, topics.get("bvh.incidents").cleanup, 1)
TOGETHER = " (together)"
ALL_STAGES = ("relay", "aiokafka", "quix", "classifier", "classifier2", "pipeline", "replay")


# -- data ------------------------------------------------------------------------------------


def incidents(count: int, first: int = 1) -> list[tuple[bytes, bytes]]:
    """(key, value) of ``count`` incidents (with persons and vehicles) reported yesterday,
    valid for ingest; 2,000 generated incidents repeated under new registration numbers."""
    codec = default_codec()
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    base = list(Generator(seed=21, day=day).incidents(min(count, 2000)))
    pairs = []
    for sequence in range(count):
        number = f"PL0900-{day.year}{sequence + first:06d}"
        line = dict(base[sequence % len(base)], registration_number=number, version=1)
        line["event_id"] = f"EVT-{number}"
        record = record_from_json(INCIDENT_EVENT, line)
        pairs.append((number.encode(), codec.encode(INCIDENT_EVENT, record)))
    return pairs


async def fill(settings: DagmonitorSettings, topic: str, pairs: list[tuple[bytes, bytes]]) -> None:
    producer = kafka_clients.producer(settings, acks="all", linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        physical = settings.topic(topic)
        for start in range(0, len(pairs), 10_000):
            futures = [
                await producer.send(physical, v, key=k) for k, v in pairs[start : start + 10_000]
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


# -- measuring from outside ------------------------------------------------------------------


@dataclass
class Progress:
    first_commit_at: float
    first_committed: int
    done_at: float
    total: int
    cpu_s: float
    """CPU seconds the stage's processes spent between the first and the last commit."""
    broker_s: float = 0.0
    """... the broker spent meanwhile."""
    busy_s: float = 0.0
    """... the whole machine (every process, every core) spent meanwhile."""

    @property
    def broker_share(self) -> float:
        """The broker's share of the machine's busy CPU while the stage ran."""
        return self.broker_s / self.busy_s if self.busy_s else float("nan")

    @property
    def cpu_us(self) -> float:
        """CPU microseconds per record (all the stage's processes): robust to a busy box."""
        return self.cpu_s / max(1, self.total - self.first_committed) * 1e6

    @property
    def rate(self) -> float:
        return (self.total - self.first_committed) / max(1e-9, self.done_at - self.first_commit_at)


async def committed(admin: Any, group: str, topic: str) -> int:
    offsets = await admin.list_consumer_group_offsets(group)
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


async def watch(
    settings: DagmonitorSettings,
    group: str,
    topic: str,
    total: int,
    procs: Sequence[subprocess.Popen[bytes]],
    timeout: float = 600,
) -> Progress:
    """Poll ``group``'s committed offsets on ``topic`` until they cover ``total`` records."""
    admin = kafka_clients.admin(settings)
    await admin.start()
    first: tuple[float, int] | None = None
    cpu_at_first = broker_at_first = busy_at_first = 0.0
    broker = broker_pid()
    deadline = time.perf_counter() + timeout
    try:
        while time.perf_counter() < deadline:
            for proc in procs:
                if proc.poll() is not None:
                    tail = LOGS[proc.pid].read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"a stage process exited ({proc.args!r}):\n{tail}")
            count = await committed(admin, group, topic)
            now = time.perf_counter()
            if count and first is None:
                first, cpu_at_first = (now, count), cpu_seconds(procs)
                broker_at_first = pid_cpu_seconds(broker) if broker else 0.0
                busy_at_first = machine_busy_seconds()
            if count >= total and first is not None:
                return Progress(
                    first[0],
                    first[1],
                    now,
                    total,
                    cpu_seconds(procs) - cpu_at_first,
                    (pid_cpu_seconds(broker) - broker_at_first) if broker else 0.0,
                    machine_busy_seconds() - busy_at_first,
                )
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{group} did not commit {total} records of {topic} in time")
    finally:
        await admin.close()


def cpu_seconds(procs: Sequence[subprocess.Popen[bytes]]) -> float:
    """User and system CPU time of ``procs`` so far (``/proc/<pid>/stat``)."""
    return sum(pid_cpu_seconds(proc.pid) for proc in procs)


def pid_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def broker_pid() -> int | None:
    """The local stack's Kafka broker (its JVM logs under this checkout's ``.local``)."""
    marker = f"-Dkafka.logs.dir={(Path.cwd() / '.local').resolve()}/".encode()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes():
                return int(entry.name)
        except OSError:
            continue
    return None


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle so far (``/proc/stat``)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a stage's process; its stderr goes to a file, shown if it exits early."""
    with tempfile.NamedTemporaryFile(prefix="bench-stage-", suffix=".log", delete=False) as log:
        proc = subprocess.Popen(
            command,
            env={**os.environ, "DAGMONITOR_LOG_LEVEL": "WARNING", **env},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    LOGS[proc.pid] = Path(log.name)
    return proc


LOGS: dict[int, Path] = {}


def service(name: str, prefix: str, extra: dict[str, str] | None = None) -> tuple[Any, int]:
    port = free_port()
    env = {
        "DAGMONITOR_TOPIC_PREFIX": prefix,
        "DAGMONITOR_TEAM_DISTRICTS": TEAM,
        "DAGMONITOR_HTTP_PORT": str(port),
        **(extra or {}),
    }
    return start([sys.executable, "-m", f"services.{name}"], env), port


def stop_all(procs: Sequence[subprocess.Popen[bytes]]) -> dict[int, float]:
    rss = {proc.pid: peak_rss_mb(proc.pid) for proc in procs if proc.poll() is None}
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return rss


# -- the stages' processes -------------------------------------------------------------------


class Work:
    """The classifier's per-record work without its framework: decode, policy, encode."""

    def __init__(self) -> None:
        from services.classifier.annex import load_annex
        from services.classifier.config import ClassifierSettings

        settings = ClassifierSettings.load(team_districts=TEAM)
        self.codec = default_codec()
        self.policy = settings.policy()
        self.annex = load_annex()

    def __call__(
        self, value: bytes, timestamp_ms: int
    ) -> tuple[dict[str, Any], list[tuple[bytes, bytes]]]:
        """The key's new state and the encoded outputs (key, value) of one incident."""
        from services.classifier.policy import classify_incident

        record = self.codec.decode(value, expect=INCIDENT_EVENT).record
        now = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
        decision = classify_incident(record, self.policy, self.annex, now=now)
        outputs = [
            (o.key.encode(), self.codec.encode(topics.get(o.topic).schema, o.value))
            for o in decision.outputs
        ]
        refs = sorted((o.topic, o.key) for o in decision.outputs)
        return {"version": record["version"], "outputs": refs}, outputs


async def run_relay(settings: DagmonitorSettings, work: bool) -> None:
    """Consume ``ingest.incidents`` in batches; copy the bytes, or do the work."""
    consumer = kafka_clients.group_consumer(
        settings,
        settings.group("bench-aiokafka" if work else "bench-relay"),
        "bench",
        settings.topic("ingest.incidents"),
    )
    producer = kafka_clients.producer(
        settings, acks="all", enable_idempotence=True, linger_ms=2, max_batch_size=256 * 1024
    )
    out, state = settings.topic(OUT.name), settings.topic(STATE.name)
    handle = Work() if work else None
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=1000)
            futures = []
            for tp, messages in batches.items():
                for m in messages:
                    if handle is None:
                        futures.append(await producer.send(out, m.value, key=m.key))
                        continue
                    new_state, outputs = handle(m.value, m.timestamp)
                    for key, value in outputs:
                        futures.append(await producer.send(out, value, key=key))
                    futures.append(
                        await producer.send(
                            state, json.dumps(new_state).encode(), key=m.key, partition=tp.partition
                        )
                    )
            await asyncio.gather(*futures)
            if batches:
                await consumer.commit({tp: ms[-1].offset + 1 for tp, ms in batches.items()})
    finally:
        await consumer.stop()
        await producer.stop()


def quix_connection(settings: DagmonitorSettings) -> Any:
    """The broker as librdkafka (under Quix Streams) reaches it over SASL_SSL with the
    settings' CA. Quix names its changelog topics ``changelog__<group>--...``, outside the
    test principal's ``test-`` prefix, so on a secured local stack the peer connects as the
    local admin principal (it may create any topic)."""
    from quixstreams.kafka.configuration import ConnectionConfig

    if settings.kafka_security_protocol != "SASL_SSL":
        return settings.kafka_bootstrap
    options = as_admin(settings).kafka_client_options()
    return ConnectionConfig(
        bootstrap_servers=settings.kafka_bootstrap,
        security_protocol="sasl_ssl",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=options["sasl_plain_username"],
        sasl_password=options["sasl_plain_password"],
        ssl_ca_location=str(settings.kafka_ca_file) if settings.kafka_ca_file else None,
    )


def run_quix(settings: DagmonitorSettings, state_dir: str) -> None:
    """The same work as a Quix Streams application with a keyed state write per record."""
    from quixstreams import Application, State
    from quixstreams.models.serializers import SerializationContext, Serializer

    class Encoded(Serializer):
        """Outputs are (key, encoded value) pairs: the value is already Avro."""

        def __call__(self, value: tuple[bytes, bytes], ctx: SerializationContext) -> bytes:
            return value[1]

    handle = Work()
    app = Application(
        broker_address=quix_connection(settings),
        consumer_group=settings.group("bench-quix"),
        auto_offset_reset="earliest",
        commit_every=1000,
        commit_interval=1.0,
        state_dir=state_dir,
        loglevel="WARNING",
        auto_create_topics=True,
    )
    source = app.topic(
        settings.topic("ingest.incidents"), value_deserializer="bytes", key_deserializer="bytes"
    )
    out = app.topic(settings.topic(OUT.name), value_serializer=Encoded(), key_serializer="bytes")

    def classify(
        value: bytes, key: bytes, timestamp: int, _headers: Any, state: State
    ) -> list[tuple[bytes, bytes]]:
        new_state, outputs = handle(value, timestamp)
        state.set(key.decode(), new_state)
        return outputs

    sdf = app.dataframe(source)
    sdf = sdf.apply(classify, stateful=True, expand=True, metadata=True)
    sdf.to_topic(out, key=lambda output: output[0])
    app.run()


# -- the run ---------------------------------------------------------------------------------


def prefixed() -> DagmonitorSettings:
    return DagmonitorSettings.load(topic_prefix=f"test-bench-{uuid.uuid4().hex[:8]}.")


async def prepared(
    topic: str, pairs: list[tuple[bytes, bytes]]
) -> tuple[DagmonitorSettings, float]:
    """Fresh topics under a new prefix with ``pairs`` on ``topic``; seconds the fill took."""
    settings = prefixed()
    await apply_topics(settings)
    await apply_topics(settings, specs=[OUT, STATE])
    began = time.perf_counter()
    await fill(settings, topic, pairs)
    return settings, time.perf_counter() - began


def as_admin(settings: DagmonitorSettings) -> DagmonitorSettings:
    """The settings as the local admin principal (on a secured stack), who may also delete
    the Quix peer's changelog topics (``changelog__<group>--...``)."""
    if settings.kafka_security_protocol != "SASL_SSL":
        return settings
    return settings.model_copy(update={"kafka_sasl_username": access.ADMIN})


async def forget(used: list[str]) -> None:
    """Delete the topics of the stages run so far, before the next one: left behind, their
    compaction and deletion keep the broker busy during the next stage."""
    await delete_topics(as_admin(prefixed()), [*used, *(p.replace(".", "-") for p in used)])
    used.clear()


async def delete_topics(settings: DagmonitorSettings, markers: Sequence[str]) -> None:
    admin = kafka_clients.admin(settings)
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if any(m in n for m in markers)]
        for start_at in range(0, len(names), 100):
            await admin.delete_topics(names[start_at : start_at + 100])
    finally:
        await admin.close()


@dataclass
class Row:
    stage: str
    records: int
    rate: float
    cpu_us: float
    rss_mb: list[float]
    note: str = ""


async def stage(name: str, pairs: list[tuple[bytes, bytes]], used: list[str]) -> list[Row]:
    """Run one stage on its own fresh topics; its result rows."""
    count = len(pairs)
    source = "bvh.incidents" if name in ("pipeline", "replay") else "ingest.incidents"
    settings, fill_s = await prepared(source, pairs)
    used.append(settings.topic_prefix)
    prefix = settings.topic_prefix
    me = [sys.executable, "-m", "bench.hop", "--run-stage"]
    env = {"DAGMONITOR_TOPIC_PREFIX": prefix}
    state_dir = tempfile.mkdtemp(prefix="bench-quix-")
    ingest_topic = settings.topic("ingest.incidents")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if name in ("relay", "aiokafka", "quix"):
            procs = [start([*me, name, "--state-dir", state_dir], env)]
            progress = await watch(
                settings, settings.group(f"bench-{name}"), ingest_topic, count, procs
            )
            return [
                Row(name, count, progress.rate, progress.cpu_us, list(stop_all(procs).values()))
            ]
        if name in ("classifier", "classifier2"):
            procs = [
                service("classifier", prefix)[0] for _ in range(2 if name == "classifier2" else 1)
            ]
            group = settings.group("classifier")
            progress = await watch(settings, group, ingest_topic, count, procs)
            seconds = progress.done_at - progress.first_commit_at
            share = (
                f"broker {progress.broker_share:.0%} of the busy CPU; "
                f"machine busy {progress.busy_s / seconds:.2f} cores"
            )
            rss = list(stop_all(procs).values())
            return [Row(name, count, progress.rate, progress.cpu_us, rss, share)]
        # pipeline and replay: ingest and classifier as two processes
        ingest, _ = service("ingest", prefix)
        classifier, _ = service("classifier", prefix)
        procs = [ingest, classifier]
        began = time.perf_counter()
        ingest_progress = await watch(
            settings, settings.group("ingest"), settings.topic("bvh.incidents"), count, procs
        )
        progress = await watch(settings, settings.group("classifier"), ingest_topic, count, procs)
        wall = time.perf_counter() - began
        rate = (count - ingest_progress.first_committed) / (
            progress.done_at - ingest_progress.first_commit_at
        )
        peaks = stop_all(procs)
        rows = [
            Row(
                name,
                count,
                rate,
                ingest_progress.cpu_us + progress.cpu_us,
                [peaks[ingest.pid], peaks[classifier.pid]],
                f"wall {wall:.1f} s incl. start-up; fill {fill_s:.1f} s",
            )
        ]
        if name == "replay":
            rows.append(await distributor_intake(settings))
        return rows
    finally:
        stop_all(procs)


async def together(
    names: Sequence[str], pairs: list[tuple[bytes, bytes]], used: list[str]
) -> list[Row]:
    """The hops ``names`` (relay, aiokafka, quix, classifier) at the same time, each on its
    own topics and copy of the data: on a shared box every one meets the same contention."""
    count = len(pairs)
    prepared_: list[tuple[str, DagmonitorSettings]] = []
    for name in names:
        settings, _ = await prepared("ingest.incidents", pairs)
        used.append(settings.topic_prefix)
        prepared_.append((name, settings))
    me = [sys.executable, "-m", "bench.hop", "--run-stage"]
    running: list[tuple[str, DagmonitorSettings, str, subprocess.Popen[bytes]]] = []
    try:
        for name, settings in prepared_:
            if name == "classifier":
                proc, group = service("classifier", settings.topic_prefix)[0], "classifier"
            else:
                env = {"DAGMONITOR_TOPIC_PREFIX": settings.topic_prefix}
                state_dir = tempfile.mkdtemp(prefix="bench-quix-")
                proc = start([*me, name, "--state-dir", state_dir], env)
                group = f"bench-{name}"
            running.append((name, settings, group, proc))
        progress = await asyncio.gather(
            *(
                watch(
                    settings,
                    settings.group(group),
                    settings.topic("ingest.incidents"),
                    count,
                    [proc],
                )
                for _, settings, group, proc in running
            )
        )
        return [
            Row(f"{name}{TOGETHER}", count, p.rate, p.cpu_us, list(stop_all([proc]).values()))
            for (name, _, _, proc), p in zip(running, progress, strict=True)
        ]
    finally:
        stop_all([proc for *_, proc in running])


async def entries_count(settings: DagmonitorSettings) -> int:
    consumer = kafka_clients.consumer(settings)
    await consumer.start()
    try:
        topic = settings.topic("dagmonitor.entries")
        parts = [
            TopicPartition(topic, p) for p in range(topics.get("dagmonitor.entries").partitions)
        ]
        return sum((await consumer.end_offsets(parts)).values())
    finally:
        await consumer.stop()


async def distributor_intake(settings: DagmonitorSettings) -> Row:
    """The distributor's intake of the replay's entries (its own database schema)."""
    entries = await entries_count(settings)
    schema = "bench_" + settings.topic_prefix.strip(".").replace("-", "_")
    proc, _ = service(
        "distributor",
        settings.topic_prefix,
        {"DAGMONITOR_DB_SCHEMA": schema},
    )
    try:
        progress = await watch(
            settings,
            settings.group("distributor"),
            settings.topic("dagmonitor.entries"),
            entries,
            [proc],
        )
        rss = list(stop_all([proc]).values())
    finally:
        stop_all([proc])
        await drop_schema(settings, schema)
    return Row(
        "distributor intake", entries, progress.rate, progress.cpu_us, rss, "into PostgreSQL"
    )


async def main_run(args: argparse.Namespace) -> None:
    names = [s for s in args.stages.split(",") if s]
    unknown = set(names) - set(ALL_STAGES)
    if unknown:
        raise SystemExit(f"unknown stages: {', '.join(sorted(unknown))}")
    pairs = incidents(args.count)
    replay_pairs = incidents(args.replay, first=1) if "replay" in names else []
    rounds: list[list[Row]] = []
    used: list[str] = []
    try:
        for number in range(args.rounds):
            rows: list[Row] = []
            if args.together:
                hops = args.together.split(",")
                try:
                    rows += await together(hops, pairs, used)
                except RuntimeError as exc:  # a busy box: say why, and run them again
                    print(f"  together failed, once more: {exc}", file=sys.stderr)
                    rows += await together(hops, pairs, used)
                await forget(used)
            for name in names:
                data = replay_pairs if name == "replay" else pairs
                try:
                    rows += await stage(name, data, used)
                except RuntimeError as exc:  # a busy box: say why, and run the stage again
                    print(f"  {name} failed, once more: {exc}", file=sys.stderr)
                    rows += await stage(name, data, used)
                await forget(used)
                print(
                    f"  round {number + 1}: {rows[-1].stage}: {rows[-1].rate:,.0f}/s",
                    file=sys.stderr,
                )
            rounds.append(rows)
            report(rows, f"round {number + 1}")
    finally:
        await forget(used)
    if len(rounds) > 1:
        report(
            [
                Row(
                    row.stage,
                    row.records,
                    statistics.median(r[i].rate for r in rounds),
                    statistics.median(r[i].cpu_us for r in rounds),
                    [max(r[i].rss_mb[j] for r in rounds) for j in range(len(row.rss_mb))],
                    "median of rounds (RSS: the largest)",
                )
                for i, row in enumerate(rounds[0])
            ],
            f"median of {len(rounds)} rounds",
        )
        for i, row in enumerate(rounds[0]):
            if row.stage.split(" ")[0] in ("relay", "quix"):
                continue
            peer = "quix" + (TOGETHER if row.stage.endswith(TOGETHER) else "")
            ratios = [r[i].rate / q.rate for r in rounds for q in r if q.stage == peer]
            if ratios:
                shown = ", ".join(f"{x:.2f}" for x in ratios)
                print(f"{row.stage} / quix per round: {shown}")


def report(rows: list[Row], title: str) -> None:
    relay = next((r.rate for r in rows if r.stage == "relay"), None)
    quix = next((r.rate for r in rows if r.stage == "quix"), None)
    print(f"-- {title}")
    print(
        f"{'stage':<20}{'records':>9}{'records/s':>11}{'/relay':>8}{'/quix':>7}"
        f"{'CPU us/rec':>12}  peak RSS MB"
    )
    quix_together = next((r.rate for r in rows if r.stage == "quix" + TOGETHER), None)
    for r in rows:
        ratio = f"{r.rate / relay:>8.2f}" if relay else f"{'':>8}"
        peer = quix_together if r.stage.endswith(TOGETHER) else quix
        vs_quix = f"{r.rate / peer:>7.2f}" if peer else f"{'':>7}"
        rss = ", ".join(f"{v:.0f}" for v in r.rss_mb)
        print(
            f"{r.stage:<20}{r.records:>9,}{r.rate:>11,.0f}{ratio}{vs_quix}{r.cpu_us:>12.0f}"
            f"  {rss}  {r.note}"
        )
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--replay", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=1, help="repeat all stages; medians")
    parser.add_argument(
        "--together",
        default="",
        help="hops run at the same time (e.g. aiokafka,quix,classifier), before --stages",
    )
    parser.add_argument("--stages", default="relay,aiokafka,quix,classifier,classifier2,pipeline")
    parser.add_argument("--run-stage", choices=("relay", "aiokafka", "quix"), default=None)
    parser.add_argument("--state-dir", default=None)
    args = parser.parse_args(argv)
    if args.run_stage is None:
        asyncio.run(main_run(args))
        return
    settings = DagmonitorSettings.load()
    if args.run_stage == "quix":
        run_quix(settings, args.state_dir or tempfile.mkdtemp())
    else:
        asyncio.run(run_relay(settings, work=args.run_stage == "aiokafka"))


if __name__ == "__main__":
    main()
