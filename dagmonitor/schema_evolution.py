"""Schema files, their released versions, and whether a new version can read an old one.

Layout of ``schemas/``:

- ``<namespace>.<Name>.avsc``: the current version of every named type, one per file. Each
  loads on its own with ``fastavro.schema.load_schema``, which finds the named types it
  references in sibling files by that naming convention.
- ``released/<FullName>/v<N>.avsc``: every released version of a top-level (topic-value)
  schema, self-contained (all named types inlined), never edited after release. Data on the
  topics was written with one of these, so the codec keeps them all as writer schemas.

:func:`release` writes the next version of each top-level schema whose Parsing Canonical
Form differs from its latest release, and refuses when the new version could not read every
earlier one (:func:`check_can_read`). Run it as ``python -m dagmonitor.codec release``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import load_schema, to_parsing_canonical_form

from dagmonitor.errors import SchemaError

Schema = dict[str, Any] | list[Any] | str
"""A parsed Avro schema as fastavro returns it."""

RELEASED_DIR = "released"

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED_KINDS = frozenset({"record", "error", "enum", "fixed"})
# Avro's allowed promotions: (writer type, reader type).
_PROMOTIONS = frozenset(
    {
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    }
)
_VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.avsc$")
# Key order of released files, so a reviewer reads them like the hand-written ones.
_KEY_ORDER = (
    "name",
    "type",
    "namespace",
    "aliases",
    "doc",
    "logicalType",
    "symbols",
    "size",
    "default",
)


@dataclass(frozen=True, slots=True)
class ReleasedVersion:
    """One released version of a top-level schema: its number and its file."""

    version: int
    path: Path


def load_schema_file(path: Path) -> dict[str, Any]:
    """Parse one ``.avsc`` file (resolving named types from sibling files) or raise SchemaError."""
    try:
        schema = load_schema(str(path))
    except Exception as exc:  # fastavro raises many types here; none may escape unwrapped
        raise SchemaError(f"{path}: cannot load schema: {type(exc).__name__}: {exc}") from exc
    if not isinstance(schema, dict):
        raise SchemaError(f"{path}: a schema file must hold a named type, not {schema!r}")
    return schema


def canonical_form(schema: Schema) -> str:
    """The schema's Parsing Canonical Form (Avro spec): what the fingerprint is taken of."""
    return to_parsing_canonical_form(schema)


def fingerprint(schema: Schema) -> bytes:
    """The CRC-64-AVRO (Rabin) fingerprint of the schema's canonical form, as 8 bytes.

    The bytes are little-endian, exactly as they appear in a single-object header. (fastavro's
    ``fingerprint(..., "CRC-64-AVRO")`` already returns the hex of the little-endian bytes.)
    """
    return bytes.fromhex(_fastavro_fingerprint(canonical_form(schema), "CRC-64-AVRO"))


def current_schema_path(schema_dir: Path, full_name: str) -> Path:
    """Where the current version of ``full_name`` lives."""
    return schema_dir / f"{full_name}.avsc"


def released_versions(schema_dir: Path, full_name: str) -> list[ReleasedVersion]:
    """The released versions of ``full_name``, oldest first (empty if never released)."""
    folder = schema_dir / RELEASED_DIR / full_name
    if not folder.is_dir():
        return []
    versions = []
    for path in folder.iterdir():
        match = _VERSION_FILE.match(path.name)
        if match is None:
            raise SchemaError(f"{path}: released versions must be named v<N>.avsc")
        versions.append(ReleasedVersion(int(match.group(1)), path))
    return sorted(versions, key=lambda v: v.version)


def check_can_read(writer: Schema, reader: Schema) -> list[str]:
    """List why data written with ``writer`` could not be read with ``reader``.

    Follows the Avro spec's schema resolution rules statically (every field, enum symbol and
    union branch, not just the data one happens to have), plus one stricter rule: a changed
    logical type is incompatible, since the bytes would still decode but mean something else.
    Named types match by full name (namespace included) or by one of the reader's aliases.
    An empty list means the reader can read everything the writer can write.
    """
    problems: list[str] = []
    _Resolver(named_types(writer), named_types(reader), problems).check(writer, reader, "")
    return problems


