"""Who may receive what: the covenant's recipients and categories, as reviewable data.

The covenant ("Wijze van verstrekking") names the recipients: the responsible officer of the
Safety Unit (de verantwoordelijke binnen de Eenheid Veiligheid), including the members of the
enforcement meeting with the police (deelnemers aan het handhavingsoverleg), and the team
leader of Supervision and Enforcement (teamleider Toezicht en Handhaving), by e-mail with
automatic sending. Its list of categories ("Verstrekking ... beperkt zich tot") and purposes
("mogen worden gebruikt voor") decide which of them needs which category. ``ENTITLEMENTS`` is
that decision, one row per category, each with the covenant text it rests on, so a policy
officer can review it row by row. ``entitled_recipients`` is the one function that applies it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

LEGAL_BASIS = "art. 20 Wpg"
"""The covenant is also the decision meant in art. 20 Wet politiegegevens."""


class Role(StrEnum):
    """Recipient roles the covenant names; the configuration maps each to e-mail addresses."""

    SAFETY_UNIT_OFFICER = "safety_unit_officer"
    """De verantwoordelijke binnen de Eenheid Veiligheid."""
    ENFORCEMENT_MEETING_MEMBER = "enforcement_meeting_member"
    """Deelnemer aan het handhavingsoverleg met de politie."""
    ENFORCEMENT_TEAM_LEADER = "enforcement_team_leader"
    """Teamleider Toezicht en Handhaving (passes on to supervisors as far as their task needs)."""


class Category(StrEnum):
    """What a mail provides; the value is the ``category`` of its ``Provision`` record."""

    DAGMONITOR_DAILY = "dagmonitor_daily"
    HOTSPOTS = "hotspots"
    PERSON_NOTICE = "person_notice"
    VICTIM_NOTICE = "victim_notice"
    VEHICLE_NOTICE = "vehicle_notice"
    COVENANT_EVALUATION = "covenant_evaluation"


@dataclass(frozen=True, slots=True)
class Entitlement:
    """One row: a category, the roles that may receive it, why, and on which covenant text."""

    category: Category
    roles: tuple[Role, ...]
    personal_data: bool
    purpose: str
    """The purpose (doel) recorded with every provision of this category."""
    covenant: str
    """The covenant's words this row rests on (Dutch, quoted or closely paraphrased)."""
    rationale: str
    """Why exactly these roles: necessity for each role's task (noodzakelijkheid)."""


_ALL = (Role.SAFETY_UNIT_OFFICER, Role.ENFORCEMENT_MEETING_MEMBER, Role.ENFORCEMENT_TEAM_LEADER)

