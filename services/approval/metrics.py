"""Prometheus metrics of the approval service. Labels are roles, outcomes and buckets only."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from services.approval.domain import AGE_BUCKETS, ApproverRole, AuditEntry, Decision

APPROVALS_PENDING = Gauge(
    "dagmonitor_approvals_pending",
    "Pending approval requests, by approver role and age bucket.",
    ["approver_role", "age"],
)
DECISIONS = Counter(
    "dagmonitor_approval_decisions_total",
    "Final decisions taken, by outcome (APPROVED, REJECTED, EXPIRED).",
    ["outcome"],
)
OUTBOX_BACKLOG = Gauge(
    "dagmonitor_approval_outbox_backlog",
    "Outbox records written but not yet published to Kafka.",
)
OUTBOX_OLDEST_SECONDS = Gauge(
    "dagmonitor_approval_outbox_oldest_seconds",
    "Age of the oldest unpublished outbox record (0 when none).",
)
AUDIT_ROWS = Counter(
    "dagmonitor_approval_audit_rows_total",
    "Rows appended to the audit log, by action.",
    ["action"],
)
REQUESTS_STORED = Counter(
    "dagmonitor_approval_requests_stored_total",
    "Approval requests consumed, by result (stored, duplicate, erased).",
    ["result"],
)


def set_pending(counts: dict[tuple[ApproverRole, str], int]) -> None:
    """Set every (role, bucket) cell, zero where nothing is pending, so none goes stale."""
    for role in ApproverRole:
        for label, _ in AGE_BUCKETS:
            APPROVALS_PENDING.labels(role.value, label).set(counts.get((role, label), 0))


def count_decision(decision: Decision, audit: AuditEntry) -> None:
    """Count a committed decision and its audit row."""
    DECISIONS.labels(decision.outcome.value).inc()
    AUDIT_ROWS.labels(audit.action.value).inc()
