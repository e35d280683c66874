"""The distributor forgets a record everywhere when its retention period is over (ADR 0019).

The retention sweep's tombstone takes the record's key out of every table of the schema: what
sent mails told about it, their links to it, a pending withdrawal, and the provision register,
which keeps the provision (who, when, category, how many records) but counts the key instead
of naming it. Behind the sweep, a backstop on the service's own clock does the same for
whatever is older than the covenant's maximum.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from dagmonitor.deletion import MAX_RETENTION
from services.distributor.app import open_store
from services.distributor.dispatch import Dispatcher
from services.distributor.sender import OutboxSender
from services.distributor.store import Store
from tests.integration.distributor.conftest import SettingsFactory, SmtpServer
from tests.unit.distributor.samples import DAY, IN_DAY, approved_person, known_day

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
PERSONS = "persons.approved"
ENTRIES = "dagmonitor.entries"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


Parts = tuple[Store, Dispatcher, OutboxSender, Clock]


@pytest.fixture
async def parts(make_settings: SettingsFactory) -> AsyncIterator[Parts]:
    # a term in force at NOW, so the mails go out
    settings = make_settings(supplement_interval_seconds=0.01, covenant_start_date=date(2026, 1, 1))
    store = await open_store(settings)
    clock = Clock()
    try:
        yield (
            store,
            Dispatcher(store, settings, clock=clock),
            OutboxSender(store, settings, clock=clock),
            clock,
        )
    finally:
        await store.pool.close()


async def _count(store: Store, sql: str, *args: Any) -> int:
    return int(await store.pool.fetchval(sql, *args))


async def _keys_in_register(store: Store) -> list[tuple[list[dict[str, str]], int]]:
    rows = await store.pool.fetch(
        "SELECT record_keys, records_forgotten FROM provisions ORDER BY provision_id"
    )
    return [(json.loads(r["record_keys"]), r["records_forgotten"]) for r in rows]


async def _mentions(store: Store, key: str) -> dict[str, int]:
    """Rows of the distributor's tables that still name ``key``, per table (text search over
    every column, so a table added later is covered too)."""
    tables = await store.pool.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
        "AND table_type = 'BASE TABLE'"
    )
    found = {}
    for row in tables:
        table = row["table_name"]
        n = await _count(
            store, f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE $1', f"%{key}%"
        )
        if n:
            found[table] = n
    return found


async def test_a_swept_record_leaves_no_key_in_any_table_and_the_register_counts_it(
    parts: Parts, smtp_server: SmtpServer
) -> None:
    store, dispatcher, sender, _clock = parts
    await store.upsert_notice(PERSONS, "req-a", "person_notice", approved_person("req-a"))
    await store.upsert_notice(PERSONS, "req-b", "person_notice", approved_person("req-b"))
    for value in known_day():
        await store.upsert_entry(value)
    await dispatcher.batch_notices()
    await dispatcher.ensure_daily(DAY)
    await sender.send_due()
    swept_entry = IN_DAY[0]
    assert await _mentions(store, "req-a"), "the scan finds the key before the sweep"
    assert "daily_provided" in await _mentions(store, swept_entry)
    # A withdrawal of the entry is pending when its period ends: it goes too.
    await store.pool.execute(
        "INSERT INTO withdrawn_records (topic, key, shown) VALUES ($1, $2, '{}'::jsonb)",
        ENTRIES,
        swept_entry,
    )
    before = await _keys_in_register(store)
    assert sum(len(keys) for keys, _ in before) > 0

    assert await store.delete_record(PERSONS, "req-a") == (1, 0)
    assert await store.delete_record(ENTRIES, swept_entry) == (1, 0)

    assert await _mentions(store, "req-a") == {}
    # Only the person notice of that incident names it (as its source): its own record, with
    # its own period.
    assert set(await _mentions(store, swept_entry)) <= {"notices"}
    after = await _keys_in_register(store)
    assert len(after) == len(before), "every provision stays registered"
    for (keys_before, _), (keys_after, forgotten) in zip(before, after, strict=True):
        gone = [k for k in keys_before if k["key"] in ("req-a", swept_entry)]
        assert keys_after == [k for k in keys_before if k not in gone]
        assert forgotten == len(gone)
    # req-b, in the same mails, is still named: nothing else is forgotten.
    assert "provisions" in await _mentions(store, "req-b")
    assert await dispatcher.ensure_withdrawals() == [], "a retention deletion tells no one"


async def test_the_backstop_forgets_what_is_older_than_a_year_by_the_services_clock(
    parts: Parts, smtp_server: SmtpServer
) -> None:
    store, dispatcher, sender, clock = parts
    await store.upsert_notice(PERSONS, "req-a", "person_notice", approved_person("req-a"))
    for value in known_day():
        await store.upsert_entry(value)
    await dispatcher.batch_notices()
    await dispatcher.ensure_daily(DAY)
    await sender.send_due()
    stamps = await store.pool.fetchrow(
        "SELECT least((SELECT min(sent_at) FROM provisions), (SELECT min(sent_at) FROM outbox), "
        "(SELECT min(received_at) FROM entries), (SELECT min(received_at) FROM notices)) AS first, "
        "greatest((SELECT max(sent_at) FROM provisions), (SELECT max(sent_at) FROM outbox), "
        "(SELECT max(received_at) FROM entries), (SELECT max(received_at) FROM notices)) AS last"
    )
    first, last = stamps["first"], stamps["last"]
    assert first is not None and last is not None
    first = min(first, datetime.combine(DAY, time(0), tzinfo=UTC))

    # A year after the first of it, less a minute: nothing goes yet.
    clock.now = first + MAX_RETENTION - timedelta(minutes=1)
    assert await dispatcher.forget_expired() == {}
    assert await _count(store, "SELECT count(*) FROM entries") == len(known_day())

    clock.now = last + MAX_RETENTION + timedelta(days=1)
    changed = await dispatcher.forget_expired()
    assert changed["entries"] == len(known_day())
    assert changed["notices"] == 1
    assert changed["outbox"] >= 2 and changed["provisions"] >= 2
    for table in ("entries", "notices", "outbox", "outbox_records", "outbox_tells"):
        assert await _count(store, f"SELECT count(*) FROM {table}") == 0, table
    assert await _count(store, "SELECT count(*) FROM daily_provided") == 0
    register = await _keys_in_register(store)
    assert register and all(keys == [] and forgotten >= 1 for keys, forgotten in register)
    assert await _mentions(store, "req-a") == {}
    for key in IN_DAY:
        assert await _mentions(store, key) == {}
    # Idempotent: a second run changes nothing.
    assert await dispatcher.forget_expired() == {}
