"""The report clock's loop, with a stand-in dispatcher and a clock the test moves."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

from services.distributor.config import DistributorSettings
from services.distributor.scheduler import Scheduler


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, date]] = []
        self.called = asyncio.Event()

    async def ensure_daily(self, day: date, gate: object = None) -> None:
        self.calls.append(("daily", day))
        self.called.set()

    async def ensure_hotspots(self, day: date, gate: object = None) -> None:
        self.calls.append(("hotspots", day))


async def test_catch_up_then_the_next_run_across_the_spring_change() -> None:
    now = {"t": datetime(2026, 3, 28, 12, 0, tzinfo=UTC)}
    settings = DistributorSettings.load(
        hotspots_anchor_date=date(2026, 3, 29), smtp_allow_plaintext=True
    )
    recorder = Recorder()
    scheduler = Scheduler(
        recorder,  # type: ignore[arg-type]
        settings,
        clock=lambda: now["t"],
        slice_seconds=0.01,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run_daily(stop))
    await asyncio.wait_for(recorder.called.wait(), 5)
    assert recorder.calls == [("daily", date(2026, 3, 27))], "the run of 28 March, caught up"
    recorder.called.clear()
    await asyncio.sleep(0.05)
    assert len(recorder.calls) == 1, "nothing before 07:00"

    now["t"] = datetime(2026, 3, 29, 4, 59, tzinfo=UTC)  # 06:59 CEST
    await asyncio.sleep(0.05)
    assert len(recorder.calls) == 1
    now["t"] = datetime(2026, 3, 29, 5, 0, tzinfo=UTC)  # 07:00 CEST, the first summer day
    await asyncio.wait_for(recorder.called.wait(), 5)
    await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert recorder.calls[1:] == [("daily", date(2026, 3, 28)), ("hotspots", date(2026, 3, 28))]


async def test_notice_batcher_runs_at_its_interval() -> None:
    batches: list[Any] = []

    class Batcher:
        async def ensure_withdrawals(self) -> list[Any]:
            return []

        async def batch_notices(self) -> list[Any]:
            batches.append(1)
            return []

        async def forget_expired(self) -> dict[str, int]:
            return {}

    settings = DistributorSettings.load(notice_interval_seconds=0.02, smtp_allow_plaintext=True)
    scheduler = Scheduler(Batcher(), settings)  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run_notices(stop))
    await asyncio.sleep(0.15)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert 3 <= len(batches) <= 12


async def test_a_withdrawal_wakes_the_notice_step_before_its_interval() -> None:
    runs: list[str] = []

    class Steps:
        async def ensure_withdrawals(self) -> list[Any]:
            runs.append("withdrawals")
            return []

        async def batch_notices(self) -> list[Any]:
            runs.append("notices")
            return []

        async def forget_expired(self) -> dict[str, int]:
            runs.append("forget")
            return {}

    settings = DistributorSettings.load(notice_interval_seconds=3600, smtp_allow_plaintext=True)
    scheduler = Scheduler(Steps(), settings)  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run_notices(stop))
    await asyncio.sleep(0.05)
    assert runs == ["withdrawals", "notices", "forget"], "withdrawals first, then the batches"
    scheduler.wake_notices()
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert runs == ["withdrawals", "notices", "forget"] * 2
