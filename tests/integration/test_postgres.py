"""The private PostgreSQL cluster: a real server with password authentication."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from dagmonitor.settings import DagmonitorSettings

pytestmark = pytest.mark.integration


async def test_login_transactions_and_schemas(stack: DagmonitorSettings) -> None:
    conn = await asyncpg.connect(stack.database_url.get_secret_value())
    schema = f"t_{uuid.uuid4().hex[:8]}"
    try:
        assert await conn.fetchval("SHOW server_version_num") >= "150000"
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"CREATE TABLE {schema}.kv (k text PRIMARY KEY, v int NOT NULL)")
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {schema}.kv VALUES ('a', 1)")
        with pytest.raises(asyncpg.UniqueViolationError):
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {schema}.kv VALUES ('b', 2)")
                await conn.execute(f"INSERT INTO {schema}.kv VALUES ('a', 3)")
        # The failed transaction left nothing behind.
        assert await conn.fetch(f"SELECT k, v FROM {schema}.kv ORDER BY k") == [("a", 1)]
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


async def test_wrong_password_is_refused(stack: DagmonitorSettings) -> None:
    url = stack.database_url.get_secret_value()
    user_part, host_part = url.split("@", 1)
    wrong = user_part.rsplit(":", 1)[0] + ":not-the-password@" + host_part
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong)
