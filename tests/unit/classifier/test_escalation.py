"""Rule 8: the E35 sliding window per postcode."""

from __future__ import annotations

from services.classifier.escalation import WindowRule, add_report, count, remove_report

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
