"""What of a person leaves per approval category: ``field_sets.csv``, beside the annex.

The covenant lists what the police provide: "NAW-gegevens en foto's" of suspects and of
persons of interest, "NAW-gegevens, inclusief telefoonnummer" and the modus operandi of
burglary victims. The CSV says it field by field, one row per category, with the covenant's
words in the row, so a policy officer reads it in one place. This module only parses it and
refuses a defective file (a field that does not exist, a category missing or twice, a value
other than ja/nee): a typo can never silently widen what is shared.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from dagmonitor.errors import ConfigError
from services.classifier.annex import YES_NO, policy_table

FIELD_SETS_FILE = Path(__file__).with_name("field_sets.csv")

PERSON_FIELDS = (
    "first_names",
    "surname_prefix",
    "surname",
    "birth_date",
    "address",
    "phone",
    "photo_ref",
)
"""The fields of ``nl.dagmonitor.SharedPerson``, in the schema's order."""

REQUEST_FIELDS = ("modus_operandi",)
"""Fields of the request itself (not of the person) that the covenant names per category."""

PERSON_CATEGORIES = frozenset({"SUSPECT", "PERSON_OF_INTEREST", "VICTIM"})
"""The approval categories that carry a person (YOUTH_NUISANCE_DETAIL carries none)."""

_KEY, _COVENANT = "category", "covenant"


@dataclass(frozen=True, slots=True)
class FieldSet:
    """What of a person of one category may leave once approved."""

    category: str
    person: frozenset[str]
    """The ``SharedPerson`` fields shared; every other one is null."""
    modus_operandi: bool
    covenant: str
    """The covenant's words that decide it."""


FieldSets = Mapping[str, FieldSet]


def parse_field_sets(text: str) -> FieldSets:
    """Parse the field-set CSV (``#`` lines are comments); raises ConfigError on any defect."""
    reader = policy_table(text)
    columns = list(reader.fieldnames or ())
    fields = [c for c in columns if c not in (_KEY, _COVENANT)]
    known = (*PERSON_FIELDS, *REQUEST_FIELDS)
    unknown = [c for c in fields if c not in known]
    if unknown:
        raise ConfigError(
            f"field sets: unknown field(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    missing = [c for c in (_KEY, *known, _COVENANT) if c not in columns]
    if missing or len(columns) != len(set(columns)):
        raise ConfigError(
            f"field sets: columns must be {_KEY}, {', '.join(known)}, {_COVENANT}, each once"
        )
    sets: dict[str, FieldSet] = {}
    for number, raw in enumerate(reader, start=2):
        category = (raw[_KEY] or "").strip()
        if category not in PERSON_CATEGORIES:
            raise ConfigError(f"field sets row {number}: unknown category {category!r}")
        if category in sets:
            raise ConfigError(f"field sets row {number}: category {category} appears twice")
        try:
            shared = {name: YES_NO[raw[name]] for name in known}
        except KeyError as exc:
            raise ConfigError(f"field sets row {number}: {exc} is not ja or nee") from None
        covenant = (raw[_COVENANT] or "").strip()
        if not covenant or None in raw:
            raise ConfigError(
                f"field sets row {number}: the covenant phrase is missing or has an unquoted comma"
            )
        sets[category] = FieldSet(
            category=category,
            person=frozenset(name for name in PERSON_FIELDS if shared[name]),
            modus_operandi=shared["modus_operandi"],
            covenant=covenant,
        )
    if absent := sorted(PERSON_CATEGORIES - set(sets)):
        raise ConfigError(f"field sets: no row for {', '.join(absent)}")
    return MappingProxyType(sets)


@functools.cache
def load_field_sets(path: Path = FIELD_SETS_FILE) -> FieldSets:
    """The field sets from ``path`` (default: the ``field_sets.csv`` beside this module)."""
    return parse_field_sets(path.read_text(encoding="utf-8"))
