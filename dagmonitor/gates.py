"""The gates: per category, what must be on record before the police provide it.

The covenant: "De politie verstrekt slechts strafrechtelijke gegevens na toestemming van het
bevoegd gezag, zijnde het OM. Het OM toetst of er opsporings- en/of vervolgingsbelangen in het
geding zijn." For victims of residential burglary it adds "na afstemming met het inbrakenteam
van de politie", and the detail of youth nuisance per postcode rests on the district police.

Every category the pipeline provides passes exactly one gate, one row of ``GATES``:

- a **chain** of per-case approvals: each case is decided by the authorities in the row's
  order; only the last approval provides it; a rejection or expiry at any step ends it;
- a **standing consent**: the OM consents once for the whole category (who at the OM, when,
  the reference of its letter, valid until the covenant's end at the latest, revocable),
  recorded in the approval service (``dagmonitor consent grant``).

A category without a completed chain or a consent in force is not provided: it is held.
The approval service takes its chains from this table and the distributor its consents; a
test walks every row. Pure data and small functions: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class GateCategory(StrEnum):
    """What is provided, as the gates see it."""

    SUSPECT = "SUSPECT"  # NAW en foto van verdachten
    PERSON_OF_INTEREST = "PERSON_OF_INTEREST"  # veelplegers, gebiedsontzegging
    VICTIM = "VICTIM"  # slachtoffers van woninginbraak, met modus operandi
    YOUTH_NUISANCE_DETAIL = "YOUTH_NUISANCE_DETAIL"  # overlast jeugd op huisnummerniveau (E35)
    DAGMONITOR = "DAGMONITOR"  # dagelijkse Dagmonitor, aanvullingen, cumulatieve Dagmonitor
    VEHICLE_SIGNAL = "VEHICLE_SIGNAL"  # kentekens van gestolen auto's, brommers, scooters


class Authority(StrEnum):
    """Who may open a gate (the ``approver_role`` of a request, the role in a token)."""

    OM = "OM"  # Openbaar Ministerie: het bevoegd gezag
    POLICE_BURGLARY_TEAM = "POLICE_BURGLARY_TEAM"  # inbrakenteam van de politie
    POLICE_DISTRICT = "POLICE_DISTRICT"  # wijkpolitie


class GateKind(StrEnum):
    CHAIN = "chain"  # per case, by each authority of the chain in turn
    STANDING_CONSENT = "standing_consent"  # once for the category, by the OM, revocable


@dataclass(frozen=True, slots=True)
class Gate:
    """One row: the category, its gate, who opens it, and the covenant text it rests on."""

    category: GateCategory
    kind: GateKind
    authorities: tuple[Authority, ...]
    """The chain in order; for a standing consent, who may grant and revoke it."""
    covenant: str


GATE_ROWS: tuple[Gate, ...] = (
    Gate(
        GateCategory.SUSPECT,
        GateKind.CHAIN,
        (Authority.OM,),
        "NAW-gegevens en foto's van verdachten ...; slechts strafrechtelijke gegevens na "
        "toestemming van het bevoegd gezag, zijnde het OM.",
    ),
    Gate(
        GateCategory.PERSON_OF_INTEREST,
        GateKind.CHAIN,
        (Authority.OM,),
        "NAW-gegevens en foto's van personen die een gebiedsontzegging hebben of die al "
        "ruimschoots in de aandacht van de politie staan; na toestemming van het OM.",
    ),
    Gate(
        GateCategory.VICTIM,
        GateKind.CHAIN,
        (Authority.POLICE_BURGLARY_TEAM, Authority.OM),
        "NAW-gegevens, inclusief telefoonnummer, van slachtoffers van woninginbraak inclusief "
        "informatie omtrent de Modus Operandi ... na afstemming met het inbrakenteam van de "
        "politie; strafrechtelijke gegevens na toestemming van het OM.",
    ),
    Gate(
        GateCategory.YOUTH_NUISANCE_DETAIL,
        GateKind.CHAIN,
        (Authority.POLICE_DISTRICT,),
        "Overlast jeugd (E35) op huisnummerniveau 'ter hoogte van', bij escalatie in overleg "
        "met de wijkpolitie (Bijlage 1).",
    ),
    Gate(
        GateCategory.DAGMONITOR,
        GateKind.STANDING_CONSENT,
        (Authority.OM,),
        "Dagelijkse verstrekking van ... de Dagmonitor; tweewekelijkse verstrekking van de "
        "cumulatieve Dagmonitor; strafrechtelijke gegevens na toestemming van het OM.",
    ),
    Gate(
        GateCategory.VEHICLE_SIGNAL,
        GateKind.STANDING_CONSENT,
        (Authority.OM,),
        "Kentekengegevens van auto's brommers en scooters om gestolen voertuigen op te "
        "sporen; strafrechtelijke gegevens na toestemming van het OM.",
    ),
)
"""The gate table, one row per category."""

GATES: Mapping[GateCategory, Gate] = MappingProxyType({row.category: row for row in GATE_ROWS})


def gate_of(category: GateCategory | str) -> Gate:
    """The row of ``category``; KeyError when the table has none (nothing passes then)."""
    return GATES[GateCategory(category)]


def chain_of(category: GateCategory | str) -> tuple[Authority, ...]:
    """The authorities that decide a case of ``category``, in order; ValueError when the
    category passes by a standing consent instead."""
    gate = gate_of(category)
    if gate.kind is not GateKind.CHAIN:
        raise ValueError(f"{gate.category.value} passes by a standing consent, not per case")
    return gate.authorities


def needs_consent(category: GateCategory | str) -> bool:
    """Whether ``category`` is provided only while a standing consent is in force."""
    return gate_of(category).kind is GateKind.STANDING_CONSENT


def consent_authorities(category: GateCategory | str) -> tuple[Authority, ...]:
    """Who may grant and revoke the standing consent of ``category``."""
    gate = gate_of(category)
    if gate.kind is not GateKind.STANDING_CONSENT:
        raise ValueError(f"{gate.category.value} passes by per-case approvals, not a consent")
    return gate.authorities


CONSENT_CATEGORIES: tuple[GateCategory, ...] = tuple(
    row.category for row in GATE_ROWS if row.kind is GateKind.STANDING_CONSENT
)
"""The categories that pass by a standing consent."""
