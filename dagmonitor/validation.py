"""What a valid police record is, beyond its Avro schema. Pure functions, no I/O.

``validate_incident`` and ``validate_notice`` raise ``InvalidRecord`` with a reason code (the
dead-letter reason and metric label) and a detail that names the field and the rule, never the
value. ``dedupe`` decides whether a version of a registration is new, a repeat or stale.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from dagmonitor.errors import DagmonitorError
from dagmonitor.rejection import Reason

REGISTRATION_NUMBER = re.compile(r"^PL[0-9]{4}-[0-9]{10}$")
MUNICIPALITY_CODE = re.compile(r"^GM[0-9]{4}$")
MK_CODE = re.compile(r"^[A-Z][0-9]{2,4}$")
IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_VERSION = 1_000_000
# An area ban or a repeat-offender notice runs for months, a court's ban for a few years; a
# notice valid for longer than this is a data error (a placeholder like 9999-12-31).
MAX_NOTICE_VALIDITY = timedelta(days=5 * 366)
# Text fields may hold any character except controls: C0 (NUL, ESC, ...), DEL and C1. Tab, line
# feed and carriage return are allowed (free text is written on several lines). Every later
# hop (Kafka, PostgreSQL text, SMTP, HTML) accepts what this lets through.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# A Dutch postcode: 4 digits not starting with 0, two letters, never SA, SD or SS (PostNL does
# not issue them).
_POSTCODE = re.compile(r"^([1-9][0-9]{3})([A-Z]{2})$")
_UNUSED_POSTCODE_LETTERS = frozenset({"SA", "SD", "SS"})


@functools.lru_cache(maxsize=65_536)  # pure; a city has some ten thousand postcodes
def normalise_postcode(postcode: str | None) -> str | None:
    """A Dutch postcode as ``1234AB``; None when absent or not a valid Dutch postcode.

    Police systems and municipal ones send any whitespace inside and around it (``3512  AB``,
    `` 3512ab ``, tabs, no-break spaces): all of it goes. The one rule for every service.
    """
    if postcode is None:
        return None
    compact = re.sub(r"\s+", "", unicodedata.normalize("NFKC", postcode)).upper()
    match = _POSTCODE.fullmatch(compact)
    if match is None or match.group(2) in _UNUSED_POSTCODE_LETTERS:
        return None
    return match.group(1) + match.group(2)


class InvalidRecord(DagmonitorError):
    """A record that breaks a rule; ``detail`` names the field and the rule only."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def validate_incident(
    event: Mapping[str, Any], *, now: datetime, clock_skew: timedelta = timedelta(minutes=5)
) -> None:
    """Check an ``IncidentEvent`` (already schema-valid) or raise ``InvalidRecord``."""
    check_text(event)
    _identifier(event["event_id"], "event_id")
    if not REGISTRATION_NUMBER.fullmatch(event["registration_number"]):
        raise InvalidRecord(
            Reason.INVALID_REGISTRATION_NUMBER,
            "registration_number: expected PL, 4 digits, a hyphen and 10 digits",
        )
    _version(event["version"])
    if not MK_CODE.fullmatch(event["mk_code"].strip().upper()):
        raise InvalidRecord(Reason.INVALID_MK_CODE, "mk_code: expected a letter and 2-4 digits")
    if not MUNICIPALITY_CODE.fullmatch(event["location"]["municipality_code"].strip().upper()):
        raise InvalidRecord(
            Reason.INVALID_MUNICIPALITY_CODE,
            "location.municipality_code: expected a CBS code GMdddd",
        )
    latest = now + clock_skew
    _in_range(event["reported_at"], "reported_at", latest)
    committed_from, committed_until = event.get("committed_from"), event.get("committed_until")
    if committed_from is not None:
        _in_range(committed_from, "committed_from", latest)
    if committed_until is not None:
        _in_range(committed_until, "committed_until", latest)
    if (
        committed_from is not None
        and committed_until is not None
        and (committed_from > committed_until)
    ):
        raise InvalidRecord(Reason.INVALID_TIMESTAMP, "committed_from: later than committed_until")
    for index, vehicle in enumerate(event.get("vehicles") or ()):
        if not vehicle["plate"].strip():
            raise InvalidRecord(Reason.INVALID_FIELD, f"vehicles[{index}].plate: empty")


