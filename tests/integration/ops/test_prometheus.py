"""A real Prometheus scrapes the running services during a pipeline run (conftest.py): every
dashboard query and alert expression is valid and returns data where data is expected, the alert
rules load, and the alerts that should fire do (and only those)."""

from __future__ import annotations

from collections import defaultdict

import pytest
from prometheus_client.parser import text_string_to_metric_families

from deploy.k8s.access import BY_SERVICE
from deploy.k8s.generate import all_internal_topics
from tests.integration.ops.conftest import (
    COVENANT_DAYS_LEFT,
    SERVICES,
    PipelineRun,
    alert_rules,
    dashboard_targets,
)

pytestmark = pytest.mark.integration

RETENTION_METRICS = {
    "dagmonitor_retention_records_indexed_total",
    "dagmonitor_retention_expired_total",
    "dagmonitor_retention_tombstones_emitted_total",
    "dagmonitor_retention_oldest_provided_age_seconds",
    "dagmonitor_retention_overdue_seconds",
}
UNDELIVERABLE = "dagmonitor_distributor_undeliverable_total"
"""Counted (first created) only for a report that no configured recipient is entitled to."""
NOT_RUNNING = "the retention service is not started in this run"
MAY_BE_EMPTY = {
    "retention: Oldest provided record (days) [A]": NOT_RUNNING,
    "retention: Days until the oldest expires [A]": NOT_RUNNING,
    "retention: Records indexed per second [A]": NOT_RUNNING,
    "retention: Expired per day [A]": NOT_RUNNING,
    "retention: Tombstones emitted per day [A]": NOT_RUNNING,
    "retention: Oldest provided record age [A]": NOT_RUNNING,
    "distribution: Provisions held back [B]": "counted only for a report nobody is entitled to",
}
CONSUMED = {
    "ingest": {"bvh.incidents", "bvh.persons", "municipal.reports"},
    "classifier": {
        "ingest.incidents",
        "ingest.persons",
        "ingest.municipal",
        "escalations.approved",
        "e35-by-postcode",  # its internal topic, keyed by postcode
    },
    # the provision register: which covenant evaluations were sent (a renewal needs one)
    "approval": {"approval.requests", "distribution.provisions"},
    "distributor": {
        "dagmonitor.entries",
        "persons.approved",
        "victims.approved",
        "vehicles.signals",
        "approval.consents",
        "ingest.photos",
        "covenant.term",
        # counted for the covenant's evaluation report
        "approval.decisions",
        "pipeline.deadletter",
        "retention.events",
    },
}
"""The topics each service consumes as a group (not those it only reads back to recover)."""
ALERTS_EXPECTED_EMPTY = {
    # Healthy run: nothing down, behind, failing or overdue.
    "DagmonitorServiceDown",
    "DagmonitorConsumerLagGrowing",
    "DagmonitorApprovalsWaitingTooLong",
    "DagmonitorMailsFailing",
    "DagmonitorMailsRetrying",
    "DagmonitorCovenantExpired",
    "DagmonitorRetentionOverdue",
}


def test_the_run_stays_within_its_budget(pipeline_run: PipelineRun) -> None:
    assert pipeline_run.seconds < 110, f"the pipeline run took {pipeline_run.seconds:.0f} s"
    assert pipeline_run.decisions >= 2
    assert pipeline_run.mails >= 8, "daily reports (2 runs x 3 roles) and notices"


def test_every_dashboard_query_is_valid_and_has_data(pipeline_run: PipelineRun) -> None:
    panels = {p.where: p for p in pipeline_run.panels}
    assert len(panels) == len(dashboard_targets()) >= 30
    errors = {p.where: p.error for p in panels.values() if p.status != "success"}
    assert errors == {}
    empty = {p.where for p in panels.values() if p.series == 0}
    assert empty <= set(MAY_BE_EMPTY), f"no data: {sorted(empty - set(MAY_BE_EMPTY))}"
    assert panels["retention: Oldest provided record age [B]"].series == 1, "the 365-day line"


