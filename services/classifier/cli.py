"""``dagmonitor classify [FILE|-]``: the policy as a dry run over JSON Lines.

One JSON line out per line in: ``{"key", "decision": "shared"|"dropped"|"rejected", "reason",
"outputs": [{"topic", "key", "value"}]}``. A line that is not a valid ``IncidentEvent`` or
``PersonNotice`` is "rejected" with a reason naming the field, never a crash.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import IO, Any

import click

from dagmonitor.codec import INCIDENT_EVENT, PERSON_NOTICE, default_codec
from dagmonitor.errors import CodecError
from dagmonitor.jsonio import (
    InputError,
    parse_document,
    parse_timestamp,
    record_from_json,
    to_json,
)
from dagmonitor.validation import InvalidRecord, validate_incident, validate_notice
from services.classifier.annex import load_annex
from services.classifier.config import ClassifierSettings
from services.classifier.policy import Decision, PolicyConfig, classify_incident, classify_notice


def classify_line(line: str, policy: PolicyConfig, now: datetime) -> dict[str, Any]:
    """The dry-run answer for one JSON line."""
    try:
        document = parse_document(line)
    except InputError:
        return _rejected(None, "invalid_json", "the line is not valid JSON")
    if not isinstance(document, dict):
        return _rejected(None, "invalid_json", "the line is not a JSON object")
    if "registration_number" in document:
        schema, key_field = INCIDENT_EVENT, "registration_number"
    elif "notice_id" in document:
        schema, key_field = PERSON_NOTICE, "notice_id"
    else:
        return _rejected(None, "unknown_record", "neither registration_number nor notice_id")
    key = document.get(key_field) if isinstance(document.get(key_field), str) else None
    try:
        record = record_from_json(schema, document)
        default_codec().encode(schema, record)
        if schema == INCIDENT_EVENT:
            validate_incident(record, now=now)
            decision = classify_incident(record, policy, load_annex(), now=now)
        else:
            validate_notice(record, now=now)
            decision = classify_notice(record, policy, now=now)
    except InputError as exc:
        return _rejected(key, "invalid_field", str(exc))
    except InvalidRecord as exc:
        return _rejected(key, exc.reason.value, exc.detail)
    except CodecError as exc:
        return _rejected(key, "invalid_record", str(exc))
    return _answer(key, decision)


def _answer(key: str | None, decision: Decision) -> dict[str, Any]:
    return {
        "key": key,
        "decision": "shared" if decision.shared else "dropped",
        "reason": decision.reason,
        "outputs": [
            {"topic": o.topic, "key": o.key, "value": to_json(o.value)} for o in decision.outputs
        ],
    }


def _rejected(key: str | None, reason: str, detail: str) -> dict[str, Any]:
    return {"key": key, "decision": "rejected", "reason": reason, "detail": detail, "outputs": []}


@click.command()
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@click.option("--now", "now_text", help="ISO 8601 time to classify at (default: the clock).")
def classify(source: IO[str], now_text: str | None) -> None:
    """Dry-run the covenant policy over JSON Lines of IncidentEvent / PersonNotice."""
    settings = ClassifierSettings.load()
    now = parse_timestamp(now_text, "--now") if now_text else datetime.now(UTC)
    policy = settings.policy()
    for line in source:
        if line.strip():
            sys.stdout.write(json.dumps(classify_line(line, policy, now), ensure_ascii=False))
            sys.stdout.write("\n")
