"""The OM's standing consents for tests (``dagmonitor.gates``): without one in force the
distributor holds the Dagmonitor and stolen-vehicle notices, so every test that expects them
records consents with one of these helpers, and no test keeps a copy of its own.

- ``record_consents``: straight into a distributor schema, through the intake's own path
  (``ConsentGate.store``), for tests that run the distributor's parts in-process;
- ``grant_consents``: through the approval API as an OM officer, for tests that run the
  services as processes; it waits until the distributor has the consents.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from dagmonitor import db
from dagmonitor.gates import CONSENT_CATEGORIES, GateCategory

SINCE = datetime(2020, 1, 1, tzinfo=UTC)
UNTIL = datetime(2099, 12, 31, tzinfo=UTC)


def consent_record(
    category: GateCategory | str,
    *,
    granted_at: datetime | None = None,
    valid_until: datetime | None = None,
    revoked_at: datetime | None = None,
) -> dict[str, Any]:
    """An ``nl.dagmonitor.Consent`` value, by default in force at any time a test's clock may
    show (granted in 2020, valid until the end of 2099)."""
    granted = granted_at or SINCE
    return {
        "consent_id": f"consent-{uuid.uuid4().hex}",
        "category": GateCategory(category).value,
        "granted_by": "om-officier-test",
        "granted_at": granted,
        "reference": "OM/TEST-2026-001",
        "valid_until": valid_until or UNTIL,
        "revoked_at": revoked_at,
        "revoked_by": "om-officier-test" if revoked_at else None,
        "revoke_reason": "ingetrokken" if revoked_at else None,
    }


async def record_consents(
    database_url: str,
    schema: str,
    categories: Iterable[GateCategory] = CONSENT_CATEGORIES,
    **fields: Any,
) -> None:
    """Migrate the distributor's ``schema`` and record a consent per category there, as the
    distributor does when it consumes ``approval.consents`` (``fields``: see
    ``consent_record``; ``revoked_at`` records a revocation)."""
    from services.distributor.app import MIGRATIONS
    from services.distributor.consents import ConsentGate

    await db.apply_migrations(database_url, schema, MIGRATIONS)
    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=1, server_settings={"search_path": schema}
    )
    try:
        gate = ConsentGate(pool)
        for category in categories:
            await gate.store(category.value, consent_record(category, **fields))
    finally:
        await pool.close()


async def grant_consents(
    api_url: str,
    approval_settings: Any,
    *,
    database_url: str,
    distributor_schema: str,
    timeout: float = 60.0,
) -> list[dict[str, Any]]:
    """Grant every consent category through the approval API as a development OM officer
    (``approval_settings`` must name the development signing key), then wait until the
    distributor in ``distributor_schema`` has consumed them."""
    from services.approval.client import ApprovalClient
    from services.approval.tokens import issue_dev_token

    token = issue_dev_token(approval_settings, sub="om-officier-test", roles=["OM"])
    client = ApprovalClient(api_url, token)
    granted = [
        await client.grant_consent(category.value, "OM/TEST-2026-001")
        for category in CONSENT_CATEGORIES
    ]
    wanted = {g["consent_id"] for g in granted}
    deadline = time.monotonic() + timeout
    while True:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                f"SELECT consent_id FROM {distributor_schema}.consents WHERE revoked_at IS NULL"
            )
        except asyncpg.UndefinedTableError:
            rows = []
        finally:
            await conn.close()
        if wanted <= {r["consent_id"] for r in rows}:
            return granted
        if time.monotonic() > deadline:
            raise AssertionError("the distributor did not receive the consents in time")
        await asyncio.sleep(0.3)
