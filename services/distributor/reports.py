"""The content of the reports, as plain data: grouping, ranking, CSV rows, notice items, and
the confidentiality text every mail and every CSV attachment carries.

No I/O here. The daily Dagmonitor opens with a summary (incidents per district and per kind,
``categories``), then groups a day's entries by district (wijk), then postcode, each incident
with its MK code, description, time and location at exactly the precision its entry carries
(house number only where Bijlage 1 allows it, "ter hoogte van" where set). The hotspot report
ranks real places (PC6, and PC4 aggregated) against the previous period, unknown postcodes
counted apart. Notices turn approved records into display items. Places are named
(``areas``); codes appear only in the CSV. Nothing here adds data the entry does not carry.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.distributor.areas import AREAS, district_label
from services.distributor.categories import CATEGORY_ORDER, category_of
from services.distributor.entitlements import LEGAL_BASIS

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
        groups.append(DistrictGroup(code, district_label(code, name), tuple(postcode_groups)))
    return groups


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One district's (or the day's) count, and its counts per kind in ``CATEGORY_ORDER``."""

    label: str
    total: int
    by_category: tuple[int, ...]

    @property
    def breakdown(self) -> tuple[tuple[str, int], ...]:
        """The kinds it has, with their counts, in the summary's order."""
        return tuple((c, n) for c, n in zip(CATEGORY_ORDER, self.by_category, strict=True) if n)


@dataclass(frozen=True, slots=True)
class DailySummary:
    """The top of the daily mail: per district, and the whole day per kind."""

    districts: tuple[SummaryRow, ...]
    day: SummaryRow

    @property
    def categories(self) -> tuple[tuple[str, int], ...]:
        return tuple(zip(CATEGORY_ORDER, self.day.by_category, strict=True))


def _row(label: str, entries: Sequence[Entry]) -> SummaryRow:
    counts = {c: 0 for c in CATEGORY_ORDER}
    for entry in entries:
        counts[category_of(entry.mk_code)] += 1
    return SummaryRow(label, len(entries), tuple(counts[c] for c in CATEGORY_ORDER))


def daily_summary(entries: Iterable[Entry]) -> DailySummary:
    """Counts per district (in the mail's district order) and per kind for the whole day."""
    listed = list(entries)
    by_district: dict[tuple[str | None, str | None], list[Entry]] = {}
    for entry in listed:
        by_district.setdefault((entry.district_code, entry.district_name), []).append(entry)
    rows = tuple(
        _row(district_label(code, name), members)
        for (code, name), members in sorted(
            by_district.items(), key=lambda item: _district_sort_key(*item[0])
        )
    )
    return DailySummary(rows, _row("Totaal", listed))


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
class RankedPlace:
    """A ranked place (a PC6 postcode, or a PC4 area) with the previous period's count."""

    rank: int
    place: str
    district: str
    count: int
    previous: int

    @property
    def change(self) -> str:
        """``+3``, ``-2``, ``0``, or ``nieuw`` when the previous period had none."""
        return change_text(self.count, self.previous)


@dataclass(frozen=True, slots=True)
class RankedDistrict:
    rank: int
    district_code: str | None
    district: str
    count: int
    previous: int
    heat: int
    """0-4: how hot the district is next to the hottest (the heat table's shade)."""

    @property
    def change(self) -> str:
        return change_text(self.count, self.previous)


@dataclass(frozen=True, slots=True)
class Hotspots:
    """The period ranked: real places only; ``unknown`` entries without a postcode are
    counted apart (``total`` includes them)."""

    pc6: tuple[RankedPlace, ...]
    pc4: tuple[RankedPlace, ...]
    districts: tuple[RankedDistrict, ...]
    total: int = 0
    unknown: int = 0
    previous_total: int = 0
    top: int = 0
    min_count: int = 1

    @property
    def change(self) -> str:
        return change_text(self.total, self.previous_total)


