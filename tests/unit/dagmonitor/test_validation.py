"""Ingest's validation rules and de-duplication, rule by rule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dagmonitor.codec import INCIDENT_EVENT, default_codec
from dagmonitor.errors import CodecError
from dagmonitor.validation import (
    InvalidRecord,
    Verdict,
    dedupe,
    validate_incident,
    validate_notice,
)
from services.ingest.pipeline import INCIDENTS, check
from tests.samples import incident

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(record: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        target = record
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[leaf] = value

    return change


BAD_INCIDENTS = [
    ("event_id", "", "invalid_identifier"),
    ("event_id", "has space", "invalid_identifier"),
    ("registration_number", "PL0900-123", "invalid_registration_number"),
    ("registration_number", "pl0900-2026012345", "invalid_registration_number"),
    ("registration_number", "PL0900-2026012345\n", "invalid_registration_number"),
    ("version", 0, "invalid_version"),
    ("version", -3, "invalid_version"),
    ("mk_code", "", "invalid_mk_code"),
    ("mk_code", "A2O", "invalid_mk_code"),
    ("mk_code", "DIEFSTAL", "invalid_mk_code"),
    ("location.municipality_code", "GM344", "invalid_municipality_code"),
    ("location.municipality_code", "Utrecht", "invalid_municipality_code"),
    ("reported_at", NOW + timedelta(minutes=6), "invalid_timestamp"),
    ("reported_at", datetime(1999, 12, 31, tzinfo=UTC), "invalid_timestamp"),
    ("committed_from", NOW + timedelta(days=1), "invalid_timestamp"),
    ("committed_until", datetime(2026, 11, 26, 21, 0, tzinfo=UTC), "invalid_timestamp"),
    ("vehicles.0.plate", "  ", "invalid_field"),
    ("location.street", "Oude\x00gracht", "invalid_text"),
    ("location.street", "Oude\x1bgracht", "invalid_text"),
    ("location.city", "Utrecht\x7f", "invalid_text"),
    ("location.city", "Utrecht\x85", "invalid_text"),  # C1: next line
]


@pytest.mark.parametrize(("path", "value", "reason"), BAD_INCIDENTS)
def test_each_rule_rejects_with_its_reason(path: str, value: Any, reason: str) -> None:
    record = incident()
    _set(path, value)(record)
    with pytest.raises(InvalidRecord) as caught:
        validate_incident(record, now=NOW)
    assert caught.value.reason.value == reason
    field = {"vehicles.0.plate": "vehicles[0].plate", "committed_until": "committed_from"}.get(
        path, path
    )
    if reason == "invalid_text":
        field = path
    assert caught.value.detail.startswith(f"{field}:")
    if isinstance(value, str) and value.strip():
        assert value.strip() not in caught.value.detail


def test_text_may_hold_tabs_and_line_breaks_but_no_other_controls() -> None:
    record = incident()
    record["location"]["street"] = "Oude\tgracht"
    record["modus_operandi"] = "Raam geforceerd.\r\nDaarna via de achterdeur weg."
    validate_incident(record, now=NOW)
    record["persons"][0]["surname"] = "Jans\x00sen"
    with pytest.raises(InvalidRecord) as caught:
        validate_incident(record, now=NOW)
    assert caught.value.reason.value == "invalid_text"
    assert caught.value.detail == "persons[0].surname: holds a control character"


def test_a_good_incident_passes_and_small_clock_skew_is_tolerated() -> None:
    record = incident()
    record["reported_at"] = NOW + timedelta(minutes=4)
    validate_incident(record, now=NOW)
    record["mk_code"] = " b20 "
    validate_incident(record, now=NOW)


def test_notice_rules() -> None:
    good = {
        "notice_id": "NTC-2026-000001",
        "version": 1,
        "kind": "AREA_BAN",
        "person": incident()["persons"][0],
        "district_codes": ["DC01"],
        "valid_from": NOW,
        "valid_until": NOW + timedelta(days=30),
        "mk_codes": ["E35"],
    }
    validate_notice(good, now=NOW)
    for change, reason in [
        (_set("valid_until", NOW), "invalid_timestamp"),
        (_set("district_codes", []), "invalid_field"),
        (_set("mk_codes", ["nope"]), "invalid_mk_code"),
        (_set("notice_id", "../etc"), "invalid_identifier"),
        (_set("valid_until", datetime(9999, 12, 31, tzinfo=UTC)), "invalid_timestamp"),
        (_set("valid_until", NOW + timedelta(days=5 * 366 + 1)), "invalid_timestamp"),
    ]:
        bad = dict(good)
        change(bad)
        with pytest.raises(InvalidRecord) as caught:
            validate_notice(bad, now=NOW)
        assert caught.value.reason.value == reason


@pytest.mark.parametrize(
    ("seen", "incoming", "verdict"),
    [(None, 1, Verdict.NEW), (1, 2, Verdict.NEW), (2, 2, Verdict.DUPLICATE), (3, 2, Verdict.STALE)],
)
def test_dedupe(seen: int | None, incoming: int, verdict: Verdict) -> None:
    assert dedupe(seen, incoming) is verdict


def test_check_requires_the_key_to_be_the_registration_number() -> None:
    raw = default_codec().encode(INCIDENT_EVENT, incident("PL0900-2026000001"))
    assert (
        check(
            INCIDENTS,
            raw,
            b"PL0900-2026000001",
            default_codec(),
            now=NOW,
            clock_skew=timedelta(minutes=5),
        )["version"]
        == 1
    )
    for key in (None, b"PL0900-2026000002"):
        with pytest.raises(InvalidRecord) as caught:
            check(INCIDENTS, raw, key, default_codec(), now=NOW, clock_skew=timedelta(minutes=5))
        assert caught.value.reason.value == "key_mismatch"
    with pytest.raises(CodecError):
        check(INCIDENTS, raw[:-3], b"k", default_codec(), now=NOW, clock_skew=timedelta(0))
