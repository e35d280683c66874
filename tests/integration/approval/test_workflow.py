"""State machine, audit completeness and deletion of personal data, over real HTTP and SQL."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.approval.app import ApprovalApp
from services.approval.domain import TRANSITIONS, Action, Category, Status
from tests.integration.approval.conftest import (
    FakeClock,
    Officers,
    approval_settings,
    audit_rows,
    http_client,
    seed,
    started_app,
)
from tests.unit.approval.samples import approval_request

pytestmark = pytest.mark.integration

PAST_DEADLINE = timedelta(days=15)
PERSONAL = ("Verzonnen", "Voorbeeldstraat", "0600000000", "1999-04-01")


async def _act(
    app: ApprovalApp,
    client: TestClient[Any, Any],
    clock: FakeClock,
    officers: Officers,
    request_id: str,
    action: Action,
) -> int:
    """Do ``action`` the way it happens in production; returns the HTTP status (or 200/409
    for the sweep: whether it expired the request)."""
    assert app.workflow is not None
    if action is Action.EXPIRE:
        clock.advance(PAST_DEADLINE)
        return 200 if await app.workflow.expire_due() == 1 else 409
    body = {"decision": action.value.lower(), "reason": "toetsing"}
    response = await client.post(
        f"/v1/requests/{request_id}/decision", json=body, headers=officers.header(["OM"])
    )
    return response.status


async def _state(app: ApprovalApp, request_id: str) -> tuple[str, int, int, bool]:
    """(status, decision audit rows, outbox rows, personal data still stored)."""
    assert app.pool is not None
    status = await app.pool.fetchval(
        "SELECT status FROM requests WHERE request_id = $1", request_id
    )
    audits = await app.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE request_id = $1 AND action IN ('decision', 'expiry')",
        request_id,
    )
    outbox = await app.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE request_id = $1", request_id
    )
    personal = await app.pool.fetchval(
        "SELECT count(*) FROM request_subjects WHERE request_id = $1", request_id
    )
    return status, audits, outbox, personal == 1


HOW_TO_REACH = {
    Status.PENDING: None,
    Status.APPROVED: Action.APPROVE,
    Status.REJECTED: Action.REJECT,
    Status.EXPIRED: Action.EXPIRE,
}


# ADVANCE is no officer's action: an approval at an earlier step of a chain becomes one
# (test_chains.py walks the VICTIM chain).
OFFICER_ACTIONS = [a for a in Action if a is not Action.ADVANCE]


@pytest.mark.parametrize(
    ("start", "action"), list(itertools.product(Status, OFFICER_ACTIONS)), ids=lambda v: str(v)
)
async def test_every_transition(
    approval_kafka, officers: Officers, start: Status, action: Action
) -> None:
    clock = FakeClock()
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings, clock=clock) as app, http_client(app) as client:
        request_id = await seed(app, approval_request(Category.SUSPECT, created_at=clock.now))
        setup = HOW_TO_REACH[start]
        if setup is not None:
            assert await _act(app, client, clock, officers, request_id, setup) == 200
        before = await _state(app, request_id)

        status = await _act(app, client, clock, officers, request_id, action)

        after = await _state(app, request_id)
        if (start, action) in TRANSITIONS:
            assert status == 200
            outcome = TRANSITIONS[(start, action)]
            assert after[0] == outcome.value
            assert after[1] == 1  # exactly one decision in the audit log
            assert after[2] == (2 if outcome is Status.APPROVED else 1)  # outbox records
            assert after[3] == (outcome is Status.APPROVED)  # personal data kept only then
        else:
            assert status == 409
            assert after == before  # nothing changed, nothing audited, nothing emitted


async def test_a_decision_after_the_deadline_expires_the_request(
    approval_kafka, officers: Officers
) -> None:
    clock = FakeClock()
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings, clock=clock) as app, http_client(app) as client:
        request_id = await seed(
            app,
            approval_request(Category.VICTIM, created_at=clock.now, expires_in=timedelta(days=3)),
        )
        clock.advance(timedelta(days=3))  # the request's own expires_at: before the 14 days
        response = await client.post(
            f"/v1/requests/{request_id}/decision",
            json={"decision": "approve"},
            headers=officers.header(["POLICE_BURGLARY_TEAM"]),
        )
        assert response.status == 409
        assert "expired" in (await response.json())["detail"]
        assert await _state(app, request_id) == ("EXPIRED", 1, 1, False)
        rows = await audit_rows(app, request_id)
        assert [(r["actor"], r["action"], r["outcome"]) for r in rows] == [
            ("system", "expiry", "EXPIRED")
        ]


async def test_expiry_sweep_takes_only_overdue_requests(approval_kafka, officers: Officers) -> None:
    clock = FakeClock()
    settings = approval_settings(approval_kafka, officers, approval_expiry_days=14)
    async with started_app(settings, clock=clock) as app:
        assert app.workflow is not None
        old = await seed(app, approval_request(Category.SUSPECT, created_at=clock.now))
        clock.advance(timedelta(days=10))
        young = await seed(app, approval_request(Category.SUSPECT, created_at=clock.now))
        clock.advance(timedelta(days=4))  # old: exactly 14 days; young: 4 days
        assert await app.workflow.expire_due() == 1
        assert (await _state(app, old))[0] == "EXPIRED"
        assert (await _state(app, young))[0] == "PENDING"
        assert await app.workflow.expire_due() == 0


async def test_audit_completeness(approval_kafka, officers: Officers) -> None:
    """Each view and each decision leaves exactly one audit row; nothing else does."""
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings) as app, http_client(app) as client:
        request_id = await seed(app, approval_request(Category.SUSPECT))
        other = await seed(app, approval_request(Category.VICTIM))
        om, om2 = officers.header(["OM"], "om-1"), officers.header(["OM"], "om-2")
        district = officers.header(["POLICE_DISTRICT"], "wijk-1")
        path = f"/v1/requests/{request_id}"

        calls = [
            ("GET", "/v1/requests", om, None, 200),  # list: summaries, not audited
            ("GET", path, om, None, 200),  # view 1
            ("GET", path, om2, None, 200),  # view 2
            ("GET", path, district, None, 404),  # outside scope: nothing seen
            ("GET", f"/v1/requests/{other}", om, None, 404),
            ("POST", path + "/decision", om, {"decision": "reject"}, 400),  # no reason
            ("POST", path + "/decision", om, {"decision": "maybe"}, 400),
            ("POST", path + "/decision", om, {"decision": "reject", "reason": "lopend"}, 200),
            ("POST", path + "/decision", om2, {"decision": "approve"}, 409),  # second decision
            ("GET", path, om2, None, 200),  # view 3 (personal data deleted by now)
        ]
        for method, url, headers, body, expected in calls:
            response = await client.request(method, url, headers=headers, json=body)
            assert response.status == expected, (method, url, await response.text())

        rows = await audit_rows(app)
        assert [
            (r["actor"], r["action"], r["request_id"], r["outcome"], r["reason"]) for r in rows
        ] == [
            ("om-1", "view", request_id, None, None),
            ("om-2", "view", request_id, None, None),
            ("om-1", "decision", request_id, "REJECTED", "lopend"),
            ("om-2", "view", request_id, None, None),
        ]
        assert all(r["occurred_at"] is not None for r in rows)
        assert not any(p in json.dumps([dict(r) for r in rows], default=str) for p in PERSONAL)


async def test_rejection_deletes_personal_data_at_once(approval_kafka, officers: Officers) -> None:
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings) as app, http_client(app) as client:
        request_id = await seed(app, approval_request(Category.VICTIM))
        headers = officers.header(["POLICE_BURGLARY_TEAM"])
        before = await (await client.get(f"/v1/requests/{request_id}", headers=headers)).json()
        assert before["subject"]["surname"] == "Verzonnen"
        assert before["modus_operandi"] and before["personal_data_deleted"] is False

        response = await client.post(
            f"/v1/requests/{request_id}/decision",
            json={"decision": "reject", "reason": "  geen preventiebezoek  "},
            headers=headers,
        )
        assert response.status == 200
        assert (await response.json())["reason"] == "geen preventiebezoek"
        assert await _state(app, request_id) == ("REJECTED", 1, 1, False)

        after = await (await client.get(f"/v1/requests/{request_id}", headers=headers)).json()
        assert after["personal_data_deleted"] is True
        assert after["subject"] is None and after["modus_operandi"] is None
        assert after["source_key"] is None
        assert not any(p in json.dumps(after) for p in PERSONAL)
        assert app.pool is not None
        payloads = await app.pool.fetch("SELECT topic, payload FROM outbox")
        assert [p["topic"] for p in payloads] == ["approval.decisions"]
        assert not any(p.encode() in payloads[0]["payload"] for p in PERSONAL)


async def test_listing_by_status_and_limits(approval_kafka, officers: Officers) -> None:
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings) as app, http_client(app) as client:
        ids = [await seed(app, approval_request(Category.SUSPECT)) for _ in range(3)]
        headers = officers.header(["OM"])
        await client.post(
            f"/v1/requests/{ids[0]}/decision", json={"decision": "approve"}, headers=headers
        )

        async def listed(query: str) -> tuple[int, list[str]]:
            response = await client.get(f"/v1/requests{query}", headers=headers)
            body = await response.json()
            return response.status, [i["request_id"] for i in body.get("items", [])]

        assert await listed("") == (200, sorted(ids[1:]))
        assert await listed("?status=approved") == (200, [ids[0]])
        assert await listed("?status=rejected") == (200, [])
        assert (await listed("?limit=1"))[1] == sorted(ids[1:])[:1]
        for bad in ("?status=PENDING", "?status=done", "?limit=0", "?limit=501", "?limit=x"):
            assert (await listed(bad))[0] == 400


async def test_concurrent_decisions_on_one_request_yield_one_decision(
    approval_kafka, officers: Officers
) -> None:
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings) as app, http_client(app) as client:
        request_id = await seed(app, approval_request(Category.SUSPECT))
        bodies = [{"decision": "approve"}, {"decision": "reject", "reason": "nee"}] * 6

        async def post(n: int, body: dict[str, str]) -> int:
            response = await client.post(
                f"/v1/requests/{request_id}/decision",
                json=body,
                headers=officers.header(["OM"], f"om-{n}"),
            )
            return response.status

        statuses = await asyncio.gather(*(post(n, b) for n, b in enumerate(bodies)))
        assert sorted(statuses) == [200] + [409] * 11
        status, audits, outbox, _ = await _state(app, request_id)
        assert audits == 1 and outbox == (2 if status == "APPROVED" else 1)


async def test_an_officers_reason_lives_beside_the_audit_log_and_goes_with_the_personal_data(
    approval_kafka, officers: Officers
) -> None:
    """ADR 0019: free text may name the person; the append-only audit log keeps who decided
    what and when for good, never the text; nor does the decision record on its topic."""
    from dagmonitor.codec import APPROVAL_DECISION, default_codec
    from dagmonitor.deletion import Deletion

    settings = approval_settings(approval_kafka, officers)
    text = "betrokkene Zqreasonmarker is al bekend"
    async with started_app(settings) as app, http_client(app) as client:
        assert app.pool is not None and app.workflow is not None
        request_id = await seed(app, approval_request(Category.SUSPECT))
        response = await client.post(
            f"/v1/requests/{request_id}/decision",
            json={"decision": "reject", "reason": text},
            headers=officers.header(["OM"]),
        )
        assert response.status == 200
        audit = await app.pool.fetch("SELECT action, reason FROM audit_log")
        assert audit and not any(r["reason"] and "Zqreason" in r["reason"] for r in audit)
        assert (
            await app.pool.fetchval(
                "SELECT reason FROM audit_reasons WHERE request_id = $1", request_id
            )
            == text
        )
        payload = await app.pool.fetchval(
            "SELECT payload FROM outbox WHERE topic = 'approval.decisions'"
        )
        if payload is not None:  # not yet published (published rows lose their payload)
            decoded = default_codec().decode(payload, expect=APPROVAL_DECISION).record
            assert decoded["reason"] is None and decoded["decision"] == "REJECTED"

        assert await app.workflow.erase(request_id, Deletion.RETENTION)
        assert await app.pool.fetchval("SELECT count(*) FROM audit_reasons") == 0
        assert (
            await app.pool.fetchval("SELECT reason FROM requests WHERE request_id = $1", request_id)
            is None
        )
        kept = await app.pool.fetch("SELECT action FROM audit_log ORDER BY id")
        assert [r["action"] for r in kept][-1] == "erasure"
        assert len(kept) == len(audit) + 1, "the audit log only grows"


async def test_the_backstop_forgets_requests_older_than_a_year_by_the_services_clock(
    approval_kafka, officers: Officers
) -> None:
    """Behind the sweep's tombstones: a request whose tombstone never came loses its personal
    data and its reasons a year after it was made (ADR 0019); the audit rows stay."""
    clock = FakeClock()
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings, clock=clock) as app, http_client(app) as client:
        assert app.pool is not None and app.workflow is not None
        request_id = await seed(app, approval_request(Category.SUSPECT, created_at=clock.now))
        response = await client.post(
            f"/v1/requests/{request_id}/decision",
            json={"decision": "approve", "reason": "bekend bij Zqbackstop"},
            headers=officers.header(["OM"]),
        )
        assert response.status == 200
        audits = await app.pool.fetchval("SELECT count(*) FROM audit_log")

        clock.advance(timedelta(days=365) - timedelta(minutes=1))
        assert await app.workflow.forget_expired() == {}
        assert await app.pool.fetchval("SELECT count(*) FROM request_subjects") == 1

        clock.advance(timedelta(minutes=2))
        changed = await app.workflow.forget_expired()
        assert changed["request_subjects"] == 1 and changed["audit_reasons"] == 1
        assert await app.pool.fetchval("SELECT count(*) FROM request_subjects") == 0
        assert await app.pool.fetchval("SELECT count(*) FROM audit_reasons") == 0
        assert (
            await app.pool.fetchval("SELECT reason FROM requests WHERE request_id = $1", request_id)
            is None
        )
        assert await app.pool.fetchval("SELECT count(*) FROM audit_log") == audits
        assert await app.workflow.forget_expired() == {}
