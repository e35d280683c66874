"""The approval schema on the real PostgreSQL: migrations, the app role, the audit log."""

from __future__ import annotations

import asyncpg
import pytest

from dagmonitor.db import migrate_service
from services.approval.app import MIGRATIONS
from services.approval.domain import AuditAction, AuditEntry
from tests.integration.approval.conftest import (
    FakeClock,
    Officers,
    approval_settings,
    audit_rows,
    started_app,
)

pytestmark = pytest.mark.integration


async def test_migrations_apply_once_and_the_pool_acts_as_the_app_role(
    approval_kafka, officers: Officers
) -> None:
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings) as app:
        assert await migrate_service(settings, MIGRATIONS) == []  # started_app applied them already
        assert app.pool is not None
        role = await app.pool.fetchval("SELECT current_user")
        assert role == "dagmonitor_approval_app"
        tables = await app.pool.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
            settings.db_schema,
        )
        assert {t["table_name"] for t in tables} >= {
            "requests",
            "request_subjects",
            "audit_log",
            "outbox",
        }


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor = 'someone-else'",
        "UPDATE audit_log SET reason = NULL WHERE id = (SELECT min(id) FROM audit_log)",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ],
)
async def test_the_app_role_cannot_alter_the_audit_log(
    approval_kafka, officers: Officers, statement: str
) -> None:
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings, clock=FakeClock()) as app:
        assert app.pool is not None
        async with app.pool.acquire() as conn:
            entry = AuditEntry("om-1", AuditAction.VIEW, "req-1", FakeClock()())
            await conn.execute(
                "INSERT INTO audit_log (occurred_at, actor, action, request_id) "
                "VALUES ($1, $2, $3, $4)",
                entry.occurred_at,
                entry.actor,
                entry.action.value,
                entry.request_id,
            )
            # Refused by the grants already (the trigger is the second line of defence).
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await conn.execute(statement)
        rows = await audit_rows(app)
        assert [(r["actor"], r["action"]) for r in rows] == [("om-1", "view")]


async def test_even_the_owner_meets_the_append_only_trigger(
    approval_kafka, officers: Officers
) -> None:
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings) as app:
        owner = await asyncpg.connect(settings.database_url.get_secret_value())
        try:
            await owner.execute(
                f"INSERT INTO {settings.db_schema}.audit_log "
                "(occurred_at, actor, action, request_id) VALUES (now(), 'a', 'view', 'r')"
            )
            for statement in ("UPDATE {s}.audit_log SET actor = 'b'", "DELETE FROM {s}.audit_log"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                    await owner.execute(statement.format(s=settings.db_schema))
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await owner.execute(f"TRUNCATE {settings.db_schema}.audit_log")
        finally:
            await owner.close()
        assert len(await audit_rows(app)) == 1
