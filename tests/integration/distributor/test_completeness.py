"""A scheduled report waits for the pipeline to catch up with what was registered before it
was due (ADR 0010): with a late pipeline that catches up within the wait, the report is
complete; with one that does not, it goes out provisional and says so, and what arrives later
follows as a supplement (ADR 0011)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dagmonitor import kafka_clients
from dagmonitor.codec import INCIDENT_EVENT, default_codec
from dagmonitor.settings import DagmonitorSettings
from services.classifier.app import Classifier
from services.classifier.config import ClassifierSettings
from services.distributor.app import Distributor
from services.distributor.completeness import Completeness
from services.distributor.schedule import daily_report_day
from services.ingest.app import Ingest
from services.ingest.config import IngestSettings
from tests.integration.distributor.conftest import SettingsFactory, connect
from tests.kafkautil import produce
from tests.samples import incident

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def _running(*parts: Any) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(part.run(stop)) for part in parts]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _publish_day(settings: DagmonitorSettings, due: datetime, count: int) -> None:
    """``count`` shared burglaries reported on the report's day, published before it is due."""
    day = daily_report_day(due, settings_tz())
    reported = datetime(day.year, day.month, day.day, 10, 0, tzinfo=UTC)
    codec = default_codec()
    items = []
    for n in range(count):
        record = incident(f"PL0900-2026{700_000 + n:06d}")
        record["reported_at"] = reported + timedelta(minutes=n)
        items.append((record["registration_number"].encode(), codec.encode(INCIDENT_EVENT, record)))
    await produce(settings, "bvh.incidents", items)


def settings_tz() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Amsterdam")


async def _daily_mails(settings: Any, kind: str, period: str) -> list[tuple[str, int]]:
    conn = await connect(settings)
    try:
        rows = await conn.fetch(
            "SELECT subject, record_count FROM outbox WHERE kind = $1 AND period = $2",
            kind,
            period,
        )
    finally:
        await conn.close()
    return sorted((r["subject"], r["record_count"]) for r in rows)


@pytest.mark.parametrize("catches_up", [True, False])
async def test_a_report_waits_for_a_late_pipeline_or_goes_out_provisional(
    fresh_settings: DagmonitorSettings, make_settings: SettingsFactory, catches_up: bool
) -> None:
    prefix = fresh_settings.topic_prefix
    settings = make_settings(
        topic_prefix=prefix,
        report_complete_wait_seconds=60.0 if catches_up else 3.0,
        supplement_interval_seconds=1.0,
    )
    await _publish_day(fresh_settings, datetime.now(UTC), 4)
    await asyncio.sleep(0.1)
    due = datetime.now(UTC)  # everything above was registered before the report is due
    ingest = Ingest(IngestSettings.load(topic_prefix=prefix))
    classifier = Classifier(ClassifierSettings.load(topic_prefix=prefix))
    distributor = Distributor(settings)
    await distributor.start()
    try:
        # The distributor's intake runs; the report is made here, not by its own clock.
        async with _running(distributor.consumer):
            assert distributor.scheduler is not None
            report = asyncio.create_task(distributor.scheduler.run_reports(due))
            await asyncio.sleep(2.0)  # the pipeline is late: nothing consumed yet
            assert not report.done()
            if catches_up:
                async with _running(ingest, classifier):
                    await asyncio.wait_for(report, timeout=60)
            else:
                await asyncio.wait_for(report, timeout=30)
            day = daily_report_day(due, settings.tz)
            mails = await _daily_mails(settings, "daily", day.isoformat())
            assert distributor.sender is not None and distributor.dispatcher is not None
            await distributor.sender.send_due()
            if not catches_up:
                # The pipeline catches up after the provisional report: a supplement follows.
                async with _running(ingest, classifier):
                    await _wait_for_entries(settings, 4)
                supplements = await _wait_for_supplements(distributor.dispatcher)
                await distributor.sender.send_due()
            extra = await _daily_mails(settings, "supplement", f"{day.isoformat()}.aanvulling-1")
    finally:
        await distributor.stop()
    assert len(mails) == 3  # one per entitled role
    for subject, records in mails:
        if catches_up:
            assert not subject.startswith("Voorlopig"), subject
            assert records == 4
        else:
            assert subject.startswith("Voorlopig: Dagmonitor"), subject
            assert records == 0
    if catches_up:
        assert extra == []
    else:
        assert [(o.stored, o.records) for o in supplements] == [(1, 4)] * 3
        label = day.strftime("%d-%m-%Y")
        assert extra == [(f"Aanvulling Dagmonitor {label}", 4)] * 3


async def _wait_for_entries(settings: Any, count: int) -> None:
    conn = await connect(settings)
    try:
        for _ in range(240):
            if await conn.fetchval("SELECT count(*) FROM entries") >= count:
                return
            await asyncio.sleep(0.25)
    finally:
        await conn.close()
    raise AssertionError(f"fewer than {count} entries reached the distributor in 60 s")


async def _wait_for_supplements(dispatcher: Any) -> list[Any]:
    """The supplements of the first run that has any (its interval may not have passed)."""
    for _ in range(20):
        outcomes = await dispatcher.ensure_supplements()
        if outcomes:
            return list(outcomes)
        await asyncio.sleep(0.5)
    raise AssertionError("no supplement in 10 s")


async def test_completeness_follows_the_committed_offsets_stage_by_stage(
    fresh_settings: DagmonitorSettings,
) -> None:
    from aiokafka import TopicPartition

    settings = fresh_settings
    completeness = Completeness(settings, poll_seconds=0.1)
    await _publish_day(settings, datetime.now(UTC), 3)
    due = datetime.now(UTC) + timedelta(milliseconds=1)
    await asyncio.sleep(0.05)
    await _publish_day(settings, due + timedelta(days=1), 2)  # after the due time
    assert not await completeness.wait(due, timeout=1.0)

    async def commit_to(service: str, topic: str, ends: dict[int, int] | None = None) -> None:
        consumer = kafka_clients.consumer(
            settings,
            group_id=settings.group(service),
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            tps = [TopicPartition(settings.topic(topic), p) for p in range(6)]
            consumer.assign(tps)
            offsets = ends or {
                tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()
            }
            await consumer.commit({tp: offsets[tp.partition] for tp in tps})
        finally:
            await consumer.stop()

    # Ingest committing only what came before the due time is enough for the first stage.
    consumer = kafka_clients.consumer(settings)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic("bvh.incidents"), p) for p in range(6)]
        found = await consumer.offsets_for_times({tp: int(due.timestamp() * 1000) for tp in tps})
        ends = await consumer.end_offsets(tps)
        before_due = {tp.partition: (found[tp].offset if found[tp] else ends[tp]) for tp in tps}
    finally:
        await consumer.stop()
    assert before_due != {tp.partition: ends[tp] for tp in tps}
    await commit_to("ingest", "bvh.incidents", before_due)
    assert await completeness.wait(due, timeout=2.0)  # nothing came downstream yet
    await produce(settings, "dagmonitor.entries", [(b"PL0900-2026000001", b"x")])
    assert not await completeness.wait(due, timeout=1.0)  # the distributor has not read it
    await commit_to("distributor", "dagmonitor.entries")
    assert await completeness.wait(due, timeout=2.0)
