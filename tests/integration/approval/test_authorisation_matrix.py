"""The full authorisation matrix over real HTTP: every identity x endpoint x category.

Identities: each approver's token role, a combination, an unrelated role, no roles, and the
tokens that must be refused (none, expired, wrong issuer, wrong audience, tampered signature,
signed by a key the issuer does not use). The expected outcome of each cell is written out
below from the covenant, not derived from the code's capability table.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.approval.app import ApprovalApp
from services.approval.domain import Category
from tests.integration.approval.conftest import (
    AUDIENCE,
    Officers,
    approval_settings,
    http_client,
    seed,
    started_app,
)
from tests.unit.approval.samples import approval_request

pytestmark = pytest.mark.integration

SUSPECT, VICTIM, POI, YOUTH = (
    Category.SUSPECT,
    Category.VICTIM,
    Category.PERSON_OF_INTEREST,
    Category.YOUTH_NUISANCE_DETAIL,
)

# identity -> the categories whose requests it may see and decide (all others: 404).
VISIBLE: dict[str, set[Category]] = {
    "OM": {SUSPECT, POI},
    "POLICE_BURGLARY_TEAM": {VICTIM},
    "POLICE_DISTRICT": {YOUTH},
    "OM+POLICE_DISTRICT": {SUSPECT, POI, YOUTH},
    "UNRELATED_ROLE": set(),
    "NO_ROLES": set(),
}
ROLES = {
    "OM": ["OM"],
    "POLICE_BURGLARY_TEAM": ["POLICE_BURGLARY_TEAM"],
    "POLICE_DISTRICT": ["POLICE_DISTRICT"],
    "OM+POLICE_DISTRICT": ["OM", "POLICE_DISTRICT"],
    "UNRELATED_ROLE": ["MUNICIPALITY_ANALYST"],
    "NO_ROLES": [],
}
REFUSED = ["NO_TOKEN", "EXPIRED", "WRONG_ISSUER", "WRONG_AUDIENCE", "TAMPERED", "UNKNOWN_KEY"]
IDENTITIES = [*VISIBLE, *REFUSED]
ENDPOINTS = ["show", "decide"]


def expected_status(identity: str, category: Category) -> int:
    if identity in REFUSED:
        return 401
    return 200 if category in VISIBLE[identity] else 404


def _tamper(token: str) -> str:
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["roles"] = ["OM", "POLICE_BURGLARY_TEAM", "POLICE_DISTRICT"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


def headers_for(officers: Officers, identity: str) -> dict[str, str]:
    match identity:
        case "NO_TOKEN":
            return {}
        case "EXPIRED":
            token = officers.token(["OM"], lifetime=timedelta(hours=-1))
        case "WRONG_ISSUER":
            token = officers.token(["OM"], issuer="https://login.elsewhere.example")
        case "WRONG_AUDIENCE":
            token = officers.token(["OM"], audience=AUDIENCE + "-other")
        case "TAMPERED":
            token = _tamper(officers.token(["POLICE_DISTRICT"]))
        case "UNKNOWN_KEY":
            token = officers.token(["OM"], key=officers.stranger)
        case _:
            token = officers.token(ROLES[identity], sub=f"sub-{identity.lower()}")
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Matrix:
    app: ApprovalApp
    client: TestClient[Any, Any]
    shown: dict[Category, str]
    to_decide: dict[tuple[str, Category], str]
    missing_body: dict[str, Any]


@pytest.fixture(scope="module")
async def matrix(approval_kafka, officers: Officers) -> AsyncIterator[Matrix]:
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings) as app, http_client(app) as client:
        shown = {c: await seed(app, approval_request(c)) for c in Category}
        to_decide = {
            (identity, c): await seed(app, approval_request(c))
            for identity in IDENTITIES
            for c in Category
        }
        missing = await client.get(
            "/v1/requests/req-does-not-exist", headers=headers_for(officers, "OM")
        )
        assert missing.status == 404
        yield Matrix(app, client, shown, to_decide, await missing.json())


async def _status_of(app: ApprovalApp, request_id: str) -> str:
    assert app.pool is not None
    return str(
        await app.pool.fetchval("SELECT status FROM requests WHERE request_id = $1", request_id)
    )


@pytest.mark.parametrize("category", list(Category), ids=str)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("identity", IDENTITIES)
async def test_cell(
    matrix: Matrix, officers: Officers, identity: str, endpoint: str, category: Category
) -> None:
    expected = expected_status(identity, category)
    headers = headers_for(officers, identity)
    if endpoint == "show":
        request_id = matrix.shown[category]
        response = await matrix.client.get(f"/v1/requests/{request_id}", headers=headers)
    else:
        request_id = matrix.to_decide[(identity, category)]
        response = await matrix.client.post(
            f"/v1/requests/{request_id}/decision", json={"decision": "approve"}, headers=headers
        )
    body = await response.json()
    assert response.status == expected, body
    if expected == 401:
        assert body["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    elif expected == 404:
        assert body == matrix.missing_body  # indistinguishable from a missing request
    elif endpoint == "show":
        assert body["request_id"] == request_id and body["category"] == category.value
        assert (body["subject"] is None) == (category is YOUTH)
    else:
        # A victim's request passes from the burglary team on to the OM (dagmonitor/gates.py).
        final = category is not VICTIM
        assert body["status"] == ("APPROVED" if final else "PENDING")
        assert body["decided_by"] == f"sub-{identity.lower()}"
        assert body["next_approver_role"] == (None if final else "OM")
    if endpoint == "decide":
        after = "APPROVED" if expected == 200 and category is not VICTIM else "PENDING"
        assert await _status_of(matrix.app, request_id) == after


@pytest.mark.parametrize("identity", IDENTITIES)
async def test_list(matrix: Matrix, officers: Officers, identity: str) -> None:
    response = await matrix.client.get(
        "/v1/requests?status=pending", headers=headers_for(officers, identity)
    )
    body = await response.json()
    if identity in REFUSED:
        assert response.status == 401 and body["error"] == "unauthorized"
        return
    assert response.status == 200
    first_steps = {Category(item["category"]) for item in body["items"] if item["step"] == 0}
    assert first_steps == VISIBLE[identity]
    # A victim's request the burglary team approved (test_cell) waits at its second step,
    # the OM's: only an OM identity lists it.
    later = {Category(item["category"]) for item in body["items"] if item["step"] > 0}
    assert later <= ({VICTIM} if "OM" in ROLES[identity] else set())
    for item in body["items"]:  # summaries only: no personal data
        assert set(item) == {
            "request_id",
            "category",
            "approver_role",
            "status",
            "chain",
            "step",
            "mk_code",
            "district_code",
            "created_at",
            "expires_at",
            "decided_at",
        }
    assert "Verzonnen" not in json.dumps(body)
