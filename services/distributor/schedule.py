"""When reports run and which period they cover, in local time (Europe/Amsterdam by default).

Pure functions over aware datetimes: the wall-clock time of a run and the local calendar day
are computed with ``zoneinfo``, so a run at 07:00 stays at 07:00 across daylight-saving
changes and a day is 23 or 25 hours long on transition days. A configured time that does not
exist on a spring-forward day (e.g. 02:30) runs an hour later (03:30 summer time); one that
occurs twice on a fall-back day runs at its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

HOTSPOT_PERIOD_DAYS = 14


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant at which local wall-clock ``at`` on ``day`` occurs.

    Twice on a fall-back day: the first occurrence. Never on a spring-forward day (inside
    the gap): read with the offset before the change, i.e. as late as the gap is long
    (02:30 becomes 03:30 summer time).
    """
    return datetime.combine(day, at, tzinfo=tz).replace(fold=0).astimezone(UTC)


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    """The local calendar day of an aware instant."""
    return instant.astimezone(tz).date()


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """``[start, end)`` of a local calendar day, in UTC (23, 24 or 25 hours apart)."""
    return local_instant(day, time(0), tz), local_instant(day + timedelta(days=1), time(0), tz)


def next_daily_run(now: datetime, at: time, tz: ZoneInfo) -> datetime:
    """The first run instant strictly after ``now`` (aware), at local ``at``, in UTC."""
    today = local_date(now, tz)
    for offset in range(3):
        candidate = local_instant(today + timedelta(days=offset), at, tz)
        if candidate > now:
            return candidate
    raise AssertionError("unreachable: a run exists within three days")  # pragma: no cover


def last_daily_run(now: datetime, at: time, tz: ZoneInfo) -> datetime:
    """The latest run instant at or before ``now``, in UTC."""
    today = local_date(now, tz)
    for offset in range(3):
        candidate = local_instant(today - timedelta(days=offset), at, tz)
        if candidate <= now:
            return candidate
    raise AssertionError("unreachable: a run exists within three days")  # pragma: no cover


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


def hotspot_period(last_day: date) -> Period:
    """The 14 local days ending with ``last_day`` (the day before a run)."""
    return Period(last_day - timedelta(days=HOTSPOT_PERIOD_DAYS - 1), last_day)


def covenant_days_remaining(today: date, end_date: date) -> int:
    """Days on which provision is still allowed after ``today`` (negative once expired)."""
    return (end_date - today).days


def provision_allowed(today: date, end_date: date | None) -> bool:
    """Whether the covenant is in force on local ``today`` (its end date is the last day)."""
    return end_date is None or today <= end_date
