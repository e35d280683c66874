"""The stream tables' changelog values: compact JSON, keys as strings (as ``json`` writes
them), and no more memory held per value than its bytes: a table keeps them for every key."""

from __future__ import annotations

import json
import tracemalloc

from dagmonitor.processor import _encode_value

VALUE = {
    "outputs": [["dagmonitor.entries", "PL0900-2026000001"], ["approval.requests", "req-1"]],
    "version": 3,
    "e35": "3511AB",
    "tracked": True,
    "place": "Súdwest-Fryslân",
}


def test_values_are_compact_json_read_back_as_json_reads_them() -> None:
    encoded = _encode_value(VALUE)
    assert encoded is not None
    assert json.loads(encoded) == VALUE
    assert b" " not in encoded.replace("Súdwest-Fryslân".encode(), b"")
    assert json.loads(_encode_value({1: "a", None: "b"}) or b"") == {"1": "a", "null": "b"}
    assert _encode_value(None) is None


def test_a_held_value_costs_about_its_own_size() -> None:
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        held = [_encode_value(VALUE) for _ in range(2_000)]
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_value = (after - before) / len(held)
    assert per_value < 400, f"{per_value:.0f} bytes held per value of {len(held[0] or b'')}"
