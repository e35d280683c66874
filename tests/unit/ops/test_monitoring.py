"""The alert rules pass `promtool check` and their unit tests (`promtool test rules`); the local
Prometheus configuration is valid; the dashboards are well formed and name only real metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client import REGISTRY

from dagmonitor.settings import REPO_ROOT

MONITORING = REPO_ROOT / "deploy" / "monitoring"
RULES = MONITORING / "rules" / "dagmonitor.rules.yml"
RULE_TESTS = MONITORING / "rules" / "dagmonitor.rules.test.yml"
ASSUMED_RETENTION_METRICS = {
    # The retention service's names (issue 7 brief); its code defines them.
    "dagmonitor_retention_records_indexed_total",
    "dagmonitor_retention_expired_total",
    "dagmonitor_retention_tombstones_emitted_total",
    "dagmonitor_retention_oldest_provided_age_seconds",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: run scripts/bootstrap.sh (Debian: prometheus)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def _alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    names = {str(rule["alert"]) for rule in _alerts()}
    assert names == {
        "DagmonitorServiceDown",
        "DagmonitorServiceMissing",
        "DagmonitorConsumerLagGrowing",
        "DagmonitorCommittedWithoutOutput",
        "DagmonitorConsumerStalled",
        "DagmonitorStateRestoreSlow",
        "DagmonitorReportProvisional",
        "DagmonitorProvisionsHeld",
        "DagmonitorDeadLettersRising",
        "DagmonitorApprovalsWaitingTooLong",
        "DagmonitorMailsFailing",
        "DagmonitorMailsRetrying",
        "DagmonitorCovenantExpiring",
        "DagmonitorCovenantExpired",
        "DagmonitorMailsHeldOutsideTerm",
        "DagmonitorRetentionOverdue",
    }
    assert {c["alertname"] for c in cases if c.get("exp_alerts")} == names
    assert {c["alertname"] for c in cases if not c.get("exp_alerts")} == names
    for rule in _alerts():
        assert rule["labels"]["severity"] in {"warning", "critical"}  # type: ignore[index]
        assert {"summary", "description"} <= set(rule["annotations"])  # type: ignore[arg-type]


def test_local_prometheus_config_is_valid_and_scrapes_every_service() -> None:
    result = promtool("check", "config", str(MONITORING / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    jobs = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert jobs == {
        f"dagmonitor-{name}": [f"127.0.0.1:{port}"]
        for name, port in (
            ("ingest", 8081),
            ("classifier", 8082),
            ("approval", 8083),
            ("distributor", 8084),
            ("retention", 8085),
        )
    }


def _dashboards() -> dict[str, dict[str, object]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(MONITORING.glob("dashboards/*.json"))}


def _defined_metrics() -> set[str]:
    """Metric names the services' code registers (importing their metric modules)."""
    import dagmonitor.processor
    import dagmonitor.streaming  # noqa: F401
    import services.approval.metrics
    import services.distributor.metrics  # noqa: F401

    names = set()
    for family in REGISTRY.collect():
        names |= {family.name} | {sample.name for sample in family.samples}
        names |= {family.name + suffix for suffix in ("_total", "_bucket", "_count", "_sum")}
    return names


def test_dashboards_are_well_formed() -> None:
    boards = _dashboards()
    assert set(boards) == {"pipeline", "approvals", "distribution", "retention"}
    assert len({b["uid"] for b in boards.values()}) == 4
    for name, board in boards.items():
        panels = board["panels"]
        assert isinstance(panels, list) and panels, name
        assert len({p["id"] for p in panels}) == len(panels), name
        variables = [v["name"] for v in board["templating"]["list"]]  # type: ignore[index]
        assert variables == ["datasource"], name
        for panel in panels:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["description"] and panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                # Plain PromQL (no Grafana variables): the pipeline test runs it as it stands.
                assert "$" not in target["expr"], (name, panel["title"])


def test_dashboards_and_rules_name_only_metrics_the_code_defines() -> None:
    texts = [t["expr"] for b in _dashboards().values() for p in b["panels"] for t in p["targets"]]  # type: ignore[attr-defined]
    texts += [str(rule["expr"]) for rule in _alerts()]
    named = {n for text in texts for n in re.findall(r"\b(dagmonitor_[a-z_]+)\b", text)}
    unknown = named - _defined_metrics() - ASSUMED_RETENTION_METRICS
    assert unknown == set()
    assert named >= ASSUMED_RETENTION_METRICS


LABELS = {
    # What the dashboards and alerts group or filter by: ids of places in the pipeline, codes
    # and buckets. None of them can hold a name, address, plate or registration number.
    "job",
    "instance",
    "service",
    "topic",
    "partition",
    "stage",
    "reason",
    "approver_role",
    "age",
    "outcome",
    "result",
    "action",
    "category",
    "state",
    "kind",
    "le",
}


def test_queries_group_and_filter_only_by_labels_without_personal_data() -> None:
    texts = [t["expr"] for b in _dashboards().values() for p in b["panels"] for t in p["targets"]]  # type: ignore[attr-defined]
    texts += [str(rule["expr"]) for rule in _alerts()]
    used = set()
    for text in texts:
        for group in re.findall(r"\bby \(([^)]*)\)", text):
            used |= {label.strip() for label in group.split(",")}
        for selector in re.findall(r"\{([^}]*)\}", text):
            used |= set(re.findall(r"(\w+)\s*(?:=~|!=|!~|=)", selector))
    assert used - {"__name__"} <= LABELS
