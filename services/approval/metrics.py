"""Prometheus metrics of the approval service. Labels are roles, outcomes and buckets only."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from dagmonitor.gates import CONSENT_CATEGORIES, GateCategory
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
STEPS = Counter(
    "dagmonitor_approval_steps_total",
    "Approvals of a chain's earlier step that passed the request on, by the approving role.",
    ["approver_role"],
)
CONSENTS_IN_FORCE = Gauge(
    "dagmonitor_approval_consents_in_force",
    "1 while the OM's standing consent of the category is in force, else 0.",
    ["category"],
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
    """Count a committed decision (or a chain's step) and its audit row."""
    if decision.final:
        DECISIONS.labels(decision.outcome.value).inc()
    else:
        STEPS.labels(decision.approver_role.value).inc()
    AUDIT_ROWS.labels(audit.action.value).inc()


def set_consents_in_force(in_force: set[GateCategory]) -> None:
    """Set every consent category's cell, so a revoked or lapsed consent shows as 0."""
    for category in CONSENT_CATEGORIES:
        CONSENTS_IN_FORCE.labels(category.value).set(1 if category in in_force else 0)


REFUSED_OUTSIDE_TERM = Counter(
    "dagmonitor_approval_refused_outside_term_total",
    "Views, decisions and consent grants refused because the covenant is not in force.",
)
COVENANT_EVENTS = Counter(
    "dagmonitor_covenant_events_total",
    "Renewals and early ends of the covenant recorded, and renewals refused, by outcome.",
    ["outcome"],
)
