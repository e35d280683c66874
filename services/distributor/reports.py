"""The content of the reports, as plain data: grouping, ranking, CSV rows, notice items, and
the confidentiality text every mail and every CSV attachment carries.

No I/O here. The daily Dagmonitor groups a day's entries by district (wijk), then postcode,
each incident with its MK code, description, time and location at exactly the precision its
entry carries (house number only where Bijlage 1 allows it, "ter hoogte van" where set). The
hotspot report ranks districts and postcodes by count. Notices turn approved records into
display items. Nothing here adds data the entry does not carry.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.distributor.entitlements import LEGAL_BASIS

UNKNOWN_DISTRICT = "Wijk onbekend"
UNKNOWN_POSTCODE = "Postcode onbekend"


@dataclass(frozen=True, slots=True)
class Entry:
    """One Dagmonitor entry as stored (fields of ``DagmonitorEntry``)."""

    registration_number: str
    mk_code: str
    mk_description: str
    reported_at: datetime
    committed_from: datetime | None = None
    committed_until: datetime | None = None
    district_code: str | None = None
    district_name: str | None = None
    neighbourhood_code: str | None = None
    neighbourhood_name: str | None = None
    city: str | None = None
    postcode: str | None = None
    street: str | None = None
    house_number: int | None = None
    house_number_suffix: str | None = None
    location_qualifier: str | None = None

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> Entry:
        values: dict[str, Any] = {f.name: row.get(f.name) for f in fields(cls)}
        return cls(**values)


def house_number_text(number: int | None, suffix: str | None) -> str:
    """``12``, ``12A`` or ``12 bis``; empty when there is no number."""
    if number is None:
        return ""
    if not suffix:
        return str(number)
    return f"{number}{suffix}" if len(suffix) == 1 else f"{number} {suffix}"


def location_text(entry: Entry) -> str:
    """The location at the entry's own precision: street level only where it carries a street.

    ``ter hoogte van Voorbeeldstraat 12`` where ``location_qualifier`` is set; the postcode
    (and neighbourhood) otherwise.
    """
    if entry.street:
        address = " ".join(
            part
            for part in (
                entry.street,
                house_number_text(entry.house_number, entry.house_number_suffix),
            )
            if part
        )
        if entry.location_qualifier:
            return f"{entry.location_qualifier} {address}"
        return address
    return entry.postcode or UNKNOWN_POSTCODE


def _local(moment: datetime | None, tz: ZoneInfo, fmt: str) -> str:
    return moment.astimezone(tz).strftime(fmt) if moment is not None else ""


@dataclass(frozen=True, slots=True)
class IncidentLine:
    """One incident as shown in the daily mail."""

    time: str
    mk_code: str
    description: str
    location: str
    neighbourhood: str
    committed: str


@dataclass(frozen=True, slots=True)
class PostcodeGroup:
    postcode: str
    incidents: tuple[IncidentLine, ...]


@dataclass(frozen=True, slots=True)
class DistrictGroup:
    district_code: str | None
    district_name: str
    postcodes: tuple[PostcodeGroup, ...]

    @property
    def count(self) -> int:
        return sum(len(p.incidents) for p in self.postcodes)


def committed_text(entry: Entry, tz: ZoneInfo) -> str:
    """The offence period (pleegperiode) in local time, or empty."""
    start = _local(entry.committed_from, tz, "%d-%m %H:%M")
    end = _local(entry.committed_until, tz, "%d-%m %H:%M")
    if start and end:
        return f"{start} - {end}"
    return start or end


def _district_sort_key(code: str | None, name: str | None) -> tuple[int, str, str]:
    return (1 if code is None and name is None else 0, (name or "").lower(), code or "")


def group_daily(entries: Iterable[Entry], tz: ZoneInfo) -> list[DistrictGroup]:
    """Entries grouped by district, then postcode; unknown ones last; incidents by time."""
    by_district: dict[tuple[str | None, str | None], dict[str | None, list[Entry]]] = {}
    for entry in entries:
        district = by_district.setdefault((entry.district_code, entry.district_name), {})
        district.setdefault(entry.postcode, []).append(entry)
    groups = []
    for (code, name), postcodes in sorted(
        by_district.items(), key=lambda item: _district_sort_key(*item[0])
    ):
        postcode_groups = []
        for postcode, members in sorted(
            postcodes.items(), key=lambda item: (item[0] is None, item[0] or "")
        ):
            members.sort(key=lambda e: (e.reported_at, e.mk_code, e.registration_number))
            lines = tuple(
                IncidentLine(
                    time=_local(e.reported_at, tz, "%H:%M"),
                    mk_code=e.mk_code,
                    description=e.mk_description,
                    location=location_text(e),
                    neighbourhood=e.neighbourhood_name or "",
                    committed=committed_text(e, tz),
                )
                for e in members
            )
            postcode_groups.append(PostcodeGroup(postcode or UNKNOWN_POSTCODE, lines))
        groups.append(DistrictGroup(code, name or code or UNKNOWN_DISTRICT, tuple(postcode_groups)))
    return groups


# -- confidentiality (geheimhouding): one text for every mail's footer and every CSV ----------

CONFIDENTIAL = "VERTROUWELIJK - politiegegevens, geheimhoudingsplicht (art. 7 Wpg, convenant)"
"""The marking of everything the distributor sends: the first line of every mail's footer and
of every CSV attachment (no ``;`` or quote in it, so it stays one plain CSV cell)."""

SECRECY_DUTY = (
    "Er geldt een geheimhoudingsplicht voor de partijen, en hun medewerkers, aan dit convenant. "
    "Deze plicht strekt zich uit tot de geheimhouding van persoonsgegevens en politiegegevens, "
    "ook indien het convenant niet meer van kracht is. Gegevens worden zonder toestemming van "
    "de verstrekker niet overgedragen, of verder verstrekt, aan niet convenantpartners en zijn "
    "niet raadpleegbaar voor niet convenantpartners."
)
"""The covenant's own words (section "Geheimhouding en doorverstrekken"), quoted in every mail."""


