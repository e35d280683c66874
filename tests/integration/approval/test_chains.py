"""Approval chains from the gate table (dagmonitor/gates.py) over real HTTP, SQL and Kafka:
a victim of a burglary is decided by the burglary team, then by the OM; only the OM's approval
publishes it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.approval.app import ApprovalApp
from services.approval.domain import Category
from services.approval.outbox import OutboxRelay
from tests.integration.approval.conftest import (
    FakeClock,
    Officers,
    approval_settings,
    audit_rows,
    http_client,
    read_topics,
    seed,
    started_app,
)
from tests.unit.approval.samples import approval_request

pytestmark = pytest.mark.integration


async def _listed(client: TestClient[Any, Any], headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/v1/requests", headers=headers)
    assert response.status == 200
    return {item["request_id"]: item for item in (await response.json())["items"]}


async def _decide(
    client: TestClient[Any, Any], request_id: str, headers: dict[str, str], **body: str
) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        f"/v1/requests/{request_id}/decision", json={"decision": "approve", **body}, headers=headers
    )
    return response.status, await response.json()


async def _outbox(app: ApprovalApp, request_id: str) -> list[str]:
    assert app.pool is not None
    rows = await app.pool.fetch(
        "SELECT topic FROM outbox WHERE request_id = $1 ORDER BY id", request_id
    )
    return [r["topic"] for r in rows]


async def test_the_burglary_team_alone_publishes_nothing_and_the_om_after_it_publishes(
    approval_kafka, officers: Officers
) -> None:
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings) as app, http_client(app) as client:
        victim = await seed(app, approval_request(Category.VICTIM))
        burglary = officers.header(["POLICE_BURGLARY_TEAM"], "inbraak-1")
        om = officers.header(["OM"], "om-1")

        # Step 1 is the burglary team's: the OM neither sees nor decides it yet.
        assert victim not in await _listed(client, om)
        item = (await _listed(client, burglary))[victim]
        assert (item["approver_role"], item["chain"], item["step"]) == (
            "POLICE_BURGLARY_TEAM",
            ["POLICE_BURGLARY_TEAM", "OM"],
            0,
        )
        assert (await _decide(client, victim, om))[0] == 404

        status, body = await _decide(client, victim, burglary, reason="afgestemd")
        assert status == 200
        assert (body["status"], body["next_approver_role"]) == ("PENDING", "OM")
        assert await _outbox(app, victim) == []  # the burglary team's word alone: nothing out

        # Step 2 is the OM's, visible to the OM only.
        assert victim not in await _listed(client, burglary)
        assert (await _decide(client, victim, burglary))[0] == 404
        item = (await _listed(client, om))[victim]
        assert (item["approver_role"], item["step"], item["status"]) == ("OM", 1, "PENDING")
        shown = await client.get(f"/v1/requests/{victim}", headers=om)
        assert (await shown.json())["subject"]["surname"] == "Verzonnen"

        status, body = await _decide(client, victim, om)
        assert status == 200
        assert (body["status"], body["next_approver_role"]) == ("APPROVED", None)
        assert await _outbox(app, victim) == ["approval.decisions", "victims.approved"]

        rows = await audit_rows(app, victim)
        assert [
            (r["actor"], r["action"], r["approver_role"], r["outcome"], r["reason"]) for r in rows
        ] == [
            ("inbraak-1", "step", "POLICE_BURGLARY_TEAM", "APPROVED", "afgestemd"),
            ("om-1", "view", None, None, None),
            ("om-1", "decision", "OM", "APPROVED", None),
        ]

        relay = OutboxRelay(app.workflow.store, settings)  # type: ignore[union-attr]
        assert await relay.start()
        try:
            assert await relay.run_once() == 2
        finally:
            await relay.stop()
    published = await read_topics(settings, ["victims.approved", "approval.decisions"])
    mine = [p for p in published if p.key == victim]
    assert sorted(p.topic for p in mine) == ["approval.decisions", "victims.approved"]
    victim_record = next(p for p in mine if p.topic == "victims.approved")
    assert victim_record.value is not None and victim_record.value["approved_by"] == "om-1"
    decision = next(p for p in mine if p.topic == "approval.decisions")
    assert decision.value is not None and decision.value["approver_role"] == "OM"


@pytest.mark.parametrize("end", ["reject", "expire"])
async def test_a_rejection_or_expiry_at_the_oms_step_ends_the_chain(
    approval_kafka, officers: Officers, end: str
) -> None:
    clock = FakeClock()
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings, clock=clock) as app, http_client(app) as client:
        assert app.workflow is not None and app.pool is not None
        victim = await seed(app, approval_request(Category.VICTIM, created_at=clock.now))
        burglary = officers.header(["POLICE_BURGLARY_TEAM"], "inbraak-1")
        assert (await _decide(client, victim, burglary))[0] == 200
        if end == "reject":
            om = officers.header(["OM"], "om-1")
            status, body = await _decide(
                client, victim, om, decision="reject", reason="lopend onderzoek"
            )
            assert (status, body["status"]) == (200, "REJECTED")
        else:
            clock.advance(timedelta(days=15))
            assert await app.workflow.expire_due() == 1
        assert await _outbox(app, victim) == ["approval.decisions"]
        personal = await app.pool.fetchval(
            "SELECT count(*) FROM request_subjects WHERE request_id = $1", victim
        )
        assert personal == 0  # deleted at once, as for a one-step request


async def test_one_officer_cannot_decide_two_steps_of_a_chain(
    approval_kafka, officers: Officers
) -> None:
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings) as app, http_client(app) as client:
        victim = await seed(app, approval_request(Category.VICTIM))
        both = officers.header(["POLICE_BURGLARY_TEAM", "OM"], "dubbelrol-1")
        assert (await _decide(client, victim, both))[0] == 200
        status, body = await _decide(client, victim, both)
        assert status == 409 and "another officer" in body["detail"]
        assert await _outbox(app, victim) == []
        status, body = await _decide(client, victim, officers.header(["OM"], "om-2"))
        assert (status, body["status"]) == (200, "APPROVED")
