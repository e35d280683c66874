"""The OM's standing consents over real HTTP, SQL and Kafka: who may, what is audited, what is
published on approval.consents, and the CLI ``dagmonitor consent list|grant|revoke``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dagmonitor_cli.cli import main
from services.approval.app import ApprovalApp
from services.approval.outbox import OutboxRelay
from tests.integration.approval.conftest import (
    AUDIENCE,
    ISSUER,
    FakeClock,
    Officers,
    approval_settings,
    audit_rows,
    http_client,
    read_topics,
    started_app,
)
from tests.integration.approval.threaded import ThreadedService

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
COVENANT_END = date(2027, 6, 30)
GRANT = {"category": "DAGMONITOR", "reference": "OM/2026/0042"}


async def _grant(
    client: TestClient[Any, Any], headers: dict[str, str], **body: Any
) -> tuple[int, dict[str, Any]]:
    response = await client.post("/v1/consents", json={**GRANT, **body}, headers=headers)
    return response.status, await response.json()


async def _consent_audits(app: ApprovalApp) -> list[tuple[str, str, str]]:
    return [
        (r["actor"], r["action"], r["consent_id"])
        for r in await audit_rows(app)
        if r["consent_id"] is not None
    ]


@pytest.mark.parametrize(
    "roles", [["POLICE_BURGLARY_TEAM"], ["POLICE_DISTRICT"], ["MUNICIPALITY_ANALYST"], []]
)
async def test_only_the_om_lists_grants_and_revokes(
    approval_kafka, officers: Officers, roles: list[str]
) -> None:
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings, clock=FakeClock(NOW)) as app, http_client(app) as client:
        other = officers.header(roles, "iemand")
        assert (await client.get("/v1/consents", headers=other)).status == 403
        assert (await _grant(client, other))[0] == 403
        status, granted = await _grant(client, officers.header(["OM"], "om-1"))
        assert status == 201
        revoke = await client.post(
            f"/v1/consents/{granted['consent_id']}/revoke",
            json={"reason": "niet meer"},
            headers=other,
        )
        assert revoke.status == 403
        assert (await client.get("/v1/consents")).status == 401  # no token at all
        assert await _consent_audits(app) == [("om-1", "consent_grant", granted["consent_id"])]


async def test_grant_list_revoke_are_audited_and_published(
    approval_kafka, officers: Officers
) -> None:
    clock = FakeClock(NOW)
    settings = approval_settings(approval_kafka, officers, covenant_end_date=COVENANT_END)
    async with started_app(settings, clock=clock) as app, http_client(app) as client:
        om = officers.header(["OM"], "om-1")
        status, granted = await _grant(client, om)
        assert status == 201
        assert granted["granted_by"] == "om-1" and granted["reference"] == "OM/2026/0042"
        assert granted["in_force"] is True and granted["revoked_at"] is None
        # Without valid_until: the covenant's end (the last day, Amsterdam time, inclusive).
        assert datetime.fromisoformat(granted["valid_until"]) == datetime.fromisoformat(
            "2027-07-01T00:00:00+02:00"
        )
        status, vehicles = await _grant(
            client, om, category="VEHICLE_SIGNAL", valid_until="2027-01-31T00:00:00+01:00"
        )
        assert status == 201

        listed = await (await client.get("/v1/consents", headers=om)).json()
        assert {i["consent_id"] for i in listed["items"]} == {
            granted["consent_id"],
            vehicles["consent_id"],
        }

        clock.advance(timedelta(days=2))
        response = await client.post(
            f"/v1/consents/{granted['consent_id']}/revoke",
            json={"reason": "lopend onderzoek"},
            headers=officers.header(["OM"], "om-2"),
        )
        revoked = await response.json()
        assert response.status == 200
        assert (revoked["revoked_by"], revoked["revoke_reason"], revoked["in_force"]) == (
            "om-2",
            "lopend onderzoek",
            False,
        )
        again = await client.post(
            f"/v1/consents/{granted['consent_id']}/revoke", json={"reason": "x"}, headers=om
        )
        assert again.status == 409
        missing = await client.post(
            "/v1/consents/consent-nope/revoke", json={"reason": "x"}, headers=om
        )
        assert missing.status == 404

        assert await _consent_audits(app) == [
            ("om-1", "consent_grant", granted["consent_id"]),
            ("om-1", "consent_grant", vehicles["consent_id"]),
            ("om-2", "consent_revoke", granted["consent_id"]),
        ]

        relay = OutboxRelay(app.workflow.store, settings)  # type: ignore[union-attr]
        assert await relay.start()
        try:
            assert await relay.run_once() == 3
        finally:
            await relay.stop()
    published = [p for p in await read_topics(settings, ["approval.consents"])]
    mine = [p for p in published if p.source == settings.db_schema]
    assert [(p.key, p.value["consent_id"], p.value["revoked_by"]) for p in mine] == [  # type: ignore[index]
        ("DAGMONITOR", granted["consent_id"], None),
        ("VEHICLE_SIGNAL", vehicles["consent_id"], None),
        ("DAGMONITOR", granted["consent_id"], "om-2"),
    ]


async def test_a_new_grant_supersedes_the_current_one(approval_kafka, officers: Officers) -> None:
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings, clock=FakeClock(NOW)) as app, http_client(app) as client:
        om = officers.header(["OM"], "om-1")
        first = (await _grant(client, om))[1]
        second = (await _grant(client, om, reference="OM/2026/0099"))[1]
        items = (await (await client.get("/v1/consents", headers=om)).json())["items"]
        state = {i["consent_id"]: (i["in_force"], i["revoke_reason"]) for i in items}
        assert state == {
            first["consent_id"]: (False, f"superseded by consent {second['consent_id']}"),
            second["consent_id"]: (True, None),
        }
        assert [a[1] for a in await _consent_audits(app)] == [
            "consent_grant",
            "consent_revoke",
            "consent_grant",
        ]


@pytest.mark.parametrize(
    "body",
    [
        {"category": "VICTIM"},  # passes by per-case approvals
        {"category": "SUSPECT"},
        {"reference": "   "},
        {"valid_until": "2026-11-30T00:00:00+01:00"},  # in the past
        {"valid_until": "2027-07-02"},  # after the covenant's end
        {"valid_until": "2027-01-01T00:00:00"},  # no offset
        {"valid_until": "soon"},
        {"granted_by": "someone-else"},
    ],
)
async def test_a_grant_breaking_a_rule_is_refused(
    approval_kafka, officers: Officers, body: dict[str, Any]
) -> None:
    settings = approval_settings(approval_kafka, officers, covenant_end_date=COVENANT_END)
    async with started_app(settings, clock=FakeClock(NOW)) as app, http_client(app) as client:
        status, answer = await _grant(client, officers.header(["OM"]), **body)
        assert status == 400 and answer["error"] == "bad_request"
        assert await _consent_audits(app) == []


@pytest.fixture(scope="module")
def service(approval_kafka, officers: Officers) -> Iterator[ThreadedService]:
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


def _json(out: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(out[out.index("{\n") :])
    return document


def test_the_cli_grants_lists_and_revokes(
    service: ThreadedService,
    officers: Officers,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DAGMONITOR_APPROVAL_API_URL", service.url)
    monkeypatch.setenv("DAGMONITOR_TOKEN", officers.token(["POLICE_DISTRICT"], sub="wijk-cli"))
    code, _, err = _dagmonitor(monkeypatch, capsys, "consent", "list")
    assert code == 1 and "HTTP 403" in err

    monkeypatch.setenv("DAGMONITOR_TOKEN", officers.token(["OM"], sub="om-cli"))
    code, out, _ = _dagmonitor(
        monkeypatch, capsys, "consent", "grant", "VEHICLE_SIGNAL", "--reference", "OM/CLI/1"
    )
    assert code == 0
    granted = _json(out)
    assert granted["granted_by"] == "om-cli" and granted["in_force"] is True

    code, out, _ = _dagmonitor(monkeypatch, capsys, "consent", "list")
    assert code == 0 and granted["consent_id"] in out and "yes" in out

    code, _, err = _dagmonitor(monkeypatch, capsys, "consent", "revoke", granted["consent_id"])
    assert code == 2 and "--reason" in err
    code, out, _ = _dagmonitor(
        monkeypatch,
        capsys,
        "consent",
        "revoke",
        granted["consent_id"],
        "--reason",
        "ingetrokken bij brief",
    )
    assert code == 0 and _json(out)["revoked_by"] == "om-cli"
    code, out, _ = _dagmonitor(monkeypatch, capsys, "consent", "list", "--json")
    listed = {c["consent_id"]: c for c in json.loads(out[out.index("[") :])}
    assert code == 0 and listed[granted["consent_id"]]["in_force"] is False


def test_the_development_stack_records_both_consents_once(
    approval_kafka, officers: Officers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``dagmonitor up`` does once the services are ready, so the demo mails everything."""
    from dagmonitor_cli.platform.consents import grant_development_consents
    from services.approval.tokens import init_dev_key

    key_file, _ = init_dev_key(tmp_path / "dev-signing-key.pem")
    monkeypatch.setenv("DAGMONITOR_APPROVAL_DEV_SIGNING_KEY_FILE", str(key_file))
    monkeypatch.setenv("DAGMONITOR_APPROVAL_JWT_ISSUER", ISSUER)
    monkeypatch.setenv("DAGMONITOR_APPROVAL_JWT_AUDIENCE", AUDIENCE)
    settings = approval_settings(approval_kafka, officers, approval_dev_signing_key_file=key_file)
    with ThreadedService(settings) as running:
        assert asyncio.run(grant_development_consents(running.url)) == [
            "DAGMONITOR",
            "VEHICLE_SIGNAL",
        ]
        assert asyncio.run(grant_development_consents(running.url)) == []  # in force already
