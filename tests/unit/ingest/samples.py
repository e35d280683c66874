"""Municipal reports for tests: a Signalen signal as Signalen's API writes it, and the
``MunicipalReport`` it becomes. Every name, address and number here is invented."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

YOUTH = "overlast-van-en-door-personen-of-groepen/jongerenoverlast"
CATEGORY_URL = (
    "https://api.example.invalid/signals/v1/public/terms/categories/"
    "overlast-van-en-door-personen-of-groepen/sub_categories/jongerenoverlast"
)
PERSONAL = (
    "Groepje jongeren bij het bankje, ik woon op nummer 17",
    "melder.verzonnen@example.invalid",
    "0612345678",
    "Verzonnenlaan",
    "huisnummer 17",
    "4.90022563",
)
"""Values of the signal that must never leave ingest (text, reporter, street, coordinates)."""


def signal(
    signal_id: str = "0b7c9c8e-6d1a-4c8e-9a51-2f4b6f1d0a01",
    *,
    postcode: str | None = "3511 AB",
    category_url: str = CATEGORY_URL,
    at: str = "2026-11-27T21:30:00+01:00",
) -> dict[str, Any]:
    """A youth-nuisance signal in the shape of Signalen's signal detail."""
    return {
        "id": 1234,
        "id_display": "SIG-1234",
        "signal_id": signal_id,
        "source": "online",
        "text": PERSONAL[0],
        "text_extra": "",
        "status": {"state": "m", "state_display": "Gemeld", "text": None},
        "location": {
            "stadsdeel": None,
            "buurt_code": None,
            "address": (
                None
                if postcode is None
                else {
                    "openbare_ruimte": PERSONAL[3],
                    "huisnummer": 17,
                    "huisletter": "",
                    "huisnummer_toevoeging": "",
                    "postcode": postcode,
                    "woonplaats": "Utrecht",
                }
            ),
            "address_text": f"{PERSONAL[3]} 17, {postcode} Utrecht",
            "geometrie": {"type": "Point", "coordinates": [4.90022563, 52.36768424]},
        },
        "category": {
            "sub": "Jongerenoverlast",
            "sub_slug": "jongerenoverlast",
            "main": "Overlast van en door personen of groepen",
            "main_slug": "overlast-van-en-door-personen-of-groepen",
            "category_url": category_url,
            "departments": "ASC, THO",
        },
        "reporter": {
            "email": PERSONAL[1],
            "phone": PERSONAL[2],
            "sharing_allowed": False,
            "allows_contact": True,
        },
        "priority": {"priority": "normal"},
        "type": {"code": "SIG"},
        "created_at": "2026-11-27T21:35:00+01:00",
        "updated_at": "2026-11-27T21:35:00+01:00",
        "incident_date_start": at,
        "incident_date_end": None,
        "has_attachments": False,
        "extra_properties": [{"id": "extra_jongeren", "answer": PERSONAL[4]}],
        "notes": [{"text": "Automatische e-mail verzonden aan de melder.", "created_by": None}],
    }


def report(
    report_id: str = "0b7c9c8e-6d1a-4c8e-9a51-2f4b6f1d0a01",
    *,
    postcode: str = "3511AB",
    category: str = YOUTH,
    reported_at: datetime = datetime(2026, 11, 27, 20, 30, tzinfo=UTC),
    source: str = "signalen",
) -> dict[str, Any]:
    """A ``MunicipalReport`` as the municipality's system publishes it on Kafka."""
    return {
        "report_id": report_id,
        "category": category,
        "postcode": postcode,
        "reported_at": reported_at,
        "source": source,
    }
