"""A generated day through every service, as real processes, to the mails and the register."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dagmonitor.codec import INCIDENT_EVENT
from dagmonitor.jsonio import record_from_json
from dagmonitor.settings import DagmonitorSettings
from services.classifier.annex import load_annex
from services.classifier.policy import ENTRIES, PolicyConfig, classify_incident
from tests.e2e_pipeline import RECIPIENTS, TEAM, Pipeline

pytestmark = pytest.mark.integration
DAY = date(2026, 11, 20)
AMS = ZoneInfo("Europe/Amsterdam")


@pytest.fixture
async def pipeline(stack: DagmonitorSettings, tmp_path: Path) -> AsyncIterator[Pipeline]:
    pipeline = Pipeline(stack, tmp_path)
    await pipeline.start()
    try:
        yield pipeline
    finally:
        pipeline.stop()


def _expected_entries(lines: list[dict[str, Any]], day: date = DAY) -> dict[str, dict[str, Any]]:
    policy = PolicyConfig("GM0344", frozenset(TEAM.split(",")), b"unused")
    now = datetime.now(UTC)
    start = datetime.combine(day, time(0), AMS)
    end = datetime.combine(date.fromordinal(day.toordinal() + 1), time(0), AMS)
    entries: dict[str, dict[str, Any]] = {}
    for line in lines:
        if "registration_number" not in line:
            continue
        decision = classify_incident(
            record_from_json(INCIDENT_EVENT, line), policy, load_annex(), now=now
        )
        for output in decision.outputs:
            if output.topic == ENTRIES and start <= output.value["reported_at"] < end:
                current = entries.get(output.key)
                if current is None or current["version"] < output.value["version"]:
                    entries[output.key] = output.value
    return entries


def _personal_strings(lines: list[dict[str, Any]]) -> set[str]:
    """Names, phones, plates, registration numbers and home addresses of the data; a home
    address that is also an incident's location (a burglary at home) may show as the latter."""
    locations = {
        f"{line['location']['street']} {line['location']['house_number']}"
        for line in lines
        if "location" in line
    }
    found = set()
    for line in lines:
        persons = line.get("persons") or ([line["person"]] if "person" in line else [])
        for person in persons:
            found.add(f"{person['first_names']} {person['surname']}")
            found.add(person["phone"])
            address = person.get("address") or {}
            found.add(f"{address.get('street')} {address.get('house_number')}")
        for vehicle in line.get("vehicles") or ():
            found.add(vehicle["plate"])
        if "registration_number" in line:
            found.add(line["registration_number"])
    return {s for s in found - locations if s and "None" not in s}


async def test_a_day_from_police_records_to_mails_and_register(pipeline: Pipeline) -> None:
    lines = pipeline.lines(DAY, 150)
    expected = _expected_entries(lines)
    await pipeline.publish(lines)

    # Wait until the approval service holds what the classifier asked, then decide.
    for _ in range(60):
        pending = await pipeline.pending()
        if sum(map(len, pending.values())) and all(p["request_id"] for p in pending["OM"]):
            await asyncio.sleep(2)
            if await pipeline.pending() == pending:
                break
        await asyncio.sleep(1)
    reject = {pending["OM"][0]["request_id"]} if pending["OM"] else set()
    decided = await pipeline.decide_all(reject=reject)
    assert decided and "reject" in decided.values()

    schema = pipeline.schema("distributor")
    await pipeline.settled(f"SELECT count(*) FROM {schema}.entries", at_least=len(expected))
    await pipeline.report("daily", DAY)
    await pipeline.report("hotspots", DAY)
    await pipeline.settled(f"SELECT count(*) FROM {schema}.provisions", settle=5.0)

    mails = pipeline.mails()
    daily = [m for m in mails if m.message["Subject"] == f"Dagmonitor {DAY:%d-%m-%Y}"]
    everyone = sorted(a for addresses in RECIPIENTS.values() for a in addresses)
    assert sorted(a for m in daily for a in m.to) == everyone

    # The Dagmonitor holds exactly the policy's entries of the day, at the allowed precision.
    for mail in daily:
        rows = mail.csv_rows()
        assert len(rows) == len(expected)
        by_key = sorted((r["mk_code"], r["postcode"], r["straat"], r["aanduiding"]) for r in rows)
        assert by_key == sorted(
            (
                e["mk_code"],
                e["postcode"] or "",
                e["street"] or "",
                e["location_qualifier"] or "",
            )
            for e in expected.values()
        )

    # Nothing personal in the Dagmonitor or the hotspot report.
    personal = _personal_strings(lines)
    hotspots = [m for m in mails if "hotspots" in m.message["Subject"]]
    assert len(hotspots) == 3
    for mail in [*daily, *hotspots]:
        text = mail.text
        leaked = [s for s in personal if re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", text)]
        assert not leaked, (mail.message["Subject"], len(leaked))

    # Notices only to their entitled roles; the rejected person never leaves.
    safety, meeting, leader = (
        RECIPIENTS[r][0]
        for r in ("safety_unit_officer", "enforcement_meeting_member", "enforcement_team_leader")
    )
    for mail in mails:
        subject = mail.message["Subject"]
        if "slachtoffers" in subject:
            assert mail.to == [safety]
        if "personen" in subject:
            assert meeting not in mail.to
        if "voertuig" in subject.lower() or "kentekens" in subject.lower():
            assert mail.to == [leader]

    # The register matches the mails one to one.
    rows = await pipeline.query(
        f"SELECT message_id, recipient_address, legal_basis FROM {schema}.provisions"
    )
    delivered = sorted((m.message["Message-ID"], a) for m in mails for a in m.to)
    assert sorted((r["message_id"], r["recipient_address"]) for r in rows) == delivered
    assert {r["legal_basis"] for r in rows} == {"art. 20 Wpg"}

    # 366 days later the retention sweep removes every provided record, everywhere.
    await _sweep_a_year_later(pipeline)


async def _sweep_a_year_later(pipeline: Pipeline) -> None:
    from services.retention.cli import _sweep
    from services.retention.config import RetentionSettings
    from tests.kafkautil import read_all

    retention = pipeline.schema("retention")
    indexed = await pipeline.settled(f"SELECT count(*) FROM {retention}.provided", settle=3.0)
    settings = RetentionSettings.load(
        topic_prefix=pipeline.settings.topic_prefix, db_schema=retention
    )
    result = await _sweep(settings, datetime.now(UTC) + timedelta(days=366))
    assert result.total == indexed
    assert (await pipeline.query(f"SELECT count(*) FROM {retention}.provided"))[0][0] == 0

    distributor, approval = pipeline.schema("distributor"), pipeline.schema("approval")
    for table in (
        f"{distributor}.entries",
        f"{distributor}.notices",
        f"{approval}.request_subjects",
    ):
        for _ in range(60):
            if (await pipeline.query(f"SELECT count(*) FROM {table}"))[0][0] == 0:
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"{table} still holds records after the sweep")

    # On the topics the last word of every provided key is a tombstone, and the sweep is audited.
    latest: dict[str | None, Any] = {}
    for key, value in await read_all(pipeline.settings, "dagmonitor.entries", idle=1.0):
        latest[key] = value
    real = {k: v for k, v in latest.items() if k and not k.startswith("dagmonitor.retention.")}
    assert real and all(value is None for value in real.values())
    events = await read_all(pipeline.settings, "retention.events", expect=indexed)
    assert len(events) == indexed
