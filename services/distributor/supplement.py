"""The supplement (``Aanvulling Dagmonitor``): what changed for a day after its report went out.

The distributor keeps, per reported day, what the recipients were told: each entry's version
and the entry as shown (``daily_provided``, kept only for the supplement horizon). Comparing
that with the entries stored now gives the supplement: entries that are new for the day,
entries that changed in what the mail shows, and entries that are gone (moved to another day
by a newer version; one the police withdrew gets a withdrawal notice of its own instead, ADR
0015, and the store leaves it out of what was told). A new version that changes nothing the
mail shows is recorded silently, without a mail.

Pure logic; the store reads both sides in one snapshot, and the outbox rows of a supplement
and the new "told" state are written in one transaction, so a crash neither loses nor repeats
a supplement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.distributor.reports import Entry

_TIMESTAMPS = frozenset(
    f.name for f in fields(Entry) if f.name in ("reported_at", "committed_from", "committed_until")
)


class Change(StrEnum):
    """What a supplement says about one entry (also the CSV's ``wijziging`` column)."""

    NEW = "nieuw"
    CHANGED = "gewijzigd"
    WITHDRAWN = "vervallen"


@dataclass(frozen=True, slots=True)
class Told:
    """What the recipients have of one entry: its version and the entry as it was shown."""

    version: int
    shown: Entry


@dataclass(frozen=True, slots=True)
class DayChanges:
    """A day's changes since the recipients were last told about it."""

    new: tuple[Entry, ...] = ()
    changed: tuple[Entry, ...] = ()
    withdrawn: tuple[Entry, ...] = ()
    """As they were shown: the recipients identify what to delete by what they received."""
    versions: tuple[tuple[str, int], ...] = ()
    """(registration number, version) to record as told, new, changed and silent ones alike."""

    def __bool__(self) -> bool:
        return bool(self.new or self.changed or self.withdrawn)

    def by_registration(self) -> dict[str, Change]:
        changes = {e.registration_number: Change.NEW for e in self.new}
        changes.update({e.registration_number: Change.CHANGED for e in self.changed})
        changes.update({e.registration_number: Change.WITHDRAWN for e in self.withdrawn})
        return changes


def day_changes(current: Mapping[str, tuple[Entry, int]], told: Mapping[str, Told]) -> DayChanges:
    """Compare the day's entries now (registration -> entry, version) with what was told."""
    new, changed, versions = [], [], []
    for registration, (entry, version) in sorted(current.items()):
        before = told.get(registration)
        if before is None:
            new.append(entry)
        elif version == before.version:
            continue
        elif entry != before.shown:
            changed.append(entry)
        versions.append((registration, version))
    withdrawn = [t.shown for r, t in sorted(told.items()) if r not in current]
    return DayChanges(tuple(new), tuple(changed), tuple(withdrawn), tuple(versions))


def entry_document(entry: Entry) -> dict[str, Any]:
    """An entry as stored in ``daily_provided.shown`` (timestamps in ISO 8601)."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(entry).items()}


def entry_from_document(document: Mapping[str, Any]) -> Entry:
    values = {
        k: (datetime.fromisoformat(v) if k in _TIMESTAMPS and v is not None else v)
        for k, v in document.items()
    }
    return Entry.from_mapping(values)
