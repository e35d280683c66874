"""After a pipeline run on generated data, none of that data's personal details or registration
numbers appears in any service's log or /metrics output (ARCHITECTURE.md section 9)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.ops.conftest import SERVICES, PipelineRun

pytestmark = pytest.mark.integration


def _address(address: dict[str, Any] | None) -> set[str]:
    if not address or not address.get("street") or address.get("house_number") is None:
        return set()
    number = f"{address['street']} {address['house_number']}"
    return {number, f"{number}{address.get('house_number_suffix') or ''}".strip()}


def personal_values(lines: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Names (first names with surname), phones, plates, streets with a number, registrations."""
    found: dict[str, set[str]] = {
        "name": set(),
        "phone": set(),
        "plate": set(),
        "street with number": set(),
        "registration number": set(),
    }
    for line in lines:
        persons = line.get("persons") or [line["person"]]
        for person in persons:
            first, prefix, surname = (
                person["first_names"],
                person.get("surname_prefix"),
                person["surname"],
            )
            found["name"].add(f"{first} {surname}")
            found["name"].add(" ".join(part for part in (first, prefix, surname) if part))
            if person.get("phone"):
                found["phone"].add(person["phone"])
            found["street with number"] |= _address(person.get("address"))
        for vehicle in line.get("vehicles") or []:
            found["plate"].add(vehicle["plate"])
        if "registration_number" in line:
            found["registration number"].add(line["registration_number"])
            found["street with number"] |= _address(line["location"])
    found["registration number"] |= {f"PL0900-2026999{n:03d}" for n in (1, 2, 3)}
    return found


def _forms(value: str) -> set[str]:
    """The value as written, and as a JSON log line would escape it (non-ASCII letters)."""
    return {value, json.dumps(value)[1:-1], value.lower()}


def test_no_personal_data_in_logs_or_metrics(pipeline_run: PipelineRun) -> None:
    texts = {f"{s} log": pipeline_run.logs[s].read_text(errors="replace") for s in SERVICES}
    texts |= {f"{s} /metrics": pipeline_run.metrics[s] for s in SERVICES}
    for name, text in texts.items():
        # Not vacuous: the stream services log little per record (ADR 0009), but every service
        # logs its start, its partitions and what it did with the bad records.
        assert len(text.splitlines()) >= 10, f"{name} is nearly empty: the check would be vacuous"
    assert '"event": "dead_lettered"' in texts["ingest log"], "ingest handled no bad record"
    values = personal_values(pipeline_run.lines)
    assert all(len(v) >= 5 for v in values.values()), {k: len(v) for k, v in values.items()}
    leaks = [
        f"{kind} in {where}"
        for kind, found in values.items()
        for value in found
        for where, text in texts.items()
        if any(form in text or form in text.lower() for form in _forms(value))
    ]
    assert leaks == []
