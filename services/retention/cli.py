"""``dagmonitor retention sweep [--dry-run] [--now ISO]``: the sweep on demand.

The dry run prints one line per record that would go, ``topic<TAB>key<TAB>provided_at``
(oldest first), and a summary on stderr; it reads the index and changes nothing, anywhere.
Without ``--dry-run`` the sweep runs as the daily one does and prints the counts per topic.
``--now`` sweeps as if it were that instant (ISO 8601 with a UTC offset, e.g.
``2027-11-29T03:00:00+01:00``): records provided more than 365 days before it go.
Importing this module connects to nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import click

from services.retention.config import RetentionSettings

if TYPE_CHECKING:
    from services.retention.sweep import SweepResult

Echo = Callable[..., None]


def parse_now(text: str | None) -> datetime | None:
    """``--now``: an ISO 8601 instant with a UTC offset ("Z" allowed); None when absent."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise click.BadParameter(
            f"{text!r} has no UTC offset: add one, e.g. {text}+01:00 or {text}Z"
        )
    return moment


@click.group()
def retention() -> None:
    """Provided data is kept at most 365 days (covenant): the retention sweep."""


@retention.command()
@click.option("--dry-run", is_flag=True, help="List what would be deleted; change nothing.")
@click.option("--now", "now_text", metavar="ISO", help="Sweep as if it were this instant.")
def sweep(dry_run: bool, now_text: str | None) -> None:
    """Delete every record provided more than 365 days ago: tombstone, event, index row."""
    now = parse_now(now_text)
    # The retention service's verb: its principal on the local stack (tombstones, events).
    settings = RetentionSettings.load().default_principal("dagmonitor-retention")
    if dry_run:
        asyncio.run(_dry_run(settings, now, click.echo))
        return
    # The sweep's log lines go to stderr; stdout carries the result only.
    with contextlib.redirect_stdout(sys.stderr):
        result = asyncio.run(_sweep(settings, now))
    per_topic = ", ".join(f"{topic} {n}" for topic, n in sorted(result.expired.items()))
    click.echo(
        f"swept {result.total} record(s) expired before {result.now.isoformat()}"
        + (f": {per_topic}" if per_topic else "")
    )


async def _dry_run(settings: RetentionSettings, now: datetime | None, echo: Echo) -> None:
    import asyncpg

    from dagmonitor.clock import utc_now
    from dagmonitor.db import create_pool
    from services.retention.store import Store, schema_exists

    now = now or utc_now()
    url = settings.database_url.get_secret_value()
    conn = await asyncpg.connect(url)
    try:
        exists = await schema_exists(conn, settings.db_schema)
    finally:
        await conn.close()
    count = 0
    if exists:
        pool = await create_pool(url, schema=settings.db_schema, min_size=1, max_size=1)
        try:
            async for record in Store(pool).expired(now):
                echo(
                    f"{record.topic}\t{record.key}\t{record.provided_at.isoformat()}"
                    f"\t{record.expires_at.isoformat()}"
                )
                count += 1
        finally:
            await pool.close()
    echo(
        f"dry run: {count} record(s) expired before {now.isoformat()} would be deleted; "
        "nothing was changed",
        err=True,
    )


async def _sweep(settings: RetentionSettings, now: datetime | None) -> SweepResult:
    from dagmonitor.clock import utc_now
    from services.retention.app import RETRYABLE, open_sweeper
    from services.retention.errors import SweepFailed

    try:
        async with open_sweeper(settings) as sweeper:
            return await sweeper.sweep(now or utc_now(), trigger="command")
    except RETRYABLE as exc:
        raise SweepFailed(
            f"the sweep stopped: {type(exc).__name__} talking to Kafka or PostgreSQL; what it "
            "finished stays done, run it again to complete it"
        ) from None
