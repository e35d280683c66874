"""Who may do what, as a table: token roles grant capabilities on approver roles' requests.

A capability is checked, never a role name: the handlers ask ``scope(principal, capability)``
for the approver roles whose requests the caller may touch, and the store filters by it. A
request outside that scope is answered exactly like a missing one (404), so nobody learns
that a request for another authority exists. A token with none of these roles sees nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from dagmonitor.gates import CONSENT_CATEGORIES, GateCategory, consent_authorities
from services.approval.domain import ApproverRole


class Capability(StrEnum):
    """What an officer can do with requests of an approver role."""

    LIST = "list"  # see the pending summaries (no personal data)
    VIEW = "view"  # see a request's personal data, for review (audited)
    DECIDE = "decide"  # approve or reject


_ALL = frozenset(Capability)

GRANTS: Mapping[str, Mapping[ApproverRole, frozenset[Capability]]] = MappingProxyType(
    {
        # The public prosecutor decides on suspects and persons of interest.
        "OM": {ApproverRole.OM: _ALL},
        # The burglary team (inbrakenteam) decides on victims of residential burglary.
        "POLICE_BURGLARY_TEAM": {ApproverRole.POLICE_BURGLARY_TEAM: _ALL},
        # The district police (wijkpolitie) decide on youth-nuisance detail per postcode.
        "POLICE_DISTRICT": {ApproverRole.POLICE_DISTRICT: _ALL},
    }
)
"""Token role (claim ``roles``) -> approver role -> capabilities. Unlisted roles grant nothing."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: the token's ``sub`` and ``roles``."""

    sub: str
    roles: frozenset[str]


def scope(principal: Principal, capability: Capability) -> frozenset[ApproverRole]:
    """The approver roles whose requests ``principal`` may ``capability``."""
    return frozenset(
        approver
        for role in principal.roles
        for approver, capabilities in GRANTS.get(role, {}).items()
        if capability in capabilities
    )


def roles_granting(capability: Capability, approver: ApproverRole) -> Iterable[str]:
    """The token roles that grant ``capability`` on ``approver``'s requests (for tests, docs)."""
    return sorted(role for role, grants in GRANTS.items() if capability in grants.get(approver, ()))


class ConsentCapability(StrEnum):
    """What an officer can do with the standing consents of a category."""

    LIST = "list_consents"
    GRANT = "grant_consent"
    REVOKE = "revoke_consent"


CONSENT_GRANTS: Mapping[str, frozenset[ConsentCapability]] = MappingProxyType(
    {
        # The OM is the competent authority (het bevoegd gezag) for every standing consent.
        "OM": frozenset(ConsentCapability),
    }
)
"""Token role -> what it may do with the consents of the categories it is the gate table's
authority for (``dagmonitor.gates.consent_authorities``). Unlisted roles may do nothing."""


def consent_scope(principal: Principal, capability: ConsentCapability) -> frozenset[GateCategory]:
    """The categories whose standing consents ``principal`` may ``capability``."""
    return frozenset(
        category
        for category in CONSENT_CATEGORIES
        for role in principal.roles
        if capability in CONSENT_GRANTS.get(role, ())
        and role in {a.value for a in consent_authorities(category)}
    )


class CovenantCapability(StrEnum):
    """What an officer can do with the covenant's term (dagmonitor/covenant.py)."""

    RECORD = "record_covenant_event"  # record a renewal or an early end


COVENANT_GRANTS: Mapping[str, frozenset[CovenantCapability]] = MappingProxyType(
    {
        # The OM (het bevoegd gezag) signs the covenant with the police chief and records
        # for the parties what they decided; any authenticated officer may read the term.
        "OM": frozenset(CovenantCapability),
    }
)
"""Token role -> what it may do with the covenant's term. Unlisted roles may only read it."""


def may(principal: Principal, capability: CovenantCapability) -> bool:
    """Whether ``principal`` holds ``capability`` on the covenant's term."""
    return any(capability in COVENANT_GRANTS.get(role, ()) for role in principal.roles)
