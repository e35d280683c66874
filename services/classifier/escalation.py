"""Rule 8: youth-nuisance reports per postcode area in a sliding window. Pure functions.

The covenant escalates "vanuit zowel de politie als de gemeente": the window counts the
police's E35 reports and the municipality's youth-nuisance reports (``municipal.reports``)
together, per postcode area: the full postcode (PC6, ``1234AB``) or its four digits (PC4,
``1234``), as configured (``DAGMONITOR_ESCALATION_AREA``, ADR 0013).

The state of one area is a JSON-able dict kept in a table keyed by the area:
``{"reports": {report_key: reported_at_ms}, "newest": ms | None, "requested_at": ms | None,
"district_code": str | None}``. A report key is the police registration number or
``municipal:`` + the municipal report's id (``report_key``), so the two never collide. Reports
are counted once per key (a new version of the same report does not count twice), in event time
(``reported_at``), within ``window`` before the newest report. One request per area: a new one
only when the previous request is older than the window. The area remembers the district of its
latest police report, for the request (a municipal report names none).

Reports older than the window are removed whenever the count decides something: when no
request was made yet or the last one is older than the window, and before a withdrawal. While a
request is recent the count cannot make another, so a report is then only added: a busy area
(thousands of reports in a week) costs the same per report as a quiet one, and its state holds
at most the reports of two windows. The functions do no I/O; ``add_report`` and
``remove_report`` change the state they are given (the caller's copy, decoded from its table).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

State = dict[str, Any]
MUNICIPAL_PREFIX = "municipal:"


class Area(StrEnum):
    """What 'postcodegebied' means for the count (ADR 0013)."""

    PC6 = "pc6"  # the full postcode, 1234AB: a street or part of one
    PC4 = "pc4"  # the four digits, 1234: a neighbourhood


def area_of(postcode: str, area: Area) -> str:
    """The area a normalised postcode (``1234AB``) counts in: itself, or its four digits."""
    return postcode if area is Area.PC6 else postcode[:4]


def report_key(*, registration_number: str | None = None, report_id: str | None = None) -> str:
    """The window's key of a police report (its registration) or a municipal one."""
    if registration_number is not None:
        return registration_number
    if report_id is None:
        raise ValueError("a report key needs a registration number or a report id")
    return MUNICIPAL_PREFIX + report_id


@dataclass(frozen=True, slots=True)
class WindowRule:
    """Threshold reports within window_ms (defaults: 5 in 7 days)."""

    threshold: int = 5
    window_ms: int = 7 * 24 * 3600 * 1000


def empty() -> State:
    return {"reports": {}, "newest": None, "requested_at": None, "district_code": None}


def add_report(
    state: State | None,
    key: str,
    reported_at_ms: int,
    rule: WindowRule,
    district_code: str | None = None,
) -> tuple[State, bool]:
    """Count one report (``key``: see ``report_key``); returns the state (``state`` itself,
    changed) and whether a request must be made now. ``district_code``: the police report's
    district, if any."""
    current = _opened(state)
    reports: dict[str, int] = current["reports"]
    earlier = reports.get(key)
    reports[key] = reported_at_ms
    newest = current["newest"]
    if newest is None or reported_at_ms > newest:
        newest = reported_at_ms
    elif earlier == newest and reported_at_ms < newest:  # the newest report moved back
        newest = max(reports.values())
    current["newest"] = newest
    if district_code:
        current["district_code"] = district_code
    requested_at = current["requested_at"]
    if requested_at is not None and requested_at > newest - rule.window_ms:
        return current, False  # asked within the window: no count can ask again yet
    _prune(current, rule)
    due = len(current["reports"]) >= rule.threshold
    if due:
        current["requested_at"] = newest
    return current, due


def remove_report(state: State | None, key: str, rule: WindowRule) -> State:
    """Forget a withdrawn (or re-located) report; returns ``state`` itself, changed."""
    current = _opened(state)
    _prune(current, rule)  # against the newest report before this one goes
    reports: dict[str, int] = current["reports"]
    if reports.pop(key, None) == current["newest"]:
        current["newest"] = max(reports.values(), default=None)
    return current


def count(state: State | None, rule: WindowRule) -> int:
    """The reports within the window before the newest one."""
    current = _opened(state)
    newest = current["newest"]
    if newest is None:
        return 0
    return sum(1 for at in current["reports"].values() if at > newest - rule.window_ms)


def _opened(state: State | None) -> State:
    """``state`` with every field; one stored before ``newest`` was kept gets it."""
    if state is None:
        return empty()
    if "newest" not in state:
        state["newest"] = max(state["reports"].values(), default=None)
    state.setdefault("requested_at", None)
    state.setdefault("district_code", None)
    return state


def _prune(state: State, rule: WindowRule) -> None:
    """Remove the reports at or before ``window`` before the newest one."""
    newest = state["newest"]
    if newest is None:
        return
    cutoff = newest - rule.window_ms
    reports: dict[str, int] = state["reports"]
    if min(reports.values(), default=newest) <= cutoff:
        state["reports"] = {key: at for key, at in reports.items() if at > cutoff}
