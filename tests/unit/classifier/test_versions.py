"""Versions of an input key: which outputs a new version or a tombstone retracts, row by row."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.classifier.policy import ENTRIES, REQUESTS, VEHICLES, Output
from services.classifier.versions import Plan, output_refs, plan

ENTRY = (ENTRIES, "PL0900-2026000042")
SIGNAL = (VEHICLES, "PL0900-2026000042:AB-001-C")
REQUEST = (REQUESTS, "req-0123")


def stored(version: int, outputs: list[tuple[str, str]], **e35: str | None) -> dict[str, Any]:
    """A table entry as read back from the changelog (JSON: the refs come back as lists)."""
    entry = {"version": version, "outputs": sorted(outputs), **e35}
    return dict(json.loads(json.dumps(entry)))


def incident_state(version: int, outputs: list[tuple[str, str]], postcode: str | None) -> Any:
    return {"version": version, "outputs": sorted(outputs), "e35_postcode": postcode}


# previous entry, version (None: tombstone), refs of the new version, its E35 postcode -> plan
ROWS = [
    pytest.param(
        None,
        1,
        {ENTRY, SIGNAL},
        None,
        Plan(state=incident_state(1, [ENTRY, SIGNAL], None)),
        id="new key",
    ),
    pytest.param(
        stored(1, [ENTRY, SIGNAL], e35_postcode=None),
        2,
        {ENTRY, SIGNAL},
        None,
        Plan(state=incident_state(2, [ENTRY, SIGNAL], None)),
        id="newer version keeps its outputs",
    ),
    pytest.param(
        stored(1, [ENTRY, SIGNAL, REQUEST], e35_postcode=None),
        2,
        {ENTRY},
        None,
        Plan(tombstones=(REQUEST, SIGNAL), state=incident_state(2, [ENTRY], None)),
        id="newer version loses outputs (tombstones in stored order)",
    ),
    pytest.param(
        stored(1, [ENTRY], e35_postcode=None),
        3,
        {ENTRY, REQUEST},
        None,
        Plan(state=incident_state(3, [ENTRY, REQUEST], None)),
        id="newer version gains an output",
    ),
    pytest.param(
        stored(1, [ENTRY, SIGNAL], e35_postcode=None),
        2,
        set(),
        None,
        Plan(tombstones=(ENTRY, SIGNAL), state=incident_state(2, [], None)),
        id="newer version no longer shared",
    ),
    pytest.param(
        stored(2, [ENTRY, SIGNAL], e35_postcode=None),
        2,
        {ENTRY},
        None,
        Plan(tombstones=(SIGNAL,), state=incident_state(2, [ENTRY], None)),
        id="same version is handled again",
    ),
    pytest.param(
        stored(3, [ENTRY, SIGNAL], e35_postcode="3511AB"),
        2,
        {ENTRY},
        "3512CD",
        Plan(stale=True),
        id="stale version changes nothing",
    ),
    pytest.param(
        None,
        None,
        set(),
        None,
        Plan(),
        id="tombstone without previous entry",
    ),
    pytest.param(
        stored(2, [ENTRY, SIGNAL, REQUEST], e35_postcode=None),
        None,
        set(),
        None,
        Plan(tombstones=(REQUEST, ENTRY, SIGNAL)),
        id="tombstone retracts everything",
    ),
    pytest.param(
        stored(2, [ENTRY], e35_postcode="3511AB"),
        None,
        set(),
        None,
        Plan(tombstones=(ENTRY,), retract_e35="3511AB"),
        id="tombstone of an E35 report leaves its postcode",
    ),
    pytest.param(
        stored(1, [ENTRY], e35_postcode="3511AB"),
        2,
        {ENTRY},
        "3512CD",
        Plan(retract_e35="3511AB", state=incident_state(2, [ENTRY], "3512CD")),
        id="E35 postcode moved",
    ),
    pytest.param(
        stored(1, [ENTRY], e35_postcode="3511AB"),
        2,
        {ENTRY},
        None,
        Plan(retract_e35="3511AB", state=incident_state(2, [ENTRY], None)),
        id="E35 postcode removed",
    ),
    pytest.param(
        stored(1, [ENTRY], e35_postcode="3511AB"),
        2,
        {ENTRY},
        "3511AB",
        Plan(state=incident_state(2, [ENTRY], "3511AB")),
        id="E35 postcode unchanged",
    ),
    pytest.param(
        stored(1, [ENTRY], e35_postcode=None),
        2,
        {ENTRY},
        "3511AB",
        Plan(state=incident_state(2, [ENTRY], "3511AB")),
        id="E35 postcode added",
    ),
]


@pytest.mark.parametrize(("previous", "version", "refs", "e35_postcode", "expected"), ROWS)
def test_incident_plan(
    previous: dict[str, Any] | None,
    version: int | None,
    refs: set[tuple[str, str]],
    e35_postcode: str | None,
    expected: Plan,
) -> None:
    assert plan(previous, version, refs, e35_postcode, tracks_e35=True) == expected


@pytest.mark.parametrize(
    ("previous", "version", "refs", "expected"),
    [
        pytest.param(
            None,
            1,
            {REQUEST},
            Plan(state={"version": 1, "outputs": [REQUEST]}),
            id="new notice",
        ),
        pytest.param(
            stored(1, [REQUEST]),
            2,
            set(),
            Plan(tombstones=(REQUEST,), state={"version": 2, "outputs": []}),
            id="newer notice no longer shared",
        ),
        pytest.param(stored(2, [REQUEST]), 1, {REQUEST}, Plan(stale=True), id="stale notice"),
        pytest.param(
            stored(2, [REQUEST]), None, set(), Plan(tombstones=(REQUEST,)), id="tombstone"
        ),
    ],
)
def test_notice_plan(
    previous: dict[str, Any] | None,
    version: int | None,
    refs: set[tuple[str, str]],
    expected: Plan,
) -> None:
    # A notice's entry has no E35 postcode: not written, and not needed when read.
    assert plan(previous, version, refs) == expected


def test_entries_read_the_same_from_the_changelog_and_from_the_batch() -> None:
    # Within a batch the entry is the dict as set (tuples); from the changelog it is JSON.
    written = plan(None, 1, {ENTRY, SIGNAL}, "3511AB", tracks_e35=True).state
    assert written is not None
    from_changelog = json.loads(json.dumps(written))
    assert from_changelog == {
        "version": 1,
        "outputs": [list(ENTRY), list(SIGNAL)],
        "e35_postcode": "3511AB",
    }
    for previous in (written, from_changelog):
        assert plan(previous, 2, {ENTRY}, None, tracks_e35=True) == Plan(
            tombstones=(SIGNAL,),
            retract_e35="3511AB",
            state=incident_state(2, [ENTRY], None),
        )


def test_output_refs() -> None:
    outputs = [Output(ENTRIES, ENTRY[1], {}), Output(VEHICLES, SIGNAL[1], {})]
    assert output_refs(outputs) == {ENTRY, SIGNAL}
    assert output_refs(()) == frozenset()