def change_text(count: int, previous: int) -> str:
    """The change against the previous period as a reader scans it."""
    if previous == 0:
        return "nieuw" if count else "0"
    return f"{count - previous:+d}" if count != previous else "0"


def competition_ranks(counts: Sequence[int]) -> list[int]:
    """Ranks of counts already sorted high to low, ties sharing a rank (1, 2, 2, 4)."""
    ranks: list[int] = []
    for index, count in enumerate(counts):
        if index and count == counts[index - 1]:
            ranks.append(ranks[-1])
        else:
            ranks.append(index + 1)
    return ranks


def _district_of_places(
    rows: Iterable[PostcodeCount], place: Callable[[str], str]
) -> dict[str, tuple[str | None, str | None]]:
    """Each place's one district: the table's (``areas``) where it knows the postcode, else
    the district most of its entries carry (ties: by name), so a place is listed once."""
    votes: dict[str, dict[tuple[str | None, str | None], int]] = {}
    for c in rows:
        if c.postcode:
            district = votes.setdefault(place(c.postcode), {})
            key = (c.district_code, c.district_name)
            district[key] = district.get(key, 0) + c.count
    chosen: dict[str, tuple[str | None, str | None]] = {}
    for name, districts in votes.items():
        known = AREAS.district_of_postcode(name)
        if known is not None:
            chosen[name] = (known, AREAS.district_name(known))
        else:
            chosen[name] = min(districts, key=lambda k: (-districts[k], _district_sort_key(*k)))
    return chosen


def _rank_places(
    current: Sequence[PostcodeCount],
    previous: Sequence[PostcodeCount],
    place: Callable[[str], str],
    *,
    top: int,
    min_count: int,
) -> tuple[RankedPlace, ...]:
    now: dict[str, int] = {}
    before: dict[str, int] = {}
    for rows, totals in ((current, now), (previous, before)):
        for c in rows:
            if c.postcode:
                totals[place(c.postcode)] = totals.get(place(c.postcode), 0) + c.count
    districts = _district_of_places([*current, *previous], place)
    ordered = sorted(
        (name for name, n in now.items() if n >= min_count),
        key=lambda name: (-now[name], -before.get(name, 0), name),
    )
    ranks = competition_ranks([now[name] for name in ordered])
    return tuple(
        RankedPlace(rank, name, district_label(*districts[name]), now[name], before.get(name, 0))
        for rank, name in zip(ranks, ordered, strict=True)
        if rank <= top
    )


def rank_hotspots(
    counts: Iterable[PostcodeCount],
    previous: Iterable[PostcodeCount] = (),
    *,
    top: int = 15,
    min_count: int = 2,
) -> Hotspots:
    """The period's hotspots next to the previous period's counts.

    Places with a postcode only: PC6 and PC4 (the first four digits), each in one district,
    the ``top`` ranks with at least ``min_count`` entries (ties share a rank, so a rank can
    hold more than one place). Districts are all ranked. Entries without a postcode are
    counted in ``unknown``, never ranked as a place.
    """
    rows = [c for c in counts if c.count > 0]
    before = [c for c in previous if c.count > 0]
    pc6 = _rank_places(rows, before, lambda p: p, top=top, min_count=min_count)
    pc4 = _rank_places(rows, before, lambda p: p[:4], top=top, min_count=min_count)
    now: dict[tuple[str | None, str | None], int] = {}
    then: dict[str | None, int] = {}
    for c in rows:
        now[(c.district_code, c.district_name)] = now.get((c.district_code, c.district_name), 0)
        now[(c.district_code, c.district_name)] += c.count
    for c in before:
        then[c.district_code] = then.get(c.district_code, 0) + c.count
    merged: dict[str | None, tuple[str, int]] = {}
    for (code, name), n in now.items():
        label, total = merged.get(code, (district_label(code, name), 0))
        merged[code] = (label, total + n)
    districts = sorted(merged.items(), key=lambda item: (-item[1][1], item[1][0].lower()))
    ranks = competition_ranks([n for _, (_, n) in districts])
    hottest = districts[0][1][1] if districts else 0
    ranked_districts = tuple(
        RankedDistrict(rank, code, label, n, then.get(code, 0), _heat(n, hottest))
        for rank, (code, (label, n)) in zip(ranks, districts, strict=True)
    )
    return Hotspots(
        pc6,
        pc4,
        ranked_districts,
        total=sum(c.count for c in rows),
        unknown=sum(c.count for c in rows if not c.postcode),
        previous_total=sum(c.count for c in before),
        top=top,
        min_count=min_count,
    )


