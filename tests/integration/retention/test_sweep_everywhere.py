"""The sweep on the real stack, with the services that keep copies running beside it.

Records on all six provided topics, provided a day, a millisecond, nothing and minus a day before
``t0``; the sweep runs at ``t0`` + 363 days, when the year-long topics' records (365 days less
the two-day deletion lead) of the first two ages have expired and the other two not, and every
record of the shorter periods (requests 30 days, victims 90) has. Exactly those go: from the
index, from every topic (tombstone, and after compaction no value left at all), from approval's
requests and their personal data, from the distributor's entries, notices and unsent mails;
each with a ``RetentionEvent``. Everything else is untouched.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from dagmonitor.clock import local_date
from dagmonitor.codec import RETENTION_EVENT, default_codec
from dagmonitor.settings import DagmonitorSettings
from services.approval.app import ApprovalApp
from services.approval.config import ApprovalSettings
from services.approval.domain import Category
from services.distributor.app import Distributor
from services.distributor.config import DistributorSettings
from services.retention import policy
from services.retention.app import RetentionApp
from services.retention.policy import PROVIDED_TOPICS
from tests.consents import record_consents
from tests.integration.retention.conftest import (
    Record,
    caught_up,
    eventually,
    index_rows,
    latest,
    now_ms,
    produce,
    public_key_pem,
    read_topic,
    retention_settings,
)
from tests.samples import escalation, signal_key
from tests.unit.approval.samples import approval_request
from tests.unit.distributor.samples import approved_person, approved_victim, entry, vehicle_signal

pytestmark = pytest.mark.integration

YEAR = policy.MAX_PERIOD - policy.DELETION_LEAD
EXPIRED = ("1d-over", "1ms-over")
NOTICE_TOPICS = ("persons.approved", "victims.approved", "vehicles.signals")
KEPT = ("exactly", "1d-to-go")


def ages(t0: datetime) -> dict[str, datetime]:
    """Provision instants, named by where they stand to a year-long period at the sweep's
    now = t0 + 365 days - the deletion lead."""
    return {
        "1d-over": t0 - timedelta(days=1),
        "1ms-over": t0 - timedelta(milliseconds=1),
        "exactly": t0,
        "1d-to-go": t0 + timedelta(days=1),
    }


def expired(record: Record, now: datetime) -> bool:
    """What the table of periods says of a record at the sweep's "now"."""
    value = record.value if isinstance(record.value, dict) else None
    return policy.is_expired(policy.expires_at(record.topic, record.at, value), now)


def records_for(tag: str, n: int, label: str, at: datetime) -> list[Record]:
    """One record on each provided topic, provided at ``at``."""
    reg = f"PL0900-{tag}{n:02d}"
    signal = vehicle_signal(reg)
    signal["plate"] = f"XX-{n:03d}-Q"
    postcode = f"{3000 + n}ZZ"
    out = [
        Record(
            "dagmonitor.entries",
            reg,
            entry(
                reg,
                mk_code="A20",
                mk_description="GEKWAL. DIEFSTAL IN/UIT WONING",
                reported_at=at,
                street="Proefsteeg",
                house_number=n,
            ),
            at,
        ),
        Record("vehicles.signals", signal_key(reg, signal["plate"]), signal, at),
        Record(
            "approval.requests",
            f"req-{tag}-{label}",
            approval_request(Category.SUSPECT, f"req-{tag}-{label}", created_at=at),
            at,
        ),
        Record("persons.approved", f"p-{tag}-{label}", approved_person(f"p-{tag}-{label}"), at),
        Record("victims.approved", f"v-{tag}-{label}", approved_victim(f"v-{tag}-{label}"), at),
        Record(
            "escalations.approved",
            postcode,
            {**escalation(postcode), "valid_until": at + timedelta(days=400)},
            at,
        ),
    ]
    assert {r.topic for r in out} == set(PROVIDED_TOPICS)
    return out


