"""Versioned migrations on the real PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from dagmonitor.db import MigrationError, migrate
from dagmonitor.settings import DagmonitorSettings

pytestmark = pytest.mark.integration


async def test_migrations_apply_once_in_order_and_refuse_edits(
    stack: DagmonitorSettings, tmp_path: Path
) -> None:
    schema = f"m_{uuid.uuid4().hex[:8]}"
    (tmp_path / "0001_init.sql").write_text(f"CREATE TABLE {schema}.things (id int PRIMARY KEY);")
    (tmp_path / "0002_more.sql").write_text("ALTER TABLE things ADD COLUMN name text;")
    conn = await asyncpg.connect(stack.database_url.get_secret_value())
    try:
        assert await migrate(conn, schema, tmp_path) == ["0001_init.sql", "0002_more.sql"]
        assert await migrate(conn, schema, tmp_path) == []
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = 'things' ORDER BY ordinal_position",
            schema,
        )
        assert [c["column_name"] for c in columns] == ["id", "name"]

        (tmp_path / "0003_broken.sql").write_text("ALTER TABLE nope ADD COLUMN x int;")
        with pytest.raises(MigrationError, match=r"0003_broken\.sql failed"):
            await migrate(conn, schema, tmp_path)
        (tmp_path / "0003_broken.sql").unlink()

        (tmp_path / "0002_more.sql").write_text("ALTER TABLE things ADD COLUMN other text;")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, schema, tmp_path)
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


def test_gaps_in_numbering_are_refused(tmp_path: Path) -> None:
    from dagmonitor.db import load_migrations

    (tmp_path / "0001_a.sql").write_text("")
    (tmp_path / "0003_c.sql").write_text("")
    with pytest.raises(MigrationError, match="without gaps"):
        load_migrations(tmp_path)
