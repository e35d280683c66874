"""Exactly-once emission through the outbox, across simulated crashes of the relay.

Each decision commits with its outbox rows; then a relay "crashes" at a chosen point (it
vanishes: producer gone, lock connection killed, nothing marked), a new relay starts, and the
topics are read from the beginning: exactly one record per decision and per approved payload.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from dagmonitor.streaming import Outputs, new_producer
from services.approval.access import Principal
from services.approval.app import ApprovalApp
from services.approval.domain import Action, Category
from services.approval.outbox import RELAY_TOPICS, OutboxRelay
from tests.integration.approval.conftest import (
    FakeClock,
    Officers,
    Published,
    approval_settings,
    http_client,
    read_topics,
    seed,
    started_app,
)
from tests.unit.approval.samples import approval_request

pytestmark = pytest.mark.integration

OM = Principal("om-1", frozenset({"OM"}))
BURGLARY = Principal("inbraak-1", frozenset({"POLICE_BURGLARY_TEAM"}))
DISTRICT = Principal("wijk-1", frozenset({"POLICE_DISTRICT"}))


async def _decide_a_mix(app: ApprovalApp, clock: FakeClock) -> dict[str, tuple[str, str | None]]:
    """Five decisions of every kind; returns request id -> (outcome, approved topic)."""
    assert app.workflow is not None
    ids = {c: await seed(app, approval_request(c, created_at=clock.now)) for c in Category}
    late = await seed(app, approval_request(Category.SUSPECT, created_at=clock.now))
    await app.workflow.decide(OM, ids[Category.SUSPECT], Action.APPROVE, None)
    await app.workflow.decide(BURGLARY, ids[Category.VICTIM], Action.APPROVE, "preventie")
    await app.workflow.decide(OM, ids[Category.VICTIM], Action.APPROVE, None)  # the chain's end
    await app.workflow.decide(DISTRICT, ids[Category.YOUTH_NUISANCE_DETAIL], Action.APPROVE, None)
    await app.workflow.decide(OM, ids[Category.PERSON_OF_INTEREST], Action.REJECT, "lopend")
    clock.advance(timedelta(days=15))
    assert await app.workflow.expire_due() == 1
    return {
        ids[Category.SUSPECT]: ("APPROVED", "persons.approved"),
        ids[Category.VICTIM]: ("APPROVED", "victims.approved"),
        ids[Category.YOUTH_NUISANCE_DETAIL]: ("APPROVED", "escalations.approved"),
        ids[Category.PERSON_OF_INTEREST]: ("REJECTED", None),
        late: ("EXPIRED", None),
    }


def _check_exactly_once(
    records: list[Published], expected: dict[str, tuple[str, str | None]], source: str
) -> None:
    mine = [r for r in records if r.source == source]
    ids = Counter(r.outbox_id for r in mine)
    assert all(n == 1 for n in ids.values()), f"an outbox record was published twice: {ids}"
    decisions = Counter(r.key for r in mine if r.topic == "approval.decisions")
    assert decisions == Counter(list(expected)), "not exactly one decision per request"
    for record in mine:
        if record.topic == "approval.decisions":
            assert record.value is not None
            assert record.value["decision"] == expected[record.key][0]
    payloads = Counter(
        (r.topic, r.value["request_id"])
        for r in mine
        if r.topic != "approval.decisions" and r.value
    )
    wanted = Counter((topic, rid) for rid, (_, topic) in expected.items() if topic is not None)
    assert payloads == wanted, "not exactly one approved payload per approval"


async def _backlog(app: ApprovalApp) -> int:
    assert app.workflow is not None
    return (await app.workflow.store.outbox_backlog())[0]


async def _foreign_records(app: ApprovalApp) -> None:
    """What else lands on these topics meanwhile: a retention tombstone (no headers)."""
    producer = new_producer(app.settings, "retention-test")
    await producer.start()
    try:
        await Outputs(producer, app.settings, "retention-test").send(
            "persons.approved", "req-from-last-year", None
        )
    finally:
        await producer.stop()


@pytest.mark.parametrize(
    "crash", ["after_commit_before_publish", "after_publish_before_mark", "halfway_through"]
)
async def test_a_relay_crash_never_loses_or_doubles(
    approval_kafka, officers: Officers, crash: str
) -> None:
    clock = FakeClock()
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings, clock=clock) as app:
        assert app.workflow is not None
        expected = await _decide_a_mix(app, clock)
        store = app.workflow.store
        assert await _backlog(app) == 8  # 5 decisions + 3 approved payloads

        first = OutboxRelay(store, settings)
        assert await first.start()
        rows = await store.fetch_unpublished(100)
        if crash == "after_publish_before_mark":
            assert len(await first.publish(rows)) == 8
        elif crash == "halfway_through":
            await first.publish(rows[:3])
            await store.mark_published([rows[0].id])  # marked one of the three
        await first.abandon()  # the process is gone: nothing more is marked
        await _foreign_records(app)

        second = OutboxRelay(store, settings)
        async with asyncio.timeout(20):
            assert await second.start()  # waits for the lock, then recovers
        try:
            published_before = {
                "after_commit_before_publish": 0,
                "after_publish_before_mark": 8,
                "halfway_through": 3,
            }[crash]
            assert await _backlog(app) == 8 - published_before  # recovery marked the rest
            assert await second.run_once() == 8 - published_before
            assert await second.run_once() == 0
        finally:
            await second.stop()
        assert await _backlog(app) == 0

        assert app.pool is not None
        assert await app.pool.fetchval("SELECT count(*) FROM outbox WHERE payload IS NOT NULL") == 0

    _check_exactly_once(await read_topics(settings, RELAY_TOPICS), expected, settings.db_schema)


async def test_only_one_relay_publishes_at_a_time(approval_kafka, officers: Officers) -> None:
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings) as app:
        assert app.workflow is not None
        first = OutboxRelay(app.workflow.store, settings)
        assert await first.start()
        try:
            standby = OutboxRelay(app.workflow.store, settings)
            stop = asyncio.Event()
            waiting = asyncio.create_task(standby.start(stop))
            await asyncio.sleep(0.5)
            assert not waiting.done()  # the lock is held by the first
            stop.set()
            assert await waiting is False
            assert not standby.started
        finally:
            await first.stop()


async def test_the_running_service_publishes_each_decision_once(
    approval_kafka, officers: Officers
) -> None:
    """End to end: HTTP decisions, the relay and the sweep running as in production."""
    clock = FakeClock()
    settings = approval_settings(approval_kafka, officers)
    async with started_app(settings, clock=clock) as app, http_client(app) as client:
        approve = await seed(app, approval_request(Category.SUSPECT, created_at=clock.now))
        reject = await seed(app, approval_request(Category.SUSPECT, created_at=clock.now))
        expire = await seed(
            app,
            approval_request(Category.VICTIM, created_at=clock.now, expires_in=timedelta(hours=1)),
        )
        stop = asyncio.Event()
        running = asyncio.create_task(app.run(stop))
        try:
            headers = officers.header(["OM"])
            bodies: list[dict[str, Any]] = [
                {"decision": "approve"},
                {"decision": "reject", "reason": "nee"},
            ]
            for request_id, body in zip([approve, reject], bodies, strict=True):
                response = await client.post(
                    f"/v1/requests/{request_id}/decision", json=body, headers=headers
                )
                assert response.status == 200
            clock.advance(timedelta(hours=2))  # the sweep (every 0.2 s) expires the third
            async with asyncio.timeout(20):
                while (
                    await _backlog(app)
                    or (
                        await app.pool.fetchval(  # type: ignore[union-attr]
                            "SELECT status FROM requests WHERE request_id = $1", expire
                        )
                    )
                    != "EXPIRED"
                ):
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await running
    expected = {
        approve: ("APPROVED", "persons.approved"),
        reject: ("REJECTED", None),
        expire: ("EXPIRED", None),
    }
    _check_exactly_once(await read_topics(settings, RELAY_TOPICS), expected, settings.db_schema)
