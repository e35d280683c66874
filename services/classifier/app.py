"""Wiring of the classifier: a stream processor that applies the policy to the ingested stream.

Routes (all on raw bytes, decoding with the project codec):

- ``ingest.incidents`` -> policy -> ``dagmonitor.entries``, ``vehicles.signals``,
  ``approval.requests``. An E35 (youth nuisance) entry is one of these outputs like any other:
  at house-number level "ter hoogte van" while the escalations view says an approved
  escalation for the incident's postcode area is in force at the record's time, plain
  otherwise (rule 3). A shared E35 report with a postcode is also counted: it goes on, keyed
  by its postcode area (PC6 or PC4, ``escalation.area_of``), to an internal topic, so that the
  E35 route sees every report of an area on one partition. What travels there is only what
  the window counts (``e35_envelope``; ADR 0016).
- ``ingest.municipal`` -> the municipality's youth-nuisance reports go on to the same internal
  topic, keyed by area, carrying only their key and time: they are counted, never shared
  (ADR 0013). A table remembers each report's area, so a withdrawal or a move uncounts it.
- the E35 route counts police and municipal reports per area in one sliding window (a table)
  and asks the district police once per area when the threshold is crossed.
- ``ingest.persons`` -> policy -> ``approval.requests``.

``escalations.approved`` is not a route but a replicated view (``dagmonitor.processor``,
``ReplicatedView``): every instance holds every approved escalation (area -> valid_until),
read to the topic's end before any route handles a record, then followed. An escalation that
arrives after an incident was classified changes only the incidents classified after it; an
entry already written is not re-emitted (ADR 0016).

Each input key remembers (a table) which output keys it produced. A newer version that no
longer produces one of them, a dropped version, or a tombstone on the input key sends
tombstones for them, so derived records disappear with their source (``versions.plan``
decides, the handlers carry it out). Outputs are produced and acknowledged before the table is
updated and before the input's offset is committed (``dagmonitor.processor``).
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

import orjson

from dagmonitor import deletion, topics
from dagmonitor.codec import (
    ESCALATION,
    INCIDENT_EVENT,
    MUNICIPAL_REPORT,
    PERSON_NOTICE,
    Codec,
    default_codec,
)
from dagmonitor.deletion import Deletion
from dagmonitor.processor import (
    Batch,
    ProcessorService,
    Record,
    ReplicatedView,
    StreamProcessor,
    Table,
    record_key,
    record_time,
)
from dagmonitor.rejection import Reason, RecordRejected
from dagmonitor.service import serve_parts
from dagmonitor.telemetry import (
    RECORDS_DROPPED,
    RECORDS_OUT,
    get_logger,
    inject_trace_headers,
)
from dagmonitor.validation import normalise_postcode
from services.classifier import escalation, versions
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
E35_TOPIC = "e35-by-postcode"
"""The E35 repartition topic's suffix after the consumer group (see ``topics.INTERNAL_TOPICS``)."""
_log = get_logger(__name__)


@functools.cache
def _dropped(reason: str) -> Any:
    """The dropped-records counter of one reason (labels() per record costs a lock and a key)."""
    return RECORDS_DROPPED.labels(SERVICE, reason)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def e35_envelope(
    key: dict[str, str], reported_at: datetime | None, district_code: str | None = None
) -> dict[str, Any]:
    """The value of one record of the internal E35 topic (keyed by postcode area): what the
    window counts, and nothing else (ADR 0016).

    ``key`` names the report: ``{"registration_number": ...}`` (police) or ``{"report_id":
    ...}`` (municipal); ``reported_at`` None withdraws it from the area's window. A police
    report also carries its ``district_code``: the request the E35 route makes when the
    threshold is crossed goes to the police of that district (``approver_role`` POLICE_DISTRICT,
    ``ApprovalRequest.district_code``), and the E35 route knows the area only. A district code
    names a police district, not a person, and is in the Dagmonitor entry anyway. A municipal
    report names no district (the request takes the area's latest police district)."""
    if reported_at is None:
        return {**key, "report": None}
    report: dict[str, Any] = {"reported_at": _ms(reported_at)}
    if "registration_number" in key:
        report["district_code"] = district_code
    return {**key, "report": report}


