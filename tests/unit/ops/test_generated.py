"""The generated manifests agree with the code they come from: the topic table and the faust
apps (KafkaTopic), the ACL table (KafkaUser), the alert rules and the dashboards."""

from __future__ import annotations

import json
from typing import Any

import yaml

from dagmonitor import topics
from deploy.k8s.generate import BASE, MONITORING, REPLICAS, main, render_all, resource_name


def _topics_yaml() -> dict[str, dict[str, Any]]:
    documents = yaml.safe_load_all((BASE / "kafka" / "topics.yaml").read_text())
    return {d["spec"]["topicName"]: d for d in documents}


def test_every_generated_file_is_what_the_code_gives() -> None:
    stale = [str(p) for p, text in render_all().items() if not p.is_file() or p.read_text() != text]
    assert stale == [], "run `python -m deploy.k8s.generate`"
    assert main(["--check"]) == 0


def test_a_kafka_topic_per_row_of_the_topic_table() -> None:
    found = _topics_yaml()
    for spec in topics.TOPICS:
        topic = found[spec.name]
        assert topic["kind"] == "KafkaTopic"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "dagmonitor"
        assert topic["spec"]["partitions"] == spec.partitions
        assert topic["spec"]["replicas"] == REPLICAS
        assert topic["spec"]["config"] == spec.configs()
    table = {d for d, t in found.items() if "dagmonitor.nl/topic-table" in t["metadata"]["labels"]}
    assert table == {spec.name for spec in topics.TOPICS}


def test_internal_topics_are_declared_too() -> None:
    """Changelogs are <group>-<table>-changelog, compacted and bounded like the outputs; the
    classifier's E35 repartition topic is <group>-e35-by-postcode."""
    found = _topics_yaml()
    changelogs = {
        "dagmonitor-ingest": ("incident-versions", "notice-versions"),
        "dagmonitor-classifier": (
            "incident-outputs",
            "notice-outputs",
            "municipal-reports",
            "e35-windows",
        ),
    }
    expected = {
        f"{group}-{table}-changelog": "compact,delete"
        for group, tables in changelogs.items()
        for table in tables
    }
    expected["dagmonitor-classifier-e35-by-postcode"] = "delete"
    internal = {
        n for n, t in found.items() if "dagmonitor.nl/internal-of" in t["metadata"]["labels"]
    }
    assert internal == set(expected)
    for name, cleanup in expected.items():
        assert found[name]["spec"]["config"].get("cleanup.policy") == cleanup
    # Co-partitioning: a changelog has its table's source topic's partitions.
    assert found["dagmonitor-ingest-incident-versions-changelog"]["spec"]["partitions"] == 6
    assert (
        found["dagmonitor-classifier-e35-windows-changelog"]["spec"]["partitions"]
        == (found["dagmonitor-classifier-e35-by-postcode"]["spec"]["partitions"])
        == topics.get("escalations.approved").partitions
    )


def test_resource_names_are_valid_kubernetes_names() -> None:
    for name in _topics_yaml().values():
        metadata_name = name["metadata"]["name"]
        assert metadata_name == resource_name(metadata_name)
        assert len(metadata_name) <= 253


def test_prometheus_rule_carries_the_alert_rules() -> None:
    (rule,) = yaml.safe_load_all((BASE / "monitoring" / "prometheusrule.yaml").read_text())
    source = yaml.safe_load((MONITORING / "rules" / "dagmonitor.rules.yml").read_text())
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == source["groups"]


def test_dashboards_are_config_maps_for_the_grafana_sidecar() -> None:
    maps = list(yaml.safe_load_all((BASE / "monitoring" / "dashboards.yaml").read_text()))
    boards = sorted(MONITORING.joinpath("dashboards").glob("*.json"))
    assert len(maps) == len(boards) == 4
    for config_map, path in zip(maps, boards, strict=True):
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(config_map["data"][path.name]) == json.loads(path.read_text())
