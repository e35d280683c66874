"""Wiring of the classifier: faust agents that apply the policy to the ingested stream.

Agents (all on raw bytes, decoding with the project codec):

- ``ingest.incidents`` -> policy -> ``dagmonitor.entries``, ``vehicles.signals``,
  ``approval.requests``. Shared E35 reports with a postcode go on, keyed by postcode, to an
  internal topic, so that the E35 agent sees every report of a postcode on one partition.
- the E35 agent counts reports per postcode (sliding window, faust table), asks the district
  police once per postcode when the threshold is crossed, and writes the E35 entry — at house-
  number level "ter hoogte van" while an approved escalation for the postcode is in force.
- ``escalations.approved`` -> the escalations table (postcode -> valid_until), co-partitioned
  with the internal E35 topic (same key, same partition count).
- ``ingest.persons`` -> policy -> ``approval.requests``.

Each input key remembers (faust table) which output keys it produced. A newer version that no
longer produces one of them, a dropped version, or a tombstone on the input key sends
tombstones for them, so derived records disappear with their source. Outputs are produced and
acknowledged before the table is updated and before faust may commit the input's offset.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import EventT, Message, StreamT, TableT
from opentelemetry import trace

from dagmonitor import topics
from dagmonitor.codec import ESCALATION, INCIDENT_EVENT, PERSON_NOTICE, Codec, default_codec
from dagmonitor.deadletter import DeadLetters, Reason, Source, reason_for
from dagmonitor.errors import CodecError
from dagmonitor.faustapp import FaustProducer, app_ready, create_app, run_app
from dagmonitor.service import run_service
from dagmonitor.streaming import TRANSIENT_ERRORS, RecordRejected
from dagmonitor.telemetry import (
    PROCESSING_SECONDS,
    RECORDS_DROPPED,
    RECORDS_IN,
    RECORDS_OUT,
    extract_trace_context,
    get_logger,
    inject_trace_headers,
)
from services.classifier import escalation
from services.classifier.annex import load_annex
from services.classifier.config import ClassifierSettings
from services.classifier.policy import (
    ENTRIES,
    Decision,
    Output,
    classify_incident,
    classify_notice,
    escalation_request,
)

SERVICE = "classifier"
E35_TOPIC = "classifier-e35-by-postcode"
_log = get_logger(__name__)
Handler = Callable[[EventT], Any]


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _record_time(message: Message) -> datetime:
    """The input record's Kafka timestamp: "now" for the policy, identical on a replay."""
    return datetime.fromtimestamp(message.timestamp, tz=UTC)


def _headers(message: Message) -> list[tuple[str, bytes]]:
    headers = message.headers or ()
    if isinstance(headers, Mapping):
        return list(headers.items())
    return [(str(k), bytes(v)) for k, v in headers]


def _key(message: Message) -> bytes:
    if message.key is None:
        raise RecordRejected(Reason.KEY_MISMATCH, "record without a key")
    return bytes(message.key)


