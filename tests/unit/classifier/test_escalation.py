"""Rule 8: the E35 sliding window per postcode."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    assert count(state, RULE) == 7  # only the last window is kept
    state = remove_report(state, "r29", RULE)
    assert count(state, RULE) == 6
    assert "r29" not in state["reports"]
    assert count(remove_report(None, "x", RULE), RULE) == 0


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
    state = remove_report(state, "PL0900-2026000701", RULE)
    assert state["district_code"] == "DC01"
    assert empty()["district_code"] is None


# --- a busy area: the window is pruned when the count decides, with the same answers -------


def _eager(
    state: dict[str, int], newest: list[int | None], requested: list[int | None], op: Op
) -> bool:
    """The rule as written, every report older than the window removed at every step."""
    kind, key, at = op
    if kind == "remove":
        if newest[0] is not None:
            for other in [k for k, v in state.items() if v <= newest[0] - RULE.window_ms]:
                del state[other]
        state.pop(key, None)
        newest[0] = max(state.values(), default=None)
        return False
    state[key] = at
    newest[0] = max(state.values())
    for other in [k for k, v in state.items() if v <= newest[0] - RULE.window_ms]:
        del state[other]
    due = len(state) >= RULE.threshold and (
        requested[0] is None or requested[0] <= newest[0] - RULE.window_ms
    )
    if due:
        requested[0] = newest[0]
    return due


Op = tuple[str, str, int]
_ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "add", "remove"]),
        st.sampled_from([f"r{i}" for i in range(12)]),
        st.integers(min_value=0, max_value=30 * DAY),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(_ops)
def test_the_lazy_window_answers_as_the_rule_pruned_at_every_step(ops: list[Op]) -> None:
    reference: dict[str, int] = {}
    newest: list[int | None] = [None]
    requested: list[int | None] = [None]
    state: State | None = None
    for op in ops:
        kind, key, at = op
        expected = _eager(reference, newest, requested, op)
        if kind == "remove":
            state, due = remove_report(state, key, RULE), False
        else:
            state, due = add_report(state, key, at, RULE)
        assert due == expected
        assert count(state, RULE) == len(reference)
        assert state["newest"] == newest[0]
        assert state["requested_at"] == requested[0]


def test_a_busy_area_after_its_request_only_adds() -> None:
    state, due = None, False
    for i in range(5):
        state, due = add_report(state, f"first{i}", i, RULE)
    assert due
    assert state is not None
    reports = state["reports"]
    for i in range(10_000):  # a week's flood after the request: never asks, never rebuilt
        state, due = add_report(state, f"r{i}", DAY + i, RULE)
        assert not due
    assert state["reports"] is reports
    assert count(state, RULE) == 10_005


def test_a_steady_flow_keeps_at_most_two_windows() -> None:
    state: State | None = None
    hour = DAY // 24
    for i in range(24 * 60):  # one report an hour for 60 days
        state, _ = add_report(state, f"r{i}", i * hour, RULE)
        assert len(state["reports"]) <= 2 * 7 * 24 + 1
    assert count(state, RULE) == 7 * 24


def test_a_state_stored_before_newest_was_kept_still_counts() -> None:
    stored: State = {"reports": {"a": 0, "b": DAY}, "requested_at": None, "district_code": None}
    state, due = add_report(stored, "c", 2 * DAY, RULE)
    assert state["newest"] == 2 * DAY
    assert count(state, RULE) == 3
    assert not due
