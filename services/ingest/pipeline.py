"""Ingest's handling of one input record, shared by the Kafka path and the HTTP path.

``check`` decodes and validates (raising ``InvalidRecord`` / ``CodecError``); the stream
handler in ``app.py`` then de-duplicates and passes the original bytes on. Nothing here talks
to Kafka, so it is tested without servers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dagmonitor.codec import INCIDENT_EVENT, MUNICIPAL_REPORT, PERSON_NOTICE, Codec
from dagmonitor.rejection import Reason
from dagmonitor.validation import InvalidRecord, validate_incident, validate_notice
from services.ingest.municipal import validate_report

Validator = Callable[..., None]


@dataclass(frozen=True)
class Kind:
    """One kind of input record: where it comes in, its schema, its key, where it goes."""

    name: str
    source: str
    target: str
    schema: str
    key_field: str
    validate: Validator


INCIDENTS = Kind(
    "incident",
    "bvh.incidents",
    "ingest.incidents",
    INCIDENT_EVENT,
    "registration_number",
    validate_incident,
)
NOTICES = Kind(
    "notice", "bvh.persons", "ingest.persons", PERSON_NOTICE, "notice_id", validate_notice
)
KINDS = (INCIDENTS, NOTICES)
"""The police's records: versioned, de-duplicated by (key, version)."""
MUNICIPAL = Kind(
    "municipal",
    "municipal.reports",
    "ingest.municipal",
    MUNICIPAL_REPORT,
    "report_id",
    validate_report,
)
"""The municipality's youth-nuisance reports (ADR 0013): no version, counted once per key."""


def check(
    kind: Kind,
    raw: bytes,
    key: bytes | None,
    codec: Codec,
    *,
    now: datetime,
    clock_skew: timedelta,
) -> dict[str, Any]:
    """Decode and validate one record; the key must be the record's own id.

    Returns the decoded record; raises ``CodecError`` or ``InvalidRecord``.
    ``key`` is the Kafka key.
    """
    record = codec.decode(raw, expect=kind.schema).record
    kind.validate(record, now=now, clock_skew=clock_skew)
    # Strict: de-duplication state is partitioned by this key, so it must be the record's id.
    if key is None or key.decode("utf-8", "replace") != record[kind.key_field]:
        raise InvalidRecord(Reason.KEY_MISMATCH, f"record key is not the record's {kind.key_field}")
    return record
