"""Wiring of the ingest service: faust agents on ``bvh.*``, the HTTP API, the dedupe tables.

Police systems publish to ``bvh.incidents`` / ``bvh.persons`` or POST to ``/v1/incidents`` /
``/v1/persons``; an accepted POST is published to the same ``bvh.*`` topic, so both arrive at
one stream path: decode, validate, de-duplicate by (key, version), pass the original bytes on
to ``ingest.*``. Anything invalid goes to ``pipeline.deadletter`` with a reason code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import StreamT, TableT
from opentelemetry import trace

from dagmonitor import topics
from dagmonitor.codec import Codec, default_codec
from dagmonitor.deadletter import DeadLetters, Reason, Source, reason_for
from dagmonitor.errors import CodecError
from dagmonitor.faustapp import FaustProducer, app_ready, create_app, run_app
from dagmonitor.service import run_service
from dagmonitor.streaming import TRANSIENT_ERRORS
from dagmonitor.telemetry import (
    PROCESSING_SECONDS,
    RECORDS_DROPPED,
    RECORDS_IN,
    RECORDS_OUT,
    extract_trace_context,
    get_logger,
    inject_trace_headers,
)
from services.ingest.config import IngestSettings
from services.ingest.http import routes
from services.ingest.pipeline import KINDS, Kind, check
from services.ingest.validation import InvalidRecord, Verdict, dedupe

SERVICE = "ingest"
Clock = Callable[[], datetime]
_log = get_logger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Ingest:
    """The ingest service's parts, built once per process (or per test)."""

    def __init__(
        self, settings: IngestSettings, *, clock: Clock = utc_now, codec: Codec | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.codec = codec or default_codec()
        self.app = create_app(settings, SERVICE)
        self.producer = FaustProducer(self.app)
        self.dead_letters = DeadLetters(
            self.producer, service=SERVICE, topic_prefix=settings.topic_prefix, codec=self.codec
        )
        self.tables: dict[str, TableT] = {}
        self.started = False
        self._tracer = trace.get_tracer("dagmonitor.ingest")
        for kind in KINDS:
            spec = topics.get(kind.source)
            source = self.app.topic(
                settings.topic(kind.source), partitions=spec.partitions, internal=False
            )
            table = self.app.Table(
                f"{kind.name}-versions",
                partitions=spec.partitions,
                schema=faust.Schema(key_serializer="raw", value_serializer="json"),
            )
            self.tables[kind.name] = table
            self.app.agent(source, name=f"ingest-{kind.name}")(self._agent(kind, table))

    def _agent(self, kind: Kind, table: TableT) -> Callable[[Any], Any]:
        async def agent(stream: StreamT[bytes]) -> AsyncIterator[None]:
            async for event in stream.events():
                message = event.message
                await self._with_retry(
                    kind,
                    table,
                    message.key,
                    message.value,
                    Source(kind.source, message.key, message.partition, message.offset),
                    list(message.headers or ()),
                )
                yield None

        return agent

    async def _with_retry(
        self,
        kind: Kind,
        table: TableT,
        key: bytes | None,
        raw: bytes | None,
        source: Source,
        headers: list[tuple[str, bytes]],
    ) -> None:
        delay = 0.2
        while True:
            try:
                await self.handle(kind, table, key, raw, source, headers)
                return
            except TRANSIENT_ERRORS as exc:
                _log.warning("transient_failure_retrying", error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def handle(
        self,
        kind: Kind,
        table: TableT,
        key: bytes | None,
        raw: bytes | None,
        source: Source,
        headers: list[tuple[str, bytes]],
    ) -> Verdict | None:
        """Validate, de-duplicate and pass on one record; returns the verdict (None if bad)."""
        RECORDS_IN.labels(SERVICE, kind.source).inc()
        started = asyncio.get_running_loop().time()
        ctx = extract_trace_context(headers)
        with self._tracer.start_as_current_span(f"ingest {kind.source}", context=ctx):
            if raw is None:
                return await self._withdraw(kind, table, key, source)
            try:
                record = check(
                    kind,
                    raw,
                    key,
                    self.codec,
                    now=self.clock(),
                    clock_skew=self.settings.clock_skew,
                )
            except (CodecError, InvalidRecord) as exc:
                reason = exc.reason if isinstance(exc, InvalidRecord) else reason_for(exc)
                await self.dead_letters.send(reason, str(exc), source, raw)
                return None
            record_key = record[kind.key_field].encode("utf-8")
            seen = table.get(record_key)
            verdict = dedupe(seen["version"] if seen else None, record["version"])
            if verdict is Verdict.NEW:
                # Publish first, then remember: a crash in between repeats, never loses.
                await self.producer.send_and_wait(
                    self.settings.topic(kind.target),
                    raw,
                    record_key,
                    headers=inject_trace_headers(
                        [(k, v) for k, v in headers if k != "traceparent"]
                    ),
                )
                table[record_key] = {"version": record["version"]}
                RECORDS_OUT.labels(SERVICE, kind.target).inc()
            else:
                RECORDS_DROPPED.labels(SERVICE, verdict.value).inc()
            PROCESSING_SECONDS.labels(SERVICE, kind.source).observe(
                asyncio.get_running_loop().time() - started
            )
            return verdict

    async def _withdraw(
        self, kind: Kind, table: TableT, key: bytes | None, source: Source
    ) -> Verdict | None:
        """A tombstone from the police withdraws the registration: pass it on, keyed."""
        if key is None:
            await self.dead_letters.send(
                Reason.KEY_MISMATCH, "a tombstone without a key names no record", source, None
            )
            return None
        await self.producer.send_and_wait(
            self.settings.topic(kind.target), None, key, headers=inject_trace_headers()
        )
        seen = table.get(key)
        # Keep the version: an older version arriving later must not bring the record back.
        table[key] = {"version": seen["version"] if seen else 0, "withdrawn": True}
        RECORDS_OUT.labels(SERVICE, kind.target).inc()
        return Verdict.NEW

    async def publish_raw(self, kind: Kind, key: bytes, raw: bytes, system: str) -> None:
        """Publish an HTTP-submitted record to its ``bvh.*`` topic, as a police system would."""
        await self.producer.send_and_wait(
            self.settings.topic(kind.source),
            raw,
            key,
            headers=inject_trace_headers([("dagmonitor-source-system", system.encode())]),
        )

    async def ready(self) -> bool:
        return self.started and app_ready(self.app)

    async def run(self, stop: asyncio.Event) -> None:
        self.started = True
        try:
            await run_app(self.app, stop)
        finally:
            self.started = False


async def main(settings: IngestSettings | None = None) -> None:
    """Run the ingest service until SIGTERM."""
    settings = settings or IngestSettings.load()
    ingest = Ingest(settings)
    await run_service(
        service=SERVICE,
        settings=settings,
        host=settings.http_host,
        port=settings.http_port,
        body=ingest.run,
        checks={"kafka": ingest.ready},
        routes=routes(ingest),
        client_max_size=settings.ingest_max_body_bytes,
    )
