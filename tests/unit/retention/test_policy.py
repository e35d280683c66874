"""The retention rule: the table of periods, and which records have expired at "now", to the
millisecond."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dagmonitor import topics
from dagmonitor.codec import RETENTION_EVENT, default_codec
from services.retention import policy
from services.retention.config import RetentionSettings
from services.retention.policy import Provided

NOW = datetime(2027, 11, 28, 3, 0, tzinfo=UTC)


# The table of periods, row by row (services/retention/periods.csv): what a policy officer
# reviews. A change of a period must change this test too.
PERIODS = {
    "dagmonitor.entries": (365, None),
    "vehicles.signals": (365, None),
    "approval.requests": (30, None),
    "persons.approved": (365, "valid_until"),
    "victims.approved": (90, None),
    "escalations.approved": (365, "valid_until"),
}
LEAD = timedelta(days=2)


def test_the_table_has_one_row_per_provided_topic_with_its_period_and_purpose() -> None:
    assert set(policy.PERIODS) == {s.name for s in topics.compacted_outputs()}
    for topic, (days, ends_with) in PERIODS.items():
        row = policy.PERIODS[topic]
        assert (row.period, row.ends_with) == (timedelta(days=days), ends_with), topic
        assert len(row.purpose) > 40 and row.record, topic
        assert policy.PROVIDED_TOPICS[topic] == timedelta(days=days)
    assert max(policy.PROVIDED_TOPICS.values()) == policy.MAX_PERIOD == timedelta(days=365)
    assert policy.DELETION_LEAD == LEAD


@pytest.mark.parametrize("topic", sorted(PERIODS))
@pytest.mark.parametrize(
    ("before_end", "expired"),
    [
        (timedelta(days=1), False),
        (timedelta(milliseconds=1), False),
        (timedelta(0), False),  # exactly at its expiry: not yet "past" it
        (-timedelta(milliseconds=1), True),
        (-timedelta(days=1), True),
    ],
)
def test_a_record_expires_its_period_less_the_lead_after_provision(
    topic: str, before_end: timedelta, expired: bool
) -> None:
    period = timedelta(days=PERIODS[topic][0])
    provided = NOW - period + LEAD + before_end
    expires = policy.expires_at(topic, provided, None)
    assert expires == provided + period - LEAD
    assert policy.is_expired(expires, NOW) is expired


def test_compaction_finishes_within_the_lead() -> None:
    """ADR 0007's bound from a tombstone to the value leaving the broker's log: the roll
    delay (longest segment lifetime + 60 s), rounded up to the hour, a sweep tick, and the
    cleaner's backoff (15 s) and pass; the lead leaves most of a day to spare."""
    settings = RetentionSettings.model_construct()
    roll = timedelta(seconds=settings.retention_roll_delay_seconds)
    bound = (
        roll
        + timedelta(seconds=settings.retention_roll_bucket_seconds)
        + timedelta(seconds=settings.retention_tick_seconds)
        + timedelta(seconds=15)
    )
    assert bound < timedelta(days=1, hours=2)
    assert bound < policy.DELETION_LEAD - timedelta(hours=12)


@pytest.mark.parametrize("topic", ["persons.approved", "escalations.approved"])
def test_an_end_date_in_the_record_ends_it_sooner_never_later(topic: str) -> None:
    provided = NOW - timedelta(days=10)
    soon = NOW + timedelta(days=20)
    assert policy.expires_at(topic, provided, {"valid_until": soon}) == soon
    late = provided + timedelta(days=700)
    assert policy.expires_at(topic, provided, {"valid_until": late}) == provided + timedelta(
        days=363
    )
    # no end date, an unreadable record, a naive or a wrong-typed value: the period alone
    for value in (None, {}, {"valid_until": None}, {"valid_until": "2027-01-01"}):
        assert policy.expires_at(topic, provided, value) == provided + timedelta(days=363)
    assert policy.expires_at(topic, provided, {"valid_until": soon.replace(tzinfo=None)}) == (
        provided + timedelta(days=363)
    )


def test_other_topics_ignore_an_end_date() -> None:
    provided = NOW - timedelta(days=10)
    value = {"valid_until": NOW}
    assert policy.expires_at("dagmonitor.entries", provided, value) == provided + timedelta(
        days=363
    )


def test_now_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        policy.is_expired(NOW, datetime(2027, 11, 28, 3, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        policy.expires_at("dagmonitor.entries", datetime(2027, 11, 28, 3, 0), None)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda rows: rows[1].__setitem__(2, "366"), "period_days must be 1..365"),
        (lambda rows: rows[1].__setitem__(2, "2"), "longer than the deletion lead"),
        (lambda rows: rows[1].__setitem__(2, "a year"), "whole number"),
        (lambda rows: rows[1].__setitem__(4, " "), "needs its purpose"),
        (lambda rows: rows.pop(1), "missing ['dagmonitor.entries']"),
        (lambda rows: rows.append(list(rows[1])), "has a row already"),
        (lambda rows: rows[1].__setitem__(0, "bvh.incidents"), "unknown ['bvh.incidents']"),
    ],
)
def test_a_bad_table_is_refused_naming_the_row(
    tmp_path: Path, edit: Callable[[list[list[str]]], None], message: str
) -> None:
    with policy.PERIODS_FILE.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    edit(rows)
    bad = tmp_path / "periods.csv"
    with bad.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    with pytest.raises(ValueError) as raised:
        policy.load_periods(bad)
    assert message in str(raised.value)


def test_retention_event_is_keyed_topic_colon_key_and_encodes() -> None:
    provided = Provided(
        "vehicles.signals", "PL0900-2026000009:0f3a9c2b44e1d7a0", NOW - timedelta(days=366)
    )
    assert provided.event_key == "vehicles.signals:PL0900-2026000009:0f3a9c2b44e1d7a0"
    value = provided.retention_event(NOW)
    assert value == {
        "topic": "vehicles.signals",
        "key": "PL0900-2026000009:0f3a9c2b44e1d7a0",
        "provided_at": NOW - timedelta(days=366),
        "deleted_at": NOW,
        "reason": "retention_365d",
    }
    codec = default_codec()
    assert codec.decode(codec.encode(RETENTION_EVENT, value)).record == value
    assert Provided("victims.approved", "req-1", NOW).retention_event(NOW)["reason"] == (
        "retention_90d"
    )


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
