"""The retention service's exceptions. Messages name topics and counts, never keys or values."""

from __future__ import annotations

from dagmonitor.errors import DagmonitorError


class RetentionError(DagmonitorError):
    """Root of the retention service's errors."""


class SweepFailed(RetentionError):
    """A sweep stopped half-way (Kafka or PostgreSQL unreachable). What it finished stays
    finished; running the sweep again completes it."""
