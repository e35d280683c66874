"""Withdrawals end to end (ADR 0015), every service a real process.

Two burglaries, each with a suspect, a victim and a stolen scooter, are approved. The first is
withdrawn while its notices wait unsent (the mail server is down): everything derived from it
is tombstoned, its notices are dropped, and the other burglary's records still go out. The
second is mailed, then its scooter is recovered (a new version with ``stolen = false``) and
then it is withdrawn: every recipient of each mail that carried something of it gets one
withdrawal notice, registered as a WITHDRAWAL provision naming the provisions it withdraws.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from dagmonitor import deletion, kafka_clients, topics
from dagmonitor.codec import INCIDENT_EVENT, default_codec
from dagmonitor.settings import DagmonitorSettings
from tests.e2e_pipeline import RECIPIENTS, Mail, Pipeline
from tests.kafkautil import produce
from tests.samples import incident, signal_key

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 21)
EARLY, MAILED = "PL0900-2026100001", "PL0900-2026100002"
SAFETY = RECIPIENTS["safety_unit_officer"][0]
MEETING = RECIPIENTS["enforcement_meeting_member"][0]
LEADER = RECIPIENTS["enforcement_team_leader"][0]


def _burglary(registration: str, n: int, *, version: int = 1, stolen: bool = True) -> bytes:
    value = incident(registration, version=version)
    value["event_id"] = f"evt-{registration}-{version}"
    value["reported_at"] = datetime(2026, 11, 21, 8 + n, 0, tzinfo=UTC)
    value["location"] |= {"district_code": "WK034402", "district_name": "Noordoost"}
    suspect, victim = value["persons"]
    suspect |= {"first_names": f"Verdachte{n}", "surname": f"Proefnaam{n}"}
    victim |= {"first_names": f"Bewoner{n}", "surname": f"Testnaam{n}"}
    value["vehicles"] = [{"plate": f"XX-{n:03d}-X", "kind": "SCOOTER", "stolen": stolen}]
    return default_codec().encode(INCIDENT_EVENT, value)


def _names(n: int) -> list[str]:
    return [f"Verdachte{n} van Proefnaam{n}", f"Bewoner{n} Testnaam{n}", f"XX-{n:03d}-X"]


@pytest.fixture
async def pipeline(stack: DagmonitorSettings, tmp_path: Path) -> AsyncIterator[Pipeline]:
    pipeline = Pipeline(stack, tmp_path)
    await pipeline.start()
    try:
        yield pipeline
    finally:
        pipeline.stop()


async def _until(check: Callable[[], Any], what: str, timeout: float = 120.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.5)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def _last_words(
    settings: DagmonitorSettings, topic: str
) -> dict[str, tuple[dict[str, Any] | None, dict[str, str]]]:
    """Each key's last record on ``topic``: value and headers."""
    consumer = kafka_clients.consumer(settings, group_id=None, enable_auto_commit=False)
    await consumer.start()
    codec = default_codec()
    latest: dict[str, tuple[dict[str, Any] | None, dict[str, str]]] = {}
    try:
        name = settings.topic(topic)
        partitions = [TopicPartition(name, p) for p in range(topics.get(topic).partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    value = None if r.value is None else codec.decode(r.value).record
                    headers = {k: bytes(v).decode() for k, v in r.headers or ()}
                    latest[r.key.decode()] = (value, headers)
    finally:
        await consumer.stop()
    return latest


def _withdrawals(mails: list[Mail]) -> list[Mail]:
    return [m for m in mails if m.message["Subject"].startswith("Intrekking verstrekking")]


async def test_withdrawals_before_and_after_the_mail(pipeline: Pipeline) -> None:
    distributor = pipeline.schema("distributor")

    async def count(sql: str) -> int:
        return int((await pipeline.query(sql.format(d=distributor)))[0][0])

    async def approved_all() -> bool:
        await pipeline.decide_all()
        return await count("SELECT count(*) FROM {d}.notices") == 6

    pipeline.stop_smtp()
    await produce(
        pipeline.settings,
        "bvh.incidents",
        [(EARLY.encode(), _burglary(EARLY, 1)), (MAILED.encode(), _burglary(MAILED, 2))],
    )
    await _until(approved_all, "two suspects, two victims approved and two vehicle signals")
    await _until(lambda: _stored_batches(count), "notice batches of every category stored, unsent")

    # 1. Withdrawn before the mail: derived records tombstoned, its notices dropped.
    await pipeline.publish([{"withdraw": EARLY, "kind": "incident"}])  # dagmonitor publish

    async def early_gone() -> bool:
        return (
            await count("SELECT count(*) FROM {d}.notices") == 3
            and await count("SELECT count(*) FROM {d}.withdrawn_records") == 0
        )

    await _until(early_gone, "the early burglary's notices dropped")
    requests = await _last_words(pipeline.settings, "approval.requests")
    early_requests = {k for k, (v, _) in requests.items() if v is None}
    assert len(early_requests) == 2, "its suspect's and victim's requests are tombstoned"
    for topic, keys in (
        ("approval.requests", early_requests),
        ("persons.approved", early_requests),
        ("victims.approved", early_requests),
        ("vehicles.signals", {signal_key(EARLY, "XX-001-X")}),
        ("dagmonitor.entries", {EARLY}),
    ):
        words = await _last_words(pipeline.settings, topic)
        retracted = {k for k in keys if k in words}
        assert retracted, topic
        for key in retracted:
            value, headers = words[key]
            assert value is None and headers[deletion.HEADER] == "withdrawn", (topic, key)

    pipeline.start_smtp()

    async def notices_sent() -> bool:
        return await count("SELECT count(*) FROM {d}.outbox WHERE state <> 'sent'") == 0 and (
            await count("SELECT count(*) FROM {d}.provisions") >= 4
        )

    await _until(notices_sent, "the other burglary's notices mailed")
    mails = pipeline.mails()
    everything = "\n".join(m.text for m in mails)
    for name in _names(1):
        assert name not in everything, "a dropped notice never leaves"
    for name in _names(2):
        assert name in everything
    assert _withdrawals(mails) == [], "nothing of it had been provided"

    # 2. After the mail: the daily report, then the scooter recovered, then withdrawn.
    await pipeline.report("daily", DAY)
    await produce(
        pipeline.settings,
        "bvh.incidents",
        [(MAILED.encode(), _burglary(MAILED, 2, version=2, stolen=False))],
    )
    await _until(lambda: _withdrawal_mails(pipeline, 1), "the vehicle's withdrawal notice")
    (vehicle,) = _withdrawals(pipeline.mails())
    assert vehicle.to == [LEADER] and "XX-002-X" in vehicle.text
    assert vehicle.message["Subject"].endswith(": kenteken")

    await produce(pipeline.settings, "bvh.incidents", [(MAILED.encode(), None)])  # a tombstone
    # person: safety + leader; victim: safety; the Dagmonitor entry: all three.
    await _until(lambda: _withdrawal_mails(pipeline, 1 + 2 + 1 + 3), "every withdrawal notice")
    await asyncio.sleep(3)  # and no more than that
    notices = _withdrawals(pipeline.mails())
    assert len(notices) == 7
    by_what = sorted((m.message["Subject"].split(": ", 1)[1], tuple(m.to)) for m in notices)
    assert by_what == sorted(
        [
            ("kenteken", (LEADER,)),
            ("persoonsgegevens", (SAFETY,)),
            ("persoonsgegevens", (LEADER,)),
            ("gegevens slachtoffer", (SAFETY,)),
            ("incident Dagmonitor", (SAFETY,)),
            ("incident Dagmonitor", (MEETING,)),
            ("incident Dagmonitor", (LEADER,)),
        ]
    )
    for mail in notices:
        assert not any(name in mail.message["Subject"] for name in _names(2))
        assert MAILED not in mail.text, "recipients never see registration numbers"

    # The register: each withdrawal names the provisions it withdraws, of the same recipient,
    # which carried the withdrawn record.
    rows = await pipeline.query(
        f"SELECT provision_id, kind, recipient_address, record_keys, withdraws "
        f"FROM {distributor}.provisions"
    )
    by_id = {r["provision_id"]: r for r in rows}
    withdrawals = [r for r in rows if r["kind"] == "WITHDRAWAL"]
    assert len(withdrawals) == 7
    for row in withdrawals:
        (withdrawn,) = json.loads(row["record_keys"])
        assert row["withdraws"]
        for pid in row["withdraws"]:
            provided = by_id[pid]
            assert provided["kind"] == "PROVISION"
            assert provided["recipient_address"] == row["recipient_address"]
            assert withdrawn in json.loads(provided["record_keys"])
        assert any(
            row["recipient_address"] in m.to and all(pid in m.text for pid in row["withdraws"])
            for m in notices
        ), "the notice names the provisions it withdraws"


async def _stored_batches(count: Callable[[str], Any]) -> bool:
    categories = await count(
        "SELECT count(DISTINCT category) FROM {d}.outbox WHERE kind = 'notice'"
    )
    return bool(categories == 3)


async def _withdrawal_mails(pipeline: Pipeline, at_least: int) -> bool:
    return len(_withdrawals(pipeline.mails())) >= at_least
