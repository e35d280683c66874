"""Wiring of the ingest service: faust agents on ``bvh.*``, the HTTP API, the dedupe tables.

Police systems publish to ``bvh.incidents`` / ``bvh.persons`` or POST to ``/v1/incidents`` /
``/v1/persons``; an accepted POST is published to the same ``bvh.*`` topic, so both arrive at
one stream path: decode, validate, de-duplicate by (key, version), pass the original bytes on
to ``ingest.*``. Anything invalid goes to ``pipeline.deadletter`` with a reason code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from faust.types import EventT, TableT

from dagmonitor import topics
from dagmonitor.codec import Codec, default_codec
from dagmonitor.deadletter import DeadLetters, Reason
from dagmonitor.faustapp import (
    Batch,
    BatchAgents,
    FaustProducer,
    FaustService,
    create_app,
    message_headers,
)
from dagmonitor.service import run_service
from dagmonitor.streaming import RecordRejected
from dagmonitor.telemetry import (
    RECORDS_DROPPED,
    RECORDS_OUT,
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


class Ingest(FaustService):
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
        agents = BatchAgents(
            self.app, service=SERVICE, producer=self.producer, dead_letters=self.dead_letters
        )
        for kind in KINDS:
            spec = topics.get(kind.source)
            table = self.app.Table(
                f"{kind.name}-versions",
                partitions=spec.partitions,
                key_type=bytes,  # raw keys in the changelog; values as JSON
                use_partitioner=True,
            )
            self.tables[kind.name] = table
            channel = self.app.topic(settings.topic(kind.source), partitions=spec.partitions)
            agents.agent(channel, f"ingest-{kind.name}", kind.source, self._handler(kind, table))

    def _handler(self, kind: Kind, table: TableT) -> Callable[[EventT, Batch], Awaitable[None]]:
        async def handle(event: EventT, batch: Batch) -> None:
            message = event.message
            await self.handle(
                kind, table, batch, message.key, message.value, message_headers(message)
            )

        return handle

    async def handle(
        self,
        kind: Kind,
        table: TableT,
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

    async def _withdraw(
        self, kind: Kind, table: TableT, batch: Batch, key: bytes | None
    ) -> Verdict:
        """A tombstone from the police withdraws the registration: pass it on, keyed."""
        if key is None:
            raise RecordRejected(Reason.KEY_MISMATCH, "a tombstone without a key names no record")
        await batch.send(self.settings.topic(kind.target), key, None, inject_trace_headers())
        seen = batch.get(table, key)
        # Keep the version: an older version arriving later must not bring the record back.
        batch.set(table, key, {"version": seen["version"] if seen else 0, "withdrawn": True})
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
