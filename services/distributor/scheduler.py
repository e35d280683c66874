"""The report clock: the daily run at the configured local time, the hotspot run every 14 days,
and the notice batches at their interval.

At start the latest run that should already have happened is made sure of (idempotently), so
a restart around 07:00 loses no report. Waits are cut into slices of at most a minute, so a
suspended machine or a wall-clock jump delays a run by a minute at most.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from dagmonitor.clock import Clock, last_daily_run, local_date, next_daily_run, utc_now
from dagmonitor.retry import Backoff, pause
from dagmonitor.streaming import TRANSIENT_ERRORS
from dagmonitor.telemetry import get_logger
from services.distributor.completeness import Completeness
from services.distributor.config import DistributorSettings
from services.distributor.covenant import TermGate
from services.distributor.dispatch import Dispatcher
from services.distributor.schedule import daily_report_day, is_hotspot_run_day

_log = get_logger(__name__)


class Scheduler:
    """Runs the daily and bi-weekly reports and the notice batcher until stopped."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        settings: DistributorSettings,
        *,
        clock: Clock = utc_now,
        slice_seconds: float = 60.0,
        completeness: Completeness | None = None,
        term: TermGate | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._term = term
        self._settings = settings
        self._completeness = completeness
        self._clock = clock
        self._slice = slice_seconds
        self._notices_due = asyncio.Event()
        self._consent_arrived = asyncio.Event()  # services/distributor/consents.py

    async def run_reports(self, run_at: datetime) -> None:
        """The reports of one daily run: the previous day, and hotspots on their days.

        Each waits (bounded) for the pipeline to catch up with what was registered before
        ``run_at``; once it has, the second report does not wait again.
        """
        tz = self._settings.tz
        day = daily_report_day(run_at, tz)
        caught_up: list[bool] = []

        async def gate() -> bool:
            if self._completeness is None:
                return True
            if not caught_up or not caught_up[-1]:
                wait = self._settings.report_complete_wait_seconds
                caught_up.append(await self._completeness.wait(run_at, wait))
            return caught_up[-1]

        await self._dispatcher.ensure_daily(day, gate)
        if self._term is not None:  # the evaluation, from the start of the last month
            term = await self._term.term()
            if term.in_last_month(run_at, tz):
                await self._dispatcher.ensure_evaluation(term)
        if is_hotspot_run_day(local_date(run_at, tz), self._settings.hotspots_anchor_date):
            await self._dispatcher.ensure_hotspots(day, gate)

    async def _run_reports_retrying(self, run_at: datetime, stop: asyncio.Event) -> None:
        backoff = Backoff(1.0, 60.0)
        while not stop.is_set():
            try:
                await self.run_reports(run_at)
                return
            except TRANSIENT_ERRORS as exc:
                delay = backoff.next()
                _log.warning("report_run_retrying", error=type(exc).__name__, retry_in_s=delay)
                await pause(stop, delay)

    async def run_daily(self, stop: asyncio.Event) -> None:
        settings = self._settings
        catch_up = last_daily_run(self._clock(), settings.daily_report_time, settings.tz)
        await self._run_reports_retrying(catch_up, stop)
        while not stop.is_set():
            run_at = next_daily_run(self._clock(), settings.daily_report_time, settings.tz)
            _log.info("next_report_run", at=run_at.isoformat())
            while not stop.is_set():
                remaining = (run_at - self._clock()).total_seconds()
                if remaining <= 0:
                    break
                await pause(stop, min(remaining, self._slice))
            if not stop.is_set():
                await self._run_reports_retrying(run_at, stop)

    async def run_supplements(self, stop: asyncio.Event) -> None:
        """Supplements of reported days, checked every minute (or the interval, if shorter);
        the dispatcher keeps each day to one per interval."""
        poll = min(self._settings.supplement_interval_seconds, self._slice)
        while not stop.is_set():
            try:
                # Reports held for want of a consent go out once one is in force.
                await self._dispatcher.consents.release(self._dispatcher)
                await self._dispatcher.ensure_supplements()
            except TRANSIENT_ERRORS as exc:
                _log.warning("supplement_run_failed", error=type(exc).__name__)
            self._consent_arrived.clear()
            await pause(stop, poll, wake=self._consent_arrived)

    async def run_notices(self, stop: asyncio.Event) -> None:
        """Withdrawal notices, then notice batches, every notice interval (or sooner when
        ``wake_notices`` is called: a withdrawal came in)."""
        while not stop.is_set():
            try:
                await self._dispatcher.ensure_withdrawals()
                await self._dispatcher.batch_notices()
                await self._dispatcher.forget_expired()
            except TRANSIENT_ERRORS as exc:
                _log.warning("notice_batch_failed", error=type(exc).__name__)
            self._notices_due.clear()
            await pause(stop, self._settings.notice_interval_seconds, wake=self._notices_due)

    def wake_held(self) -> None:
        """A consent of the OM arrived: release the held reports and records now."""
        self._consent_arrived.set()
        self._notices_due.set()

    def wake_notices(self) -> None:
        """Run the notice step soon (a withdrawal came in: its notices should not wait)."""
        self._notices_due.set()