class Classifier(ProcessorService):
    """The classifier's parts, built once per process (or per test)."""

    def __init__(self, settings: ClassifierSettings, *, codec: Codec | None = None) -> None:
        self.settings = settings
        self.codec = codec or default_codec()
        self.policy = settings.policy()
        self.rule = settings.window_rule()
        self.area = settings.escalation_area
        self.annex = load_annex()
        self.processor = processor = StreamProcessor(
            settings,
            service=SERVICE,
            codec=self.codec,
            internal_topics=topics.internal(SERVICE),
        )

        def table(name: str, source: str) -> Table:
            return processor.table(name, topics.get(source).partitions)

        self.incident_outputs = table("incident-outputs", "ingest.incidents")
        self.notice_outputs = table("notice-outputs", "ingest.persons")
        self.municipal_reports = table("municipal-reports", "ingest.municipal")
        self.e35_windows = table("e35-windows", "escalations.approved")
        self.escalations: ReplicatedView = processor.view(
            settings.topic("escalations.approved"),
            "escalations.approved",
            topics.get("escalations.approved").partitions,
            self._decode_escalation,
        )
        self.e35_topic = f"{processor.group}-{E35_TOPIC}"
        for source, handler, used in (
            ("ingest.incidents", self._on_incident, [self.incident_outputs]),
            ("ingest.persons", self._on_notice, [self.notice_outputs]),
            ("ingest.municipal", self._on_municipal, [self.municipal_reports]),
        ):
            processor.route(settings.topic(source), source, handler, used)
        processor.route(self.e35_topic, E35_TOPIC, self._on_e35, [self.e35_windows])

    # -- escalations -----------------------------------------------------------------------

    def _decode_escalation(self, value: bytes) -> datetime:
        """What the view keeps of an approved escalation: its end (``valid_until``)."""
        until: datetime = self.codec.decode(value, expect=ESCALATION).record["valid_until"]
        return until

    def escalation_until(self, postcode: str | None) -> datetime | None:
        """The end of the approved escalation for the area of ``postcode`` (normalised), if
        the view holds one; the policy decides whether it is in force (rule 3)."""
        if postcode is None:
            return None
        until: datetime | None = self.escalations.get(
            escalation.area_of(postcode, self.area).encode("utf-8")
        )
        return until

    # -- output ----------------------------------------------------------------------------

    async def _send(self, batch: Batch, outputs: list[Output]) -> None:
        """Queue outputs, encoded with their topic's schema."""
        headers = inject_trace_headers()  # one span per record: the same for all its outputs
        for output in outputs:
            physical, schema, produced = self._output_topic(output.topic)
            await batch.send(
                physical,
                output.key.encode("utf-8"),
                self.codec.encode(schema, output.value),
                headers,
            )
            produced.inc()

    @functools.cache  # noqa: B019 - one classifier per process; a handful of topics
    def _output_topic(self, topic: str) -> tuple[str, str, Any]:
        """An output topic's physical name, value schema and records-out counter."""
        return (
            self.settings.topic(topic),
            topics.get(topic).schema,
            RECORDS_OUT.labels(SERVICE, topic),
        )

    async def _tombstone(self, batch: Batch, refs: Iterable[versions.Ref]) -> None:
        for topic, key in refs:
            await batch.send(
                self.settings.topic(topic),
                key.encode("utf-8"),
                None,
                [*inject_trace_headers(), *deletion.headers(Deletion.WITHDRAWN)],
            )
            RECORDS_OUT.labels(SERVICE, topic).inc()

    async def _carry_out(
        self,
        batch: Batch,
        table: Table,
        key: bytes,
        step: versions.Plan,
        decision: Decision | None = None,
        emit: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Carry out the plan for one record of ``key`` (``decision`` and ``emit`` None for a
        tombstone): retract, produce the new outputs (``emit``), then update ``table``."""
        if step.stale:
            _dropped("stale_version").inc()
            return
        if decision is not None and not decision.shared:
            _dropped(decision.reason or "dropped").inc()
        await self._tombstone(batch, step.tombstones)
        if step.retract_e35:
            area = escalation.area_of(step.retract_e35, self.area)
            name = {"registration_number": key.decode("utf-8")}
            await self._forward_e35(batch, area, e35_envelope(name, None))
        if emit is not None:
            await emit()
        batch.set(table, key, step.state)

    # -- incidents -------------------------------------------------------------------------

    async def _on_incident(self, message: Record, batch: Batch) -> None:
        key = record_key(message)
        previous = batch.get(self.incident_outputs, key)
        if message.value is None:
            await self._carry_out(batch, self.incident_outputs, key, versions.plan(previous, None))
            return
        record = self.codec.decode(message.value, expect=INCIDENT_EVENT).record
        now = record_time(message)
        until = self.escalation_until(normalise_postcode(record["location"].get("postcode")))
        decision = classify_incident(
            record, self.policy, self.annex, now=now, escalation_until=until
        )
        step = versions.plan(
            previous,
            record["version"],
            versions.output_refs(decision.outputs),
            decision.e35_postcode,
            tracks_e35=True,
        )
        emit = functools.partial(self._emit_incident, batch, record, decision)
        await self._carry_out(batch, self.incident_outputs, key, step, decision, emit)

    async def _emit_incident(
        self, batch: Batch, record: dict[str, Any], decision: Decision
    ) -> None:
        """The incident's outputs; a shared E35 report is also counted in its postcode area."""
        await self._send(batch, list(decision.outputs))
        if decision.e35_postcode:
            area = escalation.area_of(decision.e35_postcode, self.area)
            name = {"registration_number": record["registration_number"]}
            district = record["location"].get("district_code")
            await self._forward_e35(
                batch, area, e35_envelope(name, record["reported_at"], district)
            )

    async def _forward_e35(self, batch: Batch, area: str, envelope: dict[str, Any]) -> None:
        """Send one ``e35_envelope`` to the E35 route, keyed by its ``area``."""
        await batch.send(
            self.e35_topic,
            area.encode("utf-8"),
            orjson.dumps(envelope),
            inject_trace_headers(),
        )

    # -- municipal reports -----------------------------------------------------------------

    async def _on_municipal(self, message: Record, batch: Batch) -> None:
        """Count a municipal youth-nuisance report in its area; a tombstone uncounts it."""
        key = record_key(message)
        report_id = key.decode("utf-8")
        previous = batch.get(self.municipal_reports, key)
        area = reported_at = None
        if message.value is not None:
            record = self.codec.decode(message.value, expect=MUNICIPAL_REPORT).record
            postcode = normalise_postcode(record["postcode"])
            if postcode is None:
                raise RecordRejected(Reason.INVALID_FIELD, "postcode: not a Dutch postcode")
            area, reported_at = escalation.area_of(postcode, self.area), record["reported_at"]
        name = {"report_id": report_id}
        if previous is not None and previous["area"] != area:
            await self._forward_e35(batch, previous["area"], e35_envelope(name, None))
        if area is None or reported_at is None:
            batch.set(self.municipal_reports, key, None)
            return
        await self._forward_e35(batch, area, e35_envelope(name, reported_at))
        batch.set(self.municipal_reports, key, {"area": area})

    # -- E35 per postcode ------------------------------------------------------------------

    async def _on_e35(self, message: Record, batch: Batch) -> None:
        """Count (or uncount) one report in its area's window; ask once when it is crossed."""
        key = record_key(message)
        envelope = orjson.loads(message.value or b"null")
        state = batch.get(self.e35_windows, key)
        registration = envelope.get("registration_number")
        window_key = escalation.report_key(
            registration_number=registration, report_id=envelope.get("report_id")
        )
        report = envelope["report"]
        if report is None:
            batch.set(self.e35_windows, key, escalation.remove_report(state, window_key, self.rule))
            return
        now = record_time(message)
        if registration is not None and "entry" in report:
            await self._send_carried_entry(batch, key, registration, report, now)
        new_state, due = escalation.add_report(
            state, window_key, report["reported_at"], self.rule, report.get("district_code")
        )
        if due:
            request = escalation_request(
                key.decode("utf-8"),
                window_key,
                new_state["district_code"],
                self.policy,
                now=now,
            )
            await self._send(batch, [request])
        batch.set(self.e35_windows, key, new_state)

    async def _send_carried_entry(
        self, batch: Batch, area: bytes, registration: str, report: dict[str, Any], now: datetime
    ) -> None:
        """An envelope written before ADR 0016 carries the report's entry, not yet sent (its
        incident was committed once the envelope was acknowledged): send it, so an upgrade
        loses none. Remove once no such envelope is left (the topic keeps 7 days)."""
        until = self.escalations.get(area)
        detailed = until is not None and until > now
        entry = base64.b64decode(report["detailed_entry" if detailed else "entry"])
        await batch.send(
            self.settings.topic(ENTRIES),
            registration.encode("utf-8"),
            entry,
            inject_trace_headers(),
        )
        RECORDS_OUT.labels(SERVICE, ENTRIES).inc()

    # -- person notices --------------------------------------------------------------------

    async def _on_notice(self, message: Record, batch: Batch) -> None:
        key = record_key(message)
        previous = batch.get(self.notice_outputs, key)
        if message.value is None:
            await self._carry_out(batch, self.notice_outputs, key, versions.plan(previous, None))
            return
        record = self.codec.decode(message.value, expect=PERSON_NOTICE).record
        decision = classify_notice(record, self.policy, now=record_time(message))
        step = versions.plan(previous, record["version"], versions.output_refs(decision.outputs))
        emit = functools.partial(self._send, batch, list(decision.outputs))
        await self._carry_out(batch, self.notice_outputs, key, step, decision, emit)


async def serve(settings: ClassifierSettings | None = None) -> None:
    """Run the classifier until SIGTERM (``python -m services.classifier``)."""
    settings = settings or ClassifierSettings.load()
    await serve_parts(SERVICE, Classifier(settings), settings)
