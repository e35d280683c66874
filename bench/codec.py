"""Per-record cost of the codec: encode and decode against fastavro's own write and read.

In one run, on the same generated incidents and their Dagmonitor entries, best of ``--rounds``:

- decode of an ``IncidentEvent`` (``Codec.decode``)  vs  ``fastavro.schemaless_reader`` alone;
- encode of an ``IncidentEvent`` and of a ``DagmonitorEntry`` (``Codec.encode``)  vs
  ``fastavro.schemaless_writer`` alone (the floor of any encode that fastavro writes).

``--codec-file`` measures another version of ``dagmonitor/codec.py`` beside the current one
(e.g. ``git show HEAD:dagmonitor/codec.py > /tmp/codec_before.py``), for before/after.

    .venv/bin/python -m bench.codec --count 5000
    .venv/bin/python -m bench.codec --count 5000 --codec-file /tmp/codec_before.py
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from bench.hop import Work, incidents
from dagmonitor.codec import (
    DAGMONITOR_ENTRY,
    HEADER_SIZE,
    INCIDENT_EVENT,
    TOPIC_VALUE_SCHEMAS,
    Codec,
    default_codec,
    schema_dir,
)
from services.classifier.policy import ENTRIES, classify_incident


def per_record_us(items: list[Any], work: Callable[[Any], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for item in items:
            work(item)
        best = min(best, time.perf_counter() - started)
    return best / len(items) * 1e6


def load_codec(path: Path) -> Codec:
    spec = importlib.util.spec_from_file_location("codec_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    names = [n for n in TOPIC_VALUE_SCHEMAS if n in module.TOPIC_VALUE_SCHEMAS]
    codec: Codec = module.Codec.from_directory(schema_dir(), names)
    return codec


def measure(
    codec: Codec, raw: list[bytes], entries: list[dict[str, Any]], rounds: int
) -> dict[str, float]:
    incidents_ = [codec.decode(r).record for r in raw]
    return {
        "decode IncidentEvent": per_record_us(
            raw, lambda r: codec.decode(r, expect=INCIDENT_EVENT), rounds
        ),
        "encode IncidentEvent": per_record_us(
            incidents_, lambda r: codec.encode(INCIDENT_EVENT, r), rounds
        ),
        "encode DagmonitorEntry": per_record_us(
            entries, lambda r: codec.encode(DAGMONITOR_ENTRY, r), rounds
        ),
    }


def floors(raw: list[bytes], entries: list[dict[str, Any]], rounds: int) -> dict[str, float]:
    codec = default_codec()
    incident_schema, entry_schema = codec.schema(INCIDENT_EVENT), codec.schema(DAGMONITOR_ENTRY)
    decoded = [codec.decode(r).record for r in raw]

    def read(data: bytes) -> object:
        body = io.BytesIO(data)
        body.seek(HEADER_SIZE)
        return schemaless_reader(body, incident_schema, None)

    def write(schema: dict[str, Any]) -> Callable[[dict[str, Any]], bytes]:
        def run(record: dict[str, Any]) -> bytes:
            out = io.BytesIO()
            schemaless_writer(out, schema, record, strict_allow_default=True)
            return out.getvalue()

        return run

    return {
        "decode IncidentEvent": per_record_us(raw, read, rounds),
        "encode IncidentEvent": per_record_us(decoded, write(incident_schema), rounds),
        "encode DagmonitorEntry": per_record_us(entries, write(entry_schema), rounds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--codec-file", type=Path, default=None)
    args = parser.parse_args()
    raw = [value for _, value in incidents(args.count)]
    work, now = Work(), datetime.now(UTC)
    entries = [
        output.value
        for value in raw
        for output in classify_incident(
            default_codec().decode(value).record, work.policy, work.annex, now=now
        ).outputs
        if output.topic == ENTRIES
    ]
    columns = {"fastavro alone": floors(raw, entries, args.rounds)}
    columns["codec"] = measure(default_codec(), raw, entries, args.rounds)
    if args.codec_file is not None:
        columns[args.codec_file.name] = measure(
            load_codec(args.codec_file), raw, entries, args.rounds
        )
    print(f"us per record (best of {args.rounds}, {len(raw)} incidents, {len(entries)} entries)")
    print(f"{'':<24}" + "".join(f"{name:>18}" for name in columns))
    for row in columns["codec"]:
        print(f"{row:<24}" + "".join(f"{col[row]:>18.1f}" for col in columns.values()))
    base = columns["fastavro alone"]
    print(
        "ratio codec / fastavro alone: "
        + ", ".join(f"{row} {columns['codec'][row] / base[row]:.2f}" for row in base)
    )


if __name__ == "__main__":
    main()
