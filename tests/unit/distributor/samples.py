"""Invented records for the distributor's tests: a known day of Dagmonitor entries and one
approved person, victim and vehicle. Every name, address, phone and plate is made up."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

DAY = date(2026, 11, 27)
"""The known day (Europe/Amsterdam, winter time: UTC+1)."""


def entry(
    registration_number: str,
    *,
    mk_code: str,
    mk_description: str,
    reported_at: datetime,
    version: int = 1,
    district: tuple[str | None, str | None] = ("WK034401", "Binnenstad"),
    postcode: str | None = "3511AB",
    street: str | None = None,
    house_number: int | None = None,
    suffix: str | None = None,
    qualifier: str | None = None,
    committed_from: datetime | None = None,
) -> dict[str, Any]:
    """A ``DagmonitorEntry`` value."""
    return {
        "registration_number": registration_number,
        "version": version,
        "mk_code": mk_code,
        "mk_description": mk_description,
        "reported_at": reported_at,
        "committed_from": committed_from,
        "committed_until": None,
        "municipality_code": "GM0344",
        "district_code": district[0],
        "district_name": district[1],
        "neighbourhood_code": "BU03440101" if district[0] else None,
        "neighbourhood_name": "Domplein e.o." if district[0] == "WK034401" else None,
        "city": "Utrecht",
        "postcode": postcode,
        "street": street,
        "house_number": house_number,
        "house_number_suffix": suffix,
        "location_qualifier": qualifier,
    }


OOST = ("WK034403", "Oost")


def known_day() -> list[dict[str, Any]]:
    """Four entries on DAY (local) and two just outside it."""
    return [
        entry(
            "PL0900-2026000001",
            mk_code="A10",
            mk_description="DIEFSTAL UIT/VANAF PERSONENAUTO",
            reported_at=datetime(2026, 11, 27, 8, 15, tzinfo=UTC),
            street="Voorbeeldstraat",
            house_number=12,
            suffix="bis",
            qualifier="ter hoogte van",
            committed_from=datetime(2026, 11, 26, 21, 0, tzinfo=UTC),
        ),
        entry(
            "PL0900-2026000002",
            mk_code="A20",
            mk_description="GEKWAL. DIEFSTAL IN/UIT WONING",
            # 00:30 local on DAY: the local day, not the UTC day, decides.
            reported_at=datetime(2026, 11, 26, 23, 30, tzinfo=UTC),
            street="Proefsteeg",
            house_number=3,
            suffix="A",
        ),
        entry(
            "PL0900-2026000003",
            mk_code="E35",
            mk_description="MELDING OVERLAST JEUGD",
            reported_at=datetime(2026, 11, 27, 19, 5, tzinfo=UTC),
            district=OOST,
            postcode="3581AB",
        ),
        entry(
            "PL0900-2026000004",
            mk_code="F530",
            mk_description="BEDREIGING",
            reported_at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
            district=OOST,
            postcode=None,
        ),
        entry(
            "PL0900-2026000005",
            mk_code="C50",
            mk_description="VANDALISME/BALDADIGHEID",
            reported_at=datetime(2026, 11, 27, 23, 30, tzinfo=UTC),  # 00:30 the next day
        ),
        entry(
            "PL0900-2026000006",
            mk_code="C50",
            mk_description="VANDALISME/BALDADIGHEID",
            reported_at=datetime(2026, 11, 26, 22, 59, tzinfo=UTC),  # 23:59 the day before
        ),
    ]


IN_DAY = ["PL0900-2026000001", "PL0900-2026000002", "PL0900-2026000003", "PL0900-2026000004"]

SUSPECT_NAME = "Testje van Verzonnen"
VICTIM_PHONE = "0600000042"
PLATE = "XX-999-Q"


def approved_person(request_id: str = "req-person-1") -> dict[str, Any]:
    """An ``ApprovedPerson`` value (a suspect, approved by the OM)."""
    return {
        "request_id": request_id,
        "category": "SUSPECT",
        "source_key": "PL0900-2026000001",
        "mk_code": "A10",
        "district_code": "WK034401",
        "person": {
            "first_names": "Testje",
            "surname_prefix": "van",
            "surname": "Verzonnen",
            "birth_date": None,  # shared for no category (field_sets.csv)
            "address": {
                "street": "Nergensweg",
                "house_number": 7,
                "house_number_suffix": None,
                "postcode": "3512ZZ",
                "city": "Utrecht",
            },
            "phone": None,
            "photo_ref": "bvh://photos/0001",
        },
        "notice_kind": None,
        "valid_until": None,
        "approved_by": "om-officier-01",
        "approved_at": datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
    }


def approved_victim(request_id: str = "req-victim-1") -> dict[str, Any]:
    """An ``ApprovedVictim`` value (residential burglary)."""
    return {
        "request_id": request_id,
        "source_key": "PL0900-2026000002",
        "mk_code": "A20",
        "district_code": "WK034401",
        "person": {
            "first_names": "Proef",
            "surname_prefix": None,
            "surname": "Persoonsma",
            "birth_date": None,
            "address": {
                "street": "Proefsteeg",
                "house_number": 3,
                "house_number_suffix": "A",
                "postcode": "3511AB",
                "city": "Utrecht",
            },
            "phone": VICTIM_PHONE,
            "photo_ref": None,
        },
        "modus_operandi": "Achterdeur geforceerd",
        "approved_by": "inbraakteam-02",
        "approved_at": datetime(2026, 11, 27, 11, 0, tzinfo=UTC),
    }


def vehicle_signal(registration_number: str = "PL0900-2026000009") -> dict[str, Any]:
    """A ``VehicleSignal`` value (a stolen scooter)."""
    return {
        "registration_number": registration_number,
        "plate": PLATE,
        "kind": "SCOOTER",
        "reported_at": datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
        "municipality_code": "GM0344",
        "district_code": "WK034403",
    }
