"""Ingest and classifier as real processes on the real broker, with a kill -9 mid-stream."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from dagmonitor.codec import INCIDENT_EVENT, default_codec
from dagmonitor.jsonio import record_from_json
from dagmonitor.settings import DagmonitorSettings
from dagmonitor_cli.generate import Generator
from services.classifier.annex import load_annex
from services.classifier.policy import PolicyConfig, classify_incident, classify_notice
from services.ingest.cli import publish_file
from tests.kafkautil import produce, read_all
from tests.processes import ServiceProcess

pytestmark = pytest.mark.integration
TEAM = "WK034405,WK034404,WK034402"
NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


def _expected(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Keys per output topic (and entry values) the policy gives for the latest versions."""
    policy = PolicyConfig("GM0344", frozenset(TEAM.split(",")), b"dagmonitor-development-id-key")
    latest: dict[str, dict[str, Any]] = {}
    for line in lines:
        key = line.get("registration_number") or line["notice_id"]
        if key not in latest or latest[key]["version"] < line["version"]:
            latest[key] = line
    expected: dict[str, dict[str, Any]] = defaultdict(dict)
    e35: Counter[str] = Counter()
    for line in latest.values():
        if "registration_number" in line:
            record = record_from_json(INCIDENT_EVENT, line)
            decision = classify_incident(record, policy, load_annex(), now=NOW)
            if decision.e35_postcode:
                e35[decision.e35_postcode] += 1
        else:
            decision = classify_notice(
                record_from_json("nl.politie.bvh.PersonNotice", line), policy, now=NOW
            )
        for output in decision.outputs:
            expected[output.topic][output.key] = output.value
    expected["escalated_postcodes"] = {p: n for p, n in e35.items() if n >= 5}
    return expected


async def _final(settings: DagmonitorSettings, topic: str, want: int) -> dict[str, Any]:
    """Latest value per key once at least ``want`` keys are there (and nothing more comes)."""
    latest: dict[str, Any] = {}
    for _ in range(10):
        records = await read_all(settings, topic, idle=1.5)
        latest = {}
        for key, value in records:
            latest[key] = value
        if len(latest) >= want:
            return latest
        await asyncio.sleep(1)
    return latest


async def test_generated_day_through_ingest_and_classifier_survives_kill(
    fresh_settings: DagmonitorSettings, tmp_path: Path
) -> None:
    generator = Generator(seed=11, day=date(2026, 11, 27))
    lines = [*generator.incidents(400), *generator.notices(6)]
    path = tmp_path / "day.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    expected = _expected(lines)

    env = {
        "DAGMONITOR_TOPIC_PREFIX": fresh_settings.topic_prefix,
        "DAGMONITOR_TEAM_DISTRICTS": TEAM,
        "DAGMONITOR_MUNICIPALITY_CODE": "GM0344",
        "DAGMONITOR_LOG_LEVEL": "WARNING",
    }
    ingest = ServiceProcess("ingest", env, tmp_path).start()
    classifier = ServiceProcess("classifier", env, tmp_path).start()
    try:
        counts = await publish_file(fresh_settings, path, quiet=True)
        assert counts == {"published": len(lines), "refused": 0}
        codec = default_codec()
        bad_time = record_from_json(
            INCIDENT_EVENT,
            {
                **lines[0],
                "registration_number": "PL0900-2026999001",
                "reported_at": "2030-01-01T00:00:00Z",
            },
        )
        await produce(
            fresh_settings,
            "bvh.incidents",
            [
                (b"PL0900-2026999001", codec.encode(INCIDENT_EVENT, bad_time)),
                (b"PL0900-2026999002", codec.encode(INCIDENT_EVENT, bad_time)[:-7]),
                (b"PL0900-2026999003", b'{"json": true}'),
            ],
        )

        # Kill the classifier while it works through the day.
        for _ in range(100):
            partial = await read_all(fresh_settings, "dagmonitor.entries", idle=0.3)
            if len(partial) >= len(expected["dagmonitor.entries"]) // 4:
                break
            await asyncio.sleep(0.1)
        classifier.kill()
        classifier.start()

        entries = await _final(
            fresh_settings, "dagmonitor.entries", len(expected["dagmonitor.entries"])
        )
        requests = await _final(
            fresh_settings,
            "approval.requests",
            len(expected["approval.requests"]) + len(expected["escalated_postcodes"]),
        )
        signals = await _final(
            fresh_settings, "vehicles.signals", len(expected["vehicles.signals"])
        )
        letters = await read_all(fresh_settings, "pipeline.deadletter", idle=1.0)
    finally:
        classifier.stop()
        ingest.stop()

    # The restarted classifier restored its tables from their changelogs without a hitch.
    for process in (classifier, ingest):
        log = process.log_file.read_text()
        assert "Error in recovery" not in log, process.tail()
        assert "Traceback" not in log, process.tail()

    # Exactly the policy's keys, each with its latest value: nothing lost, nothing extra.
    assert entries == expected["dagmonitor.entries"]
    assert signals == expected["vehicles.signals"]
    person_requests = {
        k: v for k, v in requests.items() if v["category"] != "YOUTH_NUISANCE_DETAIL"
    }
    assert set(person_requests) == set(expected["approval.requests"])
    for key, value in person_requests.items():
        want = expected["approval.requests"][key]
        assert {k: value[k] for k in ("category", "approver_role", "subject", "source_key")} == {
            k: want[k] for k in ("category", "approver_role", "subject", "source_key")
        }
    escalations = [v for v in requests.values() if v["category"] == "YOUTH_NUISANCE_DETAIL"]
    assert Counter(v["postcode"] for v in escalations) == Counter(
        {p: 1 for p in expected["escalated_postcodes"]}
    )
    assert sorted(v["reason"] for _, v in letters if v) == [
        "invalid_timestamp",
        "not_avro",
        "truncated",
    ]
