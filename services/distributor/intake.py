"""Consumed records into the distributor's tables: upsert by key (and version), tombstone = delete.

A record whose key does not match its value is rejected to the dead-letter topic (the detail
names the fields, never their values). Entries, by far the most records, are written a
consumer batch at a time (``EntryWrites``, ADR 0022); everything else as it comes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """An entry taken for the batch write, with the trace context of the span that consumed it."""

    record: Incoming
    value: Mapping[str, Any]
    traceparent: str | None

    @property
    def registration_number(self) -> str:
        return str(self.value["registration_number"])


def newest_per_key(
    pending: Sequence[PendingEntry],
) -> tuple[list[PendingEntry], list[PendingEntry]]:
    """(kept, superseded): per registration number the entry that writing them one by one, in
    order, would leave stored: the highest version, of equal versions the last one. One upsert
    statement may touch a row only once, so the superseded ones are not written at all."""
    kept: dict[str, PendingEntry] = {}
    superseded: list[PendingEntry] = []
    for entry in pending:
        number = entry.registration_number
        held = kept.get(number)
        if held is not None and int(held.value["version"]) > int(entry.value["version"]):
            superseded.append(entry)
            continue
        if held is not None:
            superseded.append(held)
        kept[number] = entry
    return list(kept.values()), superseded


class EntryWrites:
    """The entries of one consumer batch, written in one statement (``WriteBehind``: the
    consumer flushes them before any other record and before it commits)."""

    topics = frozenset({ENTRIES_TOPIC})

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[PendingEntry] = []

    def add(self, record: Incoming, value: Mapping[str, Any], traceparent: str | None) -> None:
        self._pending.append(PendingEntry(record, value, traceparent))

    def pending(self) -> list[Incoming]:
        return [entry.record for entry in self._pending]

    def clear(self) -> None:
        self._pending.clear()

    async def flush(self) -> None:
        kept, superseded = newest_per_key(self._pending)
        written = await self._store.upsert_entries([(e.value, e.traceparent) for e in kept])
        self._pending.clear()
        RECORDS_STORED.labels(ENTRIES_TOPIC, "written").inc(len(written))
        RECORDS_STORED.labels(ENTRIES_TOPIC, "older_version").inc(len(kept) - len(written))
        RECORDS_STORED.labels(ENTRIES_TOPIC, "superseded").inc(len(superseded))

    async def write_one(self, record: Incoming) -> None:
        if record.value is None:  # a tombstone is never deferred
            raise ValueError(f"{ENTRIES_TOPIC}: a tombstone in the batch write")
        written = await self._store.upsert_entry(record.value, traceparent=current_traceparent())
        RECORDS_STORED.labels(ENTRIES_TOPIC, "written" if written else "older_version").inc()


class Intake:
    """The consumer's handler. ``entries`` holds the entries it deferred: the consumer must be
    given it as its ``write_behind``, or call ``entries.flush()`` itself."""

    def __init__(
        self,
        store: Store,
        *,
        on_withdrawal: Callable[[], None] = lambda: None,
        on_consent: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self.entries = EntryWrites(store)
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
            self.entries.add(record, record.value, traceparent)
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
