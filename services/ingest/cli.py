"""The police side's verb: ``dagmonitor publish`` (``generate`` is in dagmonitor_cli)."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress

from dagmonitor import kafka_clients
from dagmonitor.codec import default_codec
from dagmonitor.errors import CodecError
from dagmonitor.jsonio import InputError, parse_document, record_from_json
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.telemetry import inject_trace_headers
from services.ingest.pipeline import INCIDENTS, NOTICES, Kind

WITHDRAW_KINDS = {"incident": INCIDENTS, "notice": NOTICES}
"""``{"withdraw": "<key>", "kind": "incident"|"notice"}``: a withdrawal (a tombstone)."""


def encode_line(line: str) -> tuple[Kind, bytes, bytes | None]:
    """One JSON line as (kind, key, single-object bytes, or None for a withdrawal line);
    raises InputError or CodecError."""
    document: Any = parse_document(line)
    if not isinstance(document, dict):
        raise InputError("", "not a JSON object")
    if "withdraw" in document:
        return _withdrawal(document)
    kind = INCIDENTS if "registration_number" in document else NOTICES
    record = record_from_json(kind.schema, document)
    return kind, str(record[kind.key_field]).encode(), default_codec().encode(kind.schema, record)


async def publish_file(
    settings: DagmonitorSettings, path: Path, *, quiet: bool = False
) -> dict[str, int]:
    """Publish every valid line of ``path`` to ``bvh.*``; returns counts per outcome."""

    lines = (
        path.read_text(encoding="utf-8").splitlines()
        if str(path) != "-"
        else sys.stdin.read().splitlines()
    )
    counts = {"published": 0, "refused": 0}
    producer = kafka_clients.producer(
        settings,
        acks="all",
        enable_idempotence=True,
        client_id="dagmonitor-publish",
    )
    await producer.start()
    try:
        with Progress(disable=quiet, transient=True) as progress:
            task = progress.add_task("publishing", total=len(lines))
            pending = []
            for number, line in enumerate(lines, start=1):
                progress.advance(task)
                if not line.strip():
                    continue
                try:
                    kind, key, value = encode_line(line)
                except (InputError, CodecError) as exc:
                    counts["refused"] += 1
                    click.echo(f"line {number}: refused: {exc}", err=True)
                    continue
                pending.append(
                    await producer.send(
                        settings.topic(kind.source), value, key=key, headers=inject_trace_headers()
                    )
                )
                counts["published"] += 1
            await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return counts


def _withdrawal(document: dict[str, Any]) -> tuple[Kind, bytes, None]:
    key, kind = document.get("withdraw"), document.get("kind")
    if set(document) != {"withdraw", "kind"}:
        raise InputError("", 'a withdrawal line has exactly "withdraw" and "kind"')
    if kind not in WITHDRAW_KINDS:
        raise InputError("kind", 'must be "incident" or "notice"')
    if not isinstance(key, str) or not key.strip():
        raise InputError("withdraw", "must be the registration number or notice id")
    return WITHDRAW_KINDS[kind], key.strip().encode(), None


@click.command()
@click.argument("path", type=click.Path(allow_dash=True, path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def publish(path: Path, quiet: bool) -> None:
    """Publish JSON Lines of IncidentEvent / PersonNotice to bvh.incidents / bvh.persons.

    A line {"withdraw": "<key>", "kind": "incident"|"notice"} withdraws a registration or a
    notice (a tombstone under that key)."""
    # As the police systems publish: their principal (write bvh.* only) on the local stack.
    settings = DagmonitorSettings.load().default_principal("police-publisher")
    started = datetime.now(UTC)
    counts = asyncio.run(publish_file(settings, path, quiet=quiet))
    seconds = (datetime.now(UTC) - started).total_seconds()
    click.echo(f"published {counts['published']}, refused {counts['refused']} in {seconds:.1f} s")
    if counts["refused"]:
        sys.exit(1)
