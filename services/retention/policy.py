"""The covenant's retention rule, as data and one function. Pure: no I/O.

Provided data (verstrekte gegevens) is kept "niet langer dan noodzakelijk" and at most one
year after provision (covenant; ARCHITECTURE.md, sections 1 and 8). How long each kind of
record is necessary is the table ``periods.csv`` (one row per provided topic: the period in
days, at most 365; the field of the record whose date ends it sooner, if any; and the purpose
that justifies the period), which a policy officer can read and review. A record is *provided*
when it first appears under its key on one of the compacted output topics; ``provided_at`` is
that record's Kafka timestamp (docs/adr/0007-retention.md says why the first one, and why that
is never later than the mail that carried it).

A record's ``expires_at`` is the earlier of

- ``provided_at + period - DELETION_LEAD``: the sweep writes the tombstone this much before the
  period ends, so that Kafka's compaction has removed the value from the broker's disk by the
  end of the period (the bound of ADR 0007, about 1 day 1 hour, is below the lead; ADR 0019);
- the date in the record's ``ends_with`` field (an area ban's or an escalation's
  ``valid_until``), when the row names one and the record holds it.

It has expired at "now" when ``expires_at < now``: exactly at ``expires_at`` it stays (until the
next sweep); one millisecond later it goes.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from dagmonitor import deletion, topics

MAX_PERIOD = deletion.MAX_RETENTION
"""The covenant's maximum: "met een maximum van 1 jaar na verstrekking"."""

DELETION_LEAD = timedelta(days=2)
"""How long before a period's end the sweep tombstones a record, so that compaction has
removed it from the broker by the end (ADR 0007: about 1 day 1 h 2 min after a tombstone)."""

PERIODS_FILE = Path(__file__).with_name("periods.csv")


@dataclass(frozen=True, slots=True)
class Period:
    """One row of ``periods.csv``."""

    topic: str
    record: str
    period: timedelta
    ends_with: str | None
    purpose: str


def load_periods(path: Path = PERIODS_FILE) -> Mapping[str, Period]:
    """The table of retention periods by topic; a ``ValueError`` names the bad row."""
    rows: dict[str, Period] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            where = f"{path.name}, line {line}"
            topic = (row.get("topic") or "").strip()
            try:
                days = int(row.get("period_days") or "")
            except ValueError:
                raise ValueError(f"{where}: period_days must be a whole number") from None
            if not 1 <= days <= MAX_PERIOD.days:
                raise ValueError(f"{where}: period_days must be 1..{MAX_PERIOD.days}")
            if timedelta(days=days) <= DELETION_LEAD:
                raise ValueError(f"{where}: a period must be longer than the deletion lead")
            if topic in rows:
                raise ValueError(f"{where}: {topic!r} has a row already")
            if not (row.get("purpose") or "").strip():
                raise ValueError(f"{where}: every period needs its purpose")
            rows[topic] = Period(
                topic,
                (row.get("record") or "").strip(),
                timedelta(days=days),
                (row.get("ends_with") or "").strip() or None,
                (row.get("purpose") or "").strip(),
            )
    provided = {spec.name for spec in topics.compacted_outputs()}
    if set(rows) != provided:
        raise ValueError(
            f"{path.name} must have one row per provided topic: missing "
            f"{sorted(provided - set(rows))}, unknown {sorted(set(rows) - provided)}"
        )
    return MappingProxyType(rows)


PERIODS: Mapping[str, Period] = load_periods()

PROVIDED_TOPICS: Mapping[str, timedelta] = MappingProxyType(
    {spec.name: PERIODS[spec.name].period for spec in topics.compacted_outputs()}
)
"""Every topic whose records are provided data, with its retention period."""


def reason(topic: str) -> str:
    """``RetentionEvent.reason`` of a deletion by the sweep, e.g. ``retention_365d``."""
    return f"retention_{PERIODS[topic].period.days}d"


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("'now' must be timezone-aware")
    return now


def expires_at(topic: str, provided_at: datetime, value: Mapping[str, Any] | None) -> datetime:
    """When a record of ``topic`` first provided at ``provided_at`` must be gone (see above).

    ``value`` is the decoded record, or None when it could not be read: then only the period
    applies (an unreadable record never lives longer for it).
    """
    row = PERIODS[topic]
    end = _aware(provided_at) + row.period - DELETION_LEAD
    if row.ends_with is not None and value is not None:
        ends = value.get(row.ends_with)
        if isinstance(ends, datetime) and ends.tzinfo is not None:
            end = min(end, ends)
    return end


def is_expired(expires: datetime, now: datetime) -> bool:
    """Whether a record expiring at ``expires`` must be gone at ``now``."""
    return expires < _aware(now)


ROLL_KEY_PREFIX = "dagmonitor.retention.segment-roll."
"""Keys of the segment-roll markers (tombstones of keys that never carry a value)."""


def is_roll_marker(key: str) -> bool:
    """Whether ``key`` is one of the sweep's segment-roll markers, not a record."""
    return key.startswith(ROLL_KEY_PREFIX)


@dataclass(frozen=True, slots=True)
class Provided:
    """One index row: a provided record (topic without prefix, key, when first provided, and
    when it expires: by default its topic's period alone)."""

    topic: str
    key: str
    provided_at: datetime
    expires_at: datetime = None  # type: ignore[assignment]  # set in __post_init__

    def __post_init__(self) -> None:
        if self.expires_at is None:
            object.__setattr__(self, "expires_at", expires_at(self.topic, self.provided_at, None))

    @property
    def event_key(self) -> str:
        """The key of its ``retention.events`` record (topic + ":" + key)."""
        return f"{self.topic}:{self.key}"

    def retention_event(self, deleted_at: datetime) -> dict[str, Any]:
        """The ``RetentionEvent`` value that records its deletion at ``deleted_at``."""
        return {
            "topic": self.topic,
            "key": self.key,
            "provided_at": self.provided_at,
            "deleted_at": deleted_at,
            "reason": reason(self.topic),
        }