ENTITLEMENTS: Mapping[Category, Entitlement] = MappingProxyType(
    {
        Category.DAGMONITOR_DAILY: Entitlement(
            Category.DAGMONITOR_DAILY,
            _ALL,
            personal_data=False,
            purpose=(
                "Toezicht en handhaving in de wijken: dagelijks overzicht per wijk tot op "
                "postcodeniveau (Dagmonitor, Bijlage 1)"
            ),
            covenant="Dagelijkse verstrekking van een voor de Gemeente ontwikkelde versie van "
            "de Dagmonitor.",
            rationale="No persons, no vehicles; every named role plans supervision from it.",
        ),
        Category.HOTSPOTS: Entitlement(
            Category.HOTSPOTS,
            _ALL,
            personal_data=False,
            purpose=(
                "Bepalen van gezamenlijke inzet van politie en Toezicht en Handhaving op "
                "hotspotlocaties (cumulatieve Dagmonitor)"
            ),
            covenant="Tweewekelijkse verstrekking van de cumulatieve Dagmonitor ten behoeve van "
            "het bepalen van de hotspots; bepalen van gezamenlijke inzet ... op hotspotlocaties "
            "door de deelnemers van het handhavingsoverleg.",
            rationale="Counts only; the enforcement meeting chooses the hotspots, the team "
            "leader deploys supervisors there, the Safety Unit takes preventive measures.",
        ),
        Category.PERSON_NOTICE: Entitlement(
            Category.PERSON_NOTICE,
            (Role.SAFETY_UNIT_OFFICER, Role.ENFORCEMENT_TEAM_LEADER),
            personal_data=True,
            purpose=(
                "Herkennen en aanspreken van veelplegers en personen met een "
                "gebiedsontzegging; voorkomen en opsporen van strafbare feiten"
            ),
            covenant="NAW-gegevens en foto's van verdachten van strafbare feiten en veelplegers "
            "...; NAW-gegevens en foto's van personen die een gebiedsontzegging hebben. "
            "Persoonsgegevens worden slechts verstrekt aan de verantwoordelijke binnen de "
            "Eenheid Veiligheid ... en aan de teamleider van Toezicht en Handhaving.",
            rationale="Recognition happens on the street by supervisors, reached through their "
            "team leader; the Safety Unit's responsible officer is the named recipient. The "
            "enforcement meeting chooses hotspots and does not need names and photos for that.",
        ),
        Category.VICTIM_NOTICE: Entitlement(
            Category.VICTIM_NOTICE,
            (Role.SAFETY_UNIT_OFFICER,),
            personal_data=True,
            purpose=(
                "Bezoeken van slachtoffers van woninginbraak voor gerichte inbraakpreventieadviezen"
            ),
            covenant="NAW-gegevens, inclusief telefoonnummer, van slachtoffers van "
            "woninginbraak inclusief informatie omtrent de Modus Operandi ...; het contacteren "
            "van slachtoffers van woninginbraak m.b.t. het geven van gerichte "
            "inbraakpreventieadviezen.",
            rationale="The Safety Unit makes the prevention visits; supervisors and the "
            "enforcement meeting have no task that needs a victim's phone number.",
        ),
        Category.VEHICLE_NOTICE: Entitlement(
            Category.VEHICLE_NOTICE,
            (Role.ENFORCEMENT_TEAM_LEADER,),
            personal_data=True,
            purpose="Opsporen van gestolen voertuigen en voertuigen met gestolen kentekens",
            covenant="Kentekengegevens van auto's, brommers en scooters om gestolen voertuigen "
            "op te sporen.",
            rationale="Supervisors on the street spot the plates, reached through their team "
            "leader; no other role has a task that needs plates.",
        ),
        Category.COVENANT_EVALUATION: Entitlement(
            Category.COVENANT_EVALUATION,
            _ALL,
            personal_data=False,
            purpose=(
                "Evaluatie van het samenwerkingsverband in de laatste maand van de looptijd: "
                "werkwijze en noodzaak van de verstrekking"
            ),
            covenant="In de laatste maand van de looptijd van dit convenant worden de "
            "probleemsituatie en de werkwijze geëvalueerd om te kijken in hoeverre het doel is "
            "bereikt en of het verstrekken van gegevens ... nog noodzakelijk is.",
            rationale="Counts of how the method was used, none by place; every party's role "
            "that takes part in the evaluation receives it.",
        ),
    }
)


@dataclass(frozen=True, slots=True, order=True)
class Recipient:
    """One mailbox that receives one mail: the role it is entitled under, and its address."""

    role: Role
    address: str


def entitled_recipients(
    category: Category, recipients: Mapping[Role, Sequence[str]]
) -> list[Recipient]:
    """The configured mailboxes entitled to ``category``, each once, in the table's role order.

    An address configured under several entitled roles receives one mail, under the first of
    those roles in the table's order. Roles not entitled to the category never appear, whatever
    the configuration says. An empty list means: nobody may receive this category.
    """
    seen: set[str] = set()
    chosen: list[Recipient] = []
    for role in ENTITLEMENTS[category].roles:
        for address in recipients.get(role, ()):
            normalised = address.strip().lower()
            if normalised in seen:
                continue
            seen.add(normalised)
            chosen.append(Recipient(role, address.strip()))
    return chosen


def purpose_of(category: Category) -> str:
    """The purpose recorded with a provision of ``category``."""
    return ENTITLEMENTS[category].purpose
