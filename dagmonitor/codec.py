"""Avro single-object encoding of every topic value, against the schemas in ``schemas/``.

Wire format (Avro spec, "Single-object encoding")::

    C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
            Parsing Canonical Form | Avro binary body

so any consumer holding ``schemas/`` decodes a record without a schema registry. The codec
writes with the current schema of a name and reads data written with the current schema or
any released version of it (``schemas/released/``), resolved into the current shape.

Values: records are dicts keyed by field name. Timestamp fields (``timestamp-millis``) take
timezone-aware ``datetime`` objects and decode as aware UTC datetimes, truncated to the
millisecond; naive datetimes are refused rather than guessed. Date fields take and return
``datetime.date``.

Errors never carry field values (they are personal data): they name the schema, the field
path and the fingerprint.

Run ``python -m dagmonitor.codec release`` after changing a top-level schema, and
``python -m dagmonitor.codec check`` to see whether anything is unreleased.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeAlias

from fastavro import schemaless_reader, schemaless_writer

from dagmonitor.errors import (
    CodecError,
    NotSingleObjectError,
    SchemaError,
    TruncatedRecordError,
    UnknownFingerprintError,
    WrongRecordTypeError,
)
from dagmonitor.schema_evolution import (
    Schema,
    check_can_read,
    current_schema_path,
    fingerprint,
    load_schema_file,
    named_types,
    release,
    released_versions,
    unreleased_changes,
)

INCIDENT_EVENT = "nl.politie.bvh.IncidentEvent"
PERSON_NOTICE = "nl.politie.bvh.PersonNotice"
DEAD_LETTER = "nl.dagmonitor.DeadLetter"
DAGMONITOR_ENTRY = "nl.dagmonitor.DagmonitorEntry"
VEHICLE_SIGNAL = "nl.dagmonitor.VehicleSignal"
APPROVAL_REQUEST = "nl.dagmonitor.ApprovalRequest"
APPROVAL_DECISION = "nl.dagmonitor.ApprovalDecision"
APPROVED_PERSON = "nl.dagmonitor.ApprovedPerson"
APPROVED_VICTIM = "nl.dagmonitor.ApprovedVictim"
ESCALATION = "nl.dagmonitor.Escalation"
PROVISION = "nl.dagmonitor.Provision"
RETENTION_EVENT = "nl.dagmonitor.RetentionEvent"
CONSENT = "nl.dagmonitor.Consent"
COVENANT_TERM = "nl.dagmonitor.CovenantTerm"
MUNICIPAL_REPORT = "nl.dagmonitor.MunicipalReport"
PHOTO = "nl.dagmonitor.Photo"

TOPIC_VALUE_SCHEMAS: tuple[str, ...] = (
    INCIDENT_EVENT,
    PERSON_NOTICE,
    DEAD_LETTER,
    DAGMONITOR_ENTRY,
    VEHICLE_SIGNAL,
    APPROVAL_REQUEST,
    APPROVAL_DECISION,
    APPROVED_PERSON,
    APPROVED_VICTIM,
    ESCALATION,
    PROVISION,
    RETENTION_EVENT,
    CONSENT,
    COVENANT_TERM,
    MUNICIPAL_REPORT,
    PHOTO,
)
"""Full names of the top-level schemas: the value of some topic. Only these are encoded."""

MARKER = b"\xc3\x01"
HEADER_SIZE = len(MARKER) + 8

SCHEMA_DIR_ENV = "DAGMONITOR_SCHEMA_DIR"
DEFAULT_SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"

_INT_RANGE = (-(2**31), 2**31 - 1)
_LONG_RANGE = (-(2**63), 2**63 - 1)
_SAFE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded record: the schema's full name, the record in the current shape, the writer."""

    schema_name: str
    record: dict[str, Any]
    writer_fingerprint: bytes
    """The 8 fingerprint bytes from the header (little-endian, as on the wire)."""