class Classifier:
    """The classifier's parts, built once per process (or per test)."""

    def __init__(self, settings: ClassifierSettings, *, codec: Codec | None = None) -> None:
        self.settings = settings
        self.codec = codec or default_codec()
        self.policy = settings.policy()
        self.rule = settings.window_rule()
        self.annex = load_annex()
        self.app = create_app(settings, SERVICE)
        self.producer = FaustProducer(self.app)
        self.dead_letters = DeadLetters(
            self.producer, service=SERVICE, topic_prefix=settings.topic_prefix, codec=self.codec
        )
        self.started = False
        self._tracer = trace.get_tracer("dagmonitor.classifier")
        json_schema: faust.Schema = faust.Schema(key_serializer="raw", value_serializer="json")
        escalations_spec = topics.get("escalations.approved")

        def table(name: str, source: str) -> TableT:
            return self.app.Table(
                name, partitions=topics.get(source).partitions, schema=json_schema
            )

        self.incident_outputs = table("incident-outputs", "ingest.incidents")
        self.notice_outputs = table("notice-outputs", "ingest.persons")
        self.e35_windows = table("e35-windows", "escalations.approved")
        self.escalations = table("escalations", "escalations.approved")
        self.e35_topic = self.app.topic(
            f"{self.app.conf.id}-{E35_TOPIC}",
            partitions=escalations_spec.partitions,
            internal=True,
        )
        for name, source, handler in (
            ("incidents", "ingest.incidents", self._on_incident),
            ("notices", "ingest.persons", self._on_notice),
            ("escalations", "escalations.approved", self._on_escalation),
        ):
            topic = self.app.topic(settings.topic(source), partitions=topics.get(source).partitions)
            self.app.agent(topic, name=f"classifier-{name}")(self._agent(source, handler))
        self.app.agent(self.e35_topic, name="classifier-e35")(self._agent(E35_TOPIC, self._on_e35))

    # -- plumbing --------------------------------------------------------------------------

    def _agent(self, source: str, handler: Handler) -> Callable[[Any], Any]:
        async def agent(stream: StreamT[Any]) -> AsyncIterator[None]:
            async for event in stream.events():
                await self._guarded(source, event, handler)
                yield None

        return agent

    async def _guarded(self, source: str, event: EventT, handler: Handler) -> None:
        """Run ``handler`` for one event: retry transient failures, dead-letter bad records."""
        message = event.message
        RECORDS_IN.labels(SERVICE, source).inc()
        started = asyncio.get_running_loop().time()
        ctx = extract_trace_context(_headers(message))
        delay = 0.2
        with self._tracer.start_as_current_span(f"classifier {source}", context=ctx):
            while True:
                try:
                    await handler(event)
                    break
                except TRANSIENT_ERRORS as exc:
                    _log.warning("transient_failure_retrying", error=type(exc).__name__)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
                except Exception as exc:
                    # A bad record (or a bug met on it): keep it with a reason, move on.
                    if isinstance(exc, RecordRejected):
                        reason, detail = exc.reason, exc.detail
                    elif isinstance(exc, CodecError):
                        reason, detail = reason_for(exc), str(exc)
                    else:
                        _log.exception("handler_failed", source=source)
                        reason, detail = reason_for(exc), f"handler failed: {type(exc).__name__}"
                    raw = message.value if isinstance(message.value, bytes) else None
                    source_ref = Source(source, message.key, message.partition, message.offset)
                    await self.dead_letters.send(reason, detail, source_ref, raw)
                    break
        PROCESSING_SECONDS.labels(SERVICE, source).observe(
            asyncio.get_running_loop().time() - started
        )

    async def _send(self, outputs: list[Output]) -> None:
        """Produce outputs (encoded) and wait until the broker has them all."""
        pending = []
        for output in outputs:
            schema = topics.get(output.topic).schema
            pending.append(
                self.producer.send_and_wait(
                    self.settings.topic(output.topic),
                    self.codec.encode(schema, output.value),
                    output.key.encode("utf-8"),
                    headers=inject_trace_headers(),
                )
            )
        await asyncio.gather(*pending)
        for output in outputs:
            RECORDS_OUT.labels(SERVICE, output.topic).inc()

    async def _tombstone(self, refs: list[tuple[str, str]]) -> None:
        pending = [
            self.producer.send_and_wait(
                self.settings.topic(topic),
                None,
                key.encode("utf-8"),
                headers=inject_trace_headers(),
            )
            for topic, key in refs
        ]
        await asyncio.gather(*pending)
        for topic, _ in refs:
            RECORDS_OUT.labels(SERVICE, topic).inc()

    # -- incidents -------------------------------------------------------------------------

    async def _on_incident(self, event: EventT) -> None:
        message = event.message
        key = _key(message)
        previous = self.incident_outputs.get(key)
        if message.value is None:
            await self._retract(key, previous, set())
            self.incident_outputs.pop(key, None)
            return
        record = self.codec.decode(message.value, expect=INCIDENT_EVENT).record
        if previous is not None and previous["version"] > record["version"]:
            RECORDS_DROPPED.labels(SERVICE, "stale_version").inc()
            return
        now = _record_time(message)
        decision = classify_incident(record, self.policy, self.annex, now=now)
        if not decision.shared:
            RECORDS_DROPPED.labels(SERVICE, decision.reason or "dropped").inc()
        refs = {(o.topic, o.key) for o in decision.outputs}
        await self._retract(key, previous, refs, decision)
        e35 = decision.e35_postcode
        direct = [o for o in decision.outputs if not (e35 and o.topic == ENTRIES)]
        await self._send(direct)
        if e35:
            await self._forward_e35(e35, record["registration_number"], message.value)
        self.incident_outputs[key] = {
            "version": record["version"],
            "outputs": sorted(refs),
            "e35_postcode": e35,
        }

    async def _retract(
        self,
        key: bytes,
        previous: dict[str, Any] | None,
        keep: set[tuple[str, str]],
        decision: Decision | None = None,
    ) -> None:
        """Tombstone what the previous version produced and the new one does not."""
        if previous is None:
            return
        gone = [(topic, ref) for topic, ref in previous["outputs"] if (topic, ref) not in keep]
        await self._tombstone(gone)
        old_postcode = previous.get("e35_postcode")
        new_postcode = decision.e35_postcode if decision is not None else None
        if old_postcode and old_postcode != new_postcode:
            await self._forward_e35(old_postcode, key.decode("utf-8"), None)

    async def _forward_e35(self, postcode: str, registration: str, raw: bytes | None) -> None:
        envelope = {
            "registration_number": registration,
            "incident": base64.b64encode(raw).decode("ascii") if raw is not None else None,
        }
        await self.producer.send_and_wait(
            self.e35_topic.get_topic_name(),
            json.dumps(envelope).encode("utf-8"),
            postcode.encode("utf-8"),
            headers=inject_trace_headers(),
        )

    # -- E35 per postcode ------------------------------------------------------------------

    async def _on_e35(self, event: EventT) -> None:
        message = event.message
        key = _key(message)
        envelope = json.loads(message.value or b"null")
        state = self.e35_windows.get(key)
        if envelope["incident"] is None:
            self.e35_windows[key] = escalation.remove_report(state, envelope["registration_number"])
            return
        raw = base64.b64decode(envelope["incident"])
        record = self.codec.decode(raw, expect=INCIDENT_EVENT).record
        now = _record_time(message)
        postcode = key.decode("utf-8")
        active = self.escalations.get(key)
        until = _from_ms(active["valid_until"]) if active else None
        decision = classify_incident(
            record, self.policy, self.annex, now=now, escalation_until=until
        )
        entries = [o for o in decision.outputs if o.topic == ENTRIES]
        new_state, due = escalation.add_report(
            state, record["registration_number"], _ms(record["reported_at"]), self.rule
        )
        if due:
            request = escalation_request(
                postcode,
                record["registration_number"],
                record["location"].get("district_code"),
                self.policy,
                now=now,
            )
            entries.append(request)
        await self._send(entries)
        self.e35_windows[key] = new_state

    async def _on_escalation(self, event: EventT) -> None:
        message = event.message
        key = _key(message)
        if message.value is None:
            self.escalations.pop(key, None)
            return
        record = self.codec.decode(message.value, expect=ESCALATION).record
        self.escalations[key] = {"valid_until": _ms(record["valid_until"])}

    # -- person notices --------------------------------------------------------------------

    async def _on_notice(self, event: EventT) -> None:
        message = event.message
        key = _key(message)
        previous = self.notice_outputs.get(key)
        if message.value is None:
            await self._retract(key, previous, set())
            self.notice_outputs.pop(key, None)
            return
        record = self.codec.decode(message.value, expect=PERSON_NOTICE).record
        if previous is not None and previous["version"] > record["version"]:
            RECORDS_DROPPED.labels(SERVICE, "stale_version").inc()
            return
        now = _record_time(message)
        decision = classify_notice(record, self.policy, now=now)
        if not decision.shared:
            RECORDS_DROPPED.labels(SERVICE, decision.reason or "dropped").inc()
        refs = {(o.topic, o.key) for o in decision.outputs}
        await self._retract(key, previous, refs)
        await self._send(list(decision.outputs))
        self.notice_outputs[key] = {"version": record["version"], "outputs": sorted(refs)}

    # -- running ---------------------------------------------------------------------------

    async def ready(self) -> bool:
        return self.started and app_ready(self.app)

    async def run(self, stop: asyncio.Event) -> None:
        self.started = True
        try:
            await run_app(self.app, stop)
        finally:
            self.started = False


async def main(settings: ClassifierSettings | None = None) -> None:
    """Run the classifier until SIGTERM."""
    settings = settings or ClassifierSettings.load()
    classifier = Classifier(settings)
    await run_service(
        service=SERVICE,
        settings=settings,
        host=settings.http_host,
        port=settings.http_port,
        body=classifier.run,
        checks={"kafka": classifier.ready},
    )
