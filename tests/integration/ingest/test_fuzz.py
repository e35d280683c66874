"""Hostile input against ingest as a real process: properties, not examples.

A few thousand mutated records on ``bvh.*`` and a few hundred hostile HTTP requests. Then:

- every record on ``bvh.*`` is exactly one of: passed on (its bytes on ``ingest.*``),
  dead-lettered (its partition and offset on ``pipeline.deadletter``), or deduplicated;
- no request is answered with a 5xx, and every 202 is a record on ``bvh.*``;
- no traceback in the service's log; no dead letter names the personal data it refused.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dagmonitor.codec import INCIDENT_EVENT, PERSON_NOTICE, default_codec
from dagmonitor.jsonio import record_from_json, to_json
from dagmonitor.settings import DagmonitorSettings
from dagmonitor_cli.generate import Generator
from tests.integration.test_no_loss import _caught_up, _read_raw, account
from tests.kafkautil import produce
from tests.processes import ServiceProcess

pytestmark = pytest.mark.integration

TOKEN = "fuzz-token-of-bvh"
MARKER = "Fuzzmarkeerdersma"  # a surname: must never appear in a dead letter's detail


def _valid(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    generator = Generator(seed=seed, day=datetime.now(UTC).date() - timedelta(days=1))
    incidents = [record_from_json(INCIDENT_EVENT, line) for line in generator.incidents(600)]
    notices = [record_from_json(PERSON_NOTICE, line) for line in generator.notices(60)]
    for record in incidents:
        for person in record["persons"]:
            person["surname"] = MARKER
    return incidents, notices


def _mutations(rng: random.Random, record: dict[str, Any]) -> dict[str, Any]:
    """A schema-valid record with one hostile change (or none)."""
    changed = json.loads(json.dumps(to_json(record)))
    roll = rng.randrange(12)
    location = changed.get("location")
    if roll == 0:
        changed["version"] = rng.choice([0, -1, -(2**31), 2**31 - 1])
    elif roll == 1 and location:
        location["postcode"] = rng.choice(["3512  AB", " 3512ab ", "3512\tAB", "\t3512AB\n"])
    elif roll == 2 and location:
        location["street"] = "Oude" + rng.choice(["\x00", "\x1b", "\x7f", "\x85"]) + "gracht"
    elif roll == 3:
        changed["reported_at"] = rng.choice(["9999-12-31T00:00:00Z", "1970-01-01T00:00:00Z"])
    elif roll == 4 and "valid_until" in changed:
        changed["valid_until"] = "9999-12-31T00:00:00Z"
    elif roll == 5 and location:
        location["street"] = "x" * rng.choice([10_000, 300_000])
    elif roll == 6:
        changed["mk_code"] = rng.choice(["", "E35 ", " b20", "ZZZZZZ", "\u00e935"])
    return changed


def _kafka_inputs(rng: random.Random) -> dict[str, list[tuple[bytes | None, bytes | None]]]:
    codec = default_codec()
    incidents, notices = _valid(rng.randrange(1000))
    out: dict[str, list[tuple[bytes | None, bytes | None]]] = {
        "bvh.incidents": [],
        "bvh.persons": [],
    }
    for topic, schema, records, key_field in (
        ("bvh.incidents", INCIDENT_EVENT, incidents, "registration_number"),
        ("bvh.persons", PERSON_NOTICE, notices, "notice_id"),
    ):
        other = PERSON_NOTICE if schema == INCIDENT_EVENT else INCIDENT_EVENT
        other_record = (notices if schema == INCIDENT_EVENT else incidents)[0]
        for record in records:
            for _ in range(3):
                document = _mutations(rng, record)
                try:
                    raw = codec.encode(schema, record_from_json(schema, document))
                except Exception:
                    continue  # a mutation the schema itself refuses: not a record
                key = str(record[key_field]).encode()
                roll = rng.randrange(20)
                if roll == 0:
                    raw = raw[: rng.randrange(len(raw))]
                elif roll == 1:
                    flip = rng.randrange(len(raw))
                    raw = raw[:flip] + bytes([raw[flip] ^ 0xFF]) + raw[flip + 1 :]
                elif roll == 2:
                    raw = b""
                elif roll == 3:
                    raw = codec.encode(other, other_record)
                elif roll == 4:
                    key = b"not-the-id"
                out[topic].append((key, raw if roll != 5 else None))
    return out


def _http_bodies(rng: random.Random) -> list[tuple[str, str, bytes]]:
    """(path, content type, body) of hostile requests, with some good ones among them."""
    incidents, notices = _valid(rng.randrange(1000))
    bodies: list[tuple[str, str, bytes]] = []
    for _ in range(300):
        roll = rng.randrange(10)
        record = rng.choice(incidents)
        if roll == 0:
            depth = rng.choice([1_000, 50_000, 200_000])
            body = b"[" * depth + b"]" * depth
        elif roll == 1:
            body = b'{"version": ' + b"9" * rng.choice([5_000, 50_000]) + b"}"
        elif roll == 2:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        elif roll == 3:
            body = json.dumps(to_json(rng.choice(notices))).encode()  # a notice to /incidents
        elif roll == 4:
            body = b"\xff\xfe" + json.dumps(to_json(record)).encode("utf-16-le")
        else:
            body = json.dumps(_mutations(rng, record)).encode()
        kind = "application/avro" if roll == 2 and rng.random() < 0.5 else "application/json"
        bodies.append(("/v1/incidents", kind, body))
    return bodies


async def test_hostile_input_never_costs_a_record_nor_gives_a_5xx(
    fresh_settings: DagmonitorSettings, tmp_path: Path
) -> None:
    rng = random.Random(2026)
    settings = fresh_settings
    env = {
        "DAGMONITOR_TOPIC_PREFIX": settings.topic_prefix,
        "DAGMONITOR_INGEST_TOKENS": f"bvh-fuzz={TOKEN}",
        "DAGMONITOR_LOG_LEVEL": "WARNING",
    }
    ingest = ServiceProcess("ingest", env, tmp_path).start()
    statuses: dict[int, int] = {}
    try:
        inputs = _kafka_inputs(rng)
        for topic, items in inputs.items():
            await produce(settings, topic, items)
        async with aiohttp.ClientSession() as http:
            for path, kind, body in _http_bodies(rng):
                async with http.post(
                    f"http://127.0.0.1:{ingest.port}{path}",
                    data=body,
                    headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": kind},
                ) as response:
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                    text = await response.text()
                    assert response.status < 500, text[:300]
                    assert "Traceback" not in text
        for _ in range(120):
            if all([await _caught_up(settings, "ingest", t) for t in inputs]):
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"ingest did not catch up: {ingest.tail()}")
        letters = await _read_raw(settings, "pipeline.deadletter")
        counts = {}
        for source, target in (
            ("bvh.incidents", "ingest.incidents"),
            ("bvh.persons", "ingest.persons"),
        ):
            found = await _read_raw(settings, source)
            outputs = await _read_raw(settings, target)
            counts[source] = account("ingest", found, outputs, letters, source)
    finally:
        ingest.stop()
    print(f"fuzz: kafka {counts}; http statuses {dict(sorted(statuses.items()))}")
    assert statuses.get(202, 0) > 0 and statuses.get(400, 0) > 0
    # Every 202 went to bvh.incidents, and from there through the same accounting.
    accepted = sum(counts["bvh.incidents"].values()) - len(inputs["bvh.incidents"])
    assert accepted == statuses.get(202, 0)
    codec = default_codec()
    for letter in letters:
        assert letter.value is not None
        assert MARKER not in codec.decode(letter.value).record["detail"]
    log = ingest.log_file.read_text(errors="replace")
    assert "Traceback" not in log, ingest.tail()
