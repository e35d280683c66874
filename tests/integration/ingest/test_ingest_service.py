"""Ingest on the real broker: both entry paths, validation, de-duplication, dead letters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dagmonitor.codec import INCIDENT_EVENT, default_codec
from dagmonitor.jsonio import to_json
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.telemetry import health_app
from services.ingest.app import Ingest
from services.ingest.config import IngestSettings
from services.ingest.http import routes
from tests.kafkautil import produce, read_all
from tests.samples import incident

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TOKEN = "s3cret-token-of-bvh"


@pytest.fixture
async def running(fresh_settings: DagmonitorSettings) -> AsyncIterator[tuple[Ingest, TestClient]]:
    settings = IngestSettings.load(
        topic_prefix=fresh_settings.topic_prefix,
        ingest_tokens=f"bvh-midden={TOKEN}",
        ingest_max_body_bytes=4096,
    )
    ingest = Ingest(settings, clock=lambda: NOW)
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop))
    client = TestClient(TestServer(health_app(routes=routes(ingest), client_max_size=4096)))
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
    return default_codec().encode(INCIDENT_EVENT, record)


async def test_kafka_path_dedupes_and_dead_letters(
    running: tuple[Ingest, TestClient], fresh_settings: DagmonitorSettings
) -> None:
    reg = "PL0900-2026000001"
    bad_municipality = incident("PL0900-2026000002")
    bad_municipality["location"]["municipality_code"] = "0344"
    future = incident("PL0900-2026000003")
    future["reported_at"] = datetime(2027, 1, 1, tzinfo=UTC)
    await produce(
        fresh_settings,
        "bvh.incidents",
        [
            (reg.encode(), _encoded(incident(reg, version=1))),
            (reg.encode(), _encoded(incident(reg, version=1))),  # duplicate
            (reg.encode(), _encoded(incident(reg, version=2))),
            (reg.encode(), _encoded(incident(reg, version=1))),  # stale
            (b"PL0900-2026000002", _encoded(bad_municipality)),
            (b"PL0900-2026000003", _encoded(future)),
            (b"garbage", b"\x00\x01not avro"),
            (b"PL0900-2026999999", _encoded(incident(reg, version=3))),  # key mismatch
            (reg.encode(), None),  # withdrawn by the police
        ],
    )
    passed = await read_all(fresh_settings, "ingest.incidents", expect=3)
    assert [(k, v["version"] if v else None) for k, v in passed] == [
        (reg, 1),
        (reg, 2),
        (reg, None),
    ]
    letters = await read_all(fresh_settings, "pipeline.deadletter", expect=4)
    reasons = sorted(v["reason"] for _, v in letters if v)
    assert reasons == [
        "invalid_municipality_code",
        "invalid_timestamp",
        "key_mismatch",
        "not_avro",
    ]
    for _, letter in letters:
        assert letter is not None
        assert letter["service"] == "ingest"
        assert "Verzonnen" not in letter["detail"]
    garbage = next(v for k, v in letters if k == "garbage")
    assert garbage is not None and garbage["raw"] == b"\x00\x01not avro"


async def test_http_path(
    running: tuple[Ingest, TestClient], fresh_settings: DagmonitorSettings
) -> None:
    _, client = running
    auth = {"Authorization": f"Bearer {TOKEN}"}
    good = to_json(incident("PL0900-2026000010"))

    response = await client.post("/v1/incidents", json=good, headers=auth)
    assert response.status == 202, await response.text()
    assert (await response.json())["event_id"] == good["event_id"]

    avro = _encoded(incident("PL0900-2026000011"))
    response = await client.post(
        "/v1/incidents", data=avro, headers={**auth, "Content-Type": "application/avro"}
    )
    assert response.status == 202

    assert (await client.post("/v1/incidents", json=good)).status == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await client.post("/v1/incidents", json=good, headers=wrong)).status == 401

    bad = json.loads(json.dumps(good))
    bad["registration_number"] = "REG-987X"
    response = await client.post("/v1/incidents", json=bad, headers=auth)
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "invalid_registration_number"
    assert "987X" not in body["detail"]

    missing = {k: v for k, v in good.items() if k != "reported_at"}
    response = await client.post("/v1/incidents", json=missing, headers=auth)
    assert response.status == 400
    assert (await response.json())["detail"] == "reported_at: required field missing"

    enum = json.loads(json.dumps(good))
    enum["persons"][0]["role"] = "BYSTANDER"
    response = await client.post("/v1/incidents", json=enum, headers=auth)
    assert response.status == 400
    assert (await response.json())["detail"].startswith("persons[0].role: not one of SUSPECT")

    response = await client.post(
        "/v1/incidents", data=b"{not json", headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_json"

    response = await client.post(
        "/v1/incidents", data=b"x" * 5000, headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status == 413

    response = await client.post(
        "/v1/incidents", data=b"a,b", headers={**auth, "Content-Type": "text/csv"}
    )
    assert response.status == 415

    passed = await read_all(fresh_settings, "ingest.incidents", expect=2)
    assert sorted(k for k, _ in passed) == ["PL0900-2026000010", "PL0900-2026000011"]