def confidentiality_footer(purpose: str, reference: str) -> tuple[str, ...]:
    """Every mail's footer, paragraph by paragraph (the HTML and the text part show the same):
    the marking, legal basis and purpose, the secrecy duty, use and retention, the reference."""
    return (
        CONFIDENTIAL,
        f"Verstrekt door de politie op grond van {LEGAL_BASIS} en het convenant "
        "gegevensuitwisseling Eenheid Veiligheid en Toezicht en Handhaving. "
        f"Doel: {purpose}.",
        f"Geheimhouding volgens het convenant: \u201c{SECRECY_DUTY}\u201d",
        "Uitsluitend te gebruiken voor dit doel, niet voor sturingsinformatie op tactisch en "
        "strategisch niveau. Niet langer bewaren dan nodig, ten hoogste een jaar na verstrekking.",
        f"Kenmerk verstrekking: {reference}",
    )


CSV_COLUMNS = (
    "datum",
    "tijd_melding",
    "wijkcode",
    "wijk",
    "buurtcode",
    "buurt",
    "postcode",
    "straat",
    "huisnummer",
    "toevoeging",
    "aanduiding",
    "mk_code",
    "omschrijving",
    "pleegdatum_van",
    "pleegdatum_tot",
)


SUPPLEMENT_CSV_COLUMN = "wijziging"


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A cell a spreadsheet would run as a formula is quoted as text (CSV injection).
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def daily_csv(
    entries: Iterable[Entry], tz: ZoneInfo, changes: Mapping[str, str] | None = None
) -> bytes:
    """The CSV attachment: one row per incident, in the mail's order, ``;``-separated, UTF-8.

    Starts with a byte-order mark so spreadsheet programs read the accents right, then the
    marking ``CONFIDENTIAL`` as its first line (whoever opens the file sees it), then the
    column names. With ``changes`` (registration number -> ``nieuw``/``gewijzigd``/
    ``vervallen``, a supplement's CSV) a first column ``wijziging`` says what changed.
    """
    ordered = sorted(
        entries,
        key=lambda e: (
            _district_sort_key(e.district_code, e.district_name),
            e.postcode is None,
            e.postcode or "",
            e.reported_at,
            e.mk_code,
            e.registration_number,
        ),
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow((CONFIDENTIAL,))
    writer.writerow((SUPPLEMENT_CSV_COLUMN, *CSV_COLUMNS) if changes is not None else CSV_COLUMNS)
    for e in ordered:
        change = () if changes is None else (changes[e.registration_number],)
        writer.writerow(
            [
                _cell(v)
                for v in (
                    *change,
                    _local(e.reported_at, tz, "%Y-%m-%d"),
                    _local(e.reported_at, tz, "%H:%M"),
                    e.district_code,
                    e.district_name,
                    e.neighbourhood_code,
                    e.neighbourhood_name,
                    e.postcode,
                    e.street,
                    e.house_number,
                    e.house_number_suffix,
                    e.location_qualifier,
                    e.mk_code,
                    e.mk_description,
                    _local(e.committed_from, tz, "%Y-%m-%d %H:%M"),
                    _local(e.committed_until, tz, "%Y-%m-%d %H:%M"),
                )
            ]
        )
    return buffer.getvalue().encode("utf-8-sig")


# -- the bi-weekly cumulative Dagmonitor (hotspots) ----------------------------------------


@dataclass(frozen=True, slots=True)
class PostcodeCount:
    """How many entries one postcode of one district had in the period."""

    district_code: str | None
    district_name: str | None
    postcode: str | None
    count: int


@dataclass(frozen=True, slots=True)
class RankedPostcode:
    rank: int
    district: str
    postcode: str
    count: int


@dataclass(frozen=True, slots=True)
class RankedDistrict:
    rank: int
    district_code: str | None
    district: str
    count: int
    postcodes: int


@dataclass(frozen=True, slots=True)
class Hotspots:
    """Ranked counts for the period; ``total`` is the number of entries counted."""

    districts: tuple[RankedDistrict, ...]
    postcodes: tuple[RankedPostcode, ...]
    total: int = field(default=0)


def competition_ranks(counts: Sequence[int]) -> list[int]:
    """Ranks of counts already sorted high to low, ties sharing a rank (1, 2, 2, 4)."""
    ranks: list[int] = []
    for index, count in enumerate(counts):
        if index and count == counts[index - 1]:
            ranks.append(ranks[-1])
        else:
            ranks.append(index + 1)
    return ranks


def rank_hotspots(counts: Iterable[PostcodeCount]) -> Hotspots:
    """Districts and postcodes ranked by count, high to low; ties ordered by name."""
    rows = [c for c in counts if c.count > 0]
    postcodes = sorted(
        rows,
        key=lambda c: (
            -c.count,
            _district_sort_key(c.district_code, c.district_name),
            c.postcode is None,
            c.postcode or "",
        ),
    )
    postcode_ranks = competition_ranks([c.count for c in postcodes])
    ranked_postcodes = tuple(
        RankedPostcode(
            rank,
            c.district_name or c.district_code or UNKNOWN_DISTRICT,
            c.postcode or UNKNOWN_POSTCODE,
            c.count,
        )
        for rank, c in zip(postcode_ranks, postcodes, strict=True)
    )
    totals: dict[tuple[str | None, str | None], list[int]] = {}
    for c in rows:
        totals.setdefault((c.district_code, c.district_name), []).append(c.count)
    districts = sorted(
        totals.items(), key=lambda item: (-sum(item[1]), _district_sort_key(*item[0]))
    )
    district_ranks = competition_ranks([sum(counts) for _, counts in districts])
    ranked_districts = tuple(
        RankedDistrict(rank, code, name or code or UNKNOWN_DISTRICT, sum(c), len(c))
        for rank, ((code, name), c) in zip(district_ranks, districts, strict=True)
    )
    return Hotspots(ranked_districts, ranked_postcodes, sum(c.count for c in rows))


# -- notices --------------------------------------------------------------------------------

_APPROVAL_CATEGORY = {"SUSPECT": "Verdachte", "PERSON_OF_INTEREST": "Persoon in de aandacht"}
_NOTICE_KIND = {
    "REPEAT_OFFENDER": "Veelpleger",
    "AREA_BAN": "Gebiedsontzegging",
    "KNOWN_OFFENDER": "Bekend bij de politie",
}
_VEHICLE_KIND = {
    "PASSENGER_CAR": "Personenauto",
    "VAN": "Bestelauto",
    "MOPED": "Bromfiets",
    "SCOOTER": "Scooter",
    "MOTORCYCLE": "Motor",
    "TRUCK": "Vrachtauto",
    "BICYCLE": "Fiets",
    "VESSEL": "Vaartuig",
    "OTHER": "Overig",
}


def _name(person: Mapping[str, Any]) -> str:
    parts = (person.get("first_names"), person.get("surname_prefix"), person.get("surname"))
    return " ".join(p for p in parts if p) or "(naam onbekend)"


def _address(address: Mapping[str, Any] | None) -> str:
    if not address:
        return ""
    street = " ".join(
        p
        for p in (
            address.get("street"),
            house_number_text(address.get("house_number"), address.get("house_number_suffix")),
        )
        if p
    )
    place = " ".join(p for p in (address.get("postcode"), address.get("city")) if p)
    return ", ".join(p for p in (street, place) if p)


def _moment(value: Any, tz: ZoneInfo, fmt: str) -> str:
    if value is None:
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.astimezone(tz).strftime(fmt)


@dataclass(frozen=True, slots=True)
class NoticeItem:
    """One record of a notice mail, as label/value lines (the record key stays out of it)."""

    title: str
    lines: tuple[tuple[str, str], ...]
    link: str | None = None


def person_item(value: Mapping[str, Any], tz: ZoneInfo) -> NoticeItem:
    """An approved suspect or person of interest: NAW and photo reference (no birth date:
    the covenant names none, ``services/classifier/field_sets.csv``)."""
    person = value.get("person") or {}
    lines = [
        ("Soort", _APPROVAL_CATEGORY.get(str(value.get("category")), str(value.get("category")))),
        ("Kenmerk", _NOTICE_KIND.get(str(value.get("notice_kind")), "")),
        ("Adres", _address(person.get("address"))),
        ("MK-code", value.get("mk_code") or ""),
        ("Wijk", value.get("district_code") or ""),
        ("Geldig tot", _moment(value.get("valid_until"), tz, "%d-%m-%Y")),
        ("Foto", person.get("photo_ref") or ""),
        ("Goedgekeurd", _moment(value.get("approved_at"), tz, "%d-%m-%Y %H:%M")),
    ]
    return NoticeItem(_name(person), tuple((k, v) for k, v in lines if v), person.get("photo_ref"))


def victim_item(value: Mapping[str, Any], tz: ZoneInfo) -> NoticeItem:
    """An approved victim of residential burglary: NAW, phone and modus operandi."""
    person = value.get("person") or {}
    lines = [
        ("Adres", _address(person.get("address"))),
        ("Telefoon", person.get("phone") or ""),
        ("MK-code", value.get("mk_code") or ""),
        ("Werkwijze", value.get("modus_operandi") or ""),
        ("Wijk", value.get("district_code") or ""),
        ("Goedgekeurd", _moment(value.get("approved_at"), tz, "%d-%m-%Y %H:%M")),
    ]
    return NoticeItem(_name(person), tuple((k, v) for k, v in lines if v))


def vehicle_item(value: Mapping[str, Any], tz: ZoneInfo) -> NoticeItem:
    """A stolen-vehicle signal: plate, kind, when reported, district."""
    lines = [
        ("Soort", _VEHICLE_KIND.get(str(value.get("kind")), str(value.get("kind")))),
        ("Gemeld", _moment(value.get("reported_at"), tz, "%d-%m-%Y %H:%M")),
        ("Wijk", value.get("district_code") or ""),
    ]
    return NoticeItem(str(value.get("plate")), tuple((k, v) for k, v in lines if v))
