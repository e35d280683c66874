"""Nothing provided outlives its year: a proof that could fail (issue 14, point 3).

Records carry a distinctive synthetic marker in every personal field (names, addresses, phones,
the photo reference, the photo's bytes, plates, the incident's street, the modus operandi, the
officers' reasons). They are approved and mailed; then the clock moves 366 days, the retention
sweep runs, the broker is made to do at once what compaction and time retention do within the
topic table's bounds, and every topic of the test's prefix (internal ones included; raw keys,
values and headers), the broker's own files of those partitions (segments awaiting deletion
included), every column of every table of the services' schemas and the services' logs are
scanned for every marker. Before the sweep the same scan must find the markers where they
belong, so a scan that sees nothing cannot pass.

Forcing the broker touches only this test's prefix: a delete-policy topic gets
``retention.ms=1`` (checked first: its own retention plus a segment's day ends within 365 days,
so after 366 days nothing of it is left anyway); a compacted one a 100 ms segment and compaction
lag, a dirty ratio of 0 and a segment-roll marker per partition (ADR 0007: the cleaner never
touches an active segment); compact-only topics are left alone and must hold no marker.
"""

from __future__ import annotations

import asyncio
import base64
import email
import io
import random
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest
from aiokafka import TopicPartition
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from PIL import Image

from dagmonitor import kafka_clients
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.topics import DAY_MS
from services.retention.policy import ROLL_KEY_PREFIX
from tests.e2e_pipeline import Pipeline

pytestmark = pytest.mark.integration

AMS = ZoneInfo("Europe/Amsterdam")
TEAM_DISTRICT = ("WK034405", "Binnenstad")  # one of tests.e2e_pipeline.TEAM
INGEST_TOKEN = secrets.token_hex(16)
YEAR_MS = 365 * DAY_MS


# -- markers -------------------------------------------------------------------------------


class Markers:
    """One synthetic marker per personal field: ``Zqmk`` + the field + random hex."""

    def __init__(self) -> None:
        self.run = secrets.token_hex(3)
        self.text: dict[str, str] = {}
        self.binary: dict[str, bytes] = {}

    def __call__(self, name: str) -> str:
        value = f"Zqmk{name.replace('.', '')}{self.run}{secrets.token_hex(3)}"
        self.text[name] = value
        return value

    def plate(self, name: str) -> str:
        """A plate as the classifier writes it (upper case, no spaces): it passes validation."""
        value = f"ZQMK{secrets.token_hex(4).upper()}"
        self.text[name] = value
        return value

    def needles(self) -> list[tuple[str, bytes, bool]]:
        """(name, bytes to look for, case-insensitive?) for every marker."""
        return [(n, v.lower().encode(), True) for n, v in self.text.items()] + [
            (n, v, False) for n, v in self.binary.items()
        ]


def _person(markers: Markers, who: str, role: str, photo_id: str | None = None) -> dict[str, Any]:
    return {
        "role": role,
        "first_names": markers(f"{who}.first_names"),
        "surname_prefix": markers(f"{who}.surname_prefix"),
        "surname": markers(f"{who}.surname"),
        "birth_date": "1984-03-07",
        "address": {
            "street": markers(f"{who}.address.street"),
            "house_number": 17,
            "house_number_suffix": markers(f"{who}.address.suffix"),
            "postcode": "3512KL",
            "city": markers(f"{who}.address.city"),
        },
        "phone": markers(f"{who}.phone"),
        "photo_ref": f"bvh://photos/{photo_id}" if photo_id else None,
    }


