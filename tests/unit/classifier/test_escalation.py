"""Rule 8: the E35 sliding window per postcode."""

from __future__ import annotations

import pytest

from services.classifier.escalation import (
    Area,
    State,
    WindowRule,
    add_report,
    area_of,
    count,
    empty,
    remove_report,
    report_key,
)

DAY = 24 * 3600 * 1000
RULE = WindowRule(threshold=5, window_ms=7 * DAY)


def _feed(reports: list[tuple[str, int]]) -> list[bool]:
    state = None
    dues = []
    for registration, at in reports:
        state, due = add_report(state, registration, at, RULE)
        dues.append(due)
    return dues


def test_fifth_report_within_seven_days_asks_once() -> None:
    dues = _feed([(f"r{i}", i * DAY) for i in range(8)])
    assert dues == [False, False, False, False, True, False, False, False]


def test_reports_spread_wider_than_the_window_never_cross() -> None:
    assert not any(_feed([(f"r{i}", i * 2 * DAY) for i in range(10)]))


def test_a_new_version_of_the_same_report_counts_once() -> None:
    assert not any(_feed([("same", DAY + i) for i in range(10)]))


def test_window_boundary_is_exclusive() -> None:
    # Five reports exactly 7 days apart end-to-end: the first falls out of the window.
    base = [("a", 0), ("b", DAY), ("c", 2 * DAY), ("d", 3 * DAY), ("e", 7 * DAY)]
    assert _feed(base) == [False] * 5
    assert _feed([*base[:4], ("e", 7 * DAY - 1)])[-1] is True


def test_a_second_request_only_after_a_full_window() -> None:
    first = [(f"a{i}", i) for i in range(5)]
    later = [(f"b{i}", 8 * DAY + i) for i in range(5)]
    dues = _feed(first + later)
    assert dues.count(True) == 2
    assert dues[4] and dues[9]


def test_state_is_pruned_and_withdrawals_remove() -> None:
    state = None
    for i in range(30):
        state, _ = add_report(state, f"r{i}", i * DAY, RULE)
    assert count(state) == 7  # only the last window is kept
    state = remove_report(state, "r29")
    assert count(state) == 6
    assert "r29" not in state["reports"]
    assert count(remove_report(None, "x")) == 0


def test_out_of_order_reports_count_in_event_time() -> None:
    dues = _feed([("e", 6 * DAY), ("a", 0), ("b", DAY), ("c", 2 * DAY), ("d", 3 * DAY)])
    assert dues == [False, False, False, False, True]


# --- both sources, one window per postcode area (ADR 0013) ---------------------------------


def test_police_and_municipal_reports_cross_the_threshold_together() -> None:
    police = [report_key(registration_number=f"PL0900-202600070{i}") for i in range(3)]
    municipal = [report_key(report_id=f"sig-{i}") for i in range(2)]
    keys = [police[0], municipal[0], police[1], municipal[1], police[2]]
    assert _feed([(key, i * DAY) for i, key in enumerate(keys)]) == [False] * 4 + [True]
    # Either source alone stays below it.
    assert not any(_feed([(key, i * DAY) for i, key in enumerate(police)]))
    assert not any(_feed([(key, i * DAY) for i, key in enumerate(municipal)]))


def test_a_municipal_report_never_collides_with_a_registration() -> None:
    assert report_key(report_id="PL0900-2026000701") != report_key(
        registration_number="PL0900-2026000701"
    )
    assert report_key(report_id="sig-1") == "municipal:sig-1"
    with pytest.raises(ValueError, match="report key"):
        report_key()


def test_the_area_is_the_full_postcode_or_its_four_digits() -> None:
    assert area_of("3511AB", Area.PC6) == "3511AB"
    assert area_of("3511AB", Area.PC4) == "3511"


@pytest.mark.parametrize(("area", "requests"), [(Area.PC6, 0), (Area.PC4, 1)])
def test_pc4_counts_neighbouring_postcodes_together_pc6_apart(area: Area, requests: int) -> None:
    windows: dict[str, State | None] = {}
    dues = []
    for i, postcode in enumerate(["3511AA", "3511AB", "3511BC", "3511AA", "3511CD"]):
        key = area_of(postcode, area)
        windows[key], due = add_report(windows.get(key), f"r{i}", i * DAY, RULE)
        dues.append(due)
    assert dues.count(True) == requests


def test_the_area_remembers_the_district_of_its_latest_police_report() -> None:
    state, _ = add_report(None, "PL0900-2026000701", 0, RULE, "DC01")
    state, _ = add_report(state, report_key(report_id="sig-1"), DAY, RULE)
    assert state["district_code"] == "DC01"
    state = remove_report(state, "PL0900-2026000701")
    assert state["district_code"] == "DC01"
    assert empty()["district_code"] is None
