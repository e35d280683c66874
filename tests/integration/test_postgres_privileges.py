"""PostgreSQL least privilege: each service's login touches its own schema and nothing else.

The roles are the local stack's own (``dagmonitor up`` provisions them); each service's
migrations run as its role, as the service does. Then every role tries to read and write every
table of every other service's schema, and to create objects there and in ``public``: all
refused. A service started with another service's credentials cannot open its schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from dagmonitor import db
from dagmonitor.settings import REPO_ROOT, DagmonitorSettings
from dagmonitor_cli.platform import postgres
from dagmonitor_cli.platform.stack import LocalStack

pytestmark = pytest.mark.integration

SERVICES = postgres.SERVICE_SCHEMAS
STATEMENTS = {
    "select": "SELECT * FROM {table} LIMIT 1",
    "insert": "INSERT INTO {table} DEFAULT VALUES",
    "update": "UPDATE {table} SET {column} = {column}",
    "delete": "DELETE FROM {table}",
    "truncate": "TRUNCATE {table}",
}


def _migrations(service: str) -> Path:
    return REPO_ROOT / "services" / service / "migrations"


@pytest.fixture(scope="module")
def dsns(stack: DagmonitorSettings) -> Iterator[dict[str, str]]:
    local = LocalStack()
    state = local._load_state()
    if "postgres" not in state or not state["postgres"].managed:
        pytest.skip("the service roles exist on the local stack's own cluster only")
    yield local.service_databases(stack.database_url.get_secret_value())


async def _tables(admin_url: str, schema: str) -> list[tuple[str, str]]:
    """(table, one of its columns) of every table in ``schema``."""
    conn = await asyncpg.connect(admin_url)
    try:
        rows = await conn.fetch(
            """SELECT c.table_name, min(c.column_name) AS column_name
               FROM information_schema.columns c
               JOIN information_schema.tables t USING (table_schema, table_name)
               WHERE c.table_schema = $1 AND t.table_type = 'BASE TABLE'
               GROUP BY c.table_name ORDER BY c.table_name""",
            schema,
        )
    finally:
        await conn.close()
    return [(row["table_name"], row["column_name"]) for row in rows]


async def _refused(url: str, sql: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(sql)
            raise _RolledBack  # allowed: undo whatever it did
    except asyncpg.InsufficientPrivilegeError:
        return True
    except _RolledBack:
        return False
    finally:
        await conn.close()


class _RolledBack(Exception):
    pass


async def test_no_service_role_reaches_another_services_schema(
    stack: DagmonitorSettings, dsns: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    admin = stack.database_url.get_secret_value()
    for service in SERVICES:
        await db.apply_migrations(dsns[service], service, _migrations(service))
    tables = {service: await _tables(admin, service) for service in SERVICES}
    assert all(tables.values()), tables
    cells, allowed = 0, []
    for role in SERVICES:
        for owner in SERVICES:
            if owner == role:
                continue
            for table, column in tables[owner]:
                for verb, template in STATEMENTS.items():
                    sql = template.format(table=f"{owner}.{table}", column=column)
                    cells += 1
                    if not await _refused(dsns[role], sql):
                        allowed.append(f"{role} {verb} {owner}.{table}")
            cells += 1
            if not await _refused(dsns[role], f"CREATE TABLE {owner}.intruder (x int)"):
                allowed.append(f"{role} create in {owner}")
        for sql in ("CREATE TABLE public.intruder (x int)", "CREATE SCHEMA intruder"):
            cells += 1
            if not await _refused(dsns[role], sql):
                allowed.append(f"{role}: {sql}")
    with capsys.disabled():
        print(
            f"\nPostgreSQL matrix: {len(SERVICES)} service roles x the other schemas' tables x "
            f"{len(STATEMENTS)} statements + object creation = {cells} cells, "
            f"{cells - len(allowed)} refused, {len(allowed)} allowed"
        )
    assert not allowed, "\n".join(allowed)


async def test_each_role_works_in_its_own_schema(dsns: dict[str, str]) -> None:
    """The control: the refusals above are about the schema, not a role that can do nothing."""
    for service in SERVICES:
        conn = await asyncpg.connect(dsns[service])
        try:
            assert await conn.fetchval(f"SELECT count(*) FROM {service}.schema_migrations") > 0
            async with conn.transaction():
                await conn.execute(f"CREATE TABLE {service}.scratch (x int)")
                await conn.execute(f"DROP TABLE {service}.scratch")
        finally:
            await conn.close()


async def test_a_service_with_another_services_credentials_is_refused(
    dsns: dict[str, str],
) -> None:
    """The retention store opened with the distributor's login cannot even read the schema."""
    with pytest.raises((asyncpg.InsufficientPrivilegeError, db.MigrationError)):
        pool = await db.open_schema(dsns["distributor"], "retention", _migrations("retention"))
        await pool.close()
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        conn = await asyncpg.connect(dsns["approval"])
        try:
            await conn.fetch("SELECT * FROM distributor.schema_migrations")
        finally:
            await conn.close()
