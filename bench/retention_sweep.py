"""Does the retention sweep's cost follow the expired records or the size of the index?

Seeds two indexes in PostgreSQL (each in a schema of its own, with ``generate_series``): a
large one (default 1,000,000 rows) and a small one (100,000 rows), each with the same number
of expired records (default 10,000) among rows provided up to 364 days ago. Then sweeps
each one for real, on the local Kafka, under a topic prefix of the benchmark's own: every
expired record gets its ``RetentionEvent`` and its tombstone, acknowledged by the broker, and
leaves the index, in batches, exactly as the service does. A small warm-up sweep runs first.

Each size is seeded afresh before every sweep and swept ``--repeat`` times (3), in
alternating order; each time once in full and once with a publisher that publishes nothing
(the PostgreSQL part alone, where a dependence on the index size would show). Reported: each
sweep's time, the medians and their ratio large / small (about 1 when the cost follows the
expired records; about 10 if it followed the size of the index), and the plan PostgreSQL uses
for the batch query on the large index. Schemas and topics are removed afterwards.

    .venv/bin/dagmonitor up
    .venv/bin/python bench/retention_sweep.py
    .venv/bin/python bench/retention_sweep.py --large 1000000 --small 100000 --expired 10000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from dagmonitor import kafka_clients

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.support import drop_schema  # noqa: E402
from dagmonitor.db import migrate_service  # noqa: E402
from dagmonitor.topic_admin import apply_topics  # noqa: E402
from dagmonitor.topics import get  # noqa: E402
from services.retention.app import MIGRATIONS, open_store, open_sweeper  # noqa: E402
from services.retention.config import RetentionSettings  # noqa: E402
from services.retention.policy import PROVIDED_TOPICS, Provided  # noqa: E402
from services.retention.sweep import Sweeper  # noqa: E402

TOPICS = [*PROVIDED_TOPICS, "retention.events"]


async def seed(settings: RetentionSettings, rows: int, expired: int, now: datetime) -> float:
    """``rows`` index rows, ``expired`` of them provided 366-367 days before ``now``, the rest
    spread over the last 364 days; returns the seconds it took (with ANALYZE)."""
    await migrate_service(settings, MIGRATIONS)
    started = time.perf_counter()
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        await conn.execute(f"SET search_path TO {settings.db_schema}")
        topic_array = "ARRAY[" + ", ".join(f"'{t}'" for t in PROVIDED_TOPICS) + "]"
        # expires_at: a year after provision, so only the expired rows are due at ``now``
        await conn.execute(
            "INSERT INTO provided (topic, key, provided_at, expires_at) "
            f"SELECT ({topic_array})[1 + i % {len(PROVIDED_TOPICS)}], 'bench-' || i, at, "
            "at + interval '365 days' FROM (SELECT i, "
            "CASE WHEN i <= $2 THEN $1::timestamptz - interval '366 days' - i * interval '5 s' "
            "ELSE $1::timestamptz - (i % 364) * interval '1 day' - (i % 86400) * interval '1 s' "
            "END AS at FROM generate_series(1, $3) AS i) AS s",
            now,
            expired,
            rows,
        )
        await conn.execute("ANALYZE provided")
    finally:
        await conn.close()
    return time.perf_counter() - started


class IndexOnly:
    """A publisher that publishes nothing: times the PostgreSQL side of a sweep alone."""

    async def expire(self, records: Sequence[Provided], deleted_at: datetime) -> None:
        return None


async def sweep(settings: RetentionSettings, now: datetime, expected: int, kafka: bool) -> float:
    """One sweep at ``now``; with ``kafka`` False, the index part only. Returns seconds."""
    if kafka:
        async with open_sweeper(settings) as sweeper:
            started = time.perf_counter()
            result = await sweeper.sweep(now)
            elapsed = time.perf_counter() - started
    else:
        store = await open_store(settings, max_size=2)
        try:
            index_only = Sweeper(store, IndexOnly(), batch_size=settings.retention_batch_size)  # type: ignore[arg-type]
            started = time.perf_counter()
            result = await index_only.sweep(now)
            elapsed = time.perf_counter() - started
        finally:
            await store.pool.close()
    if result.total != expected:
        raise SystemExit(f"swept {result.total} records, expected {expected}")
    return elapsed


async def plan(settings: RetentionSettings, now: datetime) -> str:
    """PostgreSQL's plan for one batch (executed, then rolled back)."""
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        await conn.execute(f"SET search_path TO {settings.db_schema}")
        tr = conn.transaction()
        await tr.start()
        try:
            rows = await conn.fetch(
                "EXPLAIN (ANALYZE, COSTS OFF) DELETE FROM provided WHERE ctid = ANY(ARRAY("
                "SELECT ctid FROM provided WHERE expires_at < $1 "
                "ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED"
                ")) RETURNING topic, key, provided_at, expires_at",
                now,
                settings.retention_batch_size,
            )
        finally:
            await tr.rollback()
        return "\n".join("    " + r[0] for r in rows)
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> None:
    run = uuid.uuid4().hex[:8]
    prefix = f"test-bench-ret-{run}."
    base = RetentionSettings.load(topic_prefix=prefix, retention_batch_size=args.batch)
    await apply_topics(base, prefix=prefix, specs=[get(t) for t in TOPICS])
    now = datetime.now(UTC).replace(microsecond=0)
    sizes = {"small": args.small, "large": args.large}
    made = {
        name: base.model_copy(update={"db_schema": f"bench_retention_{run}_{name}"})
        for name in ("warmup", *sizes)
    }
    kinds = {"full": True, "index": False}
    times: dict[tuple[str, str], list[float]] = {(n, k): [] for n in sizes for k in kinds}
    try:
        await seed(made["warmup"], 10_000, 1_000, now)
        await sweep(made["warmup"], now, 1_000, kafka=True)
        for repeat in range(args.repeat):
            # Alternate the order, so that neither size always runs on a warmer machine.
            order = list(sizes) if repeat % 2 == 0 else list(reversed(sizes))
            for name in order:
                settings = made[name]
                for kind, kafka in kinds.items():
                    await drop_schema(settings, settings.db_schema)
                    seeded = await seed(settings, sizes[name], args.expired, now)
                    if repeat == 0 and kafka:
                        print(f"a batch's plans on the {name} index:\n" + await plan(settings, now))
                    elapsed = await sweep(settings, now, args.expired, kafka)
                    times[(name, kind)].append(elapsed)
                    print(
                        f"run {repeat + 1} {name:>5} {kind:>5}: {sizes[name]:>9,} rows, "
                        f"{args.expired:,} expired (seeded in {seeded:.1f} s): swept in "
                        f"{elapsed:.3f} s ({elapsed / args.expired * 1e6:.0f} µs per record)"
                    )
        print(
            f"\nmedian of {args.repeat} sweeps, {args.expired:,} expired records each, "
            f"batches of {args.batch}:"
        )
        for kind, label in (
            ("full", "full sweep (events + tombstones acknowledged by Kafka, index rows deleted)"),
            ("index", "index part alone (select, lock, delete, commit in PostgreSQL)"),
        ):
            small, large = (statistics.median(times[(n, kind)]) for n in ("small", "large"))
            print(
                f"  {label}:\n"
                f"    {args.large:>9,} index rows: {large:.3f} s\n"
                f"    {args.small:>9,} index rows: {small:.3f} s\n"
                f"    ratio large / small: {large / small:.2f}"
            )
    finally:
        for settings in made.values():
            await drop_schema(settings, settings.db_schema)
        admin = kafka_clients.admin(base)
        await admin.start()
        try:
            await admin.delete_topics([base.topic(t) for t in TOPICS])
        finally:
            await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--expired", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000, help="records per sweep batch")
    parser.add_argument("--repeat", type=int, default=3, help="sweeps per size (median)")
    asyncio.run(main(parser.parse_args()))
