"""Backoff delays, and a pause that a stop or a wake-up cuts short."""

from __future__ import annotations

import asyncio
import time

from dagmonitor.retry import Backoff, pause


def test_delays_double_up_to_the_cap() -> None:
    backoff = Backoff(2, 20)
    assert [backoff.delay(n) for n in range(1, 6)] == [2, 4, 8, 16, 20]
    assert [backoff.next() for _ in range(6)] == [2, 4, 8, 16, 20, 20]
    backoff.reset()
    assert backoff.next() == 2


async def test_a_pause_ends_at_its_time_or_when_stopped_or_woken() -> None:
    started = time.perf_counter()
    await pause(asyncio.Event(), 0.05)
    assert time.perf_counter() - started >= 0.05

    for which in ("stop", "wake"):
        stop, wake = asyncio.Event(), asyncio.Event()
        asyncio.get_running_loop().call_later(0.02, (stop if which == "stop" else wake).set)
        started = time.perf_counter()
        await pause(stop, 30, wake=wake)
        assert time.perf_counter() - started < 5, which

    stop = asyncio.Event()
    stop.set()
    started = time.perf_counter()
    await pause(stop, 30)
    assert time.perf_counter() - started < 1
