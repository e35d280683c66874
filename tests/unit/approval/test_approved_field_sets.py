"""The approval passes on no more of a person than the request carried: each category's field
set, from a full police person through the policy and the approval to the approved record."""

from __future__ import annotations

import pytest

from tests.unit.field_sets_chain import EXPECTED, MODUS_OPERANDI, approved_value, expected_subject

APPROVED_FIELDS = {
    "SUSPECT": {"notice_kind", "valid_until", "category"},
    "PERSON_OF_INTEREST": {"notice_kind", "valid_until", "category"},
    "VICTIM": {"modus_operandi"},
}
"""Besides the person: what each approved record carries of its category."""


@pytest.mark.parametrize("category", sorted(EXPECTED))
def test_the_approved_record_carries_the_field_set(category: str) -> None:
    approved = approved_value(category)
    assert approved["person"] == expected_subject(category)
    assert approved["person"]["birth_date"] is None
    common = {"request_id", "source_key", "mk_code", "district_code", "person"}
    assert set(approved) == common | APPROVED_FIELDS[category] | {"approved_by", "approved_at"}
    _, modus_operandi = EXPECTED[category]
    assert approved.get("modus_operandi") == (MODUS_OPERANDI if modus_operandi else None)