def self_contained(schema: dict[str, Any]) -> dict[str, Any]:
    """The parsed schema as plain JSON data: every named type inlined where first used."""
    plain = _plain(schema)
    assert isinstance(plain, dict)
    return plain


def unreleased_changes(schema_dir: Path, names: Iterable[str]) -> list[str]:
    """Names (with a reason) of top-level schemas whose current form is not released yet."""
    changes = []
    for name in names:
        versions = released_versions(schema_dir, name)
        if not versions:
            changes.append(f"{name}: never released")
            continue
        current = load_schema_file(current_schema_path(schema_dir, name))
        latest = load_schema_file(versions[-1].path)
        if canonical_form(current) != canonical_form(latest):
            changes.append(f"{name}: differs from released v{versions[-1].version}")
    return changes


def release(schema_dir: Path, names: Iterable[str]) -> list[Path]:
    """Write the next released version of every changed top-level schema; return the new files.

    A schema is changed when its canonical form differs from its latest release (or it has
    none). Nothing is written unless every changed schema can read all its earlier versions;
    otherwise SchemaError lists every problem.
    """
    planned: list[tuple[Path, dict[str, Any]]] = []
    problems: list[str] = []
    for name in names:
        current = load_schema_file(current_schema_path(schema_dir, name))
        versions = released_versions(schema_dir, name)
        if versions and canonical_form(load_schema_file(versions[-1].path)) == canonical_form(
            current
        ):
            continue
        for version in versions:
            problems.extend(
                f"{name} cannot read its released v{version.version}: {problem}"
                for problem in check_can_read(load_schema_file(version.path), current)
            )
        next_version = versions[-1].version + 1 if versions else 1
        target = schema_dir / RELEASED_DIR / name / f"v{next_version}.avsc"
        planned.append((target, current))
    if problems:
        raise SchemaError("refusing to release:\n  " + "\n  ".join(problems))
    for target, schema in planned:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self_contained(schema), indent=2, ensure_ascii=False) + "\n")
        if canonical_form(load_schema_file(target)) != canonical_form(schema):
            raise SchemaError(f"{target}: the written release does not match its source")
    return [target for target, _ in planned]


def _plain(node: Any) -> Any:
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if not isinstance(node, dict):
        return node
    # fastavro marks parsed schemas with "__fastavro_parsed" and "__named_schemas".
    keys = [key for key in node if not key.startswith("__")]
    ordered = sorted(
        keys, key=lambda k: _KEY_ORDER.index(k) if k in _KEY_ORDER else len(_KEY_ORDER)
    )
    return {key: _plain(node[key]) for key in ordered}


def named_types(schema: Schema) -> dict[str, dict[str, Any]]:
    """Every named type (record, enum, fixed) defined in a parsed schema, by full name."""
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Schema) -> None:
        if isinstance(node, list):
            for branch in node:
                walk(branch)
        elif isinstance(node, dict):
            if node["type"] in _NAMED_KINDS:
                found[node["name"]] = node
            for field in node.get("fields", ()):
                walk(field["type"])
            for key in ("items", "values"):
                if key in node:
                    walk(node[key])

    walk(schema)
    return found


def _kind(node: Schema) -> str:
    if isinstance(node, list):
        return "union"
    if isinstance(node, str):
        return node
    return str(node["type"])


def _logical_type(node: Schema) -> str | None:
    return node.get("logicalType") if isinstance(node, dict) else None


def _label(node: Schema) -> str:
    kind = _kind(node)
    if isinstance(node, dict) and kind in _NAMED_KINDS:
        return f"{kind} {node['name']}"
    return _logical_type(node) or kind


def _qualified_aliases(node: Mapping[str, Any]) -> set[str]:
    namespace = node["name"].rpartition(".")[0]
    return {
        alias if "." in alias or not namespace else f"{namespace}.{alias}"
        for alias in node.get("aliases", ())
    }


