"""Ingest's HTTP API: ``POST /v1/incidents`` and ``POST /v1/persons`` for the police, and
``POST /v1/municipal-reports`` / ``DELETE /v1/municipal-reports/{report_id}`` for the
municipality's reporting system.

A publishing system authenticates with its bearer token (the police's and the municipality's
are separate lists: neither can post the other's records). A police record is JSON
(``application/json``; timestamps ISO 8601 with a timezone) or Avro single-object encoding
(``application/avro`` or ``avro/binary``); a municipal report is a Signalen signal as JSON,
of which only id, category, postcode and time are kept (``municipal.report_from_signal``). A
valid record is published to its input topic (``bvh.incidents``, ``bvh.persons``,
``municipal.reports``) — the same path a Kafka-publishing system takes — and answered with 202;
an invalid one with 400 and a message naming the field and the rule (never the value).

``PUT /v1/photos/{photo_id}`` (the police's tokens) takes a person's photo for the
``photo_ref`` ``bvh://photos/{photo_id}``: JPEG or PNG, decoded and re-encoded without metadata
(``photos.clean_photo``), published to ``ingest.photos``; ``DELETE`` withdraws it (ADR 0017).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from dagmonitor.codec import PHOTO
from dagmonitor.errors import CodecError
from dagmonitor.httpauth import bearer_token
from dagmonitor.jsonio import InputError, parse_document, record_from_json
from dagmonitor.telemetry import RECORDS_IN, get_logger
from dagmonitor.validation import IDENTIFIER, InvalidRecord
from services.ingest.municipal import report_from_signal
from services.ingest.photos import STATUS, PhotoRejected, clean_photo
from services.ingest.pipeline import INCIDENTS, MUNICIPAL, NOTICES, Kind

if TYPE_CHECKING:
    from services.ingest.app import Ingest

JSON_TYPES = frozenset({"application/json"})
AVRO_TYPES = frozenset({"application/avro", "avro/binary", "application/vnd.apache.avro+binary"})
_log = get_logger(__name__)


def _problem(status: int, reason: str, detail: str) -> web.Response:
    return web.json_response({"error": reason, "detail": detail}, status=status)


def identifier_of(request: web.Request, name: str) -> str | web.Response:
    """The path's identifier ``name``, or the 400 that says what one looks like."""
    value = request.match_info[name]
    if not IDENTIFIER.fullmatch(value):
        return _problem(
            400, "invalid_identifier", f"{name}: 1-128 characters of A-Z a-z 0-9 . _ : -"
        )
    return value


def _invalid(exc: InputError | InvalidRecord | CodecError) -> web.Response:
    """The 400 of a body that is not JSON, breaks a rule, or does not fit its schema."""
    if isinstance(exc, InputError):
        return _problem(400, "invalid_json", str(exc))
    if isinstance(exc, InvalidRecord):
        return _problem(400, exc.reason.value, exc.detail)
    return _problem(400, "invalid_record", str(exc))


