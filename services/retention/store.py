"""PostgreSQL adapter of the retention service: the index of provided records, owed segment
rolls and the log of sweeps.

Names are unqualified: the pool's ``search_path`` puts the configured schema first. Every
statement is idempotent by (topic, key), so a redelivered record changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg

from services.retention.policy import Provided


def _provided(row: asyncpg.Record) -> Provided:
    return Provided(row["topic"], row["key"], row["provided_at"], row["expires_at"])


class Store:
    """Queries of the retention service, over one asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def ping(self) -> bool:
        return bool(await self.pool.fetchval("SELECT true"))

    # -- the index ---------------------------------------------------------------------------

    async def index(self, record: Provided) -> bool:
        """Record a value under (topic, key); True when the key was not indexed yet.

        An indexed key keeps its earliest provision time and its earliest expiry: a newer value
        does not extend either (a shorter valid_until in it shortens the expiry), and a
        redelivered older record (replay) moves them back to the first provision.
        """
        inserted = await self.pool.fetchval(
            "INSERT INTO provided (topic, key, provided_at, expires_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (topic, key) DO UPDATE SET "
            "provided_at = least(provided.provided_at, EXCLUDED.provided_at), "
            "expires_at = least(provided.expires_at, EXCLUDED.expires_at) "
            "WHERE EXCLUDED.provided_at < provided.provided_at "
            "OR EXCLUDED.expires_at < provided.expires_at "
            "RETURNING xmax = 0",
            record.topic,
            record.key,
            record.provided_at,
            record.expires_at,
        )
        return bool(inserted)

    async def forget(self, topic: str, key: str, roll_due: datetime | None) -> bool:
        """A tombstone under (topic, key): drop its index row; owe a segment roll at
        ``roll_due`` (None: none). True when a row was dropped."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "DELETE FROM provided WHERE topic = $1 AND key = $2", topic, key
            )
            if roll_due is not None:
                await conn.execute(
                    "INSERT INTO segment_rolls (topic, due_at) VALUES ($1, $2) "
                    "ON CONFLICT DO NOTHING",
                    topic,
                    roll_due,
                )
        return status.endswith(" 1")

    @asynccontextmanager
    async def expired_batch(self, now: datetime, limit: int) -> AsyncIterator[list[Provided]]:
        """Delete the ``limit`` rows that expired first before ``now`` and no one else holds,
        in a transaction that commits when the ``async with`` ends without an exception and
        rolls back (the rows are back) when it raises.

        An index scan on ``expires_at`` that stops after ``limit`` rows, then a TID scan for
        exactly those rows: the cost follows the expired rows, not the size of the index.
        ``SKIP LOCKED`` lets two sweeps (replicas, or the command beside the service) share the
        work instead of doubling it; until the commit, the rows stay locked.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "DELETE FROM provided WHERE ctid = ANY(ARRAY("
                "SELECT ctid FROM provided WHERE expires_at < $1 "
                "ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED"
                ")) RETURNING topic, key, provided_at, expires_at",
                now,
                limit,
            )
            yield [_provided(r) for r in rows]

    async def expired(self, now: datetime, chunk: int = 1000) -> AsyncIterator[Provided]:
        """Every row expired before ``now``, first expired first, read in a snapshot (dry
        run)."""
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            cursor = conn.cursor(
                "SELECT topic, key, provided_at, expires_at FROM provided WHERE expires_at < $1 "
                "ORDER BY expires_at, topic, key",
                now,
                prefetch=chunk,
            )
            async for r in cursor:
                yield _provided(r)

    async def next_expiry(self) -> datetime | None:
        """When the first indexed record expires (None: the index is empty)."""
        value = await self.pool.fetchval("SELECT min(expires_at) FROM provided")
        return value if isinstance(value, datetime) else None

    async def oldest_provided(self) -> datetime | None:
        """When the oldest indexed record was provided (None: the index is empty)."""
        value = await self.pool.fetchval("SELECT min(provided_at) FROM provided")
        return value if isinstance(value, datetime) else None

    # -- segment rolls -----------------------------------------------------------------------

    @asynccontextmanager
    async def due_rolls(self, now: datetime) -> AsyncIterator[list[str]]:
        """The topics owing a segment roll at ``now``, locked; their due rows are deleted
        when the ``async with`` ends without an exception (the markers were appended)."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT topic, due_at FROM segment_rolls WHERE due_at <= $1 FOR UPDATE SKIP LOCKED",
                now,
            )
            yield sorted({r["topic"] for r in rows})
            await conn.execute(
                "DELETE FROM segment_rolls s USING unnest($1::text[], $2::timestamptz[]) "
                "AS d (topic, due_at) WHERE s.topic = d.topic AND s.due_at = d.due_at",
                [r["topic"] for r in rows],
                [r["due_at"] for r in rows],
            )

    # -- sweeps ------------------------------------------------------------------------------

    async def start_sweep(
        self, trigger: str, swept_for: datetime, cutoff: datetime, started_at: datetime
    ) -> int:
        return int(
            await self.pool.fetchval(
                "INSERT INTO sweeps (trigger, swept_for, cutoff, started_at) "
                "VALUES ($1, $2, $3, $4) RETURNING id",
                trigger,
                swept_for,
                cutoff,
                started_at,
            )
        )

    async def finish_sweep(self, sweep_id: int, finished_at: datetime, expired: int) -> None:
        await self.pool.execute(
            "UPDATE sweeps SET finished_at = $2, expired = $3 WHERE id = $1",
            sweep_id,
            finished_at,
            expired,
        )

    async def last_scheduled_sweep(self) -> datetime | None:
        """The "now" of the latest scheduled sweep that finished (None: there was none)."""
        value = await self.pool.fetchval(
            "SELECT max(swept_for) FROM sweeps WHERE trigger = 'schedule' "
            "AND finished_at IS NOT NULL"
        )
        return value if isinstance(value, datetime) else None


async def schema_exists(conn: asyncpg.Connection, schema: str) -> bool:
    """Whether the retention tables exist in ``schema`` (the service or a sweep ran there)."""
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.provided"))
