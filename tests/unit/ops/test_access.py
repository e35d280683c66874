"""The ACL table (deploy/k8s/access.py) against what each service's code reads and writes."""

from __future__ import annotations

from datetime import date

import pytest
import yaml

from dagmonitor import topics
from dagmonitor.codec import INCIDENT_EVENT, PERSON_NOTICE
from dagmonitor.deadletter import TOPIC as DEAD_LETTERS
from dagmonitor.jsonio import record_from_json
from dagmonitor.processor import StreamProcessor
from dagmonitor_cli.generate import Generator
from deploy.k8s.access import ACCESS, BY_SERVICE
from deploy.k8s.generate import BASE
from services.classifier.annex import load_annex
from services.classifier.policy import (
    ENTRIES,
    REQUESTS,
    VEHICLES,
    PolicyConfig,
    classify_incident,
    classify_notice,
)


@pytest.fixture(scope="module")
def apps() -> dict[str, StreamProcessor]:
    """The stream processors of the stateful services, built (never started)."""
    from services.classifier.app import Classifier
    from services.classifier.config import ClassifierSettings
    from services.ingest.app import Ingest
    from services.ingest.config import IngestSettings

    return {
        "ingest": Ingest(IngestSettings()).processor,
        "classifier": Classifier(ClassifierSettings()).processor,
    }


def _consumed(processor: StreamProcessor) -> set[str]:
    """The contract topics the processor subscribes to (its internal topics excluded)."""
    return processor.consumed()


def test_every_service_has_one_row_and_only_table_topics() -> None:
    assert [row.service for row in ACCESS] == [
        "ingest",
        "classifier",
        "approval",
        "distributor",
        "retention",
    ]
    for row in ACCESS:
        assert row.reads | row.writes <= set(topics.BY_NAME), row.service


def test_ingest_reads_the_police_topics_and_writes_their_validated_copies(apps: dict) -> None:
    from services.ingest.app import PHOTOS_TOPIC
    from services.ingest.pipeline import KINDS, MUNICIPAL

    row = BY_SERVICE["ingest"]
    kinds = (*KINDS, MUNICIPAL)
    assert row.reads == _consumed(apps["ingest"]) == {k.source for k in kinds}
    # HTTP POSTs are published to bvh.* / municipal.reports (as the submitting system would),
    # then validated onwards; photos PUT over HTTP are checked there and go to ingest.photos.
    assert row.writes == {k.target for k in kinds} | {k.source for k in kinds} | {
        DEAD_LETTERS,
        PHOTOS_TOPIC,
    }
    assert apps["ingest"].group == "dagmonitor-ingest"


def test_classifier_writes_exactly_what_the_policy_outputs(apps: dict) -> None:
    row = BY_SERVICE["classifier"]
    assert row.reads == _consumed(apps["classifier"])
    generator = Generator(seed=3, day=date(2026, 11, 27))
    policy = PolicyConfig("GM0344", frozenset({"WK034405", "WK034402"}), b"k")
    produced: set[str] = set()
    for line in generator.incidents(600):
        record = record_from_json(INCIDENT_EVENT, line)
        decision = classify_incident(record, policy, load_annex(), now=record["reported_at"])
        produced |= {o.topic for o in decision.outputs}
    for line in generator.notices(20):
        record = record_from_json(PERSON_NOTICE, line)
        produced |= {
            o.topic for o in classify_notice(record, policy, now=record["valid_from"]).outputs
        }
    assert produced == {ENTRIES, VEHICLES, REQUESTS}
    assert row.writes == produced | {DEAD_LETTERS}


def test_approval_consumes_requests_and_publishes_its_outbox() -> None:
    from services.approval.app import REQUESTS_TOPIC
    from services.approval.outbox import RELAY_TOPICS
    from services.approval.workflow import PROVISIONS_TOPIC

    row = BY_SERVICE["approval"]
    # The relay's recovery reads back what it published.
    assert row.reads == {REQUESTS_TOPIC, PROVISIONS_TOPIC, *RELAY_TOPICS}
    assert row.writes == {*RELAY_TOPICS, DEAD_LETTERS}


def test_distributor_consumes_what_it_mails_and_publishes_provisions() -> None:
    from services.distributor.intake import TOPICS
    from services.distributor.relay import TOPIC as PROVISIONS

    row = BY_SERVICE["distributor"]
    assert row.reads == {*TOPICS, PROVISIONS}
    assert row.writes == {PROVISIONS, DEAD_LETTERS}


