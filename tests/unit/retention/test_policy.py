"""The retention rule: which records have expired at "now", to the millisecond."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dagmonitor import topics
from dagmonitor.codec import RETENTION_EVENT, default_codec
from services.retention import policy
from services.retention.policy import Provided

NOW = datetime(2027, 11, 28, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("age", "expired"),
    [
        (timedelta(days=364), False),
        (timedelta(days=365) - timedelta(milliseconds=1), False),
        (timedelta(days=365), False),  # exactly 365 days: not "more than"
        (timedelta(days=365, microseconds=1), True),
        (timedelta(days=365, milliseconds=1), True),
        (timedelta(days=366), True),
    ],
)
def test_a_record_expires_when_provided_more_than_365_days_ago(
    age: timedelta, expired: bool
) -> None:
    assert policy.is_expired(NOW - age, NOW) is expired


def test_the_cutoff_is_exactly_365_days_before_now_in_any_zone() -> None:
    assert policy.cutoff(NOW) == datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    local = NOW.astimezone(datetime.now().astimezone().tzinfo)
    assert policy.cutoff(local) == policy.cutoff(NOW)


def test_now_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        policy.cutoff(datetime(2027, 11, 28, 3, 0))


def test_every_compacted_output_topic_is_provided_data_kept_365_days() -> None:
    assert set(policy.PROVIDED_TOPICS) == {s.name for s in topics.compacted_outputs()}
    assert set(policy.PROVIDED_TOPICS) == {
        "dagmonitor.entries",
        "vehicles.signals",
        "approval.requests",
        "persons.approved",
        "victims.approved",
        "escalations.approved",
    }
    assert set(policy.PROVIDED_TOPICS.values()) == {timedelta(days=365)}
    # The topics' own time retention is only the safety net behind the sweep.
    for name in policy.PROVIDED_TOPICS:
        assert topics.get(name).retention_ms > policy.RETENTION_PERIOD.total_seconds() * 1000


def test_retention_event_is_keyed_topic_colon_key_and_encodes() -> None:
    provided = Provided("vehicles.signals", "PL0900-2026000009:XX-999-Q", NOW - timedelta(days=366))
    assert provided.event_key == "vehicles.signals:PL0900-2026000009:XX-999-Q"
    value = provided.retention_event(NOW)
    assert value == {
        "topic": "vehicles.signals",
        "key": "PL0900-2026000009:XX-999-Q",
        "provided_at": NOW - timedelta(days=366),
        "deleted_at": NOW,
        "reason": "retention_365d",
    }
    codec = default_codec()
    assert codec.decode(codec.encode(RETENTION_EVENT, value)).record == value


@pytest.mark.parametrize(
    ("key", "marker"),
    [
        ("dagmonitor.retention.segment-roll.0", True),
        ("dagmonitor.retention.segment-roll.17", True),
        ("PL0900-2026000009", False),
        ("PL0900-2026000009:XX-999-Q", False),
        ("3511AB", False),
        ("req-0f3a", False),
    ],
)
def test_roll_markers_are_told_apart_from_record_keys(key: str, marker: bool) -> None:
    assert policy.is_roll_marker(key) is marker
