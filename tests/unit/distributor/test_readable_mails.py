"""The mails as enforcement staff read them: the day's summary on top, one table per
district, names instead of codes, real hotspots against the previous period, photos inline."""

from __future__ import annotations

import re

from services.distributor.categories import CATEGORY_ORDER
from services.distributor.reports import CSV_COLUMNS
from tests.unit.distributor.mail_kinds import every_kind

KINDS = every_kind()
CODE = re.compile(r"\b(WK|BU)\d{6,8}\b")


def test_no_district_or_neighbourhood_code_where_a_person_reads() -> None:
    for kind, rendered in KINDS.items():
        assert not CODE.search(rendered.html + rendered.text + rendered.subject), kind


def test_codes_stay_in_the_csv_with_its_stable_columns() -> None:
    (csv,) = KINDS["daily"].attachments
    lines = csv.data.decode("utf-8-sig").split("\r\n")
    assert lines[1] == ";".join(CSV_COLUMNS)
    assert CODE.search(csv.data.decode("utf-8-sig"))


def test_the_daily_mail_opens_with_the_summary_then_one_table_per_district() -> None:
    html = KINDS["daily"].html
    summary = html.index("Overzicht per wijk")
    kinds = html.index("Overzicht per soort")
    first_district = html.index("<h2", kinds + 1)
    assert summary < kinds < first_district
    for category in CATEGORY_ORDER:
        assert category.capitalize() in html[kinds:first_district]
    districts = re.findall(r"<h2[^>]*>([^<:]+): \d+</h2>", html)
    tables = html[first_district:].count("<table")
    assert len(districts) == tables > 5, "one table per district"
    assert len(set(districts)) == len(districts)


def test_within_a_district_postcodes_in_order_and_times_in_order() -> None:
    html = KINDS["daily"].html
    first = html.index("Overzicht per soort")
    blocks = re.split(r"<h2", html[first:])[2:]
    for block in blocks:
        postcodes = re.findall(r'<th style="[^"]*">(\d{4}[A-Z]{2}|Postcode onbekend) <span', block)
        assert postcodes == sorted(postcodes, key=lambda p: (p == "Postcode onbekend", p))
        for group in re.split(r"<tr><th ", block)[1:]:
            times = re.findall(r"<strong>(\d\d:\d\d)</strong>", group)
            assert times == sorted(times)
    assert sum(len(re.findall(r"<tr><th ", b)) for b in blocks) > 20, "postcode groups found"


def test_the_hotspot_report_ranks_real_places_with_the_change() -> None:
    html, text = KINDS["hotspots"].html, KINDS["hotspots"].text
    assert "Postcode onbekend" not in html + text
    assert "(PC6)" in html and "(PC4)" in html and "t.o.v. vorige" in html
    assert "3562JA" in html and "3526WS" in html, "the generator's hotspots rank"
    ranks = [int(r) for r in re.findall(r"^\s+(\d+)\. \d{4}[A-Z]{2} ", text, re.M)]
    assert ranks and max(ranks) <= 15


def test_a_delivered_photo_is_inline_a_missing_one_is_said_so() -> None:
    notice = KINDS["notice-persons"]
    (photo,) = notice.inline
    assert photo.maintype == "image" and photo.subtype == "jpeg"
    assert f'src="cid:{photo.cid}"' in notice.html
    assert notice.html.count("Foto: nog niet ontvangen") == 1
    assert "Foto: in de HTML-weergave" in notice.text
    assert "bvh://" not in notice.html + notice.text