def _location(markers: Markers, who: str) -> dict[str, Any]:
    return {
        "street": markers(f"{who}.location.street"),
        "house_number": 42,
        "house_number_suffix": markers(f"{who}.location.suffix"),
        "postcode": "3511 AB",
        "city": "Utrecht",
        "municipality_code": "GM0344",
        "district_code": TEAM_DISTRICT[0],
        "district_name": TEAM_DISTRICT[1],
        "neighbourhood_code": "BU03440501",
        "neighbourhood_name": "Wijk C",
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _incident(
    markers: Markers, sequence: int, code: str, at: datetime, **fields: Any
) -> dict[str, Any]:
    registration = f"PL0900-{at.year}{secrets.randbelow(10**6):06d}"
    return {
        "event_id": f"EVT-{registration}-{sequence}",
        "registration_number": registration,
        "version": 1,
        "mk_code": code,
        "mk_description": None,
        "reported_at": _iso(at),
        "committed_from": _iso(at - timedelta(hours=3)),
        "committed_until": _iso(at - timedelta(minutes=20)),
        "location": _location(markers, f"inc{sequence}"),
        "persons": [],
        "vehicles": [],
        "modus_operandi": None,
        **fields,
    }


def records(markers: Markers, day: date, photos: dict[str, str]) -> list[dict[str, Any]]:
    """Police records for ``day``: a burglary (victim, suspect with photo, modus operandi), a
    stolen car (plate), a shoplifting with a suspect the OM rejects, and two person notices
    (an area ban with a photo, a repeat offender); reporters and witnesses too, who never
    leave but pass the input topics."""
    at = datetime.combine(day, clock_time(10), AMS)
    burglary = _incident(
        markers,
        1,
        "A20",
        at,
        persons=[
            _person(markers, "reporter1", "REPORTER"),
            _person(markers, "victim1", "VICTIM"),
            _person(markers, "suspect1", "SUSPECT", photos["suspect1"]),
        ],
        modus_operandi=markers("inc1.modus_operandi"),
    )
    car = _incident(
        markers,
        2,
        "A70",
        at + timedelta(hours=1),
        persons=[
            _person(markers, "reporter2", "REPORTER"),
            _person(markers, "witness2", "WITNESS"),
        ],
        vehicles=[{"plate": markers.plate("inc2.plate"), "kind": "PASSENGER_CAR", "stolen": True}],
    )
    shoplifting = _incident(
        markers,
        3,
        "A50",
        at + timedelta(hours=2),
        persons=[_person(markers, "suspect3", "SUSPECT")],
    )
    start = datetime.combine(day, clock_time(8), AMS)
    notices = [
        {
            "notice_id": f"NTC-{day.year}-{secrets.randbelow(10**6):06d}",
            "version": 1,
            "kind": kind,
            "person": _person(markers, who, "INVOLVED", photos.get(who)),
            "district_codes": [TEAM_DISTRICT[0]],
            "valid_from": _iso(start),
            "valid_until": _iso(start + timedelta(days=90)),
            "mk_codes": ["A50", "A72"],
        }
        for who, kind in (("areaban", "AREA_BAN"), ("repeat", "REPEAT_OFFENDER"))
    ]
    return [burglary, car, shoplifting, *notices]


def photo_png(markers: Markers, who: str) -> bytes:
    """A PNG of random pixels with a marker in a text chunk (which ingest strips)."""
    from PIL.PngImagePlugin import PngInfo

    rnd = random.Random(secrets.randbits(64))
    image = Image.frombytes("RGB", (48, 48), bytes(rnd.randrange(256) for _ in range(48 * 48 * 3)))
    info = PngInfo()
    info.add_text("Comment", markers(f"{who}.photo.text_chunk"))
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


# -- the scan ------------------------------------------------------------------------------


@dataclass
class Scan:
    hits: set[tuple[str, str, str, str]] = field(default_factory=set)
    """(store, topic or schema.table, part or column, marker name)."""
    topics: int = 0
    partitions: int = 0
    records: int = 0
    kafka_bytes: int = 0
    schemas: int = 0
    tables: int = 0
    columns: int = 0
    rows: int = 0
    db_bytes: int = 0
    disk_dirs: int = 0
    disk_files: int = 0
    disk_bytes: int = 0
    logs: int = 0

    def summary(self) -> str:
        return (
            f"kafka: {self.topics} topics, {self.partitions} partitions, {self.records} records, "
            f"{self.kafka_bytes} bytes; broker disk: {self.disk_dirs} partition directories, "
            f"{self.disk_files} files, {self.disk_bytes} bytes; postgres: {self.schemas} "
            f"schemas, {self.tables} tables, {self.columns} columns, {self.rows} rows, "
            f"{self.db_bytes} bytes; service logs: {self.logs}; hits: {len(self.hits)}"
        )

    def places(self) -> set[tuple[str, str]]:
        return {(store, where) for store, where, _part, _name in self.hits}

    def found(self) -> set[str]:
        return {name for *_rest, name in self.hits}


def _search(
    blob: bytes, needles: list[tuple[str, bytes, bool]], place: tuple[str, str, str], scan: Scan
) -> None:
    lowered = blob.lower()
    for name, needle, folded in needles:
        if needle in (lowered if folded else blob):
            scan.hits.add((*place, name))


def _mime_text(blob: bytes) -> bytes:
    """A stored mail's decoded parts (a body in base64 or quoted-printable hides markers)."""
    if b"\nContent-Type:" not in blob and not blob.startswith(b"Content-Type:"):
        return b""
    parts = []
    for part in email.message_from_bytes(blob, policy=default_policy).walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            parts.append(payload)
    return b"\n".join(parts)


async def prefixed_topics(settings: DagmonitorSettings) -> dict[str, int]:
    """Every topic of the settings' prefix on the broker, with its partition count."""
    admin = kafka_clients.admin(settings)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {d["topic"]: len(d["partitions"]) for d in sorted(described, key=lambda d: d["topic"])}


async def scan_kafka(settings: DagmonitorSettings, needles: list[tuple[str, bytes, bool]]) -> Scan:
    """Every record of every topic of the prefix, raw: key, value and header values."""
    scan = Scan()
    consumer = kafka_clients.consumer(
        settings, enable_auto_commit=False, group_id=None, max_partition_fetch_bytes=8 << 20
    )
    await consumer.start()
    try:
        for topic, count in (await prefixed_topics(settings)).items():
            partitions = [TopicPartition(topic, p) for p in range(count)]
            scan.topics += 1
            scan.partitions += len(partitions)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            waiting = {tp for tp in partitions if ends[tp] > 0}
            deadline = time.monotonic() + 30
            while waiting and time.monotonic() < deadline:
                batch = await consumer.getmany(*waiting, timeout_ms=500)
                for tp, messages in batch.items():
                    for m in messages:
                        if m.offset >= ends[tp]:
                            continue
                        scan.records += 1
                        for part, blob in (
                            ("key", m.key),
                            ("value", m.value),
                            *((f"header {k}", v) for k, v in m.headers),
                        ):
                            if blob:
                                scan.kafka_bytes += len(blob)
                                _search(blob, needles, ("kafka", topic, part), scan)
                for tp in list(waiting):
                    if await consumer.position(tp) >= ends[tp]:
                        waiting.discard(tp)
            assert not waiting, f"{topic}: could not read to the end of {sorted(waiting)}"
    finally:
        await consumer.stop()
    return scan


async def scan_postgres(
    database_url: str, prefix: str, needles: list[tuple[str, bytes, bool]], scan: Scan
) -> None:
    """Every column of every table (and materialised view) of the schemas named ``prefix*``:
    text-like values as their text form, bytea raw and, when it is a mail, decoded."""
    conn = await asyncpg.connect(database_url)
    try:
        columns = await conn.fetch(
            """
            SELECT n.nspname AS schema, c.relname AS table, a.attname AS column,
                   t.typname = 'bytea' AS binary
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            JOIN pg_type t ON t.oid = a.atttypid
            WHERE starts_with(n.nspname, $1) AND c.relkind IN ('r', 'p', 'm')
            ORDER BY 1, 2, a.attnum
            """,
            prefix,
        )
        tables: dict[tuple[str, str], list[tuple[str, bool]]] = {}
        for row in columns:
            tables.setdefault((row["schema"], row["table"]), []).append(
                (row["column"], row["binary"])
            )
        scan.schemas += len({s for s, _ in tables})
        scan.tables += len(tables)
        scan.columns += len(columns)
        for (schema, table), cols in tables.items():
            select = ", ".join(
                f'"{name}"' if binary else f'"{name}"::text AS "{name}"' for name, binary in cols
            )
            rows = await conn.fetch(f'SELECT {select} FROM "{schema}"."{table}"')
            scan.rows += len(rows)
            for row in rows:
                for name, binary in cols:
                    value = row[name]
                    if value is None:
                        continue
                    blob = bytes(value) if binary else str(value).encode()
                    scan.db_bytes += len(blob)
                    place = ("postgres", f"{schema.removeprefix(prefix)}.{table}", name)
                    _search(blob, needles, place, scan)
                    if binary:
                        _search(_mime_text(blob), needles, place, scan)
    finally:
        await conn.close()


def broker_log_dirs() -> list[Path]:
    """The local broker's data directories (``log.dirs`` of its server.properties)."""
    from dagmonitor_cli.platform.stack import LocalStack

    properties = Path(LocalStack().root) / "kafka" / "server.properties"
    for line in properties.read_text().splitlines():
        if line.startswith("log.dirs="):
            return [Path(d) for d in line.partition("=")[2].split(",")]
    raise AssertionError(f"no log.dirs in {properties}")


def scan_disk(prefix: str, needles: list[tuple[str, bytes, bool]], scan: Scan) -> None:
    """The broker's files of the prefix's partitions, raw: the active and closed segments and
    those awaiting deletion (``.deleted``, ``.cleaned``, ``.swap``); not the offset and time
    indexes, which hold offsets and timestamps only."""
    for log_dir in broker_log_dirs():
        for directory in sorted(log_dir.glob(f"{prefix}*")):
            scan.disk_dirs += 1
            topic = directory.name.rsplit("-", 1)[0] if directory.is_dir() else directory.name
            for path in sorted(directory.iterdir()):
                if ".index" in path.name or ".timeindex" in path.name:
                    continue
                try:
                    data = path.read_bytes()
                except (FileNotFoundError, IsADirectoryError):
                    continue  # deleted meanwhile
                scan.disk_files += 1
                scan.disk_bytes += len(data)
                _search(data, needles, ("disk", topic, path.name.split(".", 1)[-1]), scan)


def scan_logs(paths: Iterable[Path], needles: list[tuple[str, bytes, bool]], scan: Scan) -> None:
    for path in paths:
        scan.logs += 1
        _search(path.read_bytes(), needles, ("log", path.name, "-"), scan)


async def scan_everything(pipeline: Pipeline, markers: Markers) -> Scan:
    needles = markers.needles()
    scan = await scan_kafka(pipeline.settings, needles)
    await scan_postgres(
        pipeline.settings.database_url.get_secret_value(), pipeline.schema(""), needles, scan
    )
    scan_disk(pipeline.settings.topic_prefix, needles, scan)
    scan_logs(pipeline.tmp.glob("*.log"), needles, scan)
    return scan


# -- forcing the broker ---------------------------------------------------------------------


async def _topic_configs(admin: Any, names: list[str]) -> dict[str, dict[str, str]]:
    """The topics' own (non-default) configs: AlterConfigs replaces them as a whole."""
    configs: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    ):
        for resource in response.to_object()["resources"]:
            assert resource["error_code"] == 0, resource["error_message"]
            configs[resource["resource_name"]] = {
                e["config_names"]: e["config_value"]
                for e in resource["config_entries"]
                if not e.get("is_default") and e.get("config_source", 1) == 1
            }
    return configs


