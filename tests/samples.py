"""Small hand-made records for tests. Every name, address and plate here is invented."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any


def incident(
    registration_number: str = "PL0900-2026012345",
    *,
    version: int = 1,
    mk_code: str = "B20",
) -> dict[str, Any]:
    """A residential burglary with a suspect, a victim and a stolen scooter."""
    return {
        "event_id": f"evt-{registration_number}-{version}",
        "registration_number": registration_number,
        "version": version,
        "mk_code": mk_code,
        "mk_description": "Diefstal/inbraak woning",
        "reported_at": datetime(2026, 11, 27, 8, 15, 0, 123000, tzinfo=UTC),
        "committed_from": datetime(2026, 11, 26, 22, 0, tzinfo=UTC),
        "committed_until": None,
        "location": {
            "street": "Voorbeeldstraat",
            "house_number": 12,
            "house_number_suffix": "bis",
            "postcode": "3511 AB",
            "city": "Utrecht",
            "municipality_code": "GM0344",
            "district_code": "DC01",
            "district_name": "Binnenstad",
            "neighbourhood_code": "BU03440101",
            "neighbourhood_name": "Domplein e.o.",
        },
        "persons": [
            {
                "role": "SUSPECT",
                "first_names": "Testje",
                "surname_prefix": "van",
                "surname": "Verzonnen",
                "birth_date": date(1999, 4, 1),
                "address": None,
                "phone": None,
                "photo_ref": "bvh://photos/0001",
            },
            {
                "role": "VICTIM",
                "first_names": "Proef",
                "surname_prefix": None,
                "surname": "Persoonsma",
                "birth_date": None,
                "address": {
                    "street": "Voorbeeldstraat",
                    "house_number": 12,
                    "house_number_suffix": "bis",
                    "postcode": "3511AB",
                    "city": "Utrecht",
                },
                "phone": "0600000000",
                "photo_ref": None,
            },
        ],
        "vehicles": [{"plate": "XX-000-X", "kind": "SCOOTER", "stolen": True}],
        "modus_operandi": "Achterdeur geforceerd",
    }


def escalation(postcode: str) -> dict[str, Any]:
    """An approved E35 escalation for one postcode."""
    return {
        "postcode": postcode,
        "request_id": f"req-{postcode}",
        "valid_from": datetime(2026, 11, 1, tzinfo=UTC),
        "valid_until": datetime(2026, 12, 1, tzinfo=UTC),
        "approved_by": "wijkchef-01",
        "approved_at": datetime(2026, 11, 1, 9, 0, tzinfo=UTC),
    }


def signal_key(registration_number: str, plate: str, id_key: str | None = None) -> str:
    """The key the classifier gives a vehicle signal: ``registration_number:plate_ref`` (the
    plate's keyed hash with the deployment's id key; the development key by default)."""
    from services.classifier.config import DEVELOPMENT_ID_KEY
    from services.classifier.policy import PolicyConfig, normalise_plate, plate_ref

    config = PolicyConfig("", frozenset(), (id_key or DEVELOPMENT_ID_KEY).encode("utf-8"))
    return f"{registration_number}:{plate_ref(config, normalise_plate(plate))}"
