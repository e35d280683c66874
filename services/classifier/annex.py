"""Bijlage 1 of the covenant as data: ``bijlage1.csv``, row for row, loaded once.

The CSV is the reviewable artefact: a policy officer compares it with the annex. This module
only parses it and refuses a malformed file (unknown values, duplicate codes), so a typo in the
policy can never silently widen what is shared.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

from dagmonitor.errors import ConfigError

ANNEX_FILE = Path(__file__).with_name("bijlage1.csv")
_COLUMNS = (
    "code",
    "description",
    "shared",
    "house_number_level",
    "ter_hoogte_van",
    "suspects_shared",
    "victims_shared",
)
YES_NO = {"ja": True, "nee": False}
"""The policy files' booleans, in the annex's own words."""


class HouseNumberLevel(StrEnum):
    """How precise the location of a shared incident may be."""

    NO = "nee"  # postcode level only
    YES = "ja"  # street and house number
    ON_ESCALATION = "escalatie"  # only while an approved E35 escalation is in force


@dataclass(frozen=True, slots=True)
class AnnexRow:
    """One MK code of Bijlage 1 and what may be shared about it."""

    code: str
    description: str
    shared: bool
    house_number_level: HouseNumberLevel
    ter_hoogte_van: bool
    suspects_shared: bool
    victims_shared: bool


Annex = Mapping[str, AnnexRow]


def policy_table(text: str) -> csv.DictReader[str]:
    """The rows of a policy CSV kept beside this module (``#`` lines are comments)."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return csv.DictReader(io.StringIO("\n".join(lines)))


def parse_annex(text: str) -> Annex:
    """Parse the annex CSV (``#`` lines are comments); raises ConfigError on any defect."""
    reader = policy_table(text)
    if tuple(reader.fieldnames or ()) != _COLUMNS:
        raise ConfigError(f"annex columns must be {', '.join(_COLUMNS)}")
    rows: dict[str, AnnexRow] = {}
    for number, raw in enumerate(reader, start=2):
        try:
            row = AnnexRow(
                code=raw["code"].strip().upper(),
                description=raw["description"].strip(),
                shared=YES_NO[raw["shared"]],
                house_number_level=HouseNumberLevel(raw["house_number_level"]),
                ter_hoogte_van=YES_NO[raw["ter_hoogte_van"]],
                suspects_shared=YES_NO[raw["suspects_shared"]],
                victims_shared=YES_NO[raw["victims_shared"]],
            )
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"annex row {number}: invalid value ({exc})") from None
        if not row.code or not row.description:
            raise ConfigError(f"annex row {number}: code and description are required")
        if row.code in rows:
            raise ConfigError(f"annex row {number}: code {row.code} appears twice")
        rows[row.code] = row
    return MappingProxyType(rows)


@functools.cache
def load_annex(path: Path = ANNEX_FILE) -> Annex:
    """The annex from ``path`` (default: the ``bijlage1.csv`` beside this module)."""
    return parse_annex(path.read_text(encoding="utf-8"))
