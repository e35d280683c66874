"""The topic table against the contract (ARCHITECTURE.md, section 3), row by row."""

from __future__ import annotations

import pytest

from dagmonitor import topics
from dagmonitor.topics import DAY_MS, TOPICS, Cleanup

# (topic, key, schema's record name, cleanup, retention days), from the contract, with the time
# retentions shortened so that no topic keeps a record past 365 days (ADR 0019).
CONTRACT = [
    ("bvh.incidents", "registration_number", "IncidentEvent", "delete", 7),
    ("bvh.persons", "notice_id", "PersonNotice", "delete", 7),
    ("municipal.reports", "report_id", "MunicipalReport", "delete", 14),
    ("ingest.incidents", "registration_number", "IncidentEvent", "delete", 7),
    ("ingest.persons", "notice_id", "PersonNotice", "delete", 7),
    ("ingest.municipal", "report_id", "MunicipalReport", "delete", 14),
    ("ingest.photos", "photo_id", "Photo", "delete", 14),
    ("pipeline.deadletter", "source key", "DeadLetter", "delete", 7),
    ("dagmonitor.entries", "registration_number", "DagmonitorEntry", "compact,delete", 364),
    (
        "vehicles.signals",
        'registration_number + ":" + plate_ref',
        "VehicleSignal",
        "compact,delete",
        364,
    ),
    ("approval.requests", "request_id", "ApprovalRequest", "compact,delete", 364),
    ("approval.decisions", "request_id", "ApprovalDecision", "delete", 364),
    ("persons.approved", "request_id", "ApprovedPerson", "compact,delete", 364),
    ("victims.approved", "request_id", "ApprovedVictim", "compact,delete", 364),
    ("escalations.approved", "postcode", "Escalation", "compact,delete", 364),
    ("approval.consents", "category", "Consent", "compact", 366),
    ("covenant.term", "start_date", "CovenantTerm", "compact", 366),
    ("distribution.provisions", "provision_id", "Provision", "delete", 364),
    ("retention.events", 'topic + ":" + key', "RetentionEvent", "delete", 7),
]


def test_table_holds_exactly_the_contract_topics_in_order() -> None:
    assert [spec.name for spec in TOPICS] == [row[0] for row in CONTRACT]


@pytest.mark.parametrize(("name", "key", "record", "cleanup", "days"), CONTRACT)
def test_row_matches_contract(name: str, key: str, record: str, cleanup: str, days: int) -> None:
    spec = topics.get(name)
    assert spec.key == key
    assert spec.schema.rsplit(".", 1)[1] == record
    assert spec.cleanup.value == cleanup
    configs = spec.configs()
    assert configs["cleanup.policy"] == cleanup
    assert configs["retention.ms"] == str(days * DAY_MS)
    assert spec.partitions >= 1


@pytest.mark.parametrize("spec", TOPICS + topics.INTERNAL_TOPICS, ids=lambda s: s.name)
def test_no_topic_keeps_a_record_longer_than_365_days(spec: topics.TopicSpec) -> None:
    """Time retention plus the segment's lifetime: the longest a record stays on the broker.

    Compact-only topics (the OM's consents, the covenant's term) hold no citizen's data and
    must never lapse by age."""
    life = spec.longest_life_ms
    if spec.cleanup is Cleanup.COMPACT:
        assert life is None
        assert "approved" not in spec.name and spec.owner is None
        return
    assert life is not None
    assert life <= 365 * DAY_MS, f"{spec.name}: {life / DAY_MS:.2f} days"
    assert spec.configs()["segment.ms"] == str(DAY_MS)


def test_every_schema_named_by_the_table_is_in_schemas_dir() -> None:
    from dagmonitor.codec import default_codec

    codec = default_codec()
    for spec in TOPICS:
        # encode needs the schema; an unknown name raises instead of returning a fingerprint.
        assert codec.fingerprint(spec.schema), spec.name


def test_compacted_topics_bound_how_long_a_tombstoned_value_lingers() -> None:
    compacted = topics.compacted_outputs()
    assert {spec.name for spec in compacted} == {
        row[0] for row in CONTRACT if row[3] == "compact,delete"
    }
    for spec in compacted:
        configs = spec.configs()
        assert int(configs["segment.ms"]) <= DAY_MS
        assert int(configs["max.compaction.lag.ms"]) <= DAY_MS
        # Long enough for a consumer down for days to see the tombstone; not a retention period.
        assert 2 * DAY_MS <= int(configs["delete.retention.ms"]) <= 7 * DAY_MS
        assert float(configs["min.cleanable.dirty.ratio"]) <= 0.5


def test_delete_only_topics_carry_no_compaction_settings() -> None:
    for spec in TOPICS:
        if spec.cleanup is Cleanup.DELETE:
            assert "max.compaction.lag.ms" not in spec.configs()


def test_prefix_applies_to_physical_names_only() -> None:
    spec = topics.get("dagmonitor.entries")
    assert spec.physical_name("gm0344.") == "gm0344.dagmonitor.entries"
    assert spec.name == "dagmonitor.entries"


def test_unknown_topic_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="no topic 'nope' in the topic table"):
        topics.get("nope")


def test_the_architecture_document_shows_the_topic_table_of_the_code() -> None:
    """docs/architecture.md holds the table between markers; regenerate it with
    ``python -c "from dagmonitor.topics import markdown_table; print(markdown_table())"``."""
    from pathlib import Path

    from dagmonitor.topics import markdown_table

    text = (Path(__file__).resolve().parents[3] / "docs" / "architecture.md").read_text()
    shown = text.split("<!-- topic-table -->\n", 1)[1].split("\n<!-- /topic-table -->", 1)[0]
    assert shown == markdown_table()
