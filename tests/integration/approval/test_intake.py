"""Consuming approval.requests from the real broker: idempotent, tombstones, dead letters."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest

from dagmonitor import kafka_clients
from dagmonitor.codec import default_codec
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.streaming import Outputs, new_producer
from services.approval.access import Principal
from services.approval.app import ApprovalApp
from services.approval.domain import Action, Category
from tests.integration.approval.conftest import (
    Officers,
    approval_settings,
    audit_rows,
    read_topics,
    started_app,
)
from tests.unit.approval.samples import approval_request

pytestmark = pytest.mark.integration


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def _count(app: ApprovalApp, sql: str, *args: object) -> int:
    assert app.pool is not None
    return int(await app.pool.fetchval(sql, *args))


async def test_requests_are_stored_once_tombstones_erase_and_bad_ones_dead_letter(
    approval_kafka, officers: Officers
) -> None:
    settings = approval_settings(approval_kafka, officers)
    tag = uuid.uuid4().hex[:8]
    suspect = approval_request(Category.SUSPECT, f"req-{tag}-a")
    victim = approval_request(Category.VICTIM, f"req-{tag}-b")
    wrong_approver = approval_request(
        Category.SUSPECT, f"req-{tag}-c", approver_role="POLICE_DISTRICT"
    )
    wrong_key = approval_request(Category.SUSPECT, f"req-{tag}-d")

    producer = new_producer(settings, "test")
    await producer.start()
    raw = kafka_clients.producer(settings)
    await raw.start()
    out = Outputs(producer, settings, "test")
    try:
        await out.send("approval.requests", suspect["request_id"], suspect)
        await out.send("approval.requests", suspect["request_id"], suspect)  # redelivered
        await out.send("approval.requests", victim["request_id"], victim)
        await out.send("approval.requests", victim["request_id"], None)  # withdrawn
        await out.send("approval.requests", wrong_approver["request_id"], wrong_approver)
        await out.send("approval.requests", f"req-{tag}-other", wrong_key)
        await raw.send_and_wait(
            settings.topic("approval.requests"), b"not avro", key=f"req-{tag}-e".encode()
        )

        async with started_app(settings) as app:
            assert app.consumer is not None and app.workflow is not None
            stop = asyncio.Event()
            task = asyncio.create_task(app.consumer.run(stop))
            try:
                await _until(lambda: _has_audit(app, victim["request_id"], "erasure"), timeout=30)
                await _until(lambda: _stored(app, suspect["request_id"]))
                await _until(lambda: _dead_letters_in(settings, tag, 3))
                requests = await app.pool.fetch(  # type: ignore[union-attr]
                    "SELECT request_id, status FROM requests WHERE request_id LIKE $1",
                    f"req-{tag}-%",
                )
                # stored once; the withdrawn victim is gone; the bad ones never arrived
                assert [(r["request_id"], r["status"]) for r in requests] == [
                    (suspect["request_id"], "PENDING")
                ]
                assert (
                    await _count(
                        app,
                        "SELECT count(*) FROM request_subjects WHERE request_id LIKE $1",
                        f"req-{tag}-%",
                    )
                    == 1
                )

                # A tombstone for a decided request deletes its personal data, keeps the rest.
                officer = Principal("om-1", frozenset({"OM"}))
                await app.workflow.decide(officer, suspect["request_id"], Action.APPROVE, None)
                await out.send("approval.requests", suspect["request_id"], None)
                await _until(lambda: _has_audit(app, suspect["request_id"], "erasure"))
                assert (
                    await _count(
                        app,
                        "SELECT count(*) FROM request_subjects WHERE request_id = $1",
                        suspect["request_id"],
                    )
                    == 0
                )
                assert (
                    await _count(
                        app,
                        "SELECT count(*) FROM requests WHERE request_id = $1 "
                        "AND status = 'APPROVED'",
                        suspect["request_id"],
                    )
                    == 1
                )
            finally:
                stop.set()
                await task
            trail = [
                (r["actor"], r["action"]) for r in await audit_rows(app, suspect["request_id"])
            ]
            assert trail == [("om-1", "decision"), ("system", "erasure")]
    finally:
        await raw.stop()
        await producer.stop()

    letters = [
        p.value
        for p in await read_topics(settings, ["pipeline.deadletter"])
        if p.key.startswith(f"req-{tag}-") and p.value is not None
    ]
    reasons = {letter["source_key"]: letter["reason"] for letter in letters}
    assert reasons == {
        f"req-{tag}-c": "invalid_field",
        f"req-{tag}-other": "invalid_field",
        f"req-{tag}-e": "not_avro",
    }
    details = {letter["source_key"]: letter["detail"] for letter in letters}
    assert "approver_role" in details[f"req-{tag}-c"]
    assert "key differs" in details[f"req-{tag}-other"]
    assert not any("Verzonnen" in d for d in details.values())
    kept = next(letter for letter in letters if letter["source_key"] == f"req-{tag}-c")
    assert default_codec().decode(kept["raw"]).record["request_id"] == f"req-{tag}-c"


async def _dead_letters_in(settings: DagmonitorSettings, tag: str, count: int) -> bool:
    found = await read_topics(settings, ["pipeline.deadletter"])
    return sum(p.key.startswith(f"req-{tag}-") for p in found) >= count


async def _has_audit(app: ApprovalApp, request_id: str, action: str) -> bool:
    rows = await audit_rows(app, request_id)
    return any(r["action"] == action for r in rows)


async def _stored(app: ApprovalApp, request_id: str) -> bool:
    return await _count(app, "SELECT count(*) FROM requests WHERE request_id = $1", request_id) == 1
