"""Time: the clock services take (so tests can set it), crash checkpoints, and local-time run
math in the covenant's time zone.

Pure functions over aware datetimes: the wall-clock time of a run and the local calendar day
are computed with ``zoneinfo``, so a run at 07:00 stays at 07:00 across daylight-saving
changes and a day is 23 or 25 hours long on transition days. A configured time that does not
exist on a spring-forward day (e.g. 02:30) runs an hour later (03:30 summer time); one that
occurs twice on a fall-back day runs at its first occurrence.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Clock = Callable[[], datetime]
"""What a service asks for the current time (aware, UTC); tests pass a fixed one."""
Checkpoint = Callable[[str], None]
"""Called with a stage name at each step of a multi-step operation; tests raise there to
simulate a crash at that point."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def no_checkpoint(_stage: str) -> None:
    """The production checkpoint: nothing happens."""


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