def test_every_alert_rule_loads_evaluates_and_reads_real_metrics(pipeline_run: PipelineRun) -> None:
    rules = {r["name"]: r for r in pipeline_run.rules if r["type"] == "alerting"}
    assert set(rules) == {rule["alert"] for rule in alert_rules()}
    assert {name: r["health"] for name, r in rules.items()} == dict.fromkeys(rules, "ok")
    assert all(not r.get("lastError") for r in rules.values())
    assert [e.where for e in pipeline_run.alert_exprs if e.status != "success"] == []
    # Each metric an expression names exists, so no alert is silent because of a typo.
    missing = {n for n, count in pipeline_run.metric_presence.items() if count == 0}
    allowed = RETENTION_METRICS | {UNDELIVERABLE}
    assert missing <= allowed, sorted(missing - allowed)


def _active(alerts: list[dict[str, object]]) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = defaultdict(list)
    for alert in alerts:
        labels = alert["labels"]
        assert isinstance(labels, dict)
        found[labels["alertname"]].append({**labels, "state": str(alert["state"])})
    return found


def test_the_alerts_that_should_fire_do(pipeline_run: PipelineRun) -> None:
    active = _active(pipeline_run.alerts_before_kill)
    reasons = {a["reason"] for a in active["DagmonitorDeadLettersRising"] if a["state"] == "firing"}
    assert reasons == {"invalid_timestamp", "truncated", "not_avro"}, active
    assert {a["service"] for a in active["DagmonitorDeadLettersRising"]} == {"ingest"}
    (covenant,) = active["DagmonitorCovenantExpiring"]
    assert covenant["state"] == "firing" and covenant["job"] == "dagmonitor-distributor"
    expiring = next(
        a
        for a in pipeline_run.alerts_before_kill
        if a["labels"]["alertname"] == "DagmonitorCovenantExpiring"
    )
    assert float(expiring["value"]) == COVENANT_DAYS_LEFT
    assert [a["job"] for a in active["DagmonitorServiceMissing"]] == ["dagmonitor-retention"]
    assert set(active) & ALERTS_EXPECTED_EMPTY == set(), active


def test_a_killed_service_is_seen_down(pipeline_run: PipelineRun) -> None:
    active = _active(pipeline_run.alerts_after_kill)
    assert [(a["job"], a["state"]) for a in active["DagmonitorServiceDown"]] == [
        ("dagmonitor-ingest", "pending")
    ]


def _samples(text: str, name: str) -> dict[str, float]:
    """topic (or reason) -> value of one counter in a /metrics text."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                key = sample.labels.get("topic") or sample.labels["reason"]
                values[key] = values.get(key, 0.0) + sample.value
    return values


def test_each_service_exports_lag_and_latency(pipeline_run: PipelineRun) -> None:
    for service, text in pipeline_run.metrics.items():
        families = {f.name: f for f in text_string_to_metric_families(text)}
        lag = {s.labels["topic"] for s in families["dagmonitor_consumer_lag"].samples}
        assert lag == CONSUMED[service], service
        latency = families["dagmonitor_processing_seconds"].samples
        assert {s.labels["service"] for s in latency} == {service}
        assert any(s.name.endswith("_count") and s.value > 0 for s in latency), service


def test_the_acl_table_allows_what_each_service_did(pipeline_run: PipelineRun) -> None:
    """What the services counted as consumed and produced is within their KafkaUser's ACLs."""
    for service in SERVICES:
        text = pipeline_run.metrics[service]
        row = BY_SERVICE[service]
        # Internal topics carry the consumer group: dagmonitor-<service>-<name>.
        own = {
            t.name.removeprefix(f"dagmonitor-{service}-")
            for t in all_internal_topics()
            if t.service == service
        }
        read = {t for t, n in _samples(text, "dagmonitor_records_in_total").items() if n}
        wrote = {t for t, n in _samples(text, "dagmonitor_records_out_total").items() if n}
        if any(_samples(text, "dagmonitor_dead_letters_total").values()):
            wrote.add("pipeline.deadletter")
        assert read, f"{service} consumed nothing"
        assert read <= row.reads | own, (service, read - row.reads)
        assert wrote <= row.writes | own, (service, wrote - row.writes)
