"""Consumed records into the distributor's tables: upsert by key (and version), tombstone = delete.

A record whose key does not match its value is rejected to the dead-letter topic (the detail
names the fields, never their values).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from dagmonitor import deletion
from dagmonitor.covenant import TERM_TOPIC
from dagmonitor.deletion import Deletion
from dagmonitor.rejection import Reason, RecordRejected
from dagmonitor.streaming import Incoming
from dagmonitor.telemetry import current_traceparent, get_logger
from services.distributor.consents import CONSENTS_TOPIC, ConsentGate
from services.distributor.covenant import FACT_TOPICS, CovenantStore
from services.distributor.entitlements import Category
from services.distributor.metrics import RECORDS_STORED
from services.distributor.store import Store

ENTRIES_TOPIC = "dagmonitor.entries"
NOTICE_TOPICS: Mapping[str, Category] = {
    "persons.approved": Category.PERSON_NOTICE,
    "victims.approved": Category.VICTIM_NOTICE,
    "vehicles.signals": Category.VEHICLE_NOTICE,
}
PHOTOS_TOPIC = "ingest.photos"
"""Persons' photos, kept for the notices that refer to them (ADR 0017)."""
TOPICS: tuple[str, ...] = (
    ENTRIES_TOPIC,
    *NOTICE_TOPICS,
    CONSENTS_TOPIC,
    PHOTOS_TOPIC,
    TERM_TOPIC,  # the covenant's term after renewals and early ends (ADR 0018)
    *FACT_TOPICS,  # counted for the evaluation report, nothing else kept (ADR 0018)
)

_log = get_logger(__name__)


_PLATE_REF = re.compile(r"[0-9a-f]{16}")


def key_matches(topic: str, key: str, value: Mapping[str, Any]) -> bool:
    """Whether ``key`` is the key a record of ``topic`` must have (the topic table's key
    column). A vehicle signal's key is ``registration_number:plate_ref``: the plate's keyed
    hash, which only the classifier (holding the id key) computes, so its form is checked."""
    if topic == "vehicles.signals":
        registration, _, plate_ref = key.rpartition(":")
        return registration == value["registration_number"] and bool(
            _PLATE_REF.fullmatch(plate_ref)
        )
    return key == expected_key(topic, value)


def expected_key(topic: str, value: Mapping[str, Any]) -> str:
    """The key a record of ``topic`` must have, for topics whose key is a field of the value."""
    if topic == ENTRIES_TOPIC:
        return str(value["registration_number"])
    if topic == PHOTOS_TOPIC:
        return str(value["photo_id"])
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
        self._covenant = CovenantStore(store.pool)
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
        if topic == PHOTOS_TOPIC:
            await self._photo(record.key, record.value)
            return
        if topic == TERM_TOPIC:  # a renewal or early end: the sender follows it at once
            await self._covenant.store_term(record.key, record.value)
            RECORDS_STORED.labels(topic, "written" if record.value else "deleted").inc()
            return
        if topic in FACT_TOPICS:
            counted = await self._covenant.add_fact(record)
            RECORDS_STORED.labels(topic, "counted" if counted else "skipped").inc()
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
        if not key_matches(topic, record.key, record.value):
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

    async def _photo(self, key: str, value: Mapping[str, Any] | None) -> None:
        """Store a photo (its key must be its id); a tombstone deletes it."""
        if value is None:
            deleted = await self._store.delete_photo(key)
            RECORDS_STORED.labels(PHOTOS_TOPIC, "deleted" if deleted else "absent").inc()
            return
        if expected_key(PHOTOS_TOPIC, value) != key:
            raise RecordRejected(Reason.INVALID_FIELD, f"{PHOTOS_TOPIC}: key does not match")
        await self._store.upsert_photo(key, str(value["media_type"]), bytes(value["data"]))
        RECORDS_STORED.labels(PHOTOS_TOPIC, "written").inc()
