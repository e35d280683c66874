"""The municipality's youth-nuisance reports at ingest, on the real broker (ADR 0013): the Kafka
path and the Signalen endpoint, validation, dead letters, withdrawals, and nothing personal
on the topics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dagmonitor import kafka_clients
from dagmonitor.codec import MUNICIPAL_REPORT, default_codec
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.telemetry import health_app
from services.ingest.app import Ingest
from services.ingest.config import IngestSettings
from services.ingest.http import routes
from tests.kafkautil import produce, read_all
from tests.unit.ingest.samples import PERSONAL, report, signal

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
POLICE_TOKEN = "s3cret-token-of-bvh"
MUNICIPAL_TOKEN = "s3cret-token-of-signalen"
OTHER_CATEGORY = "/signals/v1/public/terms/categories/afval/sub_categories/container-is-vol"


@pytest.fixture
async def running(fresh_settings: DagmonitorSettings) -> AsyncIterator[tuple[Ingest, TestClient]]:
    settings = IngestSettings.load(
        topic_prefix=fresh_settings.topic_prefix,
        ingest_tokens=f"bvh-midden={POLICE_TOKEN}",
        ingest_municipal_tokens=f"signalen-gm0344={MUNICIPAL_TOKEN}",
    )
    ingest = Ingest(settings, clock=lambda: NOW)
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop))
    client = TestClient(TestServer(health_app(routes=routes(ingest))))
    await client.start_server()
    try:
        async with asyncio.timeout(30):
            while not await ingest.ready():
                await asyncio.sleep(0.1)
        yield ingest, client
    finally:
        await client.close()
        stop.set()
        await task


def _encoded(record: dict) -> bytes:
    return default_codec().encode(MUNICIPAL_REPORT, record)


async def _raw_values(settings: DagmonitorSettings, topic: str, expect: int) -> list[bytes]:
    consumer = kafka_clients.consumer(
        settings, settings.topic(topic), auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(60):
            while len(values) < expect:
                for messages in (await consumer.getmany(timeout_ms=200)).values():
                    values += [m.value for m in messages if m.value is not None]
    finally:
        await consumer.stop()
    return values


async def test_kafka_path_passes_youth_nuisance_and_dead_letters_the_rest(
    running: tuple[Ingest, TestClient], fresh_settings: DagmonitorSettings
) -> None:
    other = report("sig-2", category="afval/container-is-vol")
    await produce(
        fresh_settings,
        "municipal.reports",
        [
            (b"sig-1", _encoded(report("sig-1", postcode="3511 ab"))),
            (b"sig-2", _encoded(other)),  # not youth nuisance
            (b"sig-3", _encoded(report("sig-3", postcode="3511"))),  # no full postcode
            (b"sig-9", _encoded(report("sig-4"))),  # key is not the report's id
            (b"garbage", b"\x00\x01not avro"),
            (b"sig-1", None),  # withdrawn by the municipality
        ],
    )
    passed = await read_all(fresh_settings, "ingest.municipal", expect=2)
    assert [(k, v["postcode"] if v else None) for k, v in passed] == [
        ("sig-1", "3511 ab"),
        ("sig-1", None),
    ]
    letters = await read_all(fresh_settings, "pipeline.deadletter", expect=4)
    by_key = {k: v for k, v in letters if v}
    assert {k: v["reason"] for k, v in by_key.items()} == {
        "sig-2": "category_not_counted",
        "sig-3": "invalid_postcode",
        "sig-9": "key_mismatch",
        "garbage": "not_avro",
    }
    assert by_key["sig-2"]["detail"].startswith("category: not youth nuisance")
    assert all(v["source_topic"].endswith("municipal.reports") for v in by_key.values())


async def test_the_signalen_endpoint_keeps_only_what_the_window_counts(
    running: tuple[Ingest, TestClient], fresh_settings: DagmonitorSettings
) -> None:
    _, client = running
    auth = {"Authorization": f"Bearer {MUNICIPAL_TOKEN}"}
    response = await client.post("/v1/municipal-reports", json=signal("sig-10"), headers=auth)
    assert response.status == 202, await response.text()
    assert await response.json() == {"status": "accepted", "report_id": "sig-10"}

    (raw,) = await _raw_values(fresh_settings, "ingest.municipal", expect=1)
    for personal in PERSONAL:
        assert personal.encode() not in raw
    assert default_codec().decode(raw).record == report("sig-10")

    response = await client.delete("/v1/municipal-reports/sig-10", headers=auth)
    assert response.status == 202
    passed = await read_all(fresh_settings, "ingest.municipal", expect=2)
    assert passed[-1] == ("sig-10", None)


async def test_the_signalen_endpoint_refuses_with_a_reason(
    running: tuple[Ingest, TestClient],
) -> None:
    _, client = running
    auth = {"Authorization": f"Bearer {MUNICIPAL_TOKEN}"}
    police = {"Authorization": f"Bearer {POLICE_TOKEN}"}
    path = "/v1/municipal-reports"

    assert (await client.post(path, json=signal())).status == 401
    assert (await client.post(path, json=signal(), headers=police)).status == 401
    assert (await client.delete(f"{path}/sig-1", headers=police)).status == 401
    # ... and the municipality's token posts no police record.
    assert (await client.post("/v1/incidents", json={}, headers=auth)).status == 401

    cases = [
        (signal(category_url=OTHER_CATEGORY), "category_not_counted", "category: not youth"),
        (signal(postcode=None), "invalid_postcode", "location.address.postcode: missing"),
        (signal(at="2027-06-01T12:00:00+02:00"), "invalid_timestamp", "reported_at: in the"),
        ([], "invalid_json", "record: expected a JSON object"),
    ]
    for body, reason, detail in cases:
        response = await client.post(path, json=body, headers=auth)
        assert response.status == 400
        problem = await response.json()
        assert problem["error"] == reason
        assert problem["detail"].startswith(detail), problem["detail"]
        for personal in PERSONAL:
            assert personal not in problem["detail"]

    response = await client.post(path, data=b"{", headers={**auth, "Content-Type": "text/plain"})
    assert response.status == 415
    response = await client.post(
        path, data=b"{", headers={**auth, "Content-Type": "application/json"}
    )
    assert (response.status, (await response.json())["error"]) == (400, "invalid_json")
    response = await client.delete(f"{path}/not an id", headers=auth)
    assert response.status == 400
