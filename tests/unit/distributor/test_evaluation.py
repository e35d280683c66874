"""The evaluation report without servers: its sections, no counts by place, CSV, rendering."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

from dagmonitor.covenant import TERM_TOPIC, Term
from dagmonitor.streaming import Incoming
from services.distributor.covenant import facts_of
from services.distributor.evaluation import (
    FORBIDDEN_DIMENSIONS,
    SECTIONS,
    EvaluationReport,
    Row,
    evaluation_csv,
    shown_sections,
)
from services.distributor.rendering import Kind, render_evaluation

TERM = Term(date(2026, 1, 1), date(2026, 12, 31))
REPORT = EvaluationReport(
    TERM,
    "2026-12-01",
    {
        "provisions": [
            Row(("dagmonitor_daily", "safety_unit_officer", "2026-10"), 31),
            Row(("person_notice", "enforcement_team_leader", "2026-11"), 4),
        ],
        "decisions": [Row(("OM", "SUSPECT", "APPROVED"), 7, 5.5, 30.0)],
        "escalations": [Row(("APPROVED",), 2, 12.0, 20.0)],
        "dead_letters": [Row(("invalid_postcode", "ingest"), 3)],
    },
)


def test_no_section_counts_by_place() -> None:
    assert [key for key, _, _ in SECTIONS] == [
        "provisions",
        "decisions",
        "escalations",
        "withdrawals",
        "dead_letters",
        "retention",
        "held",
    ]
    for _key, _title, columns in SECTIONS:
        assert not set(columns) & FORBIDDEN_DIMENSIONS


def test_the_csv_has_the_marking_the_header_and_every_row() -> None:
    rows = list(csv.reader(io.StringIO(evaluation_csv(REPORT, "VERTROUWELIJK").decode())))
    assert rows[0] == ["VERTROUWELIJK"]
    assert rows[1][:6] == ["sectie", "titel", "dimensie_1", "dimensie_2", "dimensie_3", "aantal"]
    assert [
        "decisions",
        "Besluiten per beoordelaar en uitkomst",
        "OM",
        "SUSPECT",
        "APPROVED",
        "7",
        "5.5",
        "30.0",
    ] in rows
    assert len(rows) == 2 + 5


def test_rendered_it_shows_every_section_a_chart_and_names_its_covenant() -> None:
    rendered = render_evaluation(REPORT, cid_domain="example.invalid")
    assert rendered.kind == Kind.EVALUATION and rendered.category.value == "covenant_evaluation"
    assert [(r.topic, r.key) for r in rendered.records] == [(TERM_TOPIC, "2026-01-01")]
    for section in shown_sections(REPORT):
        assert section.title in rendered.html
    assert "Niets in deze periode." in rendered.html  # withdrawals, retention, held: empty
    assert rendered.inline[0].data.startswith(b"\x89PNG")
    assert rendered.attachments[0].filename == "evaluatie-2026-01-01..2026-12-31.csv"
    assert "wijk of buurt" in rendered.text and "VERTROUWELIJK" in rendered.text


def _incoming(topic: str, value: dict[str, object]) -> Incoming:
    return Incoming(topic, "key-with-a-plate-AB12CD", value, None, 0, 7, 0)


def test_a_decision_counts_its_authority_outcome_and_waiting_time_nothing_else() -> None:
    requested = datetime(2026, 3, 1, 8, tzinfo=UTC)
    fact = facts_of(
        _incoming(
            "approval.decisions",
            {
                "request_id": "r-1",
                "decision": "APPROVED",
                "category": "SUSPECT",
                "approver_role": "OM",
                "decided_by": "om-officier-7",
                "reason": "vrije tekst",
                "decided_at": datetime(2026, 3, 2, 8, tzinfo=UTC),
                "requested_at": requested,
            },
        )
    )
    assert fact is not None
    assert fact.dimensions == ("SUSPECT", "OM", "APPROVED") and fact.wait_seconds == 86400
    assert "om-officier-7" not in repr(fact) and "vrije tekst" not in repr(fact)


def test_a_dead_letter_counts_its_reason_not_its_bytes() -> None:
    fact = facts_of(
        _incoming(
            "pipeline.deadletter",
            {
                "reason": "invalid_postcode",
                "detail": "location.postcode",
                "source_topic": "bvh.incidents",
                "source_key": "PL0900-2026012345",
                "raw": b"Jan Jansen",
                "service": "ingest",
                "failed_at": datetime(2026, 3, 2, tzinfo=UTC),
            },
        )
    )
    assert fact is not None and fact.dimensions == ("invalid_postcode", "ingest", "bvh.incidents")
    assert "Jansen" not in repr(fact) and "PL0900" not in repr(fact)


def test_the_mail_shows_provisions_per_category_and_role_and_per_month_in_dutch() -> None:
    shown = {section.key: section for section in shown_sections(REPORT)}
    assert [r.dimensions for r in shown["provisions"].rows] == [
        ("Dagmonitor (dagelijks, met aanvullingen)", "Eenheid Veiligheid"),
        (
            "Personen (verdachten, veelplegers, gebiedsverboden)",
            "Teamleider Toezicht en Handhaving",
        ),
    ]
    assert [(r.dimensions, r.count) for r in shown["provisions_month"].rows] == [
        (("2026-10",), 31),
        (("2026-11",), 4),
    ]
    assert shown["provisions"].total == shown["provisions_month"].total == 35
    decisions = shown["decisions"]
    assert decisions.stacked and decisions.columns == ("Beoordelaar / categorie", "Uitkomst")
    assert decisions.rows[0].dimensions == ("OM", "Verdachte", "goedgekeurd")
