"""The kinds of incident the daily Dagmonitor's summary counts, as data: ``soorten.csv``.

The annex's groups (burglary, theft, violence, vandalism, nuisance, drugs, other), each MK code
in the group of the longest prefix of it the table lists; a code no row fits is "overig".
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from services.distributor.errors import DistributorError

CATEGORIES_FILE = Path(__file__).with_name("soorten.csv")

CATEGORY_ORDER: tuple[str, ...] = (
    "inbraak",
    "diefstal",
    "geweld",
    "vernieling",
    "overlast",
    "drugs",
    "overig",
)
"""The summary's columns, in this order (Dutch, as the recipients read them)."""
OTHER = "overig"


def parse_categories(text: str) -> Mapping[str, str]:
    """Prefix -> category from CSV text; raises ``DistributorError`` naming the line of an
    unknown category or a prefix listed twice."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    table: dict[str, str] = {}
    for number, row in enumerate(csv.DictReader(io.StringIO("\n".join(lines)), delimiter=";"), 2):
        prefix, category = (row.get("voorvoegsel") or "").strip(), (row.get("soort") or "").strip()
        if not prefix or category not in CATEGORY_ORDER:
            raise DistributorError(f"soorten.csv row {number}: a prefix and a known soort needed")
        if prefix in table:
            raise DistributorError(f"soorten.csv row {number}: prefix {prefix} appears twice")
        table[prefix] = category
    return MappingProxyType(table)


PREFIXES = parse_categories(CATEGORIES_FILE.read_text(encoding="utf-8"))


def category_of(mk_code: str, table: Mapping[str, str] = PREFIXES) -> str:
    """The category of an MK code: the longest matching prefix's, else ``overig``."""
    for length in range(len(mk_code), 0, -1):
        found = table.get(mk_code[:length])
        if found is not None:
            return found
    return OTHER
