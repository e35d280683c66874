"""Records as plain JSON (JSON Lines files, HTTP bodies, CLI output) and back, by schema.

JSON has no timestamps or dates: ``timestamp-millis`` fields are ISO 8601 strings with a
timezone (``2026-11-27T08:15:00Z``) and ``date`` fields are ``YYYY-MM-DD``; ``bytes`` are base64.
``record_from_json`` walks the Avro schema, converts those fields and refuses what does not
fit with an ``InputError`` naming the field path (never the value, which may be personal data).
Everything else (types, enums, required fields) is then checked by the codec on encode.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from dagmonitor.codec import default_codec
from dagmonitor.errors import DagmonitorError
from dagmonitor.schema_evolution import named_types


class InputError(DagmonitorError):
    """JSON input that does not fit its schema; ``path`` names the field."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path or 'record'}: {problem}")
        self.path = path
        self.problem = problem


def parse_document(text: str | bytes) -> Any:
    """Parse untrusted JSON text; any malformed input raises ``InputError``, never more.

    Besides invalid JSON that covers what ``json.loads`` lets through as other errors: bytes
    that are not UTF-8, nesting deeper than the interpreter's recursion limit
    (``RecursionError``) and integer literals longer than Python converts (``ValueError``).
    """
    try:
        # Bytes are UTF-8 (RFC 8259); json.loads would guess UTF-16 or -32 from a BOM.
        return json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except json.JSONDecodeError as exc:
        raise InputError("", f"not JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise InputError("", "not UTF-8, so not JSON") from None
    except RecursionError:
        raise InputError("", "not JSON we take (nested too deeply)") from None
    except ValueError:
        raise InputError("", "not JSON we take (a number is too long)") from None


def record_from_json(schema_name: str, obj: Any) -> dict[str, Any]:
    """Convert a JSON object into a record of ``schema_name`` ready for the codec."""
    schema = default_codec().schema(schema_name)
    converted = _Converter(named_types(schema)).convert(schema, obj, "")
    if not isinstance(converted, dict):
        raise InputError("", "expected a JSON object")
    return converted


def to_json(value: Any) -> Any:
    """A decoded record (or any part of one) as JSON-serialisable data."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


def parse_timestamp(text: Any, path: str = "") -> datetime:
    """An ISO 8601 string with a timezone as an aware datetime."""
    if not isinstance(text, str):
        raise InputError(path, "expected an ISO 8601 timestamp string")
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(path, "not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise InputError(path, "timestamp without a timezone (add Z or an offset)")
    return parsed


class _Converter:
    def __init__(self, named: Mapping[str, dict[str, Any]]) -> None:
        self._named = named

    def convert(self, schema: Any, value: Any, path: str) -> Any:
        if isinstance(schema, str):
            if schema in self._named:
                return self.convert(self._named[schema], value, path)
            return self._primitive(schema, value, path)
        if isinstance(schema, list):
            return self._union(schema, value, path)
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if logical == "timestamp-millis" and kind == "long":
            return parse_timestamp(value, path) if not isinstance(value, datetime) else value
        if logical == "date" and kind == "int":
            return self._date(value, path)
        if kind in ("record", "error"):
            return self._record(schema, value, path)
        if kind == "array":
            if not isinstance(value, list):
                raise InputError(path, "expected a JSON array")
            return [self.convert(schema["items"], v, f"{path}[{i}]") for i, v in enumerate(value)]
        if kind == "map":
            if not isinstance(value, dict):
                raise InputError(path, "expected a JSON object")
            return {k: self.convert(schema["values"], v, f"{path}.{k}") for k, v in value.items()}
        if kind == "enum":
            if value not in schema["symbols"]:
                raise InputError(path, f"not one of {', '.join(schema['symbols'])}")
            return value
        if isinstance(kind, str | list | dict) and kind not in ("fixed",):
            return self.convert(kind, value, path)
        return value

    def _record(self, schema: dict[str, Any], value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise InputError(path, "expected a JSON object")
        fields = {field["name"]: field for field in schema["fields"]}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise InputError(path, f"unknown field(s): {', '.join(unknown)}")
        result: dict[str, Any] = {}
        for name, field in fields.items():
            where = f"{path}.{name}" if path else name
            if name in value:
                result[name] = self.convert(field["type"], value[name], where)
            elif "default" not in field:
                raise InputError(where, "required field missing")
        return result

    def _union(self, branches: list[Any], value: Any, path: str) -> Any:
        if value is None:
            if "null" in branches:
                return None
            raise InputError(path, "must not be null")
        errors = []
        for branch in branches:
            if branch == "null":
                continue
            try:
                return self.convert(branch, value, path)
            except InputError as exc:
                errors.append(exc.problem)
        raise InputError(path, errors[0] if len(errors) == 1 else "matches no allowed type")

    def _date(self, value: Any, path: str) -> date:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if not isinstance(value, str):
            raise InputError(path, "expected a YYYY-MM-DD date string")
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise InputError(path, "not a YYYY-MM-DD date") from None

    @staticmethod
    def _primitive(kind: str, value: Any, path: str) -> Any:
        if kind == "bytes" and isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise InputError(path, "expected base64") from None
        expected: dict[str, tuple[type, ...]] = {
            "string": (str,),
            "int": (int,),
            "long": (int,),
            "boolean": (bool,),
            "float": (int, float),
            "double": (int, float),
            "null": (type(None),),
        }
        types = expected.get(kind)
        if types is not None:
            if kind in ("int", "long", "float", "double") and isinstance(value, bool):
                raise InputError(path, f"expected {kind}")
            if not isinstance(value, types):
                raise InputError(path, f"expected {kind}")
        return value
