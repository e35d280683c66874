"""Rule 8: youth-nuisance reports per postcode area in a sliding window. Pure functions.

The covenant escalates "vanuit zowel de politie als de gemeente": the window counts the
police's E35 reports and the municipality's youth-nuisance reports (``municipal.reports``)
together, per postcode area: the full postcode (PC6, ``1234AB``) or its four digits (PC4,
``1234``), as configured (``DAGMONITOR_ESCALATION_AREA``, ADR 0013).

The state of one area is a small JSON-able dict kept in a table keyed by the area:
``{"reports": {report_key: reported_at_ms}, "requested_at": ms | None, "district_code": str |
None}``. A report key is the police registration number or ``municipal:`` + the municipal
report's id (``report_key``), so the two never collide. Reports are counted once per key (a new
version of the same report does not count twice), in event time (``reported_at``), within
``window`` before the newest report; older ones are pruned, so the state stays small. One
request per area: a new one only when the previous request is older than the window. The area
remembers the district of its latest police report, for the request (a municipal report names
none).
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
    return {"reports": {}, "requested_at": None, "district_code": None}


def add_report(
    state: State | None,
    key: str,
    reported_at_ms: int,
    rule: WindowRule,
    district_code: str | None = None,
) -> tuple[State, bool]:
    """Count one report (``key``: see ``report_key``); returns the new state and whether a
    request must be made now. ``district_code``: the police report's district, if any."""
    current = state or empty()
    reports = dict(current["reports"])
    reports[key] = reported_at_ms
    newest = max(reports.values())
    reports = {reg: at for reg, at in reports.items() if at > newest - rule.window_ms}
    requested_at = current.get("requested_at")
    due = len(reports) >= rule.threshold and (
        requested_at is None or requested_at <= newest - rule.window_ms
    )
    district = district_code or current.get("district_code")
    new_state = {
        "reports": reports,
        "requested_at": newest if due else requested_at,
        "district_code": district,
    }
    return new_state, due


def remove_report(state: State | None, key: str) -> State:
    """Forget a withdrawn (or re-located) report."""
    current = state or empty()
    reports = {other: at for other, at in current["reports"].items() if other != key}
    return {
        "reports": reports,
        "requested_at": current.get("requested_at"),
        "district_code": current.get("district_code"),
    }


def count(state: State | None) -> int:
    return len((state or empty())["reports"])
