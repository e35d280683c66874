"""The capability table: which token roles reach which approver roles' requests."""

from __future__ import annotations

import pytest

from services.approval.access import Capability, Principal, roles_granting, scope
from services.approval.domain import ApproverRole

OM, BURGLARY, DISTRICT = (
    ApproverRole.OM,
    ApproverRole.POLICE_BURGLARY_TEAM,
    ApproverRole.POLICE_DISTRICT,
)

# Written out from the covenant, not derived from GRANTS.
CASES = [
    ({"OM"}, {OM}),
    ({"POLICE_BURGLARY_TEAM"}, {BURGLARY}),
    ({"POLICE_DISTRICT"}, {DISTRICT}),
    ({"OM", "POLICE_DISTRICT"}, {OM, DISTRICT}),
    ({"MUNICIPALITY_ANALYST"}, set()),
    ({"om"}, set()),  # role names are exact
    (set(), set()),
]


@pytest.mark.parametrize(("roles", "expected"), CASES, ids=lambda v: "+".join(sorted(v)) or "-")
@pytest.mark.parametrize("capability", list(Capability))
def test_scope(roles: set[str], expected: set[ApproverRole], capability: Capability) -> None:
    assert scope(Principal("officer", frozenset(roles)), capability) == expected


def test_each_approver_role_is_reached_by_exactly_its_own_token_role() -> None:
    for approver in ApproverRole:
        for capability in Capability:
            assert list(roles_granting(capability, approver)) == [approver.value]
