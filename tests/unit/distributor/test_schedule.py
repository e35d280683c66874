"""Run times and report periods in Europe/Amsterdam, across daylight-saving changes."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from dagmonitor.clock import day_bounds, last_daily_run, local_instant, next_daily_run
from services.distributor.schedule import (
    Period,
    daily_report_day,
    hotspot_period,
    is_hotspot_run_day,
)

AMS = ZoneInfo("Europe/Amsterdam")
SEVEN = time(7, 0)
SPRING = date(2026, 3, 29)  # 02:00 CET -> 03:00 CEST
AUTUMN = date(2026, 10, 25)  # 03:00 CEST -> 02:00 CET


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2026, 11, 27, 5, 59), utc(2026, 11, 27, 6, 0)),  # winter: 07:00 = 06:00 UTC
        (utc(2026, 11, 27, 6, 0), utc(2026, 11, 28, 6, 0)),  # strictly after now
        (utc(2026, 7, 1, 4, 0), utc(2026, 7, 1, 5, 0)),  # summer: 07:00 = 05:00 UTC
        (utc(2026, 3, 28, 7, 0), utc(2026, 3, 29, 5, 0)),  # the night the clocks go forward
        (utc(2026, 10, 24, 6, 0), utc(2026, 10, 25, 6, 0)),  # the night they go back
        (utc(2026, 12, 31, 23, 30), utc(2027, 1, 1, 6, 0)),  # already 00:30 local on Jan 1
    ],
)
def test_next_run_is_seven_local(now: datetime, expected: datetime) -> None:
    run = next_daily_run(now, SEVEN, AMS)
    assert run == expected
    assert run.astimezone(AMS).time() == SEVEN


def test_runs_stay_at_seven_local_across_both_transitions() -> None:
    now = utc(2026, 3, 25, 12, 0)
    runs = []
    for _ in range(220):
        now = next_daily_run(now, SEVEN, AMS)
        runs.append(now)
    assert all(r.astimezone(AMS).time() == SEVEN for r in runs)
    local_days = [r.astimezone(AMS).date() for r in runs]
    assert local_days == [local_days[0] + timedelta(days=i) for i in range(220)], "no day skipped"
    gaps = {(b - a) for a, b in itertools.pairwise(runs)}
    assert gaps == {timedelta(hours=24), timedelta(hours=23), timedelta(hours=25)}


def test_last_run_and_the_day_it_reports() -> None:
    run = last_daily_run(utc(2026, 3, 29, 5, 30), SEVEN, AMS)
    assert run == utc(2026, 3, 29, 5, 0)
    assert daily_report_day(run, AMS) == date(2026, 3, 28)
    assert last_daily_run(utc(2026, 3, 29, 4, 59), SEVEN, AMS) == utc(2026, 3, 28, 6, 0)


def test_day_bounds_on_transition_days() -> None:
    start, end = day_bounds(SPRING, AMS)
    assert (start, end - start) == (utc(2026, 3, 28, 23, 0), timedelta(hours=23))
    start, end = day_bounds(AUTUMN, AMS)
    assert (start, end - start) == (utc(2026, 10, 24, 22, 0), timedelta(hours=25))
    start, end = day_bounds(date(2026, 11, 27), AMS)
    assert (start, end - start) == (utc(2026, 11, 26, 23, 0), timedelta(hours=24))


def test_wall_times_in_the_gap_and_in_the_overlap() -> None:
    # 02:30 does not exist on the spring day: it runs at 03:30 summer time.
    assert local_instant(SPRING, time(2, 30), AMS) == utc(2026, 3, 29, 1, 30)
    # 02:30 happens twice on the autumn day: the first one (still summer time).
    assert local_instant(AUTUMN, time(2, 30), AMS) == utc(2026, 10, 25, 0, 30)


def test_hotspot_runs_every_fourteen_days_over_fourteen_days() -> None:
    anchor = date(2026, 1, 5)
    days = [anchor + timedelta(days=i) for i in range(60)]
    assert [d for d in days if is_hotspot_run_day(d, anchor)] == [
        date(2026, 1, 5),
        date(2026, 1, 19),
        date(2026, 2, 2),
        date(2026, 2, 16),
        date(2026, 3, 2),
    ]
    assert is_hotspot_run_day(date(2025, 12, 22), anchor), "also before the anchor"
    period = hotspot_period(date(2026, 1, 18))
    assert period == Period(date(2026, 1, 5), date(2026, 1, 18))
    assert period.days == 14
    start, end = hotspot_period(date(2026, 4, 4)).bounds(AMS)
    assert end - start == timedelta(days=14, hours=-1), "the period spans the spring change"
