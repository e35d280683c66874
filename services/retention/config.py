"""Settings of the retention service (ARCHITECTURE.md, section 8).

Environment variables (prefix ``DAGMONITOR_``), besides the shared ones:

- ``DAGMONITOR_RETENTION_SWEEP_TIME`` (``03:00``) and ``DAGMONITOR_RETENTION_TIMEZONE``
  (``Europe/Amsterdam``): when the daily sweep runs, in local wall-clock time;
- ``DAGMONITOR_RETENTION_BATCH_SIZE`` (1000): records per sweep transaction;
- ``DAGMONITOR_RETENTION_ROLL_DELAY_SECONDS``: how long after a tombstone the service appends a
  segment-roll marker to the topic's partitions, so that compaction can remove the tombstoned
  value (docs/adr/0007-retention.md); by default the longest segment lifetime of the compacted
  topics in the topic table plus a minute. Lower it only together with the topics' configs.
- ``DAGMONITOR_RETENTION_TICK_SECONDS`` (60): how often the service looks for an expired record
  (and sweeps at once when there is one), a due daily sweep or segment roll, and refreshes
  its gauges.

The retention period itself (365 days) is the covenant's, not a setting: see ``policy.py``.
"""

from __future__ import annotations

from datetime import time
from zoneinfo import ZoneInfo

from pydantic import Field

from dagmonitor import topics
from dagmonitor.settings import ServiceSettings, TimeZoneName, owned_schema, service_port


def _longest_segment_lifetime_seconds() -> float:
    """How long a compacted topic's active segment may stay open at most (topic table)."""
    lifetimes = []
    for spec in topics.compacted_outputs():
        configs = spec.configs()
        segment_ms = int(configs["segment.ms"])
        lag_ms = int(configs.get("max.compaction.lag.ms", segment_ms))
        lifetimes.append(min(segment_ms, lag_ms))
    return max(lifetimes) / 1000


DEFAULT_ROLL_DELAY_SECONDS = _longest_segment_lifetime_seconds() + 60


class RetentionSettings(ServiceSettings):
    """What the retention service and ``dagmonitor retention sweep`` read."""

    http_port: int = service_port(8085)
    db_schema: str = owned_schema("retention")
    """The index of provided records."""
    retention_sweep_time: time = Field(
        default=time(3, 0), description="Local time of the daily sweep."
    )
    retention_timezone: TimeZoneName = Field(default="Europe/Amsterdam")
    retention_batch_size: int = Field(
        default=1000, ge=1, le=50_000, description="Expired records per sweep transaction."
    )
    retention_roll_delay_seconds: float = Field(
        default=DEFAULT_ROLL_DELAY_SECONDS,
        gt=0,
        description="Delay from a tombstone to the segment-roll marker on its topic.",
    )
    retention_roll_bucket_seconds: float = Field(
        default=3600,
        gt=0,
        description="Tombstones are grouped into one roll per topic per bucket of this length.",
    )
    retention_tick_seconds: float = Field(default=60, gt=0)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.retention_timezone)