class Codec:
    """Encodes and decodes topic values in Avro single-object encoding.

    Holds, parsed once: the current schema of every top-level name (used to write, and as the
    reader when decoding) and every writer schema it can decode, by fingerprint: the current
    schemas and every released version.
    """

    def __init__(
        self,
        current: Mapping[str, dict[str, Any]],
        released: Mapping[str, Sequence[dict[str, Any]]] | None = None,
    ) -> None:
        """Build from parsed schemas: ``current`` by full name, ``released`` versions by name.

        Raises SchemaError when a released version cannot be read by the current schema of
        its name, or when two names share a fingerprint.
        """
        self._current = dict(current)
        self._validators = {
            name: _Validator(named_types(schema)) for name, schema in self._current.items()
        }
        self._checks = {
            name: _compile_checks(schema, named_types(schema)) or _always
            for name, schema in self._current.items()
        }
        self._fingerprints = {name: fingerprint(schema) for name, schema in self._current.items()}
        self._headers = {name: MARKER + fp for name, fp in self._fingerprints.items()}
        self._writers: dict[bytes, tuple[str, dict[str, Any]]] = {}
        for name, versions in (released or {}).items():
            if name not in self._current:
                raise SchemaError(f"released versions of {name}, which has no current schema")
            for number, writer in enumerate(versions, start=1):
                problems = check_can_read(writer, self._current[name])
                if problems:
                    raise SchemaError(
                        f"{name}: the current schema cannot read released version {number}: "
                        + "; ".join(problems)
                    )
                self._add_writer(name, writer)
        # Current schemas last: for equal fingerprints they win (same bytes, newest metadata).
        for name, schema in self._current.items():
            self._add_writer(name, schema)

    @classmethod
    def from_directory(cls, directory: Path, names: Iterable[str] = TOPIC_VALUE_SCHEMAS) -> Codec:
        """Load the current and released versions of ``names`` from ``directory``."""
        current = {name: load_schema_file(current_schema_path(directory, name)) for name in names}
        released = {
            name: [load_schema_file(v.path) for v in released_versions(directory, name)]
            for name in current
        }
        return cls(current, released)

    @property
    def names(self) -> frozenset[str]:
        """The full names this codec encodes."""
        return frozenset(self._current)

    def schema(self, full_name: str) -> dict[str, Any]:
        """The current parsed schema of ``full_name``."""
        return self._current[self._known(full_name)]

    def fingerprint(self, full_name: str) -> bytes:
        """The 8-byte header fingerprint (little-endian) of the current schema of ``full_name``."""
        return self._fingerprints[self._known(full_name)]

    def encode(self, full_name: str, record: Mapping[str, Any]) -> bytes:
        """Encode ``record`` with the current schema of ``full_name`` as a single object.

        Fields with a default may be left out; unknown fields are refused. Raises CodecError
        naming the schema and the field path (never the value) when the record does not fit.

        One validation pass: fastavro's writer checks what it writes (strings, bytes, enums,
        unions, records' fields), after the schema's compiled checks of what it would take
        silently (``_compile_checks``). Only a record that fails is walked again, by
        ``_Validator``, to name the field.
        """
        schema = self.schema(full_name)
        validator = self._validators[full_name]
        out = io.BytesIO()
        out.write(self._headers[full_name])
        try:
            # The compiled checks are exact (no bools or subclasses for ints); a record they
            # refuse is asked again of the validator, which names the field or lets it pass.
            problem = (
                None if self._checks[full_name](record) else validator.problem(schema, record, "")
            )
            if problem is None:
                schemaless_writer(out, schema, record, strict_allow_default=True)
                return out.getvalue()
        except Exception as exc:
            problem = validator.problem(schema, record, "") or (
                f"fastavro refused it ({type(exc).__name__})"
            )
        # Raised outside the handler, so fastavro's exception (whose message may quote the
        # value, which is personal data) is not even chained as __context__.
        raise CodecError(f"cannot encode {full_name}: {problem}")

    def decode(self, data: bytes | bytearray | memoryview, expect: str | None = None) -> Decoded:
        """Decode one single-object encoded record into the current shape of its schema.

        ``expect``: the full name the caller requires (e.g. the topic's schema); another name
        raises CodecError. Raises NotSingleObjectError (wrong marker), TruncatedRecordError
        (header or body cut short), UnknownFingerprintError (writer schema not in ``schemas/``)
        or CodecError (anything else: corrupt body, trailing bytes, a tombstone).
        """
        if data is None:
            raise CodecError("a tombstone (null value) has no record to decode")
        if type(data) is not bytes:
            data = bytes(data)
        known = self._writers.get(data[len(MARKER) : HEADER_SIZE])
        if known is not None and data[: len(MARKER)] == MARKER:
            name, writer = known  # the common case; the checks below name what is wrong
            if expect is not None and name != expect:
                raise WrongRecordTypeError(
                    f"expected {expect}, got {name} (fingerprint {data[2:HEADER_SIZE].hex()})"
                )
            writer_fp = data[len(MARKER) : HEADER_SIZE]
            return Decoded(name, self._read_body(data, name, writer, writer_fp), writer_fp)
        if not data:
            raise NotSingleObjectError("an empty value: no single-object record")
        if data[: len(MARKER)] != MARKER[: len(data)]:
            raise NotSingleObjectError("not Avro single-object encoding: no C3 01 marker")
        if len(data) < HEADER_SIZE:
            raise TruncatedRecordError(
                f"{len(data)} bytes: shorter than the {HEADER_SIZE}-byte single-object header"
            )
        writer_fp = data[len(MARKER) : HEADER_SIZE]
        if writer_fp not in self._writers:
            raise UnknownFingerprintError(
                f"unknown writer schema fingerprint {writer_fp.hex()}: not in schemas/ "
                "(a newer schema not deployed here yet?)"
            )
        name, writer = self._writers[writer_fp]
        if expect is not None and name != expect:
            raise WrongRecordTypeError(
                f"expected {expect}, got {name} (fingerprint {writer_fp.hex()})"
            )
        record = self._read_body(data, name, writer, writer_fp)
        return Decoded(name, record, writer_fp)

    def _read_body(
        self, data: bytes, name: str, writer: dict[str, Any], writer_fp: bytes
    ) -> dict[str, Any]:
        body = io.BytesIO(data)
        body.seek(HEADER_SIZE)
        reader = None if writer is self._current[name] else self._current[name]
        where = f"{name} (fingerprint {writer_fp.hex()})"
        try:
            record = schemaless_reader(body, writer, reader)
        except Exception as exc:
            # A varint cut short surfaces as IndexError once every byte is consumed.
            cut_short = isinstance(exc, EOFError | StopIteration) or (
                isinstance(exc, IndexError) and body.tell() >= len(data)
            )
            failure = type(exc).__name__
        else:
            if body.tell() != len(data):
                raise CodecError(
                    f"{where}: {len(data) - body.tell()} trailing bytes after the body"
                )
            if not isinstance(record, dict):
                raise CodecError(f"{where}: body is not a record")
            return record
        # Raised outside the handler: fastavro's exception may quote data, so it is not chained.
        if cut_short:
            raise TruncatedRecordError(f"{where}: body ends early")
        raise CodecError(f"{where}: corrupt body ({failure})")

    def _add_writer(self, name: str, schema: dict[str, Any]) -> None:
        writer_fp = fingerprint(schema)
        known = self._writers.get(writer_fp)
        if known is not None and known[0] != name:
            raise SchemaError(f"{name} and {known[0]} share fingerprint {writer_fp.hex()}")
        self._writers[writer_fp] = (name, schema)

    def _known(self, full_name: str) -> str:
        if full_name not in self._current:
            raise CodecError(f"unknown schema {full_name!r}: not a topic-value schema")
        return full_name