def validate_notice(
    notice: Mapping[str, Any], *, now: datetime, clock_skew: timedelta = timedelta(minutes=5)
) -> None:
    """Check a ``PersonNotice`` (already schema-valid) or raise ``InvalidRecord``."""
    check_text(notice)
    _identifier(notice["notice_id"], "notice_id")
    _version(notice["version"])
    if notice["valid_from"] < EARLIEST:
        raise InvalidRecord(Reason.INVALID_TIMESTAMP, "valid_from: before 2000-01-01")
    if notice["valid_until"] <= notice["valid_from"]:
        raise InvalidRecord(Reason.INVALID_TIMESTAMP, "valid_until: not after valid_from")
    if notice["valid_until"] - notice["valid_from"] > MAX_NOTICE_VALIDITY:
        raise InvalidRecord(
            Reason.INVALID_TIMESTAMP, "valid_until: more than 5 years after valid_from"
        )
    if not notice["district_codes"]:
        raise InvalidRecord(Reason.INVALID_FIELD, "district_codes: empty")
    for index, code in enumerate(notice.get("mk_codes") or ()):
        if not MK_CODE.fullmatch(code.strip().upper()):
            raise InvalidRecord(
                Reason.INVALID_MK_CODE, f"mk_codes[{index}]: expected a letter and 2-4 digits"
            )


def check_text(value: Any, path: str = "") -> None:
    """Raise ``InvalidRecord`` when any text in ``value`` (nested) holds a control character.

    The message names the field, never the text. One search over all of the record's text
    first (the per-record cost at ingest); the walk that names the field only for a record
    that has one.
    """
    if _CONTROL.search("\n".join(_texts(value))):
        _name_control(value, path)


def _texts(value: Any) -> list[str]:
    """Every string in ``value``, nested in mappings, lists and tuples."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


def _name_control(value: Any, path: str) -> None:
    if isinstance(value, str):
        if _CONTROL.search(value):
            raise InvalidRecord(
                Reason.INVALID_TEXT, f"{path or 'record'}: holds a control character"
            )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _name_control(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _name_control(item, f"{path}[{index}]")


def _identifier(value: str, field: str) -> None:
    if not IDENTIFIER.fullmatch(value):
        raise InvalidRecord(
            Reason.INVALID_IDENTIFIER, f"{field}: 1-128 characters of A-Z a-z 0-9 . _ : -"
        )


def _version(version: int) -> None:
    if not 1 <= version <= MAX_VERSION:
        raise InvalidRecord(Reason.INVALID_VERSION, f"version: must be 1..{MAX_VERSION}")


def _in_range(moment: datetime, field: str, latest: datetime) -> None:
    if moment < EARLIEST:
        raise InvalidRecord(Reason.INVALID_TIMESTAMP, f"{field}: before 2000-01-01")
    if moment > latest:
        raise InvalidRecord(Reason.INVALID_TIMESTAMP, f"{field}: in the future")


class Verdict(StrEnum):
    """What to do with a version of a registration, given the newest version seen."""

    NEW = "new"
    DUPLICATE = "duplicate"  # the same (key, version) again: one record
    STALE = "stale"  # older than one already passed on: ignored


def dedupe(seen_version: int | None, version: int) -> Verdict:
    """Compare an incoming version with the newest one passed on for the same key."""
    if seen_version is None or version > seen_version:
        return Verdict.NEW
    if version == seen_version:
        return Verdict.DUPLICATE
    return Verdict.STALE