class _Resolver:
    """Walks a writer and a reader schema side by side, collecting problems with their path."""

    def __init__(
        self,
        writer_named: Mapping[str, dict[str, Any]],
        reader_named: Mapping[str, dict[str, Any]],
        problems: list[str],
    ) -> None:
        self._writer_named = writer_named
        self._reader_named = reader_named
        self._problems = problems
        self._seen: set[tuple[str, str]] = set()  # record pairs in progress: recursive types

    def check(self, writer: Schema, reader: Schema, path: str) -> None:
        writer = self._resolve(writer, self._writer_named)
        reader = self._resolve(reader, self._reader_named)
        if isinstance(writer, list):
            for branch in writer:
                self._check_branch(branch, reader, path)
        elif isinstance(reader, list):
            self._check_branch(writer, reader, path)
        elif not self._matches(writer, reader):
            self._problem(path, f"{_label(writer)} cannot be read as {_label(reader)}")
        else:
            self._check_matched(writer, reader, path)

    def _check_branch(self, writer: Schema, reader: Schema, path: str) -> None:
        """One writer (union branch or not) against a reader that may be a union."""
        writer = self._resolve(writer, self._writer_named)
        branches = reader if isinstance(reader, list) else [reader]
        for branch in branches:
            candidate = self._resolve(branch, self._reader_named)
            if self._matches(writer, candidate):
                self._check_matched(writer, candidate, path)
                return
        self._problem(path, f"{_label(writer)} matches no type the reader accepts")

    def _check_matched(self, writer: Schema, reader: Schema, path: str) -> None:
        if _logical_type(writer) != _logical_type(reader):
            self._problem(
                path,
                f"logical type changes from {_logical_type(writer)} to {_logical_type(reader)}",
            )
        kind = _kind(writer)
        if kind in ("record", "error"):
            assert isinstance(writer, dict) and isinstance(reader, dict)
            self._check_record(writer, reader, path)
        elif kind == "enum":
            assert isinstance(writer, dict) and isinstance(reader, dict)
            dropped = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if dropped and "default" not in reader:
                self._problem(path, f"enum {reader['name']} drops symbol(s) {', '.join(dropped)}")
        elif kind == "array":
            assert isinstance(writer, dict) and isinstance(reader, dict)
            self.check(writer["items"], reader["items"], f"{path}[]")
        elif kind == "map":
            assert isinstance(writer, dict) and isinstance(reader, dict)
            self.check(writer["values"], reader["values"], f"{path}{{}}")
        elif kind == "fixed":
            assert isinstance(writer, dict) and isinstance(reader, dict)
            if writer["size"] != reader["size"]:
                self._problem(path, f"fixed size changes from {writer['size']} to {reader['size']}")

    def _check_record(self, writer: dict[str, Any], reader: dict[str, Any], path: str) -> None:
        pair = (writer["name"], reader["name"])
        if pair in self._seen:
            return
        self._seen.add(pair)
        writer_fields = {field["name"]: field for field in writer["fields"]}
        for field in reader["fields"]:
            field_path = f"{path}.{field['name']}" if path else field["name"]
            source = next(
                (
                    writer_fields[name]
                    for name in (field["name"], *field.get("aliases", ()))
                    if name in writer_fields
                ),
                None,
            )
            if source is not None:
                self.check(source["type"], field["type"], field_path)
            elif "default" not in field:
                self._problem(field_path, "new field without a default: old data has no value")
        self._seen.discard(pair)

    @staticmethod
    def _resolve(node: Schema, named: Mapping[str, dict[str, Any]]) -> Schema:
        if isinstance(node, str) and node not in _PRIMITIVES:
            if node not in named:
                raise SchemaError(f"schema references unknown type {node}")
            return named[node]
        if isinstance(node, dict) and node["type"] in _PRIMITIVES and "logicalType" not in node:
            return str(node["type"])
        return node

    @staticmethod
    def _matches(writer: Schema, reader: Schema) -> bool:
        """Avro's shallow match: same kind (or a promotion) and, for named types, same name."""
        writer_kind, reader_kind = _kind(writer), _kind(reader)
        if writer_kind in _NAMED_KINDS and reader_kind in _NAMED_KINDS:
            assert isinstance(writer, dict) and isinstance(reader, dict)
            same_kind = writer_kind == reader_kind or {writer_kind, reader_kind} == {
                "record",
                "error",
            }
            return same_kind and (
                writer["name"] == reader["name"] or writer["name"] in _qualified_aliases(reader)
            )
        return writer_kind == reader_kind or (writer_kind, reader_kind) in _PROMOTIONS

    def _problem(self, path: str, message: str) -> None:
        self._problems.append(f"{path or '<top>'}: {message}")
