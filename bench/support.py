"""What the benchmarks share: a benchmark's PostgreSQL schema dropped when it is done."""

from __future__ import annotations

import asyncpg

from dagmonitor.settings import DagmonitorSettings


async def drop_schema(settings: DagmonitorSettings, schema: str) -> None:
    """Drop ``schema`` and everything in it from the database of ``settings``."""
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
