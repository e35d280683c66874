"""Versions of an input key and the outputs they leave behind. Pure functions.

Every input key (an incident's registration number, a notice's id) has an entry in a table: the
version last handled and the outputs it produced, as ``(topic, key)`` refs. Incidents also keep
the postcode whose E35 window counts them. As stored in the table's changelog (JSON), and read
back as such:

- incidents: ``{"version": int, "outputs": [[topic, key], ...], "e35_postcode": str | None}``
- notices: ``{"version": int, "outputs": [[topic, key], ...]}``

``plan`` compares a new version (or a tombstone) of a key with that entry and says what to do:
drop an older version, send tombstones for outputs that are no longer produced, take the report
out of the E35 window of a postcode it no longer counts towards, and what the entry becomes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from services.classifier.policy import Output

Ref = tuple[str, str]
"""An output record: contract topic and key."""

State = dict[str, Any]
"""A table entry (see the module docstring for its two shapes)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What one input record changes, given what its key produced before.

    ``stale``: the record is an older version than the one handled; do nothing at all (no
    output, no table change). Otherwise: send ``tombstones`` (in the order they were stored),
    take the key's report out of the E35 window of ``retract_e35`` (when set), produce the new
    outputs, then store ``state`` for the key (None deletes the entry).
    """

    stale: bool = False
    tombstones: tuple[Ref, ...] = ()
    retract_e35: str | None = None
    state: State | None = None


def output_refs(outputs: Iterable[Output]) -> frozenset[Ref]:
    """The refs of a decision's outputs: what a later version may have to retract."""
    return frozenset((output.topic, output.key) for output in outputs)


def plan(
    previous: Mapping[str, Any] | None,
    version: int | None,
    refs: AbstractSet[Ref] = frozenset(),
    e35_postcode: str | None = None,
    *,
    tracks_e35: bool = False,
) -> Plan:
    """Plan one record of a key from the key's table entry.

    ``previous`` is the entry (None for a key not seen before), ``version`` the record's version
    (None for a tombstone, which retracts everything), ``refs`` the outputs of the record and
    ``e35_postcode`` the postcode its E35 report counts towards. A version equal to the stored
    one is handled again (a redelivery gives the same outputs). ``tracks_e35`` keeps the
    postcode in the new entry (the incidents' shape); notices leave it out.
    """
    if version is not None and previous is not None and previous["version"] > version:
        return Plan(stale=True)
    state: State | None = None
    if version is not None:
        state = {"version": version, "outputs": sorted(refs)}
        if tracks_e35:
            state["e35_postcode"] = e35_postcode
    if previous is None:
        return Plan(state=state)
    tombstones = tuple(
        (topic, key) for topic, key in previous["outputs"] if (topic, key) not in refs
    )
    old_postcode = previous.get("e35_postcode")
    moved = old_postcode if old_postcode and old_postcode != e35_postcode else None
    return Plan(tombstones=tombstones, retract_e35=moved, state=state)