async def force_cleanup(settings: DagmonitorSettings) -> dict[str, str]:
    """Do now what the broker does anyway within 365 days of a 366-day-old provision.

    Delete-policy topics: their time retention plus a segment's day ends within 365 days
    (checked here on the broker's configs), so after 366 days nothing of them is left:
    ``retention.ms=1``. Compacted topics: a roll closes the segment holding the sweep's
    tombstones and the cleaner compacts it at once. Compact-only topics (no time bound) are left
    as they are: they must carry no marker. Only this test's prefix is touched.
    """
    names = list(await prefixed_topics(settings))
    admin = kafka_clients.admin(settings)
    await admin.start()
    kinds: dict[str, str] = {}
    try:
        current = await _topic_configs(admin, names)
        alter = []
        for name in names:
            configs = dict(current[name])
            policy = configs.get("cleanup.policy", "delete")
            if policy == "compact":
                kinds[name] = "compact"
                continue
            if policy == "delete":
                life = int(configs.get("retention.ms", 7 * DAY_MS)) + int(
                    configs.get("segment.ms", 7 * DAY_MS)
                )
                assert life <= YEAR_MS, f"{name}: time retention lets a record live {life} ms"
                configs["retention.ms"] = "1"
                kinds[name] = "delete"
            else:
                configs.update(
                    {
                        "segment.ms": "100",
                        "min.cleanable.dirty.ratio": "0.0",
                        "max.compaction.lag.ms": "100",
                    }
                )
                kinds[name] = "compacted"
            configs["file.delete.delay.ms"] = "0"  # deleted segments leave the disk at once
            alter.append(ConfigResource(ConfigResourceType.TOPIC, name, configs=configs))
        for response in await admin.alter_configs(alter):
            for code, message, _type, resource in response.resources:
                assert code == 0, f"configuring {resource} failed: {message}"
    finally:
        await admin.close()
    return kinds


