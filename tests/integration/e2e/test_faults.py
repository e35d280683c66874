"""kill -9 of every service in the middle of a run: the mails and the register come out the
same as in an undisturbed run of the same day (nothing lost, nothing twice)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from dagmonitor.settings import DagmonitorSettings
from tests.e2e_pipeline import Pipeline

pytestmark = pytest.mark.integration
DAY = date(2026, 11, 19)


def _expected_requests(lines: list[dict[str, Any]]) -> int:
    """How many approval requests the policy makes of these records (ids are deterministic)."""
    from dagmonitor.codec import INCIDENT_EVENT, PERSON_NOTICE
    from dagmonitor.jsonio import record_from_json
    from services.classifier.annex import load_annex
    from services.classifier.config import DEVELOPMENT_ID_KEY
    from services.classifier.policy import (
        REQUESTS,
        PolicyConfig,
        classify_incident,
        classify_notice,
    )
    from tests.e2e_pipeline import TEAM

    policy = PolicyConfig("GM0344", frozenset(TEAM.split(",")), DEVELOPMENT_ID_KEY.encode())
    now = datetime.now(UTC)
    ids: set[str] = set()
    e35: Counter[str] = Counter()
    for line in lines:
        if "registration_number" in line:
            decision = classify_incident(
                record_from_json(INCIDENT_EVENT, line), policy, load_annex(), now=now
            )
            if decision.e35_postcode:
                e35[decision.e35_postcode] += 1
        else:
            decision = classify_notice(record_from_json(PERSON_NOTICE, line), policy, now=now)
        ids |= {o.key for o in decision.outputs if o.topic == REQUESTS}
    return len(ids) + sum(1 for n in e35.values() if n >= 5)


async def _settle_pending(pipeline: Pipeline, want: int) -> dict[str, list[dict[str, Any]]]:
    """Wait until every request the policy makes is pending at the approval service."""
    pending: dict[str, list[dict[str, Any]]] = {}
    for _ in range(90):
        pending = await pipeline.pending()
        if sum(map(len, pending.values())) >= want:
            return pending
        await asyncio.sleep(1)
    raise AssertionError(f"{sum(map(len, pending.values()))} of {want} requests arrived")


async def _run(pipeline: Pipeline, disturb: bool) -> tuple[Counter[Any], Counter[Any]]:
    lines = pipeline.lines(DAY, 150, seed=9)
    processes = pipeline.processes
    if disturb:
        await pipeline.publish(lines[: len(lines) // 2])
        await asyncio.sleep(0.5)
        processes["ingest"].kill()
        processes["classifier"].kill()
        processes["ingest"].start(timeout=90)
        await pipeline.publish(lines[len(lines) // 2 :])
        await asyncio.sleep(0.5)
        processes["classifier"].start(timeout=90)
    else:
        await pipeline.publish(lines)

    pending = await _settle_pending(pipeline, _expected_requests(lines))
    reject = {min(p["request_id"] for p in pending["OM"])} if pending["OM"] else set()
    if disturb:
        processes["approval"].kill()
        processes["approval"].start(timeout=90)
        processes["distributor"].kill()
    decided = await pipeline.decide_all(reject=reject)
    assert decided
    if disturb:
        await asyncio.sleep(1)
        processes["distributor"].start(timeout=90)

    schema = pipeline.schema("distributor")
    await pipeline.settled(f"SELECT count(*) FROM {schema}.entries", at_least=100)
    await pipeline.report("daily", DAY)
    if disturb and "retention" in processes:
        processes["retention"].kill()
        processes["retention"].start(timeout=90)
    await pipeline.report("hotspots", DAY)
    await pipeline.settled(f"SELECT count(*) FROM {schema}.provisions", settle=6.0)

    # Reports: the same mail to the same address. Notices are batched by time, so their
    # grouping into mails may differ: compare what each address was provided, record by record.
    reports: Counter[Any] = Counter()
    for mail in pipeline.mails():
        subject = mail.message["Subject"]
        if subject.startswith(("Dagmonitor", "Cumulatieve")):
            rows = json.dumps(sorted(map(sorted, (r.items() for r in mail.csv_rows()))))
            for address in mail.to:
                reports[(subject, address, mail.text, rows)] += 1
    provided: Counter[Any] = Counter()
    for row in await pipeline.query(
        f"SELECT category, recipient_role, recipient_address, record_keys::text AS keys "
        f"FROM {schema}.provisions"
    ):
        keys = json.loads(row["keys"]) or [None]
        for key in keys:
            ref = json.dumps(key, sort_keys=True)
            provided[(row["category"], row["recipient_role"], row["recipient_address"], ref)] += 1
    return reports, provided


async def test_killing_every_service_changes_nothing(
    stack: DagmonitorSettings, tmp_path: Path
) -> None:
    results = []
    for disturb in (False, True):
        run_dir = tmp_path / ("disturbed" if disturb else "calm")
        run_dir.mkdir()
        pipeline = Pipeline(stack, run_dir)
        await pipeline.start()
        try:
            results.append(await _run(pipeline, disturb))
        finally:
            pipeline.stop()
    (calm_reports, calm_provided), (reports, provided) = results
    # The day's Dagmonitor and the hotspots ending that day, to three addresses each (a
    # service start may add yesterday's scheduled run: in both runs alike).
    subjects = Counter(key[0] for key in calm_reports)
    assert subjects[f"Dagmonitor {DAY:%d-%m-%Y}"] == 3
    assert sum(n for s, n in subjects.items() if s.endswith(f"t/m {DAY:%d-%m-%Y}")) == 3
    assert reports == calm_reports
    notices = {k for k in calm_provided if k[0] not in ("dagmonitor_daily", "hotspots")}
    assert notices, "the calm run provided notices"
    assert max(provided.values()) == 1, "a record went twice to the same address"
    assert provided == calm_provided
