"""The police-facing HTTP API: ``POST /v1/incidents`` and ``POST /v1/persons``.

A publishing system authenticates with its bearer token. The body is one record, as JSON
(``application/json``; timestamps ISO 8601 with a timezone) or as Avro single-object encoding
(``application/avro`` or ``avro/binary``). A valid record is published to ``bvh.incidents`` /
``bvh.persons`` — the same path a Kafka-publishing system takes — and answered with 202; an
invalid one with 400 and a message naming the field and the rule (never the value).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from dagmonitor.errors import CodecError
from dagmonitor.httpauth import bearer_token
from dagmonitor.jsonio import InputError, parse_document, record_from_json
from dagmonitor.telemetry import RECORDS_IN, get_logger
from dagmonitor.validation import InvalidRecord
from services.ingest.pipeline import INCIDENTS, NOTICES, Kind

if TYPE_CHECKING:
    from services.ingest.app import Ingest

JSON_TYPES = frozenset({"application/json"})
AVRO_TYPES = frozenset({"application/avro", "avro/binary", "application/vnd.apache.avro+binary"})
_log = get_logger(__name__)


def _problem(status: int, reason: str, detail: str) -> web.Response:
    return web.json_response({"error": reason, "detail": detail}, status=status)


def routes(ingest: Ingest) -> list[web.RouteDef]:
    """The routes of the ingest API, bound to one ``Ingest``."""

    async def post(request: web.Request, kind: Kind) -> web.Response:
        token = bearer_token(request.headers.get("Authorization"))
        system = ingest.settings.system_for_token(token) if token else None
        if system is None:
            response = _problem(401, "unauthorized", "a valid bearer token is required")
            response.headers["WWW-Authenticate"] = 'Bearer realm="dagmonitor-ingest"'
            return response
        limit = ingest.settings.ingest_max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return _problem(413, "too_large", f"the body exceeds {limit} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _problem(413, "too_large", f"the body exceeds {limit} bytes")
        RECORDS_IN.labels("ingest", f"http:{kind.source}").inc()
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
        except InputError as exc:
            return _problem(400, "invalid_json", str(exc))
        except InvalidRecord as exc:
            return _problem(400, exc.reason.value, exc.detail)
        except CodecError as exc:
            return _problem(400, "invalid_record", str(exc))
        if not ingest.can_publish():
            return _problem(503, "unavailable", "not connected to Kafka yet; retry")
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

    return [web.post("/v1/incidents", incidents), web.post("/v1/persons", persons)]


def _avro_from_json(kind: Kind, body: bytes, ingest: Ingest) -> bytes:
    document = parse_document(body)
    return ingest.codec.encode(kind.schema, record_from_json(kind.schema, document))
