"""The municipality's youth-nuisance reports (ADR 0013). Pure functions, no I/O.

The covenant escalates E35 when reports rise "vanuit zowel de politie als de gemeente"; the
municipality's reports come from its own reporting system, typically Signalen. Two ways in:

- a ``MunicipalReport`` on ``municipal.reports`` (Kafka), checked by ``validate_report``;
- a Signalen signal as JSON over HTTP, turned into a ``MunicipalReport`` by
  ``report_from_signal``, which keeps only what the E35 window counts (id, category, postcode,
  time) and drops everything else the signal carries: the complaint text, the reporter's
  e-mail and phone, the street, house number and coordinates, notes, attachments.

Which categories count is data: ``signalen_categories.csv``, one row per category, loaded once.
Errors name the field and the rule, never the value.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from dagmonitor.errors import ConfigError
from dagmonitor.jsonio import InputError, parse_timestamp
from dagmonitor.rejection import Reason
from dagmonitor.validation import (
    EARLIEST,
    IDENTIFIER,
    InvalidRecord,
    check_text,
    normalise_postcode,
)

CATEGORY_FILE = Path(__file__).with_name("signalen_categories.csv")
_COLUMNS = ("source", "main_slug", "sub_slug", "category", "reason")
SIGNALEN = "signalen"
"""``MunicipalReport.source`` of a report that came in as a Signalen signal."""

# Signalen names a category by URL: .../terms/categories/<main_slug>/sub_categories/<sub_slug>
_CATEGORY_PATH = re.compile(r"/terms/categories/([a-z0-9-]+)/sub_categories/([a-z0-9-]+)/?")
_SLUG = re.compile(r"^[a-z0-9-]{1,100}$")


class Category(StrEnum):
    """Our category of a municipal report: only youth nuisance is counted."""

    YOUTH_NUISANCE = "youth_nuisance"  # overlast jeugd: counts with E35
    NOT_COUNTED = "not_counted"


@dataclass(frozen=True, slots=True)
class CategoryRow:
    """One category of a reporting system and what it is to us."""

    source: str
    code: str
    """``<main_slug>/<sub_slug>``: ``MunicipalReport.category``."""
    category: Category
    reason: str


CategoryTable = Mapping[tuple[str, str], CategoryRow]
"""Rows by (source, code)."""


def category_code(main_slug: str, sub_slug: str) -> str:
    """Signalen's category as ``MunicipalReport.category`` names it."""
    return f"{main_slug}/{sub_slug}"