def routes(ingest: Ingest) -> list[web.RouteDef]:
    """The routes of the ingest API, bound to one ``Ingest``."""

    def system_of(request: web.Request, *, municipal: bool = False) -> str | None:
        token = bearer_token(request.headers.get("Authorization"))
        return ingest.settings.system_for_token(token, municipal=municipal) if token else None

    async def body_of(request: web.Request) -> bytes | web.Response:
        limit = ingest.settings.ingest_max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return _problem(413, "too_large", f"the body exceeds {limit} bytes")
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _problem(413, "too_large", f"the body exceeds {limit} bytes")

    async def received(
        request: web.Request, kind: Kind, *, municipal: bool = False
    ) -> tuple[str, bytes] | web.Response:
        """The publishing system and the body of a record of ``kind`` (counted in), or the
        401 or 413 that refuses it."""
        system = system_of(request, municipal=municipal)
        if system is None:
            return _unauthorized()
        body = await body_of(request)
        if isinstance(body, web.Response):
            return body
        RECORDS_IN.labels("ingest", f"http:{kind.source}").inc()
        return system, body

    async def post(request: web.Request, kind: Kind) -> web.Response:
        sent = await received(request, kind)
        if isinstance(sent, web.Response):
            return sent
        system, body = sent
        try:
            if request.content_type in JSON_TYPES:
                raw = _avro_from_json(kind, body, ingest)
            elif request.content_type in AVRO_TYPES:
                raw = body
            else:
                return _problem(
                    415, "unsupported_media_type", "send application/json or application/avro"
                )
            # Decoded once; the key is the record's own id, so there is no key to check.
            record = ingest.codec.decode(raw, expect=kind.schema).record
            kind.validate(record, now=ingest.clock(), clock_skew=ingest.settings.clock_skew)
            key = record[kind.key_field].encode("utf-8")
        except (InputError, InvalidRecord, CodecError) as exc:
            return _invalid(exc)
        if not ingest.can_publish():
            return _unavailable()
        await ingest.publish_raw(kind, key, raw, system)
        _log.info("http_record_accepted", kind=kind.name, system=system)
        return web.json_response(
            {"status": "accepted", "event_id": record.get("event_id") or record.get("notice_id")},
            status=202,
        )

    async def incidents(request: web.Request) -> web.Response:
        return await post(request, INCIDENTS)

    async def persons(request: web.Request) -> web.Response:
        return await post(request, NOTICES)

    async def municipal_report(request: web.Request) -> web.Response:
        sent = await received(request, MUNICIPAL, municipal=True)
        if isinstance(sent, web.Response):
            return sent
        system, body = sent
        if request.content_type not in JSON_TYPES:
            return _problem(415, "unsupported_media_type", "send a Signalen signal as JSON")
        try:
            report = report_from_signal(parse_document(body))
            MUNICIPAL.validate(report, now=ingest.clock(), clock_skew=ingest.settings.clock_skew)
            raw = ingest.codec.encode(MUNICIPAL.schema, report)
        except (InputError, InvalidRecord, CodecError) as exc:
            return _invalid(exc)
        if not ingest.can_publish():
            return _unavailable()
        await ingest.publish_raw(MUNICIPAL, report["report_id"].encode("utf-8"), raw, system)
        _log.info("http_record_accepted", kind=MUNICIPAL.name, system=system)
        return web.json_response(
            {"status": "accepted", "report_id": report["report_id"]}, status=202
        )

    async def withdraw(
        request: web.Request,
        name: str,
        tombstone: Callable[[str, str], Awaitable[None]],
        *,
        municipal: bool = False,
    ) -> web.Response:
        """Withdraw the record the path's identifier ``name`` names: ``tombstone(identifier,
        system)`` publishes its tombstone once the system is known and Kafka is there."""
        system = system_of(request, municipal=municipal)
        if system is None:
            return _unauthorized()
        identifier = identifier_of(request, name)
        if isinstance(identifier, web.Response):
            return identifier
        if not ingest.can_publish():
            return _unavailable()
        await tombstone(identifier, system)
        return web.json_response({"status": "accepted", name: identifier}, status=202)

    async def withdraw_municipal_report(request: web.Request) -> web.Response:
        async def tombstone(report_id: str, system: str) -> None:
            await ingest.publish_raw(MUNICIPAL, report_id.encode("utf-8"), None, system)
            _log.info("http_record_withdrawn", kind=MUNICIPAL.name, system=system)

        return await withdraw(request, "report_id", tombstone, municipal=True)

    async def put_photo(request: web.Request) -> web.Response:
        system = system_of(request)
        if system is None:
            return _unauthorized()
        photo_id = identifier_of(request, "photo_id")
        if isinstance(photo_id, web.Response):
            return photo_id
        limit = ingest.settings.ingest_photo_max_bytes
        if request.content_length is not None and request.content_length > limit:
            return _problem(413, "too_large", f"the photo exceeds {limit} bytes")
        body = await body_of(request)
        if isinstance(body, web.Response):
            return body
        RECORDS_IN.labels("ingest", "http:photos").inc()
        try:
            photo = clean_photo(body, request.content_type, max_bytes=limit)
        except PhotoRejected as exc:
            return _problem(STATUS[exc.problem], exc.problem.value, exc.detail)
        record = {
            "photo_id": photo_id,
            "media_type": photo.media_type,
            "width": photo.width,
            "height": photo.height,
            "data": photo.data,
            "received_at": ingest.clock(),
        }
        if not ingest.can_publish():
            return _unavailable()
        await ingest.publish_photo(photo_id, ingest.codec.encode(PHOTO, record), system)
        _log.info("http_photo_accepted", system=system, bytes=len(photo.data))
        return web.json_response(
            {
                "status": "accepted",
                "photo_id": photo_id,
                "width": photo.width,
                "height": photo.height,
            },
            status=202,
        )

    async def delete_photo(request: web.Request) -> web.Response:
        async def tombstone(photo_id: str, system: str) -> None:
            await ingest.publish_photo(photo_id, None, system)
            _log.info("http_photo_withdrawn", system=system)

        return await withdraw(request, "photo_id", tombstone)

    return [
        web.put("/v1/photos/{photo_id}", put_photo),
        web.delete("/v1/photos/{photo_id}", delete_photo),
        web.post("/v1/incidents", incidents),
        web.post("/v1/persons", persons),
        web.post("/v1/municipal-reports", municipal_report),
        web.delete("/v1/municipal-reports/{report_id}", withdraw_municipal_report),
    ]


def _unavailable() -> web.Response:
    return _problem(503, "unavailable", "not connected to Kafka yet; retry")


def _unauthorized() -> web.Response:
    response = _problem(401, "unauthorized", "a valid bearer token is required")
    response.headers["WWW-Authenticate"] = 'Bearer realm="dagmonitor-ingest"'
    return response


def _avro_from_json(kind: Kind, body: bytes, ingest: Ingest) -> bytes:
    document = parse_document(body)
    return ingest.codec.encode(kind.schema, record_from_json(kind.schema, document))
