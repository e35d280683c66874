"""The service's metrics at /metrics: pending by role and age, decisions, outbox, audit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.approval.domain import Category
from tests.integration.approval.conftest import (
    FakeClock,
    Officers,
    approval_settings,
    http_client,
    seed,
    started_app,
)
from tests.unit.approval.samples import approval_request

pytestmark = pytest.mark.integration


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def test_metrics(approval_kafka, officers: Officers) -> None:
    clock = FakeClock()
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings, clock=clock) as app, http_client(app) as client:
        assert app.workflow is not None
        await seed(
            app, approval_request(Category.SUSPECT, created_at=clock.now - timedelta(days=2))
        )
        await seed(
            app, approval_request(Category.SUSPECT, created_at=clock.now - timedelta(days=2))
        )
        victim = await seed(app, approval_request(Category.VICTIM, created_at=clock.now))
        before = await (await client.get("/metrics")).text()
        response = await client.post(
            f"/v1/requests/{victim}/decision",
            json={"decision": "reject", "reason": "nee"},
            headers=officers.header(["POLICE_BURGLARY_TEAM"]),
        )
        assert response.status == 200
        await app.workflow.refresh_metrics()
        text = await (await client.get("/metrics")).text()

    pending = _samples(text, "dagmonitor_approvals_pending")
    assert pending[(("age", "1-3d"), ("approver_role", "OM"))] == 2
    assert pending[(("age", "0-1d"), ("approver_role", "POLICE_BURGLARY_TEAM"))] == 0
    assert len(pending) == 3 * 5  # every role x bucket cell is set
    rejected = (("outcome", "REJECTED"),)
    decided = _samples(text, "dagmonitor_approval_decisions_total")[rejected]
    assert decided == _samples(before, "dagmonitor_approval_decisions_total").get(rejected, 0) + 1
    assert _samples(text, "dagmonitor_approval_outbox_backlog")[()] == 1  # not relayed here
    audits = _samples(text, "dagmonitor_approval_audit_rows_total")
    assert audits[(("action", "decision"),)] >= 1
    assert "Verzonnen" not in text and victim not in text
