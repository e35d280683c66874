"""``dagmonitor publish`` lines: a record, or a withdrawal of one (a tombstone under its key)."""

from __future__ import annotations

import json

import pytest

from dagmonitor.jsonio import InputError
from services.ingest.cli import encode_line
from services.ingest.pipeline import INCIDENTS, NOTICES


@pytest.mark.parametrize(("kind", "expected"), [("incident", INCIDENTS), ("notice", NOTICES)])
def test_a_withdrawal_line_is_a_tombstone_under_its_key(kind: str, expected: object) -> None:
    line = json.dumps({"withdraw": " PL0900-2026000001 ", "kind": kind})
    assert encode_line(line) == (expected, b"PL0900-2026000001", None)


@pytest.mark.parametrize(
    "document",
    [
        {"withdraw": "PL0900-2026000001"},
        {"withdraw": "PL0900-2026000001", "kind": "vehicle"},
        {"withdraw": "", "kind": "incident"},
        {"withdraw": 12, "kind": "incident"},
        {"withdraw": "PL0900-2026000001", "kind": "incident", "version": 2},
    ],
)
def test_a_malformed_withdrawal_is_refused(document: dict[str, object]) -> None:
    with pytest.raises(InputError):
        encode_line(json.dumps(document))
