"""Grouping, precision, CSV rows and ranking of the reports, without servers."""

from __future__ import annotations

import csv
import io
from zoneinfo import ZoneInfo

from services.distributor.reports import (
    CONFIDENTIAL,
    CSV_COLUMNS,
    Entry,
    PostcodeCount,
    competition_ranks,
    daily_csv,
    group_daily,
    location_text,
    rank_hotspots,
)
from tests.unit.distributor.samples import IN_DAY, known_day

AMS = ZoneInfo("Europe/Amsterdam")


def day_entries() -> list[Entry]:
    return [Entry.from_mapping(v) for v in known_day() if v["registration_number"] in IN_DAY]


def test_grouped_by_district_then_postcode_unknown_last_incidents_by_time() -> None:
    groups = group_daily(day_entries(), AMS)
    assert [(g.district_name, g.count) for g in groups] == [("Binnenstad", 2), ("Oost", 2)]
    assert [p.postcode for p in groups[0].postcodes] == ["3511AB"]
    assert [p.postcode for p in groups[1].postcodes] == ["3581AB", "Postcode onbekend"]
    lines = groups[0].postcodes[0].incidents
    assert [(i.time, i.mk_code) for i in lines] == [("00:30", "A20"), ("09:15", "A10")]
    assert lines[1].committed == "26-11 22:00"
    assert lines[1].neighbourhood == "Domplein e.o."


def test_location_at_the_precision_the_entry_carries() -> None:
    a10, a20, e35, f530 = day_entries()
    assert location_text(a10) == "ter hoogte van Voorbeeldstraat 12 bis"
    assert location_text(a20) == "Proefsteeg 3A"
    assert location_text(e35) == "3581AB"
    assert location_text(f530) == "Postcode onbekend"


def test_unknown_district_is_grouped_last() -> None:
    values = known_day()[:2]
    values[0] = values[0] | {"district_code": None, "district_name": None}
    groups = group_daily([Entry.from_mapping(v) for v in values], AMS)
    assert [g.district_name for g in groups] == ["Binnenstad", "Wijk onbekend"]


def test_csv_rows() -> None:
    data = daily_csv(day_entries(), AMS)
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig").split("\r\n")[0] == CONFIDENTIAL, "marked in its first line"
    marking, *rows = csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";")
    assert marking == [CONFIDENTIAL]
    assert tuple(rows[0]) == CSV_COLUMNS, "the column names stay in the second line"
    body = [dict(zip(CSV_COLUMNS, r, strict=True)) for r in rows[1:]]
    assert [(r["postcode"], r["mk_code"], r["datum"], r["tijd_melding"]) for r in body] == [
        ("3511AB", "A20", "2026-11-27", "00:30"),
        ("3511AB", "A10", "2026-11-27", "09:15"),
        ("3581AB", "E35", "2026-11-27", "20:05"),
        ("", "F530", "2026-11-27", "13:00"),
    ]
    a10 = body[1]
    assert (a10["straat"], a10["huisnummer"], a10["toevoeging"], a10["aanduiding"]) == (
        "Voorbeeldstraat",
        "12",
        "bis",
        "ter hoogte van",
    )
    assert a10["pleegdatum_van"] == "2026-11-26 22:00"
    assert body[2]["straat"] == body[2]["huisnummer"] == "", "postcode level stays postcode level"
    assert "PL0900" not in data.decode("utf-8-sig"), "no registration numbers in the attachment"


def test_csv_cells_that_look_like_formulas_are_quoted() -> None:
    entry = day_entries()[0]
    hostile = Entry.from_mapping(
        {name: getattr(entry, name) for name in Entry.__dataclass_fields__}
        | {"street": "=HYPERLINK(1)"}
    )
    assert "'=HYPERLINK(1)" in daily_csv([hostile], AMS).decode("utf-8-sig")


def test_competition_ranking() -> None:
    assert competition_ranks([9, 5, 5, 3, 3, 3, 1]) == [1, 2, 2, 4, 4, 4, 7]
    assert competition_ranks([]) == []


def test_hotspots_rank_real_places_only_unknown_counted_apart() -> None:
    hotspots = rank_hotspots(
        [
            PostcodeCount("WK1", "Zuid", "3521AA", 4),
            PostcodeCount("WK2", "Noord", "3551BB", 4),
            PostcodeCount("WK2", "Noord", "3551BC", 1),
            PostcodeCount("WK3", "West", None, 7),
            PostcodeCount("WK4", "Leeg", "3500XX", 0),
        ],
        min_count=1,
    )
    assert [(p.rank, p.place, p.count) for p in hotspots.pc6] == [
        (1, "3521AA", 4),
        (1, "3551BB", 4),
        (3, "3551BC", 1),
    ], "no 'Postcode onbekend' among the places"
    assert [(p.rank, p.place, p.count) for p in hotspots.pc4] == [(1, "3551", 5), (2, "3521", 4)]
    assert [(d.rank, d.district, d.count) for d in hotspots.districts] == [
        (1, "West", 7),
        (2, "Noord", 5),
        (3, "Zuid", 4),
    ]
    assert (hotspots.total, hotspots.unknown) == (16, 7)
