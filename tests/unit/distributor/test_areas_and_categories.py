"""Names of places and kinds of incident as data: ``wijken.csv`` and ``soorten.csv``."""

from __future__ import annotations

import pytest

from services.distributor.areas import AREAS, district_label, parse_areas
from services.distributor.categories import (
    CATEGORY_ORDER,
    OTHER,
    PREFIXES,
    category_of,
    parse_categories,
)
from services.distributor.errors import DistributorError
from services.distributor.reports import Entry, daily_summary
from tests.unit.distributor.samples import known_day

HEADER = "wijkcode;wijk;buurtcode;buurt;postcodes\n"


def test_every_district_has_a_name_and_every_postcode_area_one_district() -> None:
    assert len(AREAS.districts) == 10
    assert AREAS.district_name("WK034402") == "Overvecht"
    assert AREAS.neighbourhood_name("BU03440701") == "Kanaleneiland"
    assert AREAS.district_of_postcode("3526WS") == "WK034407"
    assert AREAS.district_of_postcode("9999ZZ") is None


def test_a_reader_sees_a_name_never_a_code() -> None:
    assert district_label("WK034402", None) == "Overvecht"
    assert district_label("WK034402", "Overvecht-Noord") == "Overvecht-Noord", "the record's own"
    assert district_label("WK999999", None) == "Wijk onbekend"
    assert district_label(None, None) == "Wijk onbekend"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("WK1;West;BU03440001;Lombok;3532\n", "codes are"),
        ("WK034400;West;BU03440001;Lombok;35\n", "PC4"),
        ("WK034400;West;BU03440001;Lombok;3532\nWK034401;Noord;BU03440002;X;3532\n", "two"),
        ("WK034400;West;BU03440001;Lombok;3532\nWK034400;Oost;BU03440002;X;3533\n", "two names"),
        ("WK034400;West;BU03440001;Lombok;3532\nWK034400;West;BU03440001;X;3533\n", "twice"),
    ],
)
def test_a_malformed_areas_table_is_refused_with_its_row(text: str, message: str) -> None:
    with pytest.raises(DistributorError, match=message):
        parse_areas(HEADER + text)


# One row per prefix of soorten.csv: a code it covers and the kind it gives.
PREFIX_CASES = {
    "A2": ("A20", "inbraak"),
    "A3": ("A34", "inbraak"),
    "A": ("A72", "diefstal"),
    "B2": ("B20", "inbraak"),
    "B3": ("B30", "inbraak"),
    "B": ("B70", "geweld"),
    "C": ("C10", "vernieling"),
    "E1": ("E11", "geweld"),
    "E31": ("E31", "overig"),
    "E3": ("E35", "overlast"),
    "E4": ("E41", "overlast"),
    "F1": ("F12", "geweld"),
    "F13": ("F13", "vernieling"),
    "F4": ("F46", "drugs"),
    "F530": ("F530", "geweld"),
    "M": ("M061", "overlast"),
}


def test_the_test_walks_every_row_of_the_table() -> None:
    assert set(PREFIX_CASES) == set(PREFIXES)


@pytest.mark.parametrize("prefix", sorted(PREFIX_CASES))
def test_each_row_gives_its_kind(prefix: str) -> None:
    code, category = PREFIX_CASES[prefix]
    assert PREFIXES[prefix] == category
    assert category_of(code) == category


def test_a_code_no_row_fits_is_other() -> None:
    assert category_of("Z99") == OTHER
    assert category_of("") == OTHER


def test_a_malformed_categories_table_is_refused() -> None:
    with pytest.raises(DistributorError, match="known soort"):
        parse_categories("voorvoegsel;soort\nA;fietsen\n")
    with pytest.raises(DistributorError, match="twice"):
        parse_categories("voorvoegsel;soort\nA;diefstal\nA;inbraak\n")


def day_entries() -> list[Entry]:
    return [Entry.from_mapping(v) for v in known_day()]


def test_daily_summary_counts_per_district_and_kind() -> None:
    entries = day_entries()
    summary = daily_summary(entries)
    assert summary.day.total == len(entries)
    assert sum(r.total for r in summary.districts) == len(entries)
    assert [c for c, _ in summary.categories] == list(CATEGORY_ORDER)
    for row in summary.districts:
        assert sum(row.by_category) == row.total
        assert all(n for _, n in row.breakdown), "only the kinds it has"
    assert all(not r.label.startswith("WK") for r in summary.districts)


def test_summary_names_a_district_that_carries_only_its_code() -> None:
    value = known_day()[0] | {"district_code": "WK034402", "district_name": None}
    coded = Entry.from_mapping(value)
    assert [r.label for r in daily_summary([coded]).districts] == ["Overvecht"]
