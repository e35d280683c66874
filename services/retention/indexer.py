"""Consumed records of the compacted output topics into the index of provided records.

A value under a key: indexed with its Kafka timestamp, unless the key is indexed already (it
keeps its first provision time). A tombstone: the row goes (a police withdrawal, a retraction
by the classifier, or the sweep's own tombstone coming back), and the topic owes a segment roll
so that compaction removes the value (see ``compaction.py``).

The index needs the key, the timestamp and whether the record is a tombstone; the value only
where the table of periods names a field of it that ends the period sooner (an area ban's
``valid_until``). ``KEYS_ONLY`` lets the shared consumer skip decoding, so a value that no
service can decode is still indexed and still expires (by its topic's period alone); the
indexer decodes the raw value itself for those topics only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dagmonitor import topics
from dagmonitor.codec import Codec, Decoded, default_codec
from dagmonitor.errors import DagmonitorError
from dagmonitor.rejection import Reason, RecordRejected
from dagmonitor.streaming import Incoming
from services.retention import compaction, policy
from services.retention.metrics import RECORDS_INDEXED, RECORDS_WITHDRAWN
from services.retention.policy import Provided, is_roll_marker
from services.retention.store import Store


class _KeysOnly(Codec):
    """A codec that reads no value: every non-null value decodes to an empty record."""

    def __init__(self) -> None:
        super().__init__({})

    def decode(self, data: bytes | bytearray | memoryview, expect: str | None = None) -> Decoded:
        return Decoded(expect or "", {}, b"")


KEYS_ONLY: Codec = _KeysOnly()


class Indexer:
    """The consumer's handler."""

    def __init__(self, store: Store, *, roll_delay: timedelta, roll_bucket: timedelta) -> None:
        self._store = store
        self._roll_delay = roll_delay
        self._roll_bucket = roll_bucket

    async def handle(self, record: Incoming) -> None:
        topic = record.topic
        if record.key is None:
            raise RecordRejected(Reason.INVALID_FIELD, f"{topic}: record without a key")
        at = datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC)
        if record.value is None:
            due = None
            if not is_roll_marker(record.key):
                due = compaction.roll_due(at, self._roll_delay, self._roll_bucket)
            if await self._store.forget(topic, record.key, due):
                RECORDS_WITHDRAWN.labels(topic).inc()
            return
        provided = Provided(
            topic, record.key, at, policy.expires_at(topic, at, _value(topic, record.raw))
        )
        new = await self._store.index(provided)
        RECORDS_INDEXED.labels(topic, "new" if new else "known").inc()


def _value(topic: str, raw: bytes | None) -> dict[str, Any] | None:
    """The decoded value where the topic's period depends on it; None otherwise or when it
    cannot be read (the period alone then applies)."""
    if raw is None or policy.PERIODS[topic].ends_with is None:
        return None
    try:
        return default_codec().decode(raw, expect=topics.get(topic).schema).record
    except (DagmonitorError, ValueError):
        return None
