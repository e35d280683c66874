"""Persons' photos in the notices, on the real servers (ADR 0017): a photo from
``ingest.photos`` is stored and travels inline (``cid:``, ``multipart/related``) in the notice
of the person it belongs to; a photo not yet arrived is said so; the photo goes when the last
notice that refers to it is deleted (withdrawal or retention), and an unclaimed one in time."""

from __future__ import annotations

import email
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default

import pytest

from dagmonitor import deletion
from dagmonitor.deletion import Deletion
from dagmonitor.rejection import RecordRejected
from dagmonitor.streaming import Incoming
from dagmonitor_cli.generate import portrait
from services.distributor.app import open_store
from services.distributor.dispatch import Dispatcher
from services.distributor.intake import Intake
from services.distributor.sender import OutboxSender
from services.distributor.store import Store
from tests.integration.distributor.conftest import SettingsFactory
from tests.unit.distributor.samples import approved_person

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
PERSONS = "persons.approved"
PHOTOS = "ingest.photos"


def _record(topic: str, key: str, value: dict | None, reason: Deletion | None = None) -> Incoming:
    headers = deletion.headers(reason) if reason is not None else ()
    return Incoming(topic, key, value, None, 0, 0, 0, headers)


def _photo(photo_id: str) -> dict:
    return {
        "photo_id": photo_id,
        "media_type": "JPEG",
        "width": 240,
        "height": 300,
        "data": portrait(photo_id),
        "received_at": NOW,
    }


def _person(request_id: str, photo_id: str | None) -> dict:
    value = approved_person(request_id)
    ref = f"bvh://photos/{photo_id}" if photo_id else None
    value["person"] = value["person"] | {"photo_ref": ref}
    return value


@pytest.fixture
async def parts(
    make_settings: SettingsFactory,
) -> AsyncIterator[tuple[Store, Intake, Dispatcher, OutboxSender]]:
    settings = make_settings()
    store = await open_store(settings)
    try:
        yield (
            store,
            Intake(store),
            Dispatcher(store, settings, clock=lambda: NOW),
            OutboxSender(store, settings, clock=lambda: NOW),
        )
    finally:
        await store.pool.close()


async def _photo_ids(store: Store) -> set[str]:
    return {r["photo_id"] for r in await store.pool.fetch("SELECT photo_id FROM photos")}


async def test_a_delivered_photo_is_inline_and_a_missing_one_is_said_so(
    parts: tuple[Store, Intake, Dispatcher, OutboxSender],
) -> None:
    store, intake, dispatcher, _ = parts
    await intake.handle(_record(PHOTOS, "P-1", _photo("P-1")))
    await intake.handle(_record(PERSONS, "req-1", _person("req-1", "P-1")))
    await intake.handle(_record(PERSONS, "req-2", _person("req-2", "P-2")))
    await dispatcher.batch_notices()
    # The mails as stored for sending (the sender's part is tested in test_end_to_end).
    rows = await store.pool.fetch("SELECT body FROM outbox WHERE category = 'person_notice'")
    mails = [email.message_from_bytes(bytes(r["body"]), policy=default) for r in rows]
    assert mails
    for mail in mails:
        assert isinstance(mail, EmailMessage)
        related = next(p for p in mail.walk() if p.get_content_type() == "multipart/related")
        (image,) = [p for p in related.iter_parts() if p.get_content_maintype() == "image"]
        assert image.get_content_type() == "image/jpeg"
        assert image.get_content() == portrait("P-1")
        html = _html(mail)
        assert f'src="cid:{image["Content-ID"].strip("<>")}"' in html
        assert "Foto: nog niet ontvangen" in html, "req-2's photo has not arrived"
        assert "bvh://photos/" not in html + _plain(mail)
        assert "P-1" not in image["Content-ID"], "no police reference in a header"


async def test_the_photo_goes_with_the_last_notice_that_refers_to_it(
    parts: tuple[Store, Intake, Dispatcher, OutboxSender],
) -> None:
    store, intake, _, _ = parts
    for photo_id in ("P-1", "P-2"):
        await intake.handle(_record(PHOTOS, photo_id, _photo(photo_id)))
    await intake.handle(_record(PERSONS, "req-1", _person("req-1", "P-1")))
    await intake.handle(_record(PERSONS, "req-1b", _person("req-1b", "P-1")))
    await intake.handle(_record(PERSONS, "req-2", _person("req-2", "P-2")))
    await intake.handle(_record(PERSONS, "req-1", None, Deletion.WITHDRAWN))
    assert await _photo_ids(store) == {"P-1", "P-2"}, "req-1b still refers to P-1"
    await intake.handle(_record(PERSONS, "req-1b", None, Deletion.RETENTION))
    assert await _photo_ids(store) == {"P-2"}
    await intake.handle(_record(PERSONS, "req-2", None, Deletion.WITHDRAWN))
    assert await _photo_ids(store) == set()


async def test_a_withdrawn_photo_is_deleted_and_a_newer_one_replaces_it(
    parts: tuple[Store, Intake, Dispatcher, OutboxSender],
) -> None:
    store, intake, _, _ = parts
    await intake.handle(_record(PHOTOS, "P-1", _photo("P-1")))
    await intake.handle(_record(PHOTOS, "P-1", _photo("P-1") | {"data": portrait("other")}))
    assert (await store.photos(["P-1"]))["P-1"].data == portrait("other")
    await intake.handle(_record(PHOTOS, "P-1", None))
    assert await _photo_ids(store) == set()
    with pytest.raises(RecordRejected):
        await intake.handle(_record(PHOTOS, "P-9", _photo("P-1")))


async def test_an_unclaimed_photo_is_forgotten_in_time(
    parts: tuple[Store, Intake, Dispatcher, OutboxSender],
) -> None:
    store, intake, _, _ = parts
    for photo_id in ("P-old", "P-claimed", "P-new"):
        await intake.handle(_record(PHOTOS, photo_id, _photo(photo_id)))
    await intake.handle(_record(PERSONS, "req-1", _person("req-1", "P-claimed")))
    await store.pool.execute(
        "UPDATE photos SET received_at = now() - interval '15 days' "
        "WHERE photo_id IN ('P-old', 'P-claimed')"
    )
    assert await store.forget_unclaimed_photos(14) == 1
    assert await _photo_ids(store) == {"P-claimed", "P-new"}


def _html(mail: EmailMessage) -> str:
    return str(mail.get_body(("html",)).get_content())  # type: ignore[union-attr]


def _plain(mail: EmailMessage) -> str:
    return str(mail.get_body(("plain",)).get_content())  # type: ignore[union-attr]
