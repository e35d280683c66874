"""The covenant's term in the approval service, over real HTTP, SQL and Kafka: outside it no
request reaches an officer and nothing is decided; a renewal without an evaluation of the
ending term is refused; a renewal and an early end are recorded, audited and published on
covenant.term (docs/adr/0018-covenant-term.md)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dagmonitor.covenant import EVALUATION_CATEGORY, TERM_TOPIC
from dagmonitor.streaming import Incoming
from dagmonitor_cli.cli import main
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
from tests.integration.approval.threaded import ThreadedService
from tests.unit.approval.samples import approval_request

pytestmark = pytest.mark.integration

START, END = date(2026, 1, 1), date(2026, 12, 31)
IN_LAST_MONTH = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)


def _settings(approval_kafka: Any, officers: Officers) -> Any:
    return approval_settings(
        approval_kafka, officers, covenant_start_date=START, covenant_end_date=END
    )


async def _metric(client: TestClient[Any, Any], name: str) -> float:
    text = await (await client.get("/metrics")).text()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + '{service="approval"}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


@pytest.mark.parametrize(
    "now",
    [datetime(2025, 12, 31, 22, 0, tzinfo=UTC), datetime(2026, 12, 31, 23, 0, tzinfo=UTC)],
    ids=["before-the-start", "after-the-end"],
)
async def test_outside_the_term_no_request_reaches_an_officer_and_nothing_is_decided(
    approval_kafka: Any, officers: Officers, now: datetime
) -> None:
    clock = FakeClock(now)
    settings = _settings(approval_kafka, officers)
    async with started_app(settings, clock=clock) as app, http_client(app) as client:
        request_id = await seed(
            app, approval_request(Category.SUSPECT, created_at=now - timedelta(hours=1))
        )
        om = officers.header(["OM"], "om-1")
        listed = await (await client.get("/v1/requests", headers=om)).json()
        assert listed == {"items": [], "count": 0}
        shown = await client.get(f"/v1/requests/{request_id}", headers=om)
        assert shown.status == 409 and (await shown.json())["error"] == "outside_term"
        decided = await client.post(
            f"/v1/requests/{request_id}/decision", json={"decision": "approve"}, headers=om
        )
        assert decided.status == 409
        granted = await client.post(
            "/v1/consents", json={"category": "DAGMONITOR", "reference": "OM/1"}, headers=om
        )
        assert granted.status == 409
        assert await audit_rows(app, request_id) == []  # nothing viewed, nothing decided
        assert await _metric(client, "dagmonitor_covenant_in_term") == 0

        # The same request, inside the term: listed and decidable as always.
        clock.now = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
        listed = await (await client.get("/v1/requests", headers=om)).json()
        assert [i["request_id"] for i in listed["items"]] == [request_id]
        assert await _metric(client, "dagmonitor_covenant_in_term") == 1


async def _note_evaluation(app: ApprovalApp, provision_id: str, sent_at: datetime) -> None:
    """An evaluation provision as the distributor publishes it on distribution.provisions."""
    assert app.workflow is not None
    value = {
        "provision_id": provision_id,
        "record_keys": [{"topic": TERM_TOPIC, "key": START.isoformat()}],
        "category": EVALUATION_CATEGORY,
        "recipient_role": "safety_unit_officer",
        "recipient_address": "veiligheid@gemeente.example.invalid",
        "sent_at": sent_at,
        "message_id": f"<{provision_id}@example.invalid>",
        "legal_basis": "art. 20 Wpg",
        "purpose": "Evaluatie",
        "kind": "PROVISION",
        "withdraws": [],
    }
    incoming = Incoming("distribution.provisions", provision_id, value, None, 0, 0, 0)
    await app.workflow.receive(incoming)


async def test_a_renewal_without_an_evaluation_of_the_ending_term_is_refused(
    approval_kafka: Any, officers: Officers
) -> None:
    clock = FakeClock(IN_LAST_MONTH)
    settings = _settings(approval_kafka, officers)
    async with started_app(settings, clock=clock) as app, http_client(app) as client:
        om = officers.header(["OM"], "om-1")
        refused = await client.post("/v1/covenant/renewals", json={}, headers=om)
        body = await refused.json()
        assert refused.status == 409 and body["error"] == "covenant_refused"
        assert "evaluatiemoment" in body["detail"]
        # An evaluation sent before the last month does not count either.
        await _note_evaluation(app, "prov-early", datetime(2026, 10, 1, 7, tzinfo=UTC))
        refused = await client.post(
            "/v1/covenant/renewals", json={"evaluation_id": "prov-early"}, headers=om
        )
        assert refused.status == 409
        other = officers.header(["POLICE_DISTRICT"], "wijk-1")
        assert (await client.post("/v1/covenant/renewals", headers=other)).status == 403
        status = await (await client.get("/v1/covenant", headers=other)).json()
        assert (status["end_date"], status["events"], status["revision"]) == (
            END.isoformat(),
            [],
            0,
        )
        assert [r for r in await audit_rows(app) if r["covenant_event_id"]] == []


async def test_a_renewal_on_the_evaluation_is_recorded_audited_and_published(
    approval_kafka: Any, officers: Officers
) -> None:
    clock = FakeClock(IN_LAST_MONTH)
    settings = _settings(approval_kafka, officers)
    async with started_app(settings, clock=clock) as app, http_client(app) as client:
        om = officers.header(["OM"], "om-1")
        await _note_evaluation(app, "prov-eval-1", datetime(2026, 12, 1, 6, tzinfo=UTC))
        await _note_evaluation(app, "prov-eval-1", datetime(2026, 12, 1, 6, tzinfo=UTC))  # again
        renewed = await client.post(
            "/v1/covenant/renewals", json={"reason": "besluit stuurgroep 2026-12"}, headers=om
        )
        body = await renewed.json()
        assert renewed.status == 201, body
        assert (body["end_date"], body["period"], body["revision"]) == (
            "2027-12-31",
            "2027-01-01..2027-12-31",
            1,
        )
        (event,) = body["events"]
        assert (event["kind"], event["recorded_by"], event["evaluation_id"]) == (
            "RENEWAL",
            "om-1",
            "prov-eval-1",
        )
        assert [e["evaluation_id"] for e in body["evaluations"]] == ["prov-eval-1"]
        assert app.pool is not None
        (audit,) = await app.pool.fetch(
            "SELECT * FROM audit_trail WHERE covenant_event_id IS NOT NULL"
        )
        assert (audit["actor"], audit["action"]) == ("om-1", "covenant_renewal")
        assert "prov-eval-1" in audit["reason"] and "stuurgroep" in audit["reason"]

        # The same evaluation does not renew the next year.
        clock.now = datetime(2027, 12, 10, 9, 0, tzinfo=UTC)
        again = await client.post("/v1/covenant/renewals", json={}, headers=om)
        assert again.status == 409

        # Within the renewed term requests reach officers; an early end stops that.
        clock.now = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
        request_id = await seed(app, approval_request(Category.SUSPECT, created_at=clock.now))
        listed = await (await client.get("/v1/requests", headers=om)).json()
        assert [i["request_id"] for i in listed["items"]] == [request_id]
        ended = await client.post("/v1/covenant/end", json={"reason": "doel bereikt"}, headers=om)
        assert ended.status == 201 and (await ended.json())["in_term"] is False
        assert (await (await client.get("/v1/requests", headers=om)).json())["count"] == 0
        past = await client.post(
            "/v1/covenant/end", json={"reason": "x", "at": "2027-01-01T00:00:00+01:00"}, headers=om
        )
        assert past.status == 409

        relay = OutboxRelay(app.workflow.store, settings)  # type: ignore[union-attr]
        assert await relay.start()
        try:
            assert await relay.run_once() == 2
        finally:
            await relay.stop()
    published = [
        p for p in await read_topics(settings, [TERM_TOPIC]) if p.source == settings.db_schema
    ]
    assert [(p.key, p.value["event"], p.value["revision"]) for p in published] == [  # type: ignore[index]
        ("2026-01-01", "RENEWAL", 1),
        ("2026-01-01", "EARLY_END", 2),
    ]
    assert published[1].value["ended_at"] is not None  # type: ignore[index]


@pytest.fixture(scope="module")
def service(approval_kafka: Any, officers: Officers) -> Iterator[ThreadedService]:
    with ThreadedService(approval_settings(approval_kafka, officers)) as running:
        yield running


def _dagmonitor(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["dagmonitor", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_cli_shows_the_term_and_refuses_a_renewal_without_evaluation(
    service: ThreadedService,
    officers: Officers,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DAGMONITOR_APPROVAL_API_URL", service.url)
    monkeypatch.setenv("DAGMONITOR_TOKEN", officers.token(["OM"], sub="om-cli"))
    code, out, _ = _dagmonitor(monkeypatch, capsys, "covenant", "status")
    assert code == 0 and "in force" in out and "2099-12-31" in out
    code, _, err = _dagmonitor(monkeypatch, capsys, "covenant", "renew")
    assert code == 1 and "HTTP 409" in err and "evaluatiemoment" in err
    code, _, err = _dagmonitor(monkeypatch, capsys, "covenant", "end")
    assert code == 2 and "--reason" in err