async def roll(settings: DagmonitorSettings, topics: dict[str, int]) -> None:
    """A segment-roll marker (a tombstone of a reserved key) on every partition."""
    producer = kafka_clients.producer(settings, acks="all")
    await producer.start()
    try:
        for topic in topics:
            for partition in range(topics[topic]):
                key = f"{ROLL_KEY_PREFIX}nothing-outlives.{partition}".encode()
                await producer.send_and_wait(topic, None, key=key, partition=partition)
    finally:
        await producer.stop()


# -- the test -------------------------------------------------------------------------------


@pytest.fixture
async def pipeline(stack: DagmonitorSettings, tmp_path: Path) -> AsyncIterator[Pipeline]:
    pipeline = Pipeline(stack, tmp_path)
    pipeline.env["DAGMONITOR_INGEST_TOKENS"] = f"bvh-zqmk={INGEST_TOKEN}"
    await pipeline.start()
    try:
        yield pipeline
    finally:
        pipeline.stop()


async def _put_photos(pipeline: Pipeline, markers: Markers) -> dict[str, str]:
    ids = {}
    url = f"http://127.0.0.1:{pipeline.processes['ingest'].port}/v1/photos"
    async with aiohttp.ClientSession() as http:
        for who in ("suspect1", "areaban"):
            photo_id = markers(f"{who}.photo_id")
            async with http.put(
                f"{url}/{photo_id}",
                data=photo_png(markers, who),
                headers={"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "image/png"},
            ) as response:
                assert response.status == 202, await response.text()
            ids[who] = photo_id
    return ids


async def _photo_payloads(pipeline: Pipeline, markers: Markers) -> None:
    """The photos as ingest re-encoded them: a slice of their bytes, and the first line of
    their base64 (as a mail carries them), become markers too."""
    from tests.kafkautil import read_all

    for _key, value in await read_all(pipeline.settings, "ingest.photos", expect=2):
        assert value is not None
        who = next(w for w in ("suspect1", "areaban") if markers.text[f"{w}.photo_id"] == _key)
        data = bytes(value["data"])
        markers.binary[f"{who}.photo.bytes"] = data[len(data) // 2 : len(data) // 2 + 48]
        markers.text[f"{who}.photo.base64"] = base64.b64encode(data).decode()[:64]


async def _decide(
    pipeline: Pipeline, markers: Markers, reject_mk: str, expect: dict[str, int]
) -> dict[str, int]:
    """Every request decided with a marker as the officer's reason: the SUSPECT request of
    ``reject_mk`` rejected, the rest approved (the burglary team first, then the OM)."""
    from services.approval.client import ApprovalClient
    from services.approval.tokens import issue_dev_token

    settings = pipeline._approval_settings()
    decided: dict[str, int] = {}
    deadline = time.monotonic() + 30
    while decided != expect and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        for sub, role in (("inbraakteam-1", "POLICE_BURGLARY_TEAM"), ("om-1", "OM")):
            client = ApprovalClient(
                settings.approval_api_url, issue_dev_token(settings, sub=sub, roles=[role])
            )
            for request in await client.list("pending", 500):
                rid = request["request_id"]
                if request["category"] == "SUSPECT" and request["mk_code"] == reject_mk:
                    await client.decide(rid, "reject", markers(f"reason.reject.{role}"))
                    decided["reject"] = decided.get("reject", 0) + 1
                else:
                    await client.decide(rid, "approve", markers(f"reason.{role}.{rid[-6:]}"))
                    decided[role] = decided.get(role, 0) + 1
    return decided


async def _wait_for_requests(pipeline: Pipeline, at_least: int) -> None:
    for _ in range(90):
        pending = await pipeline.pending()
        if sum(map(len, pending.values())) >= at_least:
            return
        await asyncio.sleep(1)
    raise AssertionError(f"fewer than {at_least} requests reached the officers")


async def test_no_marker_outlives_a_year_in_any_topic_or_table(pipeline: Pipeline) -> None:
    started = time.monotonic()
    markers = Markers()
    day = datetime.now(AMS).date() - timedelta(days=1)
    photos = await _put_photos(pipeline, markers)
    lines = records(markers, day, photos)
    await pipeline.publish(lines)

    # Suspects of the burglary and the shoplifting, the victim, two notices: 5 requests.
    await _wait_for_requests(pipeline, 5)
    # The OM: the burglar, the victim after the burglary team, both notices; the shoplifter
    # rejected.
    expect = {"POLICE_BURGLARY_TEAM": 1, "OM": 4, "reject": 1}
    decided = await _decide(pipeline, markers, "A50", expect)
    assert decided == expect
    await _photo_payloads(pipeline, markers)

    distributor, approval = pipeline.schema("distributor"), pipeline.schema("approval")
    await pipeline.settled(f"SELECT count(*) FROM {distributor}.entries", at_least=3)
    await pipeline.settled(f"SELECT count(*) FROM {distributor}.notices", at_least=4)
    await pipeline.report("daily", day)
    provisions = await pipeline.settled(
        f"SELECT count(*) FROM {distributor}.provisions", at_least=6, settle=5.0
    )
    categories = {
        r[0] for r in await pipeline.query(f"SELECT category FROM {distributor}.provisions")
    }
    print(f"\nprovisions: {provisions}, categories {sorted(categories)}")
    # The victim, the suspect and both notices' persons, the stolen car and the day: mailed.
    # (A category not mailed fails the test at the end; the retention proof runs anyway.)
    unmailed = {"dagmonitor_daily", "person_notice", "victim_notice", "vehicle_notice"}
    unmailed -= categories

    # The scan sees the markers where they are, so a scan that sees nothing cannot pass.
    before = await scan_everything(pipeline, markers)
    print(f"before the sweep: {before.summary()}")
    print(f"  markers in: {sorted(before.places())}")
    stripped = {n for n in markers.text if n.endswith("photo.text_chunk")}
    assert not stripped & before.found(), "a photo's metadata passed ingest"
    # A photo's base64 would show only in an unsent mail's body; sent mails keep none.
    in_mails = {n for n in markers.text if n.endswith("photo.base64")}
    unseen = set(markers.text) - before.found() - stripped - in_mails
    assert not unseen, f"markers the scan did not find before the sweep: {sorted(unseen)}"
    assert set(markers.binary) <= before.found()
    expected = {
        ("kafka", pipeline.settings.topic(t))
        for t in (
            "bvh.incidents",
            "bvh.persons",
            "ingest.incidents",
            "ingest.persons",
            "ingest.photos",
            "dagmonitor.entries",
            "vehicles.signals",
            "approval.requests",
            "persons.approved",
            "victims.approved",
        )
    } | {
        ("postgres", t)
        for t in (
            "approval.request_subjects",
            "approval.audit_reasons",
            "distributor.entries",
            "distributor.notices",
            "distributor.photos",
        )
    }
    on_disk = {("disk", topic) for store, topic in expected if store == "kafka"}
    assert expected | on_disk <= before.places(), sorted((expected | on_disk) - before.places())
    assert not {h for h in before.hits if h[0] == "log"}, "personal data in a service's log"

    # 366 days later: the sweep, and every service consumes its tombstones.
    from services.retention.cli import _sweep
    from services.retention.config import RetentionSettings

    retention = pipeline.schema("retention")
    indexed = await pipeline.settled(f"SELECT count(*) FROM {retention}.provided", settle=3.0)
    settings = RetentionSettings.load(
        topic_prefix=pipeline.settings.topic_prefix, db_schema=retention
    )
    result = await _sweep(settings, datetime.now(UTC) + timedelta(days=366))
    assert result.total == indexed
    for table in (
        f"{distributor}.entries",
        f"{distributor}.notices",
        f"{approval}.request_subjects",
    ):
        await _until_empty(pipeline, table)

    # What compaction and time retention do within their bounds, done now; then scan until
    # nothing is left or the time is up.
    kinds = await force_cleanup(pipeline.settings)
    partitions = await prefixed_topics(pipeline.settings)
    compacted = {t: partitions[t] for t, k in kinds.items() if k == "compacted"}
    deadline = time.monotonic() + 90
    while True:
        await asyncio.sleep(0.3)
        await roll(pipeline.settings, compacted)
        await asyncio.sleep(2.0)
        after = await scan_everything(pipeline, markers)
        if not after.hits or time.monotonic() > deadline:
            break
        print(f"  still: {sorted(after.places())}")
        await asyncio.sleep(3.0)
    print(f"after the sweep: {after.summary()} ({time.monotonic() - started:.0f} s in all)")
    if after.hits:  # where, and which field's marker: never a value
        pytest.fail(f"outlived 366 days: {sorted(after.hits)}")
    assert after.topics >= before.topics and after.tables == before.tables
    assert not unmailed, f"never mailed, so never proven gone from the mails' stores: {unmailed}"


async def _until_empty(pipeline: Pipeline, table: str) -> None:
    for _ in range(60):
        if (await pipeline.query(f"SELECT count(*) FROM {table}"))[0][0] == 0:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{table} still holds records after the sweep")