def parse_categories(text: str) -> CategoryTable:
    """Parse the category CSV (``#`` lines are comments); raises ConfigError on any defect."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    if tuple(reader.fieldnames or ()) != _COLUMNS:
        raise ConfigError(f"category table columns must be {', '.join(_COLUMNS)}")
    rows: dict[tuple[str, str], CategoryRow] = {}
    for number, raw in enumerate(reader, start=2):
        try:
            source, main, sub = raw["source"].strip(), raw["main_slug"], raw["sub_slug"]
            if not source or not _SLUG.fullmatch(main) or not _SLUG.fullmatch(sub):
                raise ValueError("source, main_slug and sub_slug must be slugs")
            row = CategoryRow(
                source, category_code(main, sub), Category(raw["category"]), raw["reason"].strip()
            )
        except (KeyError, ValueError, AttributeError) as exc:
            raise ConfigError(f"category table row {number}: invalid value ({exc})") from None
        if not row.reason:
            raise ConfigError(f"category table row {number}: a reason is required")
        if (row.source, row.code) in rows:
            raise ConfigError(f"category table row {number}: {row.code} appears twice")
        rows[(row.source, row.code)] = row
    return MappingProxyType(rows)


@functools.cache
def load_categories(path: Path = CATEGORY_FILE) -> CategoryTable:
    """The category table beside this module, parsed once."""
    return parse_categories(path.read_text(encoding="utf-8"))


def counts(source: str, code: str, table: CategoryTable | None = None) -> bool:
    """Whether a report of ``code`` from ``source`` counts as youth nuisance."""
    row = (table if table is not None else load_categories()).get((source, code))
    return row is not None and row.category is Category.YOUTH_NUISANCE


def validate_report(
    report: Mapping[str, Any],
    *,
    now: datetime,
    clock_skew: timedelta = timedelta(minutes=5),
    table: CategoryTable | None = None,
) -> None:
    """Check a ``MunicipalReport`` (already schema-valid) or raise ``InvalidRecord``."""
    check_text(report)
    if not IDENTIFIER.fullmatch(report["report_id"]):
        raise InvalidRecord(
            Reason.INVALID_IDENTIFIER, "report_id: 1-128 characters of A-Z a-z 0-9 . _ : -"
        )
    if normalise_postcode(report["postcode"]) is None:
        raise InvalidRecord(Reason.INVALID_POSTCODE, "postcode: not a Dutch postcode (1234AB)")
    if report["reported_at"] < EARLIEST:
        raise InvalidRecord(Reason.INVALID_TIMESTAMP, "reported_at: before 2000-01-01")
    if report["reported_at"] > now + clock_skew:
        raise InvalidRecord(Reason.INVALID_TIMESTAMP, "reported_at: in the future")
    if not counts(report["source"], report["category"], table):
        raise InvalidRecord(
            Reason.CATEGORY_NOT_COUNTED,
            "category: not youth nuisance for this source (services/ingest/"
            "signalen_categories.csv); only youth-nuisance reports are taken",
        )


def report_from_signal(signal: Any) -> dict[str, Any]:
    """A Signalen signal (JSON, as Signalen's API writes it) as a ``MunicipalReport``.

    Reads ``signal_id`` (else ``id``), ``category`` (``sub_category`` or ``category_url``,
    else ``main_slug`` and ``sub_slug``), ``location.address.postcode`` and
    ``incident_date_start``; every other field is ignored and never leaves this function.
    Raises ``InvalidRecord`` naming the field; ``validate_report`` still has to be applied.
    """
    if not isinstance(signal, Mapping):
        raise InvalidRecord(Reason.INVALID_JSON, "record: expected a JSON object (a signal)")
    report = {
        "report_id": _report_id(signal),
        "category": _category(signal.get("category")),
        "postcode": _postcode(signal.get("location")),
        "reported_at": _reported_at(signal.get("incident_date_start")),
        "source": SIGNALEN,
    }
    check_text(report)
    return report


def _report_id(signal: Mapping[str, Any]) -> str:
    signal_id, number = signal.get("signal_id"), signal.get("id")
    if isinstance(signal_id, str) and signal_id:
        return signal_id
    if isinstance(number, int) and not isinstance(number, bool) and number > 0:
        return f"SIG-{number}"
    raise InvalidRecord(Reason.INVALID_IDENTIFIER, "signal_id: missing (or id: a positive integer)")


def _category(category: Any) -> str:
    if not isinstance(category, Mapping):
        raise InvalidRecord(Reason.INVALID_FIELD, "category: missing (an object)")
    for field in ("sub_category", "category_url"):
        url = category.get(field)
        if isinstance(url, str) and url:
            found = _CATEGORY_PATH.search(_path_of(url))
            if found is None:
                raise InvalidRecord(
                    Reason.INVALID_FIELD,
                    f"category.{field}: not a Signalen category URL "
                    "(.../terms/categories/<main>/sub_categories/<sub>)",
                )
            return category_code(found.group(1), found.group(2))
    main, sub = category.get("main_slug"), category.get("sub_slug")
    if (
        isinstance(main, str)
        and isinstance(sub, str)
        and _SLUG.fullmatch(main)
        and _SLUG.fullmatch(sub)
    ):
        return category_code(main, sub)
    raise InvalidRecord(
        Reason.INVALID_FIELD, "category.sub_category: missing (a Signalen category URL)"
    )


def _path_of(url: str) -> str:
    try:
        return urlsplit(url).path
    except ValueError:  # e.g. an unclosed IPv6 bracket: no category URL either
        return ""


def _postcode(location: Any) -> str:
    address = location.get("address") if isinstance(location, Mapping) else None
    postcode = address.get("postcode") if isinstance(address, Mapping) else None
    if not isinstance(postcode, str) or not postcode.strip():
        raise InvalidRecord(
            Reason.INVALID_POSTCODE,
            "location.address.postcode: missing; a report counts only in a postcode area",
        )
    normalised = normalise_postcode(postcode)
    if normalised is None:
        raise InvalidRecord(
            Reason.INVALID_POSTCODE, "location.address.postcode: not a Dutch postcode (1234AB)"
        )
    return normalised


def _reported_at(text: Any) -> datetime:
    if text is None:
        raise InvalidRecord(Reason.INVALID_TIMESTAMP, "incident_date_start: missing")
    try:
        return parse_timestamp(text, "incident_date_start")
    except InputError as exc:
        raise InvalidRecord(Reason.INVALID_TIMESTAMP, str(exc)) from None
