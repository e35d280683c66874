"""Consumed records into the distributor's tables: upsert by key (and version), tombstone = delete.

A record whose key does not match its value is rejected to the dead-letter topic (the detail
names the fields, never their values).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dagmonitor import deletion
from dagmonitor.deletion import Deletion
from dagmonitor.rejection import Reason, RecordRejected
from dagmonitor.streaming import Incoming
from dagmonitor.telemetry import current_traceparent, get_logger
from services.distributor.consents import CONSENTS_TOPIC, ConsentGate
from services.distributor.entitlements import Category
from services.distributor.metrics import RECORDS_STORED
from services.distributor.store import Store

ENTRIES_TOPIC = "dagmonitor.entries"
NOTICE_TOPICS: Mapping[str, Category] = {
    "persons.approved": Category.PERSON_NOTICE,
    "victims.approved": Category.VICTIM_NOTICE,
    "vehicles.signals": Category.VEHICLE_NOTICE,
}
TOPICS: tuple[str, ...] = (ENTRIES_TOPIC, *NOTICE_TOPICS, CONSENTS_TOPIC)

_log = get_logger(__name__)


def expected_key(topic: str, value: Mapping[str, Any]) -> str:
    """The key a record of ``topic`` must have (the topic table's key column)."""
    if topic == ENTRIES_TOPIC:
        return str(value["registration_number"])
    if topic == "vehicles.signals":
        return f"{value['registration_number']}:{value['plate']}"
    return str(value["request_id"])


class Intake:
    """The consumer's handler."""

    def __init__(
        self,
        store: Store,
        *,
        on_withdrawal: Callable[[], None] = lambda: None,
        on_consent: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._on_withdrawal = on_withdrawal
        self._consents = ConsentGate(store.pool)
        self._on_consent = on_consent

    async def handle(self, record: Incoming) -> None:
        topic = record.topic
        if record.key is None:
            raise RecordRejected(Reason.INVALID_FIELD, f"{topic}: record without a key")
        if topic == CONSENTS_TOPIC:  # the OM's standing consents (services/distributor/consents)
            await self._consents.store(record.key, record.value)
            self._on_consent()
            RECORDS_STORED.labels(topic, "written" if record.value else "deleted").inc()
            return
        if record.value is None:
            reason = deletion.reason_of(record.headers)
            if reason is Deletion.RETENTION:
                deleted, purged = await self._store.delete_record(topic, record.key)
            else:  # withdrawn: its recipients are told (Dispatcher.ensure_withdrawals)
                deleted, purged = await self._store.withdraw_record(topic, record.key)
                self._on_withdrawal()
            outcome = ("deleted" if deleted else "absent") + (
                "" if reason is Deletion.RETENTION else "_withdrawn"
            )
            RECORDS_STORED.labels(topic, outcome).inc()
            if purged:
                _log.info("unsent_mails_purged", topic=topic, mails=purged, reason=reason.value)
            return
        if expected_key(topic, record.value) != record.key:
            raise RecordRejected(Reason.INVALID_FIELD, f"{topic}: key does not match the value")
        traceparent = current_traceparent()  # the consuming span: the mail links to it
        if topic == ENTRIES_TOPIC:
            written = await self._store.upsert_entry(record.value, traceparent=traceparent)
            RECORDS_STORED.labels(topic, "written" if written else "older_version").inc()
        else:
            category = NOTICE_TOPICS[topic]
            await self._store.upsert_notice(
                topic, record.key, category.value, record.value, traceparent=traceparent
            )
            RECORDS_STORED.labels(topic, "written").inc()