async def _fetch(
    settings: ApprovalSettings | DistributorSettings, sql: str, *args: object
) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        await conn.execute(f"SET search_path TO {settings.db_schema}")
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_sweep_deletes_exactly_the_expired_records_on_every_topic_and_in_every_service(
    prefixed: DagmonitorSettings, schemas: Callable[[str], str]
) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    t0 = now_ms() - timedelta(days=10)
    now = t0 + YEAR
    by_age = {
        label: records_for(tag, i, label, at) for i, (label, at) in enumerate(ages(t0).items())
    }
    records = [r for rs in by_age.values() for r in rs]
    provided_at = {(r.topic, r.key): r.at for r in records}
    old = [r for r in records if expired(r, now)]
    young = [r for r in records if not expired(r, now)]
    gone = {(r.topic, r.key) for r in old}
    kept = {(r.topic, r.key) for r in young}
    # The year-long topics split at the boundary; the shorter periods are over for all four.
    for topic, period in PROVIDED_TOPICS.items():
        split = {
            label
            for label, rs in by_age.items()
            for r in rs
            if r.topic == topic and expired(r, now)
        }
        assert split == (set(EXPIRED) if period == policy.MAX_PERIOD else set(by_age)), topic
    expected = {t: (2 if p == policy.MAX_PERIOD else 4) for t, p in PROVIDED_TOPICS.items()}

    settings = retention_settings(prefixed, schemas("retention"))
    approval = ApprovalApp(
        ApprovalSettings.load(
            topic_prefix=prefixed.topic_prefix,
            db_schema=schemas("approval"),
            approval_jwt_public_keys=public_key_pem(),
        ),
        group=f"test-{tag}",
    )
    distributor = Distributor(
        DistributorSettings.load(
            topic_prefix=prefixed.topic_prefix,
            db_schema=schemas("distributor"),
            smtp_allow_plaintext=True,
        )
    )
    retention = RetentionApp(settings)
    stop = asyncio.Event()
    await approval.start()
    await record_consents(prefixed.database_url.get_secret_value(), distributor.settings.db_schema)
    await distributor.start()
    await retention.start()
    assert approval.consumer and distributor.consumer and distributor.dispatcher
    assert retention.sweeper
    tasks = [
        asyncio.create_task(approval.consumer.run(stop)),
        asyncio.create_task(distributor.consumer.run(stop)),
        asyncio.create_task(retention.run(stop)),
    ]
    dist = distributor.settings
    try:
        # Phase 1, the records that will expire: their notices in one batch of unsent mails,
        # the oldest entry in a daily report of its own day, also unsent.
        await produce(prefixed, old)
        old_notices = sum(1 for r in old if r.topic in NOTICE_TOPICS)
        await eventually(lambda: _count(dist, "SELECT count(*) FROM notices", old_notices))
        await eventually(lambda: _count(dist, "SELECT count(*) FROM entries", 2))
        await distributor.dispatcher.batch_notices()
        await distributor.dispatcher.ensure_daily(local_date(ages(t0)["1d-over"], dist.tz))
        old_mails = {r["message_id"] for r in await _fetch(dist, "SELECT message_id FROM outbox")}
        # Phase 2, the records that stay: mails of their own.
        await produce(prefixed, young)
        young_notices = sum(1 for r in young if r.topic in NOTICE_TOPICS)
        await eventually(
            lambda: _count(dist, "SELECT count(*) FROM notices", old_notices + young_notices)
        )
        await eventually(lambda: _count(dist, "SELECT count(*) FROM entries", 4))
        await distributor.dispatcher.batch_notices()
        await distributor.dispatcher.ensure_daily(local_date(ages(t0)["1d-to-go"], dist.tz))
        all_mails = {r["message_id"] for r in await _fetch(dist, "SELECT message_id FROM outbox")}
        young_mails = all_mails - old_mails
        assert len(old_mails) >= 4  # three notice categories and a daily
        assert len(young_mails) >= 3  # persons and vehicles, and a daily: no victim is young
        # The unsent old mails carry exactly the expired notices and the oldest entry.
        carried = await _fetch(
            dist,
            "SELECT DISTINCT topic, key FROM outbox_records WHERE message_id = ANY($1)",
            list(old_mails),
        )
        oldest_entry = next(r for r in by_age["1d-over"] if r.topic == "dagmonitor.entries")
        assert {(r["topic"], r["key"]) for r in carried} == {
            k for k in gone if k[0] in NOTICE_TOPICS
        } | {(oldest_entry.topic, oldest_entry.key)}
        await eventually(lambda: _count(approval.settings, "SELECT count(*) FROM requests", 4))
        assert all(r.topic != "approval.requests" for r in young)

        async def indexed() -> bool:
            return len(await index_rows(settings)) == 24

        await eventually(indexed)
        assert await index_rows(settings) == provided_at  # the Kafka timestamps, to the ms

        before = now_ms()
        result = await retention.sweeper.sweep(now)
        swept_at, after = time.monotonic(), datetime.now(UTC)
        assert result.expired == expected
        assert result.cutoff == now

        # The index keeps exactly the records whose period is not over.
        assert set(await index_rows(settings)) == kept

        # Each service deleted its copy when it consumed the tombstone.
        # (every request was pending, so it goes altogether)
        await eventually(lambda: _count(approval.settings, "SELECT count(*) FROM requests", 0))
        await eventually(lambda: _count(dist, "SELECT count(*) FROM entries", 2))
        await eventually(lambda: _count(dist, "SELECT count(*) FROM notices", young_notices))
        requests = await _fetch(
            approval.settings,
            "SELECT r.request_id, s.request IS NOT NULL AS has_subject FROM requests r "
            "LEFT JOIN request_subjects s USING (request_id)",
        )
        assert {(r["request_id"], r["has_subject"]) for r in requests} == {
            (key, True) for topic, key in kept if topic == "approval.requests"
        }
        assert await _count(approval.settings, "SELECT count(*) FROM request_subjects", 0)
        entries = await _fetch(dist, "SELECT registration_number FROM entries")
        assert {("dagmonitor.entries", r[0]) for r in entries} == {
            k for k in kept if k[0] == "dagmonitor.entries"
        }
        notices = await _fetch(dist, "SELECT topic, key FROM notices")
        assert {(r["topic"], r["key"]) for r in notices} == {
            k for k in kept if k[0] in NOTICE_TOPICS
        }
        # The young mails stay, unsent with their bodies; none of them carried an expired record
        # (the victims' period is over for all, so no young mail has one).
        await eventually(
            lambda: _count(dist, "SELECT count(*) FROM outbox", len(young_mails)), timeout=10
        )
        left = await _fetch(dist, "SELECT message_id, body IS NOT NULL AS body FROM outbox")
        assert {(r["message_id"], r["body"]) for r in left} == {(m, True) for m in young_mails}

        # One RetentionEvent per deleted record, keyed topic:key.
        codec = default_codec()
        events = await read_topic(prefixed, "retention.events")
        decoded = {e.key: codec.decode(e.value, expect=RETENTION_EVENT).record for e in events}
        assert len(events) == len(decoded) == len(gone)
        assert set(decoded) == {f"{topic}:{key}" for topic, key in gone}
        for (topic, key), value in ((k.split(":", 1), v) for k, v in decoded.items()):
            assert value["topic"] == topic and value["key"] == key
            assert value["provided_at"] == provided_at[(topic, key)]
            assert before <= value["deleted_at"] <= after  # when it happened, not the "now"
            assert value["reason"] == f"retention_{PROVIDED_TOPICS[topic].days}d"

        # On every topic: a tombstone is the last word for each swept key, the others keep
        # their value.
        for topic in PROVIDED_TOPICS:
            last = latest(await read_topic(prefixed, topic))
            for t, key in gone:
                if t == topic:
                    assert last[key] is None, (topic, key)
            for t, key in kept:
                if t == topic:
                    assert last[key] is not None, (topic, key)

        # After compaction, reading a topic from the beginning yields no value for a swept key.
        async def compacted() -> bool:
            for topic in PROVIDED_TOPICS:
                for read in await read_topic(prefixed, topic):
                    if (topic, read.key) in gone and read.value is not None:
                        return False
            return True

        await eventually(compacted, timeout=90)
        took = time.monotonic() - swept_at
        print(f"\ncompaction removed every swept value {took:.1f} s after the sweep")
        for topic in PROVIDED_TOPICS:
            values = {r.key for r in await read_topic(prefixed, topic) if r.value is not None}
            assert {key for t, key in kept if t == topic} <= values

        # The segment-roll markers (tombstones of keys that never held a value) are harmless
        # to every consumer: handled, nothing dead-lettered, the young copies still there.
        assert approval.consumer is not None and distributor.consumer is not None
        await eventually(lambda: caught_up(approval.consumer))  # type: ignore[arg-type]
        await eventually(lambda: caught_up(distributor.consumer))  # type: ignore[arg-type]
        assert await read_topic(prefixed, "pipeline.deadletter") == []
        assert await _count(dist, "SELECT count(*) FROM entries", 2)
        assert await _count(dist, "SELECT count(*) FROM notices", young_notices)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await retention.stop()
        await distributor.stop()
        await approval.stop()


async def _count(settings: ApprovalSettings | DistributorSettings, sql: str, want: int) -> bool:
    rows = await _fetch(settings, sql)
    return int(rows[0][0]) == want
