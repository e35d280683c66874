"""Hypothesis strategies derived from a parsed Avro schema.

``records(schema)`` draws values the codec accepts and returns unchanged after a round trip:
timestamps are aware UTC datetimes at millisecond precision, dates are ``datetime.date``.
A schema type without a strategy here raises, so a new kind of field cannot go untested.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from hypothesis import strategies as st

from dagmonitor.schema_evolution import Schema, named_types

_MIN_TIME = datetime(1900, 1, 1)
_MAX_TIME = datetime(2200, 1, 1)

_PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "string": st.text(max_size=12),
    "bytes": st.binary(max_size=24),
}

_LOGICAL: dict[str, st.SearchStrategy[Any]] = {
    "timestamp-millis": st.datetimes(_MIN_TIME, _MAX_TIME, timezones=st.just(UTC)).map(
        lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    ),
    "date": st.dates(date(1900, 1, 1), date(2200, 1, 1)),
}


def records(schema: Schema) -> st.SearchStrategy[Any]:
    """A strategy for values of ``schema`` (a parsed schema, named types inlined at first use)."""
    return _Builder(named_types(schema)).build(schema)


class _Builder:
    def __init__(self, named: dict[str, dict[str, Any]]) -> None:
        self._named = named
        self._by_name: dict[str, st.SearchStrategy[Any]] = {}

    def build(self, schema: Schema) -> st.SearchStrategy[Any]:
        if isinstance(schema, list):
            return st.one_of(*(self.build(branch) for branch in schema))
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return _PRIMITIVES[schema]
            return self._named_strategy(schema)
        if schema.get("logicalType") in _LOGICAL:
            return _LOGICAL[schema["logicalType"]]
        kind = schema["type"]
        if kind in _PRIMITIVES:
            return _PRIMITIVES[kind]
        if kind == "array":
            return st.lists(self.build(schema["items"]), max_size=3)
        if kind in ("record", "enum"):
            return self._named_strategy(schema["name"])
        raise NotImplementedError(f"no strategy for Avro type {kind!r}")

    def _named_strategy(self, name: str) -> st.SearchStrategy[Any]:
        # Deferred, so a recursive type would not recurse forever while building.
        if name not in self._by_name:
            self._by_name[name] = st.deferred(lambda: self._define(self._named[name]))
        return self._by_name[name]

    def _define(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        if schema["type"] == "enum":
            return st.sampled_from(schema["symbols"])
        if schema["type"] == "record":
            return st.fixed_dictionaries(
                {field["name"]: self.build(field["type"]) for field in schema["fields"]}
            )
        raise NotImplementedError(f"no strategy for Avro type {schema['type']!r}")
