"""PostgreSQL for the services that own a schema: a pool, and versioned migrations.

Each service keeps its migrations as numbered SQL files in ``services/<name>/migrations/``
(``0001_init.sql``, ``0002_...sql``). ``migrate`` applies the ones not yet applied, in order,
each in its own transaction, under an advisory lock so that two replicas starting together do
not race, and records them in ``<schema>.schema_migrations`` with a checksum: an applied file
that was edited afterwards is refused, not silently skipped. Migration files refer to their
schema by name (``approval.requests``); ``search_path`` is set to the schema as well.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import asyncpg

from dagmonitor.errors import ConfigError, DagmonitorError
from dagmonitor.telemetry import get_logger

if TYPE_CHECKING:
    from _typeshed import DataclassInstance
    from pydantic import SecretStr

_log = get_logger(__name__)

_Row = TypeVar("_Row", bound="DataclassInstance")

_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class MigrationError(DagmonitorError):
    """The migrations folder and the database disagree, or a migration failed."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path) -> list[Migration]:
    """The numbered ``.sql`` files of ``directory``, in order; gaps and duplicates refused."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_some_name.sql")
        migrations.append(Migration(int(match.group(1)), path.name, path.read_text()))
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"{directory}: migrations must be numbered 1..n without gaps")
    return migrations


async def migrate(conn: asyncpg.Connection, schema: str, directory: Path) -> list[str]:
    """Apply the pending migrations of ``directory`` to ``schema``; returns the names applied."""
    if not _IDENTIFIER.match(schema):
        raise MigrationError(f"{schema!r} is not a plain lower-case schema name")
    migrations = load_migrations(directory)
    lock = zlib.crc32(f"dagmonitor-migrate:{schema}".encode())
    await conn.execute("SELECT pg_advisory_lock($1)", lock)
    try:
        # A service's own login owns its schema but may not create schemas (ADR 0021): create it
        # only when it is missing (CREATE SCHEMA IF NOT EXISTS checks that right first).
        if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
            await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch(f"SELECT version, name, checksum FROM {schema}.schema_migrations")
        applied = {row["version"]: row for row in rows}
        done = []
        for migration in migrations:
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"{schema}: {migration.name} was changed after it was applied; "
                        "add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path TO {schema}, public")
                try:
                    await conn.execute(migration.sql)
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"{schema}: {migration.name} failed: {exc}") from exc
                await conn.execute(
                    f"INSERT INTO {schema}.schema_migrations (version, name, checksum) "
                    "VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            done.append(migration.name)
        unknown = sorted(set(applied) - {m.version for m in migrations})
        if unknown:
            raise MigrationError(
                f"{schema}: the database has migrations {unknown} this code does not know "
                "(a newer version ran here?)"
            )
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock)


async def create_pool(
    url: str, *, schema: str, min_size: int = 1, max_size: int = 5, role: str | None = None
) -> asyncpg.Pool:
    """A connection pool whose connections use ``schema`` first on their search path.

    With ``role``, every connection acts as that (less privileged) role from the start, as if
    it had run ``SET ROLE``: the login must be a member of it. Migrations use the login itself.
    """
    server_settings = {"search_path": f"{schema},public", "application_name": schema}
    if role:
        if not _IDENTIFIER.match(role):
            raise ConfigError(f"{role!r} is not a plain lower-case role name")
        server_settings["role"] = role
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        server_settings=server_settings,
    )
    if pool is None:  # pragma: no cover - asyncpg returns a pool or raises
        raise DagmonitorError("could not create a PostgreSQL pool")
    return pool


async def apply_migrations(url: str, schema: str, directory: Path) -> list[str]:
    """Apply the pending migrations of ``directory`` to ``schema``, connected as the login
    of ``url``; returns the names applied (logged when there are any)."""
    conn = await asyncpg.connect(url)
    try:
        applied = await migrate(conn, schema, directory)
    finally:
        await conn.close()
    if applied:
        _log.info("migrations_applied", schema=schema, names=applied)
    return applied


async def open_schema(
    url: str, schema: str, directory: Path, *, max_size: int = 5, role: str | None = None
) -> asyncpg.Pool:
    """A service's store connection: migrate its schema (as the login), then a pool on it
    (as ``role``, when given)."""
    await apply_migrations(url, schema, directory)
    return await create_pool(url, schema=schema, min_size=1, max_size=max_size, role=role)


class OwnedSchema(Protocol):
    """A service's settings as far as its database goes: the login and the schema it owns."""

    @property
    def database_url(self) -> SecretStr: ...

    @property
    def db_schema(self) -> str: ...


async def migrate_service(settings: OwnedSchema, directory: Path) -> list[str]:
    """``apply_migrations`` for a service: its migrations to its own schema, as its login."""
    url = settings.database_url.get_secret_value()
    return await apply_migrations(url, settings.db_schema, directory)


async def open_service_schema(
    settings: OwnedSchema, directory: Path, *, max_size: int = 5, role: str | None = None
) -> asyncpg.Pool:
    """``open_schema`` for a service: migrate its own schema, then a pool on it."""
    url = settings.database_url.get_secret_value()
    return await open_schema(url, settings.db_schema, directory, max_size=max_size, role=role)


async def changed_rows(
    pool: asyncpg.Pool, statements: Mapping[str, tuple[str, object]]
) -> dict[str, int]:
    """Run each ``name: (sql, argument)`` DELETE or UPDATE in one transaction; the rows each
    changed, by name, for those that changed any (a backstop's report)."""
    changed: dict[str, int] = {}
    async with pool.acquire() as conn, conn.transaction():
        for name, (sql, argument) in statements.items():
            count = int((await conn.execute(sql, argument)).split()[-1])
            if count:
                changed[name] = count
    return changed


def from_row(cls: type[_Row], row: Mapping[str, Any], **given: Any) -> _Row:
    """The dataclass ``cls`` made from ``row``: each field the column of its name, but for
    those ``given`` (a column converted, say to an enum, or a field under another name)."""
    columns = {f.name: row[f.name] for f in fields(cls) if f.init and f.name not in given}
    return cls(**columns, **given)
