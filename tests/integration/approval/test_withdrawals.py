"""Withdrawals after approval on the real servers (ADR 0015): when the police withdraw the
source of an approved request, the approval service retracts the approved payload with a
tombstone on its approved topic, marked as a withdrawal; a retention tombstone retracts
nothing (retention removes the approved copy itself); a pending request just goes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from dagmonitor import deletion
from dagmonitor.deletion import Deletion
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.streaming import Incoming
from services.approval.access import Principal
from services.approval.domain import Action, Category
from tests.integration.approval.conftest import (
    Officers,
    approval_settings,
    audit_rows,
    read_topics,
    started_app,
)
from tests.unit.approval.samples import approval_request

pytestmark = pytest.mark.integration

OM = Principal("om-1", frozenset({"OM"}))


def _incoming(key: str, value: dict[str, Any] | None, reason: Deletion | None) -> Incoming:
    headers = () if reason is None else deletion.headers(reason)
    return Incoming("approval.requests", key, value, None, 0, 0, 0, headers=headers)


async def test_a_withdrawal_after_approval_retracts_the_approved_payload(
    approval_kafka: DagmonitorSettings, officers: Officers
) -> None:
    settings = approval_settings(approval_kafka, officers)
    tag = uuid.uuid4().hex[:8]
    withdrawn = approval_request(Category.SUSPECT, f"req-{tag}-a")
    expired = approval_request(Category.SUSPECT, f"req-{tag}-b")
    pending = approval_request(Category.SUSPECT, f"req-{tag}-c")
    async with started_app(settings) as app:
        assert app.workflow is not None and app.relay is not None
        for request in (withdrawn, expired, pending):
            await app.workflow.receive(_incoming(request["request_id"], request, None))
        for request in (withdrawn, expired):
            await app.workflow.decide(OM, request["request_id"], Action.APPROVE, None)

        # The police withdraw (no header: a producer that does not say counts as one).
        await app.workflow.receive(_incoming(withdrawn["request_id"], None, None))
        await app.workflow.receive(_incoming(expired["request_id"], None, Deletion.RETENTION))
        await app.workflow.receive(_incoming(pending["request_id"], None, Deletion.WITHDRAWN))
        assert await app.relay.publish_pending() == 5, "two decisions, two payloads, one retraction"
        reasons = {
            r["request_id"]: r["reason"]
            for key in (withdrawn, expired, pending)
            for r in await audit_rows(app, key["request_id"])
            if r["action"] == "erasure"
        }

    published = [
        p
        for p in await read_topics(settings, ["persons.approved"])
        if p.key.startswith(f"req-{tag}-")
    ]
    by_key: dict[str, list[bool]] = {}
    for p in published:  # in order per key (one key, one partition)
        by_key.setdefault(p.key, []).append(p.value is None)
    assert by_key == {
        withdrawn["request_id"]: [False, True],
        expired["request_id"]: [False],
    }, "approved twice; retracted once: only the withdrawn one"
    (tombstone,) = [p for p in published if p.value is None]
    assert tombstone.headers[deletion.HEADER] == "withdrawn"
    assert reasons == {
        withdrawn["request_id"]: "tombstone on approval.requests (withdrawn by the police); "
        "approved payload retracted",
        expired["request_id"]: "tombstone on approval.requests (retention)",
        pending["request_id"]: "tombstone on approval.requests (withdrawn by the police)",
    }
