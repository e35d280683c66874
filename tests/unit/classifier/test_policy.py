"""The policy of ARCHITECTURE.md section 5, walked over every row of Bijlage 1 and beyond."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dagmonitor.validation import normalise_postcode
from services.classifier import policy
from services.classifier.annex import HouseNumberLevel, load_annex
from services.classifier.policy import (
    ENTRIES,
    REQUESTS,
    TER_HOOGTE_VAN,
    VEHICLES,
    PolicyConfig,
    classify_incident,
    classify_notice,
    request_id,
)
from tests.samples import incident

ANNEX = load_annex()
NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
CONFIG = PolicyConfig("GM0344", frozenset({"DC01", "DC02"}), b"test-key")

# Bijlage 1, independently of the CSV: the 15 "ja" codes and the rules of section 5.
HOUSE_NUMBER_CODES = set("A10 A20 A21 A30 A34 B10 B20 B21 B30 B34 B40 B70 B72 B73 B74".split())
TER_HOOGTE_CODES = {"A10", "B10", "B40", "B70"}
VICTIM_CODES = {"A20", "A30", "B20", "B30"}
ANNEX_CODES = (
    "A10 A11 A12 A20 A21 A22 A23 A24 A25 A26 A30 A31 A32 A33 A34 A35 A40 A50 A70 A71 A72 A73 "
    "A74 A75 A76 B10 B11 B12 B20 B21 B22 B23 B24 B26 B30 B32 B33 B34 B40 B50 B60 B61 B62 B63 "
    "B64 B66 B70 B72 B73 B74 C10 C20 C30 C40 C50 E10 E11 E15 E16 E31 E35 E36 E38 E41 F11 F12 "
    "F13 F40 F41 F42 F43 F46 F47 F530 M061 M062 M106 M131 M134"
).split()
OUTSIDE_ANNEX = ["A60", "B25", "C11", "D10", "E33", "E37", "F21", "F530X", "G11", "H13", "Z99"]
ALL_KINDS = [
    "PASSENGER_CAR",
    "VAN",
    "TRUCK",
    "MOTORCYCLE",
    "MOPED",
    "SCOOTER",
    "BICYCLE",
    "VESSEL",
    "OTHER",
]


def _person(role: str, surname: str) -> dict[str, Any]:
    return {
        "role": role,
        "first_names": f"Voornaam{role.title()}",
        "surname_prefix": None,
        "surname": surname,
        "birth_date": None,
        "address": {
            "street": "Adresstraat",
            "house_number": 7,
            "house_number_suffix": None,
            "postcode": "3511AA",
            "city": "Utrecht",
        },
        "phone": "0611111111",
        "photo_ref": "bvh://photo/1",
    }


def full_incident(code: str, district: str = "DC01") -> dict[str, Any]:
    event = incident("PL0900-2026000042", mk_code=code)
    event["location"]["district_code"] = district
    event["persons"] = [
        _person(role, f"Achternaam{role.title()}")
        for role in ("SUSPECT", "VICTIM", "WITNESS", "REPORTER", "INVOLVED")
    ]
    event["vehicles"] = [
        {"plate": f"AB-{i:03d}-C", "kind": kind, "stolen": True} for i, kind in enumerate(ALL_KINDS)
    ] + [{"plate": "ZZ-999-Z", "kind": "PASSENGER_CAR", "stolen": False}]
    return event


def by_topic(decision: Any, topic: str) -> list[Any]:
    return [o for o in decision.outputs if o.topic == topic]


def test_annex_file_mirrors_bijlage_1() -> None:
    assert list(ANNEX) == ANNEX_CODES
    assert len(ANNEX) == 79
    assert all(row.shared for row in ANNEX.values())
    assert {c for c, r in ANNEX.items() if r.house_number_level is HouseNumberLevel.YES} == (
        HOUSE_NUMBER_CODES
    )
    assert ANNEX["E35"].house_number_level is HouseNumberLevel.ON_ESCALATION
    assert ANNEX["A20"].description == "GEKWAL. DIEFSTAL IN/UIT WONING"


@pytest.mark.parametrize("code", ANNEX_CODES)
def test_every_annex_code(code: str) -> None:
    decision = classify_incident(full_incident(code), CONFIG, ANNEX, now=NOW)
    assert decision.shared and decision.reason is None

    (entry,) = by_topic(decision, ENTRIES)
    assert entry.key == "PL0900-2026000042"
    value = entry.value
    assert value["mk_code"] == code
    assert value["mk_description"] == ANNEX[code].description
    assert value["postcode"] == "3511AB"
    if code in HOUSE_NUMBER_CODES:
        assert (value["street"], value["house_number"], value["house_number_suffix"]) == (
            "Voorbeeldstraat",
            12,
            "bis",
        )
    else:
        assert value["street"] is None and value["house_number"] is None
        assert value["house_number_suffix"] is None
    expected_qualifier = TER_HOOGTE_VAN if code in TER_HOOGTE_CODES else None
    assert value["location_qualifier"] == expected_qualifier

    requests = {o.value["category"]: o.value for o in by_topic(decision, REQUESTS)}
    suspects = code[0] in "ABC" or code in ("F11", "F12")
    assert ("SUSPECT" in requests) is suspects
    assert ("VICTIM" in requests) is (code in VICTIM_CODES)
    assert set(requests) <= {"SUSPECT", "VICTIM"}  # never witnesses, reporters, involved
    if suspects:
        suspect = requests["SUSPECT"]
        assert suspect["approver_role"] == "OM"
        assert suspect["subject"]["surname"] == "AchternaamSuspect"
        assert suspect["subject"]["phone"] is None
        assert suspect["modus_operandi"] is None
        assert suspect["expires_at"] - suspect["created_at"] == timedelta(days=14)
    if code in VICTIM_CODES:
        victim = requests["VICTIM"]
        assert victim["approver_role"] == "POLICE_BURGLARY_TEAM"
        assert victim["subject"]["phone"] == "0611111111"
        assert victim["modus_operandi"] == "Achterdeur geforceerd"

    signals = by_topic(decision, VEHICLES)
    assert sorted(s.value["kind"] for s in signals) == ["MOPED", "PASSENGER_CAR", "SCOOTER", "VAN"]
    for signal in signals:
        registration, plate_ref = signal.key.split(":")
        assert registration == "PL0900-2026000042"
        # no plate on the key: a keyed hash of it, the same for the same plate
        assert re.fullmatch(r"[0-9a-f]{16}", plate_ref)
        assert signal.value["plate"] not in signal.key
        assert plate_ref == policy.plate_ref(CONFIG, signal.value["plate"])
        assert plate_ref != policy.plate_ref(CONFIG, signal.value["plate"] + "X")
        assert plate_ref != policy.plate_ref(
            PolicyConfig("GM0344", frozenset(), b"k2"), signal.value["plate"]
        )
        assert set(signal.value) == {
            "registration_number",
            "plate",
            "kind",
            "reported_at",
            "municipality_code",
            "district_code",
        }
    assert decision.e35_postcode == ("3511AB" if code == "E35" else None)


@pytest.mark.parametrize("code", OUTSIDE_ANNEX)
def test_codes_outside_the_annex_are_dropped(code: str) -> None:
    decision = classify_incident(full_incident(code), CONFIG, ANNEX, now=NOW)
    assert not decision.shared
    assert decision.reason == "mk_not_shared"
    assert decision.outputs == ()


@pytest.mark.parametrize("raw", [" a20 ", "a20", "A20\t", "\nA20"])
def test_mk_code_is_normalised(raw: str) -> None:
    decision = classify_incident(full_incident(raw), CONFIG, ANNEX, now=NOW)
    assert by_topic(decision, ENTRIES)[0].value["mk_code"] == "A20"


def test_other_municipality_is_dropped() -> None:
    event = full_incident("A20")
    event["location"]["municipality_code"] = "GM0307"
    decision = classify_incident(event, CONFIG, ANNEX, now=NOW)
    assert (decision.shared, decision.reason, decision.outputs) == (False, "other_municipality", ())


def test_suspects_only_in_team_districts() -> None:
    decision = classify_incident(full_incident("A20", district="DC09"), CONFIG, ANNEX, now=NOW)
    categories = [o.value["category"] for o in by_topic(decision, REQUESTS)]
    assert categories == ["VICTIM"]  # victims do not depend on the team's districts


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("3511AB", "3511AB"),
        ("3511 ab", "3511AB"),
        (" 3511  AB ", "3511AB"),
        ("3512  AB", "3512AB"),
        (" 3512ab ", "3512AB"),
        ("3512\tAB", "3512AB"),
        ("\t3512AB\n", "3512AB"),
        ("3512\u00a0AB", "3512AB"),  # a no-break space
        ("3 5 1 2 A B", "3512AB"),
        ("\t \n", None),
        ("3511 AB", "3511AB"),
        ("0511AB", None),
        ("3511SA", None),
        ("3511SS", None),
        ("3511SD", None),
        ("35114B", None),
        ("", None),
        (None, None),
        ("3511ABC", None),
        ("\uff11\uff12\uff13\uff14AB", "1234AB"),
    ],
)
def test_postcode_normalisation(raw: str | None, expected: str | None) -> None:
    assert normalise_postcode(raw) == expected


def test_e35_detail_only_under_escalation() -> None:
    plain = classify_incident(full_incident("E35"), CONFIG, ANNEX, now=NOW)
    assert by_topic(plain, ENTRIES)[0].value["street"] is None
    expired = classify_incident(
        full_incident("E35"), CONFIG, ANNEX, now=NOW, escalation_until=NOW - timedelta(seconds=1)
    )
    assert by_topic(expired, ENTRIES)[0].value["street"] is None
    active = classify_incident(
        full_incident("E35"), CONFIG, ANNEX, now=NOW, escalation_until=NOW + timedelta(days=3)
    )
    entry = by_topic(active, ENTRIES)[0].value
    assert (entry["street"], entry["house_number"], entry["location_qualifier"]) == (
        "Voorbeeldstraat",
        12,
        TER_HOOGTE_VAN,
    )
    # An escalation never widens anything but E35.
    other = classify_incident(
        full_incident("C40"), CONFIG, ANNEX, now=NOW, escalation_until=NOW + timedelta(days=3)
    )
    assert by_topic(other, ENTRIES)[0].value["street"] is None


def test_request_ids_are_deterministic_and_pseudonymous() -> None:
    first = classify_incident(full_incident("A20"), CONFIG, ANNEX, now=NOW)
    again = classify_incident(copy.deepcopy(full_incident("A20")), CONFIG, ANNEX, now=NOW)
    assert first == again
    ids = [o.key for o in by_topic(first, REQUESTS)]
    assert all(i.startswith("req-") and "Achternaam" not in i for i in ids)
    other_key = PolicyConfig("GM0344", CONFIG.team_districts, b"another-key")
    assert request_id(other_key, "SUSPECT", "x", "y") != request_id(CONFIG, "SUSPECT", "x", "y")
    # A new version with the same persons keeps the same request ids.
    newer = full_incident("A20")
    newer["version"] = 2
    newer["persons"].reverse()
    assert sorted(
        o.key for o in by_topic(classify_incident(newer, CONFIG, ANNEX, now=NOW), REQUESTS)
    ) == sorted(ids)


def _notice(districts: list[str], valid_until: datetime) -> dict[str, Any]:
    return {
        "notice_id": "NTC-1",
        "version": 1,
        "kind": "AREA_BAN",
        "person": _person("INVOLVED", "Gebiedsverbod"),
        "district_codes": districts,
        "valid_from": NOW - timedelta(days=1),
        "valid_until": valid_until,
        "mk_codes": [" e35", "A50"],
    }


def test_person_notices() -> None:
    shared = classify_notice(_notice(["DC09", "DC02"], NOW + timedelta(days=30)), CONFIG, now=NOW)
    (request,) = shared.outputs
    assert request.value["category"] == "PERSON_OF_INTEREST"
    assert request.value["approver_role"] == "OM"
    assert request.value["district_code"] == "DC02"
    assert request.value["notice_kind"] == "AREA_BAN"
    assert request.value["mk_code"] == "E35"
    assert request.value["subject"]["phone"] is None
    assert request.value["expires_at"] == NOW + timedelta(days=14)
    short = classify_notice(_notice(["DC01"], NOW + timedelta(days=2)), CONFIG, now=NOW)
    assert short.outputs[0].value["expires_at"] == NOW + timedelta(days=2)
    elsewhere = classify_notice(_notice(["DC09"], NOW + timedelta(days=30)), CONFIG, now=NOW)
    assert (elsewhere.shared, elsewhere.reason) == (False, "no_team_district")
    expired = classify_notice(_notice(["DC01"], NOW), CONFIG, now=NOW)
    assert (expired.shared, expired.reason) == (False, "notice_expired")