@functools.cache
def default_codec() -> Codec:
    """The codec over the repository's ``schemas/`` (or ``$DAGMONITOR_SCHEMA_DIR``), loaded once.

    Call ``default_codec.cache_clear()`` to reload (tests that change the variable).
    """
    return Codec.from_directory(schema_dir())


def schema_dir() -> Path:
    """The schema directory: ``$DAGMONITOR_SCHEMA_DIR`` if set, else the repository's."""
    override = os.environ.get(SCHEMA_DIR_ENV)
    return Path(override) if override else DEFAULT_SCHEMA_DIR


def _is_int(value: Any, bounds: tuple[int, int]) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]
    )


def _is_aware(value: Any) -> bool:
    return isinstance(value, datetime) and value.utcoffset() is not None


_PRIMITIVE_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "null": (lambda v: v is None, "null"),
    "boolean": (lambda v: isinstance(v, bool), "a boolean"),
    "int": (lambda v: _is_int(v, _INT_RANGE), "a 32-bit int"),
    "long": (lambda v: _is_int(v, _LONG_RANGE), "a 64-bit int"),
    "float": (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
    "double": (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
    "string": (lambda v: isinstance(v, str), "a string"),
    "bytes": (lambda v: isinstance(v, bytes | bytearray), "bytes"),
}
_LOGICAL_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "timestamp-millis": (_is_aware, "a timezone-aware datetime"),
    "date": (lambda v: isinstance(v, date) and not isinstance(v, datetime), "a date"),
}


