"""Wiring of the ingest service: a stream processor on ``bvh.*``, the HTTP API, the dedupe tables.

Police systems publish to ``bvh.incidents`` / ``bvh.persons`` or POST to ``/v1/incidents`` /
``/v1/persons``; an accepted POST is published to the same ``bvh.*`` topic, so both arrive at
one stream path: decode, validate, de-duplicate by (key, version), pass the original bytes on
to ``ingest.*``. The municipality's reporting system publishes youth-nuisance reports to
``municipal.reports`` or POSTs Signalen signals to ``/v1/municipal-reports`` (ADR 0013): the
same path, without versions (the classifier counts a report once per key). Anything invalid
goes to ``pipeline.deadletter`` with a reason code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from dagmonitor import topics
from dagmonitor.clock import Clock, utc_now
from dagmonitor.codec import Codec, default_codec
from dagmonitor.processor import (
    Batch,
    ProcessorService,
    Record,
    StreamProcessor,
    Table,
    record_headers,
)
from dagmonitor.rejection import Reason, RecordRejected
from dagmonitor.service import serve_parts
from dagmonitor.telemetry import (
    RECORDS_DROPPED,
    RECORDS_OUT,
    get_logger,
    inject_trace_headers,
)
from dagmonitor.validation import InvalidRecord, Verdict, dedupe
from services.ingest.config import IngestSettings
from services.ingest.http import routes
from services.ingest.pipeline import KINDS, MUNICIPAL, Kind, check

SERVICE = "ingest"
PHOTOS_TOPIC = "ingest.photos"
_log = get_logger(__name__)


class Ingest(ProcessorService):
    """The ingest service's parts, built once per process (or per test)."""

    def __init__(
        self, settings: IngestSettings, *, clock: Clock = utc_now, codec: Codec | None = None
    ) -> None:
        self.settings = settings
        self.max_request_bytes = settings.ingest_max_body_bytes
        self.clock = clock
        self.codec = codec or default_codec()
        self.processor = StreamProcessor(
            settings,
            service=SERVICE,
            codec=self.codec,
            internal_topics=topics.internal(SERVICE),
        )
        self.tables: dict[str, Table] = {}
        for kind in KINDS:
            table = self.processor.table(
                f"{kind.name}-versions", topics.get(kind.source).partitions
            )
            self.tables[kind.name] = table
            self.processor.route(
                settings.topic(kind.source), kind.source, self._handler(kind, table), [table]
            )
        self.processor.route(
            settings.topic(MUNICIPAL.source), MUNICIPAL.source, self._on_municipal, []
        )

    def routes(self) -> list[web.RouteDef]:
        return routes(self)

    def can_publish(self) -> bool:
        """The HTTP API needs only the producer, not restored tables."""
        return self.processor.started

    def _handler(self, kind: Kind, table: Table) -> Callable[[Record, Batch], Awaitable[None]]:
        async def handle(record: Record, batch: Batch) -> None:
            await self.handle(kind, table, batch, record.key, record.value, record_headers(record))

        return handle

    async def handle(
        self,
        kind: Kind,
        table: Table,
        batch: Batch,
        key: bytes | None,
        raw: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> Verdict:
        """Validate, de-duplicate and pass on one record.

        Raises ``InvalidRecord`` / ``CodecError`` for a bad record (the caller dead-letters it).
        """
        if raw is None:
            return await self._withdraw(kind, table, batch, key)
        try:
            record = check(
                kind, raw, key, self.codec, now=self.clock(), clock_skew=self.settings.clock_skew
            )
        except InvalidRecord as exc:
            raise RecordRejected(exc.reason, exc.detail) from None
        record_key = record[kind.key_field].encode("utf-8")
        seen = batch.get(table, record_key)
        verdict = dedupe(seen["version"] if seen else None, record["version"])
        if verdict is Verdict.NEW:
            # The table changes only after the broker acknowledged the output (Batch.flush):
            # a crash in between repeats the record, never loses it.
            passed_on = [(k, v) for k, v in headers if k != "traceparent"]
            await batch.send(
                self.settings.topic(kind.target), record_key, raw, inject_trace_headers(passed_on)
            )
            batch.set(table, record_key, {"version": record["version"]})
            RECORDS_OUT.labels(SERVICE, kind.target).inc()
        else:
            RECORDS_DROPPED.labels(SERVICE, verdict.value).inc()
        return verdict

    async def _on_municipal(self, record: Record, batch: Batch) -> None:
        """Validate and pass on one municipal report; a tombstone withdraws it."""
        target = self.settings.topic(MUNICIPAL.target)
        if record.value is None:
            if record.key is None:
                raise RecordRejected(
                    Reason.KEY_MISMATCH, "a tombstone without a key names no record"
                )
            await batch.send(target, record.key, None, inject_trace_headers())
        else:
            try:
                report = check(
                    MUNICIPAL,
                    record.value,
                    record.key,
                    self.codec,
                    now=self.clock(),
                    clock_skew=self.settings.clock_skew,
                )
            except InvalidRecord as exc:
                raise RecordRejected(exc.reason, exc.detail) from None
            passed_on = [(k, v) for k, v in record_headers(record) if k != "traceparent"]
            await batch.send(
                target,
                report[MUNICIPAL.key_field].encode("utf-8"),
                record.value,
                inject_trace_headers(passed_on),
            )
        RECORDS_OUT.labels(SERVICE, MUNICIPAL.target).inc()

    async def _withdraw(self, kind: Kind, table: Table, batch: Batch, key: bytes | None) -> Verdict:
        """A tombstone from the police withdraws the registration: pass it on, keyed."""
        if key is None:
            raise RecordRejected(Reason.KEY_MISMATCH, "a tombstone without a key names no record")
        await batch.send(self.settings.topic(kind.target), key, None, inject_trace_headers())
        seen = batch.get(table, key)
        # Keep the version: an older version arriving later must not bring the record back.
        batch.set(table, key, {"version": seen["version"] if seen else 0, "withdrawn": True})
        RECORDS_OUT.labels(SERVICE, kind.target).inc()
        return Verdict.NEW

    async def publish_raw(self, kind: Kind, key: bytes, raw: bytes | None, system: str) -> None:
        """Publish an HTTP-submitted record (``None``: a withdrawal) to its input topic
        (``bvh.*``, ``municipal.reports``), as the submitting system would."""
        await self.processor.producer.send_and_wait(
            self.settings.topic(kind.source),
            raw,
            key=key,
            headers=inject_trace_headers([("dagmonitor-source-system", system.encode())]),
        )

    async def publish_photo(self, photo_id: str, raw: bytes | None, system: str) -> None:
        """Publish a photo accepted over HTTP (``None``: withdrawn) to ``ingest.photos``."""
        await self.processor.producer.send_and_wait(
            self.settings.topic(PHOTOS_TOPIC),
            raw,
            key=photo_id.encode("utf-8"),
            headers=inject_trace_headers([("dagmonitor-source-system", system.encode())]),
        )
        RECORDS_OUT.labels(SERVICE, PHOTOS_TOPIC).inc()


async def serve(settings: IngestSettings | None = None) -> None:
    """Run the ingest service until SIGTERM (``python -m services.ingest``)."""
    settings = settings or IngestSettings.load()
    await serve_parts(SERVICE, Ingest(settings), settings)
