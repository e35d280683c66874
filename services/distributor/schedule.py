"""Which day or period a report covers, in
local time (Europe/Amsterdam by default). Run instants: ``dagmonitor.clock``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from dagmonitor.clock import day_bounds, local_date

HOTSPOT_PERIOD_DAYS = 14


def daily_report_day(run_at: datetime, tz: ZoneInfo) -> date:
    """The day a daily run reports on: the local calendar day before the run."""
    return local_date(run_at, tz) - timedelta(days=1)


def is_hotspot_run_day(run_day: date, anchor: date) -> bool:
    """Whether the bi-weekly hotspot report runs on local ``run_day`` (every 14 days)."""
    return (run_day - anchor).days % HOTSPOT_PERIOD_DAYS == 0


@dataclass(frozen=True, slots=True)
class Period:
    """Inclusive range of local calendar days a report covers."""

    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """``[start, end)`` in UTC."""
        return day_bounds(self.first, tz)[0], day_bounds(self.last, tz)[1]

    def label(self) -> str:
        return self.first.isoformat() if self.first == self.last else f"{self.first}..{self.last}"

    def previous(self) -> Period:
        """The period of as many days just before this one (the hotspot report's comparison)."""
        return Period(self.first - timedelta(days=self.days), self.first - timedelta(days=1))


def hotspot_period(last_day: date) -> Period:
    """The 14 local days ending with ``last_day`` (the day before a run)."""
    return Period(last_day - timedelta(days=HOTSPOT_PERIOD_DAYS - 1), last_day)
