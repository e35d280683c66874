"""The entitlement table, row by row, and the one function that applies it."""

from __future__ import annotations

import pytest

from services.distributor.entitlements import (
    ENTITLEMENTS,
    Category,
    Recipient,
    Role,
    entitled_recipients,
)

SAFETY, MEETING, LEADER = (
    Role.SAFETY_UNIT_OFFICER,
    Role.ENFORCEMENT_MEETING_MEMBER,
    Role.ENFORCEMENT_TEAM_LEADER,
)

# The reviewed decision, restated independently of the module: a change to the table must
# change this test too.
EXPECTED = {
    Category.DAGMONITOR_DAILY: ({SAFETY, MEETING, LEADER}, False),
    Category.HOTSPOTS: ({SAFETY, MEETING, LEADER}, False),
    Category.PERSON_NOTICE: ({SAFETY, LEADER}, True),
    Category.VICTIM_NOTICE: ({SAFETY}, True),
    Category.VEHICLE_NOTICE: ({LEADER}, True),
    Category.COVENANT_EVALUATION: ({SAFETY, MEETING, LEADER}, False),
}

ALL_CONFIGURED = {
    SAFETY: ["veiligheid@gemeente.invalid"],
    MEETING: ["overleg-a@gemeente.invalid", "overleg-b@gemeente.invalid"],
    LEADER: ["teamleider@gemeente.invalid"],
}


def test_every_category_has_exactly_one_row() -> None:
    assert set(ENTITLEMENTS) == set(Category) == set(EXPECTED)


@pytest.mark.parametrize("category", list(Category))
def test_row(category: Category) -> None:
    row = ENTITLEMENTS[category]
    roles, personal = EXPECTED[category]
    assert set(row.roles) == roles
    assert row.personal_data is personal
    assert row.purpose and row.covenant and row.rationale


@pytest.mark.parametrize("category", list(Category))
def test_only_entitled_roles_receive(category: Category) -> None:
    chosen = entitled_recipients(category, ALL_CONFIGURED)
    assert {r.role for r in chosen} == EXPECTED[category][0]
    expected_addresses = sorted(a for role in EXPECTED[category][0] for a in ALL_CONFIGURED[role])
    assert sorted(r.address for r in chosen) == expected_addresses


def test_personal_data_never_reaches_the_enforcement_meeting() -> None:
    for category, row in ENTITLEMENTS.items():
        if row.personal_data:
            assert MEETING not in row.roles, category


def test_no_entitled_recipient_configured_gives_nobody() -> None:
    only_meeting = {MEETING: ["overleg@gemeente.invalid"]}
    assert entitled_recipients(Category.VICTIM_NOTICE, only_meeting) == []
    assert entitled_recipients(Category.PERSON_NOTICE, {}) == []


def test_an_address_under_two_roles_gets_one_mail_under_the_first_role() -> None:
    shared = "iemand@gemeente.invalid"
    config = {SAFETY: [shared], LEADER: [f" {shared.upper()} "]}
    assert entitled_recipients(Category.PERSON_NOTICE, config) == [Recipient(SAFETY, shared)]
