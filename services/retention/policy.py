"""The covenant's retention rule, as data and one function. Pure: no I/O.

Provided data (verstrekte gegevens) is kept no longer than necessary and at most one year
after provision (covenant; ARCHITECTURE.md, sections 1 and 8). A record is *provided* when it
first appears under its key on one of the compacted output topics; ``provided_at`` is that
record's Kafka timestamp (docs/adr/0007-retention.md says why the first one, and why that is
never later than the mail that carried it).

A record expires when it was provided **more than** 365 days before "now":
``provided_at < now - 365 days``. Provided exactly 365 days ago: it stays (until the next
sweep); 365 days and one millisecond ago: it goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from dagmonitor import topics

RETENTION_PERIOD = timedelta(days=365)
"""At most one year after provision (bewaartermijn); the topics keep 366 days as a safety net."""

REASON = "retention_365d"
"""``RetentionEvent.reason`` of a deletion by the sweep."""

PROVIDED_TOPICS: Mapping[str, timedelta] = MappingProxyType(
    {spec.name: RETENTION_PERIOD for spec in topics.compacted_outputs()}
)
"""Every topic whose records are provided data, with its retention period (all 365 days)."""

ROLL_KEY_PREFIX = "dagmonitor.retention.segment-roll."
"""Keys of the segment-roll markers (tombstones of keys that never carry a value)."""


def cutoff(now: datetime) -> datetime:
    """Records provided strictly before this instant have expired at ``now`` (aware)."""
    if now.tzinfo is None:
        raise ValueError("'now' must be timezone-aware")
    return now - RETENTION_PERIOD


def is_expired(provided_at: datetime, now: datetime) -> bool:
    """Whether a record provided at ``provided_at`` must be gone at ``now``."""
    return provided_at < cutoff(now)


def is_roll_marker(key: str) -> bool:
    """Whether ``key`` is one of the sweep's segment-roll markers, not a record."""
    return key.startswith(ROLL_KEY_PREFIX)


@dataclass(frozen=True, slots=True)
class Provided:
    """One index row: a provided record (topic without prefix, key, when first provided)."""

    topic: str
    key: str
    provided_at: datetime

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
            "reason": REASON,
        }
