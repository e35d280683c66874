"""``dagmonitor retention sweep`` against the real PostgreSQL and Kafka: the dry run lists
exactly what would go and changes nothing; ``--now`` moves the cutoff; the sweep deletes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner, Result

from dagmonitor.settings import DagmonitorSettings
from dagmonitor_cli.cli import cli
from services.retention import policy
from services.retention.config import RetentionSettings
from tests.integration.retention.conftest import (
    index_rows,
    now_ms,
    read_topic,
    retention_settings,
    seed_index,
)

pytestmark = pytest.mark.integration


async def _run(settings: RetentionSettings, *args: str) -> Result:
    """The command in a thread of its own (it runs its own event loop), with the test's
    schema and topic prefix in the environment."""
    env = {
        "DAGMONITOR_DB_SCHEMA": settings.db_schema,
        "DAGMONITOR_TOPIC_PREFIX": settings.topic_prefix,
    }
    return await asyncio.to_thread(
        CliRunner().invoke, cli, ["retention", "sweep", *args], env=env, catch_exceptions=False
    )


async def test_dry_run_lists_what_would_go_and_now_moves_the_cutoff(
    prefixed: DagmonitorSettings, schemas: Callable[[str], str]
) -> None:
    settings = retention_settings(prefixed, schemas("retention"))
    t0 = now_ms() - timedelta(days=30)
    tag = uuid.uuid4().hex[:6]
    seeded = [
        ("dagmonitor.entries", f"PL0900-{tag}1", t0 - timedelta(days=2)),
        ("vehicles.signals", f"PL0900-{tag}2:XX-001-Q", t0 - timedelta(days=1)),
        ("persons.approved", f"req-{tag}-3", t0),
        ("escalations.approved", f"35{tag[:2]}ZZ", t0 + timedelta(days=1)),
    ]
    await seed_index(settings, seeded)
    lasts = policy.MAX_PERIOD - policy.DELETION_LEAD  # every seeded topic's period is a year
    now = t0 + lasts

    def line(topic: str, key: str, at: datetime) -> str:
        return f"{topic}\t{key}\t{at.isoformat()}\t{(at + lasts).isoformat()}"

    result = await _run(settings, "--dry-run", "--now", now.isoformat())
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        line("dagmonitor.entries", f"PL0900-{tag}1", t0 - timedelta(days=2)),
        line("vehicles.signals", f"PL0900-{tag}2:XX-001-Q", t0 - timedelta(days=1)),
    ]
    assert f"dry run: 2 record(s) expired before {now.isoformat()}" in result.stderr
    # A day later the record provided at t0 is due too; still nothing is changed.
    later = (now + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    result = await _run(settings, "--dry-run", "--now", later)
    assert [line.split("\t")[1] for line in result.stdout.splitlines()] == [
        f"PL0900-{tag}1",
        f"PL0900-{tag}2:XX-001-Q",
        f"req-{tag}-3",
    ]
    assert len(await index_rows(settings)) == 4
    assert await read_topic(prefixed, "retention.events") == []
    assert await read_topic(prefixed, "dagmonitor.entries") == []

    result = await _run(settings, "--now", now.isoformat())
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"swept 2 record(s) expired before {now.isoformat()}: "
        "dagmonitor.entries 1, vehicles.signals 1"
    )
    assert set(await index_rows(settings)) == {(t, k) for t, k, _ in seeded[2:]}
    assert {r.key for r in await read_topic(prefixed, "retention.events")} == {
        f"dagmonitor.entries:PL0900-{tag}1",
        f"vehicles.signals:PL0900-{tag}2:XX-001-Q",
    }
    tombstones = await read_topic(prefixed, "dagmonitor.entries")
    assert [(r.key, r.value) for r in tombstones] == [(f"PL0900-{tag}1", None)]


async def test_a_dry_run_on_a_schema_the_service_never_used_creates_nothing(
    prefixed: DagmonitorSettings, schemas: Callable[[str], str]
) -> None:
    settings = retention_settings(prefixed, schemas("retention"))
    result = await _run(settings, "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "dry run: 0 record(s)" in result.stderr
    with pytest.raises(Exception, match="does not exist"):
        await index_rows(settings)


async def test_now_without_a_utc_offset_is_refused(
    prefixed: DagmonitorSettings, schemas: Callable[[str], str]
) -> None:
    settings = retention_settings(prefixed, schemas("retention"))
    result = await _run(settings, "--dry-run", "--now", "2027-11-28T03:00:00")
    assert result.exit_code == 2
    assert "has no UTC offset" in result.output
    result = await _run(settings, "--now", "yesterday")
    assert result.exit_code == 2
    assert "not an ISO 8601" in result.output
