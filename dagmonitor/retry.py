"""Waiting between attempts, and waiting that a stop (or a wake-up) cuts short.

Every retry loop of the services takes its delays from a ``Backoff`` (``initial``, doubling,
at most ``maximum``) and waits with ``pause``, so a service told to stop never sits out a
backoff first.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays for the 1st, 2nd, ... retry: ``initial``, doubling, capped at ``maximum``."""

    initial: float
    maximum: float
    attempts: int = field(default=0, init=False)

    def delay(self, attempt: int) -> float:
        """The delay after the ``attempt``-th failure (1, 2, ...)."""
        return float(min(self.maximum, self.initial * 2 ** max(0, attempt - 1)))

    def next(self) -> float:
        """The delay after one more failure."""
        self.attempts += 1
        return self.delay(self.attempts)

    def reset(self) -> None:
        self.attempts = 0


async def pause(
    stop: asyncio.Event | None, seconds: float, *, wake: asyncio.Event | None = None
) -> None:
    """Wait ``seconds``, or less when ``stop`` or ``wake`` is set meanwhile."""
    events = [e for e in (stop, wake) if e is not None]
    if not events:
        await asyncio.sleep(seconds)
        return
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
