"""The retention service's Prometheus metrics. Labels are contract topic names only (never keys).

``dagmonitor_retention_oldest_provided_age_seconds`` is what an alert compares with 365 days
(31,536,000 s): above it, a provided record outlived the covenant's period (the sweep did not
run, or failed). ``dagmonitor_retention_last_sweep_timestamp_seconds`` tells when it last ran.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.retention.policy import PROVIDED_TOPICS

RECORDS_INDEXED = Counter(
    "dagmonitor_retention_records_indexed_total",
    "Provided records consumed into the index, by topic and outcome (new: a row was added; "
    "known: the key was indexed already and keeps its first provision time).",
    ["topic", "outcome"],
)
RECORDS_WITHDRAWN = Counter(
    "dagmonitor_retention_records_withdrawn_total",
    "Index rows removed because a tombstone from elsewhere (e.g. a police withdrawal) arrived "
    "before the record expired, by topic.",
    ["topic"],
)
RECORDS_EXPIRED = Counter(
    "dagmonitor_retention_expired_total",
    "Records the sweep deleted because they were provided more than 365 days ago, by topic.",
    ["topic"],
)
TOMBSTONES_EMITTED = Counter(
    "dagmonitor_retention_tombstones_emitted_total",
    "Tombstones the sweep wrote (acknowledged by the broker), by topic; a sweep retried after "
    "an interruption may write a record's tombstone again.",
    ["topic"],
)
SEGMENT_ROLLS = Counter(
    "dagmonitor_retention_segment_rolls_total",
    "Segment-roll markers appended so that compaction removes tombstoned values, by topic.",
    ["topic"],
)
OLDEST_PROVIDED_AGE = Gauge(
    "dagmonitor_retention_oldest_provided_age_seconds",
    "Age of the oldest record in the index of provided records (0 when the index is empty); "
    "at most 365 days, the longest period.",
)
OVERDUE = Gauge(
    "dagmonitor_retention_overdue_seconds",
    "How long ago the first indexed record expired (0 when none has): above a few sweep "
    "ticks, a record is kept past its retention period; alert.",
)
LAST_SWEEP = Gauge(
    "dagmonitor_retention_last_sweep_timestamp_seconds",
    "Unix time at which the last sweep of this process finished.",
)
SWEEP_SECONDS = Histogram(
    "dagmonitor_retention_sweep_seconds",
    "Duration of one sweep (all batches).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)

# Every topic's series exists from the start (at 0), so the first expiry shows as an increase.
for _topic in PROVIDED_TOPICS:
    RECORDS_EXPIRED.labels(_topic)
    TOMBSTONES_EMITTED.labels(_topic)
    RECORDS_WITHDRAWN.labels(_topic)
