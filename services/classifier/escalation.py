"""Rule 8: E35 (youth nuisance) reports per postcode in a sliding window. Pure functions.

The state of one postcode is a small JSON-able dict kept in a table keyed by postcode:
``{"reports": {registration_number: reported_at_ms}, "requested_at": ms | None}``. Reports are
counted once per registration (a new version of the same report does not count twice), in
event time (``reported_at``), within ``window`` before the newest report; older ones are pruned,
so the state stays small. One request per postcode: a new one only when the previous request is
older than the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

State = dict[str, Any]


@dataclass(frozen=True, slots=True)
class WindowRule:
    """Threshold reports within window_ms (defaults: 5 in 7 days)."""

    threshold: int = 5
    window_ms: int = 7 * 24 * 3600 * 1000


def empty() -> State:
    return {"reports": {}, "requested_at": None}


def add_report(
    state: State | None, registration_number: str, reported_at_ms: int, rule: WindowRule
) -> tuple[State, bool]:
    """Count one report; returns the new state and whether a request must be made now."""
    current = state or empty()
    reports = dict(current["reports"])
    reports[registration_number] = reported_at_ms
    newest = max(reports.values())
    reports = {reg: at for reg, at in reports.items() if at > newest - rule.window_ms}
    requested_at = current.get("requested_at")
    due = len(reports) >= rule.threshold and (
        requested_at is None or requested_at <= newest - rule.window_ms
    )
    return {"reports": reports, "requested_at": newest if due else requested_at}, due


def remove_report(state: State | None, registration_number: str) -> State:
    """Forget a withdrawn (or re-located) report."""
    current = state or empty()
    reports = {reg: at for reg, at in current["reports"].items() if reg != registration_number}
    return {"reports": reports, "requested_at": current.get("requested_at")}


def count(state: State | None) -> int:
    return len((state or empty())["reports"])
