"""The demo's default day is never the one the distributor's start-up catch-up reports on."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from dagmonitor_cli.demo import default_day

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


@pytest.mark.parametrize(
    ("local_now", "day"),
    [
        # after 07:00 the catch-up reports on yesterday: the demo takes the day before
        (datetime(2026, 12, 2, 8, 0), date(2026, 11, 30)),
        (datetime(2026, 12, 2, 23, 59), date(2026, 11, 30)),
        # before 07:00 the latest run was yesterday's, on the day before yesterday (found in a
        # demo at 01:33 whose daily mail said "Geen incidenten")
        (datetime(2026, 12, 2, 1, 33), date(2026, 11, 29)),
        (datetime(2026, 12, 2, 6, 59), date(2026, 11, 29)),
        (datetime(2026, 12, 2, 7, 0), date(2026, 11, 30)),
    ],
)
def test_the_demo_day_comes_before_the_catch_up_reports_day(local_now: datetime, day: date) -> None:
    now = local_now.replace(tzinfo=AMSTERDAM).astimezone(UTC)
    assert default_day(now) == day
