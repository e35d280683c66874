"""When a tombstone's topic owes a segment-roll marker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from dagmonitor import topics
from services.retention.compaction import roll_due
from services.retention.config import DEFAULT_ROLL_DELAY_SECONDS

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def test_a_roll_is_due_after_the_delay_at_the_next_bucket_boundary() -> None:
    at = datetime(2027, 11, 28, 3, 0, 12, 345000, tzinfo=UTC)
    assert roll_due(at, DAY, HOUR) == datetime(2027, 11, 29, 4, 0, tzinfo=UTC)
    on_boundary = datetime(2027, 11, 28, 3, 0, tzinfo=UTC)
    assert roll_due(on_boundary, DAY, HOUR) == datetime(2027, 11, 29, 3, 0, tzinfo=UTC)


def test_tombstones_of_one_bucket_share_one_roll() -> None:
    first = datetime(2027, 11, 28, 3, 0, 1, tzinfo=UTC)
    dues = {roll_due(first + timedelta(minutes=m), DAY, HOUR) for m in range(59)}
    assert len(dues) == 1


@given(
    st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(min_value=1, max_value=2 * 86400),
    st.sampled_from([1, 60, 3600]),
)
def test_a_roll_is_never_early_and_at_most_a_bucket_late(
    at: datetime, delay_s: int, bucket_s: int
) -> None:
    delay, bucket = timedelta(seconds=delay_s), timedelta(seconds=bucket_s)
    due = roll_due(at, delay, bucket)
    assert at + delay <= due < at + delay + bucket + timedelta(milliseconds=1)


def test_the_default_delay_outlasts_every_compacted_topics_segment() -> None:
    for spec in topics.compacted_outputs():
        configs = spec.configs()
        lifetime = min(int(configs["segment.ms"]), int(configs["max.compaction.lag.ms"]))
        assert lifetime < DEFAULT_ROLL_DELAY_SECONDS * 1000