class _Validator:
    """Finds the first place a record does not fit its schema, described without its value."""

    def __init__(self, named: Mapping[str, dict[str, Any]]) -> None:
        self._named = named

    def problem(self, schema: Schema, value: Any, path: str) -> str | None:
        if isinstance(schema, list):
            return self._union(schema, value, path)
        if isinstance(schema, str):
            if schema in _PRIMITIVE_CHECKS:
                return self._check(_PRIMITIVE_CHECKS[schema], value, path)
            return self.problem(self._named[schema], value, path)
        kind = schema["type"]
        if schema.get("logicalType") in _LOGICAL_CHECKS:
            return self._check(_LOGICAL_CHECKS[schema["logicalType"]], value, path)
        if kind in _PRIMITIVE_CHECKS:
            return self._check(_PRIMITIVE_CHECKS[kind], value, path)
        if kind in ("record", "error"):
            return self._record(schema, value, path)
        if kind == "enum":
            if value in schema["symbols"]:
                return None
            return f"{_at(path)}: not a symbol of enum {schema['name']}"
        if kind == "array":
            if not isinstance(value, list | tuple):
                return f"{_at(path)}: expected a list, got {_kind_of(value)}"
            for index, item in enumerate(value):
                found = self.problem(schema["items"], item, f"{path}[{index}]")
                if found is not None:
                    return found
            return None
        if kind == "map":
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                return f"{_at(path)}: expected a mapping with string keys"
            for item in value.values():
                found = self.problem(schema["values"], item, f"{path}{{}}")
                if found is not None:
                    return found
            return None
        if kind == "fixed":
            if isinstance(value, bytes) and len(value) == schema["size"]:
                return None
            return f"{_at(path)}: expected {schema['size']} bytes"
        return f"{_at(path)}: schema type {kind} is not supported by the codec"

    def _union(self, branches: list[Any], value: Any, path: str) -> str | None:
        if value is None:
            return None if "null" in branches else f"{_at(path)}: must not be null"
        candidates = [branch for branch in branches if branch != "null"]
        if len(candidates) == 1:
            return self.problem(candidates[0], value, path)
        if any(self.problem(branch, value, path) is None for branch in candidates):
            return None
        return f"{_at(path)}: fits no branch of its union ({_kind_of(value)} given)"

    def _record(self, schema: dict[str, Any], value: Any, path: str) -> str | None:
        if not isinstance(value, Mapping):
            return f"{_at(path)}: expected a record {schema['name']}, got {_kind_of(value)}"
        fields = schema["fields"]
        known = {field["name"] for field in fields}
        unknown = [key for key in value if key not in known]
        if unknown:
            shown = ", ".join(
                k if isinstance(k, str) and _SAFE_KEY.match(k) else "?" for k in unknown
            )
            return f"{_at(path)}: unknown field(s) {shown} not in {schema['name']}"
        for field in fields:
            field_path = f"{path}.{field['name']}" if path else field["name"]
            if field["name"] in value:
                found = self.problem(field["type"], value[field["name"]], field_path)
                if found is not None:
                    return found
            elif "default" not in field:
                return f"{field_path}: missing (required, no default)"
        return None

    @staticmethod
    def _check(check: tuple[Callable[[Any], bool], str], value: Any, path: str) -> str | None:
        test, expected = check
        if test(value):
            return None
        return f"{_at(path)}: expected {expected}, got {_kind_of(value)}"


Check: TypeAlias = Callable[[Any], bool]


def _always(_value: Any) -> bool:
    return True


def _is_bool(value: Any) -> bool:
    return value is True or value is False


def _range_check(bounds: tuple[int, int]) -> Check:
    low, high = bounds

    def check(value: Any) -> bool:
        return type(value) is int and low <= value <= high

    return check


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is float or kind is int


def _is_date(value: Any) -> bool:
    return isinstance(value, date) and not isinstance(value, datetime)


