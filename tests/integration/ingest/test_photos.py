"""``PUT /v1/photos/{photo_id}`` on the real broker: a police photo, checked and stripped of
its metadata, lands on ``ingest.photos``; everything else gets a clear 4xx and nothing on the
topic; ``DELETE`` withdraws it with a tombstone."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from dagmonitor.settings import DagmonitorSettings
from dagmonitor.telemetry import health_app
from services.ingest.app import Ingest
from services.ingest.config import IngestSettings
from services.ingest.http import routes
from tests.kafkautil import read_all

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TOKEN = "s3cret-token-of-bvh"
MUNICIPAL_TOKEN = "token-of-signalen"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(fresh_settings: DagmonitorSettings) -> AsyncIterator[TestClient]:
    settings = IngestSettings.load(
        topic_prefix=fresh_settings.topic_prefix,
        ingest_tokens=f"bvh-midden={TOKEN}",
        ingest_municipal_tokens=f"signalen={MUNICIPAL_TOKEN}",
    )
    ingest = Ingest(settings, clock=lambda: NOW)
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop))
    server = TestServer(health_app(routes=routes(ingest), client_max_size=1_048_576))
    test_client = TestClient(server)
    await test_client.start_server()
    try:
        async with asyncio.timeout(30):
            while not ingest.can_publish():
                await asyncio.sleep(0.1)
        yield test_client
    finally:
        await test_client.close()
        stop.set()
        await task


def _jpeg_with_gps() -> bytes:
    tags = Image.Exif()
    tags[0x8825] = {1: "N", 2: (52.0, 5.0, 0.0)}
    tags[0x010F] = "Camera of an officer"
    out = io.BytesIO()
    Image.new("RGB", (240, 300), (90, 60, 50)).save(out, format="JPEG", exif=tags)
    return out.getvalue()


async def test_a_photo_is_published_without_its_metadata(
    client: TestClient, fresh_settings: DagmonitorSettings
) -> None:
    response = await client.put(
        "/v1/photos/000123456",
        data=_jpeg_with_gps(),
        headers=AUTH | {"Content-Type": "image/jpeg"},
    )
    assert response.status == 202
    assert (await response.json()) | {} == {
        "status": "accepted",
        "photo_id": "000123456",
        "width": 240,
        "height": 300,
    }
    withdrawn = await client.delete("/v1/photos/000123456", headers=AUTH)
    assert withdrawn.status == 202
    (key, value), (tomb_key, tombstone) = await read_all(fresh_settings, "ingest.photos", expect=2)
    assert key == tomb_key == "000123456" and tombstone is None
    assert value is not None
    assert (value["photo_id"], value["media_type"]) == ("000123456", "JPEG")
    image = Image.open(io.BytesIO(value["data"]))
    assert dict(image.getexif()) == {} and b"Camera of an officer" not in value["data"]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "error"),
    [
        ("/v1/photos/1", b"x", {"Content-Type": "image/jpeg"}, 401, "unauthorized"),
        (
            "/v1/photos/1",
            b"x",
            {"Authorization": f"Bearer {MUNICIPAL_TOKEN}", "Content-Type": "image/jpeg"},
            401,
            "unauthorized",
        ),
        ("/v1/photos/1", b"x", AUTH | {"Content-Type": "image/gif"}, 415, "unsupported_media_type"),
        (
            "/v1/photos/1",
            b"not an image",
            AUTH | {"Content-Type": "image/png"},
            400,
            "invalid_image",
        ),
        ("/v1/photos/1", b"x" * 600_000, AUTH | {"Content-Type": "image/jpeg"}, 413, "too_large"),
        (
            "/v1/photos/bad%20id",
            b"x",
            AUTH | {"Content-Type": "image/jpeg"},
            400,
            "invalid_identifier",
        ),
    ],
)
async def test_bad_requests_get_a_clear_4xx_and_publish_nothing(
    client: TestClient,
    fresh_settings: DagmonitorSettings,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    error: str,
) -> None:
    response = await client.put(path, data=body, headers=headers)
    assert response.status == status
    assert (await response.json())["error"] == error
    assert await read_all(fresh_settings, "ingest.photos", idle=1.0) == []


async def test_the_demo_delivers_two_in_three_photos_of_a_generated_day(
    client: TestClient, fresh_settings: DagmonitorSettings
) -> None:
    from dagmonitor_cli.demo import _photo_refs, deliver_photos
    from dagmonitor_cli.generate import Generator

    generator = Generator(5, date(2026, 11, 27))
    lines = [*generator.incidents(150), *generator.notices(4)]
    refs = _photo_refs(lines)
    assert len(refs) >= 6
    delivered = await deliver_photos(lines, str(client.make_url("")).rstrip("/"), TOKEN)
    assert delivered == len(refs) - len(refs) // 3
    photos = await read_all(fresh_settings, "ingest.photos", expect=delivered)
    assert {f"bvh://photos/{key}" for key, _ in photos} < set(refs)
