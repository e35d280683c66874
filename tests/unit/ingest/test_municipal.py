"""The municipality's youth-nuisance reports at ingest (ADR 0013): the category table row by
row, the Signalen signal mapped to a MunicipalReport without personal data, every validation
reason, and the municipal tokens apart from the police's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagmonitor.codec import MUNICIPAL_REPORT, default_codec
from dagmonitor.errors import ConfigError
from dagmonitor.rejection import Reason
from dagmonitor.validation import InvalidRecord
from services.ingest.config import IngestSettings
from services.ingest.municipal import (
    CATEGORY_FILE,
    Category,
    counts,
    load_categories,
    parse_categories,
    report_from_signal,
    validate_report,
)
from services.ingest.pipeline import MUNICIPAL, check
from tests.unit.ingest.samples import CATEGORY_URL, PERSONAL, YOUTH, report, signal

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
_GROUPS = "overlast-van-en-door-personen-of-groepen"

# The reviewed decision, row for row: only Signalen's 'jongerenoverlast' is youth nuisance.
# A change to signalen_categories.csv has to change this too (and be reviewed as such).
EXPECTED_TABLE = {
    f"{_GROUPS}/jongerenoverlast": Category.YOUTH_NUISANCE,
    f"{_GROUPS}/overige-overlast-door-personen": Category.NOT_COUNTED,
    f"{_GROUPS}/drank-en-drugsoverlast": Category.NOT_COUNTED,
    f"{_GROUPS}/vuurwerkoverlast": Category.NOT_COUNTED,
    f"{_GROUPS}/overlast-door-afsteken-vuurwerk": Category.NOT_COUNTED,
    f"{_GROUPS}/daklozen-bedelen": Category.NOT_COUNTED,
    f"{_GROUPS}/wildplassen-poepen-overgeven": Category.NOT_COUNTED,
    f"{_GROUPS}/overlast-van-taxis-bussen-en-fietstaxis": Category.NOT_COUNTED,
    f"{_GROUPS}/personen-op-het-water": Category.NOT_COUNTED,
}


def _url(code: str) -> str:
    main, sub = code.split("/")
    return f"/signals/v1/public/terms/categories/{main}/sub_categories/{sub}"


def _reason(call: Any) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as caught:
        call()
    return caught.value


# --- the category table --------------------------------------------------------------------


def test_the_table_is_the_reviewed_decision() -> None:
    table = load_categories()
    assert {code: row.category for (source, code), row in table.items()} == EXPECTED_TABLE
    assert {source for source, _ in table} == {"signalen"}
    assert all(row.reason for row in table.values())
    assert CATEGORY_FILE.read_text(encoding="utf-8").startswith("# ")  # says what it is


@pytest.mark.parametrize(("code", "category"), sorted(EXPECTED_TABLE.items()))
def test_each_row_decides_whether_a_signal_of_it_is_taken(code: str, category: Category) -> None:
    mapped = report_from_signal(signal(category_url=_url(code)))
    assert mapped["category"] == code
    if category is Category.YOUTH_NUISANCE:
        validate_report(mapped, now=NOW)
    else:
        problem = _reason(lambda: validate_report(mapped, now=NOW))
        assert problem.reason is Reason.CATEGORY_NOT_COUNTED
        assert problem.detail.startswith("category: not youth nuisance")


@pytest.mark.parametrize(
    ("source", "code"),
    [
        ("signalen", "afval/container-is-vol"),  # a Signalen category the table does not list
        ("signalen", "jongerenoverlast"),  # the sub slug alone
        ("meldingen-app", YOUTH),  # another reporting system: no row of its own yet
    ],
)
def test_what_the_table_does_not_map_is_not_counted(source: str, code: str) -> None:
    assert not counts(source, code)
    problem = _reason(lambda: validate_report(report(category=code, source=source), now=NOW))
    assert problem.reason is Reason.CATEGORY_NOT_COUNTED


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("source,main_slug,sub_slug,category\n", "columns"),
        ("source,main_slug,sub_slug,category,reason\nsignalen,a,b,counted,x\n", "row 2"),
        ("source,main_slug,sub_slug,category,reason\nsignalen,a,b,youth_nuisance,\n", "reason"),
        ("source,main_slug,sub_slug,category,reason\nsignalen,A B,b,not_counted,x\n", "row 2"),
        (
            "source,main_slug,sub_slug,category,reason\n"
            "signalen,a,b,not_counted,x\nsignalen,a,b,youth_nuisance,y\n",
            "twice",
        ),
    ],
)
def test_a_malformed_table_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_categories("# a comment line\n" + text)


# --- a Signalen signal becomes a MunicipalReport -------------------------------------------


def test_a_signal_keeps_only_what_the_window_counts() -> None:
    mapped = report_from_signal(signal())
    assert mapped == {
        "report_id": "0b7c9c8e-6d1a-4c8e-9a51-2f4b6f1d0a01",
        "category": YOUTH,
        "postcode": "3511AB",
        "reported_at": datetime(2026, 11, 27, 20, 30, tzinfo=UTC),
        "source": "signalen",
    }
    encoded = default_codec().encode(MUNICIPAL_REPORT, mapped)
    for value in PERSONAL:
        assert value.encode() not in encoded
    assert b"17" not in encoded  # the house number is gone too


@pytest.mark.parametrize(
    "category",
    [
        {"sub_category": CATEGORY_URL},  # what a client POSTs to Signalen
        {"sub_category": _url(YOUTH)},  # a path instead of a URL
        {"category_url": CATEGORY_URL + "/", "sub": "Jongerenoverlast"},  # Signalen's detail
        {"main_slug": _GROUPS, "sub_slug": "jongerenoverlast"},
    ],
)
def test_every_form_of_the_signalen_category_is_read(category: dict[str, str]) -> None:
    document = signal()
    document["category"] = category
    assert report_from_signal(document)["category"] == YOUTH


def test_a_signal_without_signal_id_is_known_by_its_number() -> None:
    document = signal()
    del document["signal_id"]
    assert report_from_signal(document)["report_id"] == "SIG-1234"


def _without(path: str) -> dict[str, Any]:
    document = signal()
    *parents, last = path.split(".")
    node = document
    for name in parents:
        node = node[name]
    del node[last]
    return document


def _with(path: str, value: Any) -> dict[str, Any]:
    document = signal()
    *parents, last = path.split(".")
    node = document
    for name in parents:
        node = node[name]
    node[last] = value
    return document


@pytest.mark.parametrize(
    ("document", "reason", "detail"),
    [
        ([1, 2], Reason.INVALID_JSON, "record: expected a JSON object"),
        (_with("signal_id", None) | {"id": True}, Reason.INVALID_IDENTIFIER, "signal_id: missing"),
        (signal(postcode=None), Reason.INVALID_POSTCODE, "location.address.postcode: missing"),
        (_without("location"), Reason.INVALID_POSTCODE, "location.address.postcode: missing"),
        (signal(postcode="35111AB"), Reason.INVALID_POSTCODE, "location.address.postcode: not a"),
        (signal(postcode="3511SS"), Reason.INVALID_POSTCODE, "location.address.postcode: not a"),
        (_without("category"), Reason.INVALID_FIELD, "category: missing"),
        (_with("category", {"sub": "x"}), Reason.INVALID_FIELD, "category.sub_category: missing"),
        (
            _with("category", {"sub_category": "https://x.invalid/jongeren"}),
            Reason.INVALID_FIELD,
            "category.sub_category: not a Signalen category URL",
        ),
        (
            _with("category", {"category_url": "http://[::1/terms"}),
            Reason.INVALID_FIELD,
            "category.category_url: not a Signalen category URL",
        ),
        (_without("incident_date_start"), Reason.INVALID_TIMESTAMP, "incident_date_start: miss"),
        (signal(at="gisteravond"), Reason.INVALID_TIMESTAMP, "incident_date_start: not an ISO"),
        (signal(at="2026-11-27T21:30:00"), Reason.INVALID_TIMESTAMP, "incident_date_start: time"),
        (
            _with("location.address.postcode", "3511\x00AB"),
            Reason.INVALID_POSTCODE,
            "location.address.postcode: not a",
        ),
        (_with("signal_id", "abc\x1bdef"), Reason.INVALID_TEXT, "report_id: holds a control"),
    ],
)
def test_a_bad_signal_is_refused_with_its_reason(
    document: Any, reason: Reason, detail: str
) -> None:
    problem = _reason(lambda: report_from_signal(document))
    assert problem.reason is reason
    assert problem.detail.startswith(detail), problem.detail


def test_refusals_never_quote_the_signal() -> None:
    for document in (signal(postcode="9999XX-17"), signal(at="op 17 november")):
        problem = _reason(lambda document=document: report_from_signal(document))
        assert "17" not in problem.detail


# --- a MunicipalReport from Kafka ----------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason", "detail"),
    [
        ({"report_id": "with space"}, Reason.INVALID_IDENTIFIER, "report_id:"),
        ({"report_id": ""}, Reason.INVALID_IDENTIFIER, "report_id:"),
        ({"postcode": "1234"}, Reason.INVALID_POSTCODE, "postcode: not a Dutch postcode"),
        ({"postcode": "0123AB"}, Reason.INVALID_POSTCODE, "postcode: not a Dutch postcode"),
        ({"reported_at": NOW + timedelta(hours=1)}, Reason.INVALID_TIMESTAMP, "reported_at: in"),
        ({"reported_at": datetime(1999, 12, 31, tzinfo=UTC)}, Reason.INVALID_TIMESTAMP, "repo"),
        ({"category": "overlast/jongeren"}, Reason.CATEGORY_NOT_COUNTED, "category: not youth"),
        ({"source": "\x07signalen"}, Reason.INVALID_TEXT, "source: holds a control"),
    ],
)
def test_a_bad_report_is_refused_with_its_reason(
    changes: dict[str, Any], reason: Reason, detail: str
) -> None:
    problem = _reason(lambda: validate_report(report() | changes, now=NOW))
    assert problem.reason is reason
    assert problem.detail.startswith(detail), problem.detail


def test_a_report_within_the_clock_skew_and_with_spaces_in_its_postcode_is_taken() -> None:
    validate_report(report(postcode=" 3511 ab ", reported_at=NOW + timedelta(minutes=4)), now=NOW)


def test_the_kafka_key_must_be_the_report_id() -> None:
    raw = default_codec().encode(MUNICIPAL_REPORT, report("r-1"))
    assert check(MUNICIPAL, raw, b"r-1", default_codec(), now=NOW, clock_skew=timedelta())
    problem = _reason(
        lambda: check(MUNICIPAL, raw, b"r-2", default_codec(), now=NOW, clock_skew=timedelta())
    )
    assert problem.reason is Reason.KEY_MISMATCH


# --- who may post what ---------------------------------------------------------------------


def test_municipal_and_police_tokens_are_apart() -> None:
    settings = IngestSettings(
        ingest_tokens="bvh-midden=police-secret", ingest_municipal_tokens="signalen=gm-secret"
    )
    assert settings.system_for_token("police-secret") == "bvh-midden"
    assert settings.system_for_token("gm-secret") is None
    assert settings.system_for_token("gm-secret", municipal=True) == "signalen"
    assert settings.system_for_token("police-secret", municipal=True) is None


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from(["location", "category", "signal_id", "id", "incident_date_start", ""]),
    value=_JSON,
)
def test_any_json_in_any_field_is_taken_or_refused_with_a_reason(base: str, value: Any) -> None:
    document = signal() if base else value
    if base:
        document[base] = value
    try:
        validate_report(report_from_signal(document), now=NOW)
    except InvalidRecord as exc:
        assert exc.reason in Reason
