"""What the distributor provides under which gate (services/distributor/consents.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dagmonitor import gates
from dagmonitor.gates import GateCategory
from dagmonitor.rejection import RecordRejected
from services.distributor import consents
from services.distributor.entitlements import Category
from tests.consents import consent_record


@pytest.mark.parametrize("category", list(Category), ids=str)
def test_every_provided_category_passes_rows_of_the_gate_table(category: Category) -> None:
    rows = consents.GATE_OF[category]
    if category is Category.COVENANT_EVALUATION:  # counts of the method, no police data
        assert rows == ()
        return
    assert rows, f"{category.value} passes no gate"
    for row in rows:
        assert [g.category for g in gates.GATE_ROWS].count(row) == 1  # exactly one row
    kinds = {gates.gate_of(row).kind for row in rows}
    assert len(kinds) == 1, "one provision category, one kind of gate"


def test_which_categories_wait_for_a_standing_consent() -> None:
    assert {c: consents.consent_needed(c) for c in Category} == {
        Category.DAGMONITOR_DAILY: GateCategory.DAGMONITOR,
        Category.HOTSPOTS: GateCategory.DAGMONITOR,
        Category.PERSON_NOTICE: None,  # passed its chain before it reached persons.approved
        Category.VICTIM_NOTICE: None,  # passed burglary team and OM before victims.approved
        Category.VEHICLE_NOTICE: GateCategory.VEHICLE_SIGNAL,
        Category.COVENANT_EVALUATION: None,
    }
    assert set(consents.HELD_UNIT) == set(consents.CONSENT_GATED)


def test_a_consent_record_becomes_a_row() -> None:
    record = consent_record("DAGMONITOR")
    row = consents.parse_consent("DAGMONITOR", record)
    assert row["category"] == "DAGMONITOR" and row["consent_id"] == record["consent_id"]
    assert row["revoked_at"] is None
    revoked = consent_record("VEHICLE_SIGNAL", revoked_at=datetime.now(UTC))
    assert consents.parse_consent("VEHICLE_SIGNAL", revoked)["revoked_at"] is not None


@pytest.mark.parametrize(
    ("key", "category"),
    [("VEHICLE_SIGNAL", "DAGMONITOR"), ("VICTIM", "VICTIM"), ("WITNESS", "WITNESS")],
)
def test_a_consent_record_for_no_consent_category_is_rejected(key: str, category: str) -> None:
    record = {**consent_record("DAGMONITOR"), "category": category}
    with pytest.raises(RecordRejected):
        consents.parse_consent(key, record)