def test_retention_indexes_and_tombstones_every_provided_topic() -> None:
    from services.retention.policy import PROVIDED_TOPICS
    from services.retention.publisher import EVENTS_TOPIC

    row = BY_SERVICE["retention"]
    assert set(PROVIDED_TOPICS) == {spec.name for spec in topics.compacted_outputs()}
    assert row.reads == set(PROVIDED_TOPICS)
    # Tombstones (and segment-roll markers) go back on the provided topics.
    assert row.writes == set(PROVIDED_TOPICS) | {EVENTS_TOPIC, DEAD_LETTERS}


def test_each_kafka_user_grants_exactly_its_row() -> None:
    for row in ACCESS:
        (user,) = yaml.safe_load_all((BASE / row.service / "kafkauser.yaml").read_text())
        assert user["metadata"]["name"] == f"dagmonitor-{row.service}"
        acls = user["spec"]["authorization"]["acls"]
        granted = {
            (a["resource"]["type"], a["resource"]["name"], op)
            for a in acls
            for op in a["operations"]
        }
        assert all(a["resource"]["patternType"] == "literal" for a in acls), "no wildcards"
        table = {t for t in row.reads | row.writes}
        named = {name for kind, name, _ in granted if kind == "topic"}
        internal = {n for n in named if n.startswith(f"dagmonitor-{row.service}-")}
        assert named - internal == table | row.describes
        for topic in table | row.describes:
            assert (("topic", topic, "Read") in granted) == (topic in row.reads)
            assert (("topic", topic, "Write") in granted) == (topic in row.writes)
        for topic in row.describes - table:
            assert {op for _, n, op in granted if n == topic} == {"Describe"}
        assert {(k, n) for k, n, _ in granted if k == "group"} == {
            ("group", f"dagmonitor-{row.service}")
        } | {("group", f"dagmonitor-{s}") for s in row.describes_groups}
        for service in row.describes_groups:
            assert {op for k, n, op in granted if n == f"dagmonitor-{service}"} == {"Describe"}
        assert {op for _, _, op in granted} <= {"Read", "Write", "Describe"}


def test_external_principals_have_exactly_their_covenant_rights() -> None:
    from deploy.k8s.access import (
        ADMIN,
        BY_PRINCIPAL,
        MUNICIPAL_REPORTING,
        POLICE_PUBLISHER,
        SUBSCRIBER,
        TESTS,
        acl_rules,
    )

    def rights(principal: str) -> set[tuple[str, str, str, str]]:
        return {
            (rule.resource.value, rule.name, rule.pattern.value, op.value)
            for rule in acl_rules(BY_PRINCIPAL[principal], "gm.")
            for op in rule.operations
        }

    assert rights(POLICE_PUBLISHER) == {
        ("topic", f"gm.{t}", "literal", op)
        for t in ("bvh.incidents", "bvh.persons")
        for op in ("Write", "Describe")
    }
    assert rights(MUNICIPAL_REPORTING) == {
        ("topic", "gm.municipal.reports", "literal", op) for op in ("Write", "Describe")
    }
    # No personal data by subscription: persons, victims, plates stay on the e-mail channel.
    assert rights(SUBSCRIBER) == {
        ("topic", f"gm.{t}", "literal", op)
        for t in ("dagmonitor.entries", "escalations.approved")
        for op in ("Read", "Describe")
    } | {("group", "gm.dagmonitor-subscriber-", "prefixed", "Read")}
    assert ("cluster", "kafka-cluster", "literal", "All") in rights(ADMIN)
    # The test suite's rights ignore the deployment prefix and stop at "test-".
    assert {name for _kind, name, _pattern, _op in rights(TESTS)} == {"test-"}


def test_every_principal_has_a_kafka_user_but_the_test_suites() -> None:
    from deploy.k8s.access import EXTERNAL

    documents = list(yaml.safe_load_all((BASE / "principals" / "kafkausers.yaml").read_text()))
    names = {doc["metadata"]["name"] for doc in documents}
    assert names == {row.principal for row in EXTERNAL if not row.local_only}
    assert "dagmonitor-tests" not in names


def test_publish_connects_as_the_police_publisher() -> None:
    import inspect

    from deploy.k8s.access import POLICE_PUBLISHER
    from services.ingest import cli

    # services/ cannot import deploy/ (the image has no deploy/): the name is spelled there.
    assert f'default_principal("{POLICE_PUBLISHER}")' in inspect.getsource(cli.publish.callback)  # type: ignore[arg-type]


def test_service_verbs_connect_as_their_services_principal() -> None:
    import inspect

    from services.distributor import cli as distributor
    from services.retention import cli as retention

    for module, service in ((distributor, "distributor"), (retention, "retention")):
        principal = BY_SERVICE[service].principal
        assert f'default_principal("{principal}")' in inspect.getsource(module), service
