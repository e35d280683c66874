"""The running service: the daily sweep at its local time (with a clock the test moves), a
sweep as soon as a record expires between runs, segment rolls, gauges; and the process
``python -m services.retention`` with its HTTP endpoints."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from prometheus_client import REGISTRY

from dagmonitor.settings import REPO_ROOT, DagmonitorSettings
from services.retention import policy
from services.retention.app import RetentionApp
from services.retention.config import RetentionSettings
from tests.integration.retention.conftest import (
    eventually,
    index_rows,
    retention_settings,
    seed_index,
)

pytestmark = pytest.mark.integration

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def _sweeps(settings: RetentionSettings) -> list[str]:
    """The triggers of the finished sweeps, in order."""
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        rows = await conn.fetch(
            f"SELECT trigger FROM {settings.db_schema}.sweeps "
            "WHERE finished_at IS NOT NULL ORDER BY id"
        )
        return [r["trigger"] for r in rows]
    finally:
        await conn.close()


async def _owed_rolls(settings: RetentionSettings) -> int:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {settings.db_schema}.segment_rolls"))
    finally:
        await conn.close()


def _rolls_appended() -> float:
    return sum(
        REGISTRY.get_sample_value("dagmonitor_retention_segment_rolls_total", {"topic": t}) or 0
        for t in ("dagmonitor.entries", "vehicles.signals")
    )


async def test_daily_sweep_at_its_local_time_and_at_once_when_a_record_expires(
    prefixed: DagmonitorSettings, schemas: Callable[[str], str]
) -> None:
    # The Sunday in March when the clocks go forward at 02:00 (CET) to 03:00 (CEST): the
    # daily 03:00 comes 10 s after 01:59:50.
    clock = FakeClock(datetime(2027, 3, 28, 1, 59, 50, tzinfo=AMSTERDAM).astimezone(UTC))
    start = clock.now
    settings = retention_settings(
        prefixed,
        schemas("retention"),
        retention_sweep_time=time(3, 0),
        retention_timezone="Europe/Amsterdam",
    )
    year = policy.MAX_PERIOD - policy.DELETION_LEAD  # both seeded topics keep a year
    await seed_index(
        settings,
        [
            ("dagmonitor.entries", "PL0900-2026990001", start - year - timedelta(hours=1)),
            ("vehicles.signals", "PL0900-2026990002:XX-002-Q", start - year + timedelta(minutes=5)),
            ("dagmonitor.entries", "PL0900-2026990003", start - timedelta(days=300)),
        ],
    )
    rolls_before = _rolls_appended()
    app = RetentionApp(settings, clock=clock)
    await app.start()
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        # Never swept before: the first tick catches up at once.
        await eventually(lambda: _has_sweeps(settings, ["schedule"]))
        await eventually(lambda: _indexed(settings, 2))

        # 03:00 local passes: the daily sweep runs (nothing more to delete).
        clock.now = datetime(2027, 3, 28, 3, 0, 5, tzinfo=AMSTERDAM).astimezone(UTC)
        await eventually(lambda: _has_sweeps(settings, ["schedule", "schedule"]))
        assert clock.now - start == timedelta(seconds=15)  # 01:59:50 CET to 03:00:05 CEST

        # The vehicle signal's period ends (1 ms past its expiry) between daily runs: swept at
        # once.
        clock.now = start + timedelta(minutes=5)
        await asyncio.sleep(1)
        assert len(await index_rows(settings)) == 2  # exactly at its expiry: it stays
        clock.now = start + timedelta(minutes=5, milliseconds=1)
        await eventually(lambda: _has_sweeps(settings, ["schedule", "schedule", "due"]))
        assert set(await index_rows(settings)) == {("dagmonitor.entries", "PL0900-2026990003")}

        # The gauges: the oldest record left is 300 days old, and nothing is overdue.
        await asyncio.sleep(3 * settings.retention_tick_seconds)
        age = REGISTRY.get_sample_value("dagmonitor_retention_oldest_provided_age_seconds")
        assert age == pytest.approx(timedelta(days=300, minutes=5).total_seconds(), abs=1)
        assert REGISTRY.get_sample_value("dagmonitor_retention_overdue_seconds") == 0

        # The sweep's tombstones came back through the consumer; their segment rolls followed.
        await eventually(lambda: _no_owed_rolls(settings), timeout=20)
        assert _rolls_appended() >= rolls_before + 6 + 3  # every partition of both topics
    finally:
        stop.set()
        await task
        await app.stop()


async def _has_sweeps(settings: RetentionSettings, triggers: list[str]) -> bool:
    return await _sweeps(settings) == triggers


async def _indexed(settings: RetentionSettings, count: int) -> bool:
    return len(await index_rows(settings)) == count


async def _no_owed_rolls(settings: RetentionSettings) -> bool:
    return await _owed_rolls(settings) == 0 and _rolls_appended() > 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except OSError:
        return 0, ""


async def test_the_service_process_serves_its_endpoints_and_stops_on_sigterm(
    prefixed: DagmonitorSettings, schemas: Callable[[str], str]
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "DAGMONITOR_TOPIC_PREFIX": prefixed.topic_prefix,
        "DAGMONITOR_DB_SCHEMA": schemas("retention"),
        "DAGMONITOR_HTTP_PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.retention"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        async def ready() -> bool:
            status, _ = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/readyz")
            return status == 200

        await eventually(ready, timeout=60)
        status, metrics = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        for name in (
            "dagmonitor_retention_records_indexed_total",
            "dagmonitor_retention_expired_total",
            "dagmonitor_retention_tombstones_emitted_total",
            "dagmonitor_retention_oldest_provided_age_seconds",
        ):
            assert name in metrics
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
