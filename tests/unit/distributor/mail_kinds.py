"""One mail of every kind, with a city's worth of content: many districts, long street names,
the annex's longest descriptions, names with prefixes, a photo delivered and one not. For the
tests that look at the mails as their recipients do (rendering in a browser, inline images)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from dagmonitor.covenant import Term
from dagmonitor_cli.generate import Generator, portrait
from services.classifier.annex import load_annex
from services.distributor.entitlements import Category
from services.distributor.evaluation import EvaluationReport, Row
from services.distributor.rendering import (
    Photo,
    ProvidedIn,
    RecordRef,
    Rendered,
    Withdrawn,
    render_daily,
    render_evaluation,
    render_hotspots,
    render_notices,
    render_supplement,
    render_withdrawal,
)
from services.distributor.reports import (
    Entry,
    PostcodeCount,
    person_item,
    vehicle_item,
    victim_item,
)
from services.distributor.schedule import hotspot_period
from services.distributor.supplement import DayChanges
from tests.unit.distributor.samples import DAY, approved_person, approved_victim, vehicle_signal

AMS = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
LONG = "BEZITTEN/VERVAARDIGEN/VOORHANDEN HEBBEN/AFLEVEREN VUURWERK"
HOUSE_LEVEL = {"A20", "A30", "A22", "A23", "A50"}
STREET_LEVEL = {"A10", "B40", "B70"}
ANNEX = load_annex()


def city_day(count: int = 240) -> list[Entry]:
    """Entries of a generated day, at the precision the annex gives each code (roughly)."""
    entries: dict[str, Entry] = {}
    for record in Generator(7, DAY).incidents(count):
        code = record["mk_code"].strip().upper()
        where = record["location"]
        if where["municipality_code"] != "GM0344" or code not in ANNEX:
            continue
        street = where["street"] if code in HOUSE_LEVEL | STREET_LEVEL else None
        entries[record["registration_number"]] = (  # a later version replaces it
            Entry(
                registration_number=record["registration_number"],
                mk_code=code,
                mk_description=LONG if code == "M131" else ANNEX[code].description,
                reported_at=datetime.fromisoformat(record["reported_at"]),
                committed_from=datetime.fromisoformat(record["committed_from"]),
                committed_until=datetime.fromisoformat(record["committed_until"]),
                district_code=where["district_code"],
                district_name=where["district_name"],
                neighbourhood_code=where["neighbourhood_code"],
                neighbourhood_name=where["neighbourhood_name"],
                postcode=(where["postcode"] or "").replace(" ", "") or None,
                street=street,
                house_number=where["house_number"] if street and code in HOUSE_LEVEL else None,
                location_qualifier="ter hoogte van" if street and code in STREET_LEVEL else None,
            )
        )
    return list(entries.values())


def counts(entries: list[Entry]) -> list[PostcodeCount]:
    tally: dict[tuple[str | None, str | None, str | None], int] = {}
    for e in entries:
        key = (e.district_code, e.district_name, e.postcode)
        tally[key] = tally.get(key, 0) + 1
    return [PostcodeCount(*key, n) for key, n in tally.items()]


def every_kind() -> dict[str, Rendered]:
    """Every mail kind the distributor sends, rendered."""
    entries = city_day()
    earlier = city_day(120)
    with_photo = approved_person("req-p1") | {"district_code": "WK034402"}
    without = approved_person("req-p2")
    without["person"] = without["person"] | {
        "photo_ref": "bvh://photos/0002",
        "first_names": "Maria Johanna Wilhelmina",
        "surname_prefix": "van der",
        "surname": "Burgemeester-Norbruislaanbewoner",
    }
    persons = [
        (RecordRef("persons.approved", "req-p1"), person_item(with_photo, AMS)),
        (RecordRef("persons.approved", "req-p2"), person_item(without, AMS)),
    ]
    photo_id = persons[0][1].photo_id
    assert photo_id is not None
    photos = {photo_id: Photo(photo_id, "jpeg", portrait(photo_id))}
    sent = ProvidedIn("2c4b3a1e-7f0d-5e6a-9b8c-0d1e2f3a4b5c", "Dagmonitor 27-11-2026", NOW)
    return {
        "daily": render_daily(DAY, entries, AMS),
        "daily-empty": render_daily(DAY, [], AMS),
        "supplement": render_supplement(
            DAY, 1, DayChanges(new=tuple(entries[:3]), withdrawn=(entries[3],)), AMS
        ),
        "hotspots": render_hotspots(
            hotspot_period(DAY),
            counts(entries),
            top=15,
            cid_domain="x.invalid",
            previous=counts(earlier),
        ),
        "notice-persons": render_notices(
            Category.PERSON_NOTICE, "batch-1", persons, photos, cid_domain="x.invalid"
        ),
        "notice-victims": render_notices(
            Category.VICTIM_NOTICE,
            "batch-2",
            [(RecordRef("victims.approved", "req-v"), victim_item(approved_victim(), AMS))],
        ),
        "notice-vehicles": render_notices(
            Category.VEHICLE_NOTICE,
            "batch-3",
            [(RecordRef("vehicles.signals", "k"), vehicle_item(vehicle_signal(), AMS))],
        ),
        "withdrawal": render_withdrawal(
            Withdrawn(
                RecordRef("dagmonitor.entries", entries[0].registration_number),
                Category.DAGMONITOR_DAILY,
                (sent,),
                entry=entries[0],
            ),
            AMS,
        ),
        "evaluation": render_evaluation(evaluation_report(), cid_domain="x.invalid"),
    }


def evaluation_report() -> EvaluationReport:
    """An evaluation report of a year with every section filled, long names included."""
    term = Term(date(2026, 1, 1), date(2026, 12, 31))
    provisions = [
        Row((category, role, f"2026-{month:02d}"), 20 + month)
        for month in range(1, 12)
        for category, role in (
            ("dagmonitor_daily", "enforcement_meeting_member"),
            ("person_notice", "enforcement_team_leader"),
            ("victim_notice", "safety_unit_officer"),
        )
    ]
    return EvaluationReport(
        term,
        "2026-12-01",
        {
            "provisions": provisions,
            "decisions": [
                Row(("POLICE_BURGLARY_TEAM", "VICTIM", "APPROVED"), 31, 18.5, 240.0),
                Row(("POLICE_DISTRICT", "YOUTH_NUISANCE_DETAIL", "EXPIRED"), 2, 336.0, 336.0),
            ],
            "escalations": [Row(("EXPIRED",), 2, 336.0, 336.0)],
            "withdrawals": [Row(("2026-05",), 3)],
            "dead_letters": [Row(("invalid_registration_number", "ingest"), 12)],
            "retention": [Row(("vehicles.signals", "retention"), 410)],
            "held": [Row(("vehicle_notice",), 1)],
        },
    )
