"""A service's loops, supervised (``dagmonitor.service.run_parts``): a transient failure or an
early end restarts the part; any other crash stops all and is raised, the first one's cause."""

from __future__ import annotations

import asyncio

import pytest

from dagmonitor import service
from dagmonitor.service import run_parts


@pytest.fixture(autouse=True)
def _quick_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_pause(stop: asyncio.Event | None, seconds: float, **_: object) -> None:
        await asyncio.sleep(0)

    monkeypatch.setattr(service, "pause", no_pause)


async def test_a_transient_failure_and_an_early_end_restart_the_part() -> None:
    stop = asyncio.Event()
    runs: list[str] = []

    async def flaky() -> None:
        runs.append("flaky")
        if len(runs) == 1:
            raise ConnectionResetError("broker away")
        if len(runs) == 2:
            return  # ended early
        stop.set()

    async def steady() -> None:
        await stop.wait()

    await asyncio.wait_for(run_parts({"flaky": flaky, "steady": steady}, stop), 5)
    assert runs == ["flaky"] * 3


async def test_a_crash_stops_every_part_and_is_raised() -> None:
    stop = asyncio.Event()
    stopped: list[str] = []

    async def crashing() -> None:
        raise ValueError("a bug")

    async def other() -> None:
        await stop.wait()
        stopped.append("other")

    with pytest.raises(ValueError, match="a bug"):
        await asyncio.wait_for(run_parts({"crashing": crashing, "other": other}, stop), 5)
    assert stopped == ["other"] and stop.is_set()


async def test_the_part_that_ended_first_is_the_cause() -> None:
    stop = asyncio.Event()

    async def first() -> None:
        raise KeyError("first")

    async def second() -> None:
        await stop.wait()
        raise RuntimeError("second, because the first stopped everything")

    with pytest.raises(KeyError):
        await asyncio.wait_for(run_parts({"first": first, "second": second}, stop), 5)