# What fastavro's writer takes without complaint although the schema does not allow it:
# booleans from any truthy value, ints out of range (or bools, or floats), numbers from bools
# and strings, naive datetimes as UTC, datetimes as dates, any iterable as an array. Strings,
# bytes, enums, fixed, union branches and records' fields it checks itself.
_COMPILED_PRIMITIVES: dict[str, Check] = {
    "boolean": _is_bool,
    "int": _range_check(_INT_RANGE),
    "long": _range_check(_LONG_RANGE),
    "float": _is_number,
    "double": _is_number,
}
_COMPILED_LOGICAL: dict[str, Check] = {"timestamp-millis": _is_aware, "date": _is_date}


def _compile_checks(
    schema: Schema, named: Mapping[str, dict[str, Any]], seen: frozenset[str] = frozenset()
) -> Check | None:
    """A function that is False where fastavro's writer would silently take a value that
    ``schema`` does not allow (None: nothing to check), built once per schema so that the
    encode path makes no decision about the schema per record. Exact types (``type(v) is
    int``) rather than isinstance keep bools and int subclasses out, as ``_Validator`` does."""
    if isinstance(schema, str):
        if schema in _COMPILED_PRIMITIVES:
            return _COMPILED_PRIMITIVES[schema]
        if schema in named and schema not in seen:
            return _compile_checks(named[schema], named, seen | {schema})
        return None  # string, bytes, null; or a recursive reference (checked by fastavro)
    if isinstance(schema, list):
        return _compile_union(schema, named, seen)
    kind = schema["type"]
    logical = _COMPILED_LOGICAL.get(schema.get("logicalType", ""))
    if logical is not None:
        return logical
    if kind in ("record", "error"):
        return _compile_record(schema, named, seen | {schema["name"]})
    if kind == "array":
        return _compile_array(_compile_checks(schema["items"], named, seen))
    if kind == "map":
        return _compile_map(_compile_checks(schema["values"], named, seen))
    if isinstance(kind, str) and kind in _COMPILED_PRIMITIVES:
        return _COMPILED_PRIMITIVES[kind]
    if isinstance(kind, dict | list):
        return _compile_checks(kind, named, seen)
    return None  # enum, fixed, string, bytes, null


def _compile_union(
    branches: list[Any], named: Mapping[str, dict[str, Any]], seen: frozenset[str]
) -> Check | None:
    others = [branch for branch in branches if branch != "null"]
    nullable = len(others) < len(branches)
    if len(others) != 1:
        # Several non-null branches: any branch the value fits (rare; not on a hot path).
        validator = _Validator(named)
        return lambda value: (
            (value is None and nullable)
            or any(validator.problem(branch, value, "") is None for branch in others)
        )
    inner = _compile_checks(others[0], named, seen)
    if inner is None:
        return None
    if not nullable:
        return inner
    return lambda value: value is None or inner(value)


def _compile_record(
    schema: dict[str, Any], named: Mapping[str, dict[str, Any]], seen: frozenset[str]
) -> Check:
    fields: list[tuple[str, Check]] = []
    for field in schema["fields"]:
        field_check = _compile_checks(field["type"], named, seen)
        if field_check is not None:
            fields.append((field["name"], field_check))

    def record_check(value: Any) -> bool:
        if not isinstance(value, Mapping):
            return False
        return all(check(value[name]) for name, check in fields if name in value)

    return record_check


def _compile_array(items: Check | None) -> Check:
    if items is None:
        return lambda value: isinstance(value, list | tuple)
    return lambda value: isinstance(value, list | tuple) and all(map(items, value))


def _compile_map(values: Check | None) -> Check:
    def check(value: Any) -> bool:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            return False
        return values is None or all(map(values, value.values()))

    return check


def _kind_of(value: Any) -> str:
    """What a value is, without what it says."""
    if isinstance(value, datetime) and value.utcoffset() is None:
        return "a naive datetime"
    return type(value).__name__


def _at(path: str) -> str:
    return path or "<record>"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dagmonitor.codec release|check [--schema-dir DIR]``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m dagmonitor.codec")
    parser.add_argument("command", choices=("release", "check"))
    parser.add_argument("--schema-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    directory = args.schema_dir or schema_dir()
    try:
        if args.command == "release":
            written = release(directory, TOPIC_VALUE_SCHEMAS)
            for path in written:
                print(f"released {path}")
            if not written:
                print("nothing to release: every schema matches its latest release")
            return 0
        changes = unreleased_changes(directory, TOPIC_VALUE_SCHEMAS)
        for change in changes:
            print(f"unreleased: {change}")
        Codec.from_directory(directory)
        return 1 if changes else 0
    except SchemaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