def _heat(count: int, hottest: int) -> int:
    return 0 if hottest == 0 else min(4, (4 * count + hottest - 1) // hottest)


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


PHOTO_REF = re.compile(r"bvh://photos/([A-Za-z0-9][A-Za-z0-9._:-]{0,127})")
"""A person's ``photo_ref``: the id under which the police deliver the photo (``PUT
/v1/photos/{id}`` at ingest)."""


def photo_id(photo_ref: str | None) -> str | None:
    """The photo id of a ``bvh://photos/{id}`` reference; None for none or another form."""
    match = PHOTO_REF.fullmatch(photo_ref or "")
    return match.group(1) if match else None


@dataclass(frozen=True, slots=True)
class NoticeItem:
    """One record of a notice mail, as label/value lines (the record key stays out of it).

    ``photo_id``: the person has a photo (delivered or not yet: the mail says which)."""

    title: str
    lines: tuple[tuple[str, str], ...]
    photo_id: str | None = None


def _district(value: Mapping[str, Any]) -> str:
    code = value.get("district_code")
    return district_label(code, None) if code else ""


def person_item(value: Mapping[str, Any], tz: ZoneInfo) -> NoticeItem:
    """An approved suspect or person of interest: NAW and the photo (no birth date: the
    covenant names none, ``services/classifier/field_sets.csv``)."""
    person = value.get("person") or {}
    lines = [
        ("Soort", _APPROVAL_CATEGORY.get(str(value.get("category")), str(value.get("category")))),
        ("Kenmerk", _NOTICE_KIND.get(str(value.get("notice_kind")), "")),
        ("Adres", _address(person.get("address"))),
        ("MK-code", value.get("mk_code") or ""),
        ("Wijk", _district(value)),
        ("Geldig tot", _moment(value.get("valid_until"), tz, "%d-%m-%Y")),
        ("Goedgekeurd", _moment(value.get("approved_at"), tz, "%d-%m-%Y %H:%M")),
    ]
    return NoticeItem(
        _name(person), tuple((k, v) for k, v in lines if v), photo_id(person.get("photo_ref"))
    )


def victim_item(value: Mapping[str, Any], tz: ZoneInfo) -> NoticeItem:
    """An approved victim of residential burglary: NAW, phone and modus operandi."""
    person = value.get("person") or {}
    lines = [
        ("Adres", _address(person.get("address"))),
        ("Telefoon", person.get("phone") or ""),
        ("MK-code", value.get("mk_code") or ""),
        ("Werkwijze", value.get("modus_operandi") or ""),
        ("Wijk", _district(value)),
        ("Goedgekeurd", _moment(value.get("approved_at"), tz, "%d-%m-%Y %H:%M")),
    ]
    return NoticeItem(_name(person), tuple((k, v) for k, v in lines if v))


def vehicle_item(value: Mapping[str, Any], tz: ZoneInfo) -> NoticeItem:
    """A stolen-vehicle signal: plate, kind, when reported, district."""
    lines = [
        ("Soort", _VEHICLE_KIND.get(str(value.get("kind")), str(value.get("kind")))),
        ("Gemeld", _moment(value.get("reported_at"), tz, "%d-%m-%Y %H:%M")),
        ("Wijk", _district(value)),
    ]
    return NoticeItem(str(value.get("plate")), tuple((k, v) for k, v in lines if v))
