"""Outside the covenant's term retention keeps deleting: the end of the term stops provision,
never the deletion of what was provided (docs/adr/0018-covenant-term.md)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from dagmonitor.settings import DagmonitorSettings
from dagmonitor_cli.cli import cli
from tests.integration.retention.conftest import index_rows, now_ms, retention_settings, seed_index

pytestmark = pytest.mark.integration

ENDED = {
    "DAGMONITOR_COVENANT_START_DATE": "2024-01-01",
    "DAGMONITOR_COVENANT_END_DATE": "2024-12-31",
}


async def test_after_the_end_the_sweep_still_deletes_what_was_provided(
    prefixed: DagmonitorSettings, schemas: Callable[[str], str]
) -> None:
    settings = retention_settings(
        prefixed,
        schemas("retention"),
        covenant_start_date=date(2024, 1, 1),
        covenant_end_date=date(2024, 12, 31),
    )
    assert not settings.covenant_term.in_term(now_ms(), ZoneInfo("Europe/Amsterdam"))
    key = f"PL0900-{uuid.uuid4().hex[:6]}"
    await seed_index(settings, [("dagmonitor.entries", key, now_ms() - timedelta(days=400))])
    env = {
        "DAGMONITOR_DB_SCHEMA": settings.db_schema,
        "DAGMONITOR_TOPIC_PREFIX": settings.topic_prefix,
        **ENDED,
    }
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["retention", "sweep"], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert await index_rows(settings) == {}
