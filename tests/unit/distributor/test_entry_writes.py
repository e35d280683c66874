"""Which entries of one consumer batch the batch write keeps (ADR 0022): what writing them one
by one, in order, would have left stored."""

from __future__ import annotations

from datetime import UTC, datetime

from dagmonitor.streaming import Incoming
from services.distributor.intake import ENTRIES_TOPIC, PendingEntry, newest_per_key
from tests.unit.distributor.samples import entry

AT = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _pending(number: str, version: int, offset: int) -> PendingEntry:
    value = entry(number, mk_code="A10", mk_description="X", reported_at=AT, version=version)
    record = Incoming(ENTRIES_TOPIC, number, value, None, 0, offset, 0)
    return PendingEntry(record, value, f"tp-{offset}")


def _offsets(entries: list[PendingEntry]) -> list[int]:
    return [e.record.offset for e in entries]


def test_one_entry_per_key_the_highest_version() -> None:
    batch = [_pending("A", 1, 0), _pending("A", 3, 1), _pending("A", 2, 2), _pending("B", 1, 3)]
    kept, superseded = newest_per_key(batch)
    assert _offsets(kept) == [1, 3]
    assert sorted(_offsets(superseded)) == [0, 2]


def test_of_equal_versions_the_last_one_with_its_trace_context() -> None:
    kept, superseded = newest_per_key([_pending("A", 2, 0), _pending("A", 2, 1)])
    assert _offsets(kept) == [1] and kept[0].traceparent == "tp-1"
    assert _offsets(superseded) == [0]


def test_nothing_is_dropped_without_being_counted() -> None:
    batch = [_pending(n, v, i) for i, (n, v) in enumerate([("A", 1), ("B", 5), ("A", 1), ("B", 4)])]
    kept, superseded = newest_per_key(batch)
    assert sorted(_offsets(kept) + _offsets(superseded)) == [0, 1, 2, 3]
    assert {e.registration_number: e.value["version"] for e in kept} == {"A": 1, "B": 5}


def test_an_empty_batch() -> None:
    assert newest_per_key([]) == ([], [])
