"""The approval rules as data and plain functions: no I/O, no Kafka, no PostgreSQL.

Covenant: the police provide criminal data only after the OM (Openbaar Ministerie) has checked
that no investigation or prosecution interest is harmed; victim data of burglaries only after
coordination with the burglary team (inbrakenteam) and then the OM's consent; youth-nuisance
detail per postcode after the district police (wijkpolitie) agreed. Who decides, and in which
order, is the gate table (``dagmonitor.gates``): ``CHAINS`` is read from it. A request is
decided once by each authority of its chain in turn; its life is the transition table
``TRANSITIONS``, enforced by ``transition`` and nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from dagmonitor import gates
from services.approval.errors import (
    InvalidRequest,
    InvalidTransition,
    ReasonRequired,
    RequestExpired,
)


class Category(StrEnum):
    """What a request asks to share (``nl.dagmonitor.ApprovalCategory``)."""

    SUSPECT = "SUSPECT"  # verdachte
    VICTIM = "VICTIM"  # slachtoffer woninginbraak
    PERSON_OF_INTEREST = "PERSON_OF_INTEREST"  # veelpleger, gebiedsontzegging, bekende dader
    YOUTH_NUISANCE_DETAIL = "YOUTH_NUISANCE_DETAIL"  # huisnummerniveau overlast jeugd (E35)


class ApproverRole(StrEnum):
    """Who decides (``nl.dagmonitor.ApproverRole``)."""

    OM = "OM"  # Openbaar Ministerie
    POLICE_BURGLARY_TEAM = "POLICE_BURGLARY_TEAM"  # inbrakenteam
    POLICE_DISTRICT = "POLICE_DISTRICT"  # wijkpolitie


class Status(StrEnum):
    """Where a request is in its life; the final ones are ``DecisionOutcome`` symbols."""

    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


class Action(StrEnum):
    """What can happen to a request."""

    APPROVE = "APPROVE"  # the last authority of the chain approves: provided
    ADVANCE = "ADVANCE"  # an earlier authority approves: on to the chain's next authority
    REJECT = "REJECT"
    EXPIRE = "EXPIRE"


TRANSITIONS: Mapping[tuple[Status, Action], Status] = MappingProxyType(
    {
        (Status.PENDING, Action.APPROVE): Status.APPROVED,
        (Status.PENDING, Action.ADVANCE): Status.PENDING,
        (Status.PENDING, Action.REJECT): Status.REJECTED,
        (Status.PENDING, Action.EXPIRE): Status.EXPIRED,
    }
)
"""Every allowed state change; anything not listed is refused. A final decision is final;
an ``ADVANCE`` keeps the request pending, at its chain's next step."""

REASON_REQUIRED: frozenset[Action] = frozenset({Action.REJECT})
"""Actions that must say why (ARCHITECTURE.md, section 6: reason required on reject)."""

DELETES_PERSONAL_DATA: frozenset[Status] = frozenset({Status.REJECTED, Status.EXPIRED})
"""States in which the subject's personal data is deleted at once."""

CHAINS: Mapping[Category, tuple[ApproverRole, ...]] = MappingProxyType(
    {
        category: tuple(ApproverRole(a.value) for a in gates.chain_of(category.value))
        for category in Category
    }
)
"""Who decides a request of each category, in order: the gate table's chains."""

APPROVER_FOR: Mapping[Category, ApproverRole] = MappingProxyType(
    {category: chain[0] for category, chain in CHAINS.items()}
)
"""The first authority of each chain: the ``approver_role`` a request arrives with."""

APPROVED_TOPIC: Mapping[Category, str] = MappingProxyType(
    {
        Category.SUSPECT: "persons.approved",
        Category.PERSON_OF_INTEREST: "persons.approved",
        Category.VICTIM: "victims.approved",
        Category.YOUTH_NUISANCE_DETAIL: "escalations.approved",
    }
)
"""Where an approved request's payload goes."""

DECISIONS_TOPIC = "approval.decisions"
SYSTEM_ACTOR = "system"
"""``decided_by`` of an expiry and ``who`` of the system's audit rows."""
EXPIRY_REASON = "not decided before the deadline"
MAX_REASON_LENGTH = 2000
MAX_ACTOR_LENGTH = 200

_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,200}$")


def valid_request_id(value: str) -> bool:
    """A request id is 1-200 visible ASCII characters (the classifier's ids are hashes)."""
    return bool(_REQUEST_ID.match(value))


def transition(current: Status, action: Action) -> Status:
    """The state after ``action`` on a request in ``current``; raises InvalidTransition."""
    try:
        return TRANSITIONS[(current, action)]
    except KeyError:
        raise InvalidTransition(current.value, action.value) from None


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A validated ``ApprovalRequest`` record. ``record`` keeps every field as decoded."""

    request_id: str
    category: Category
    approver_role: ApproverRole
    created_at: datetime
    expires_at: datetime
    mk_code: str | None
    district_code: str | None
    record: Mapping[str, Any]

    def deadline(self, expiry: timedelta) -> datetime:
        """When a pending request expires: the request's own ``expires_at``, or ``expiry``
        after ``created_at`` when that comes first (the service's configured period)."""
        return min(self.expires_at, self.created_at + expiry)


def parse_request(record: Mapping[str, Any]) -> ApprovalRequest:
    """Check a decoded ``ApprovalRequest`` against the contract's rules.

    Raises InvalidRequest naming the field (never its value) when the request id is not
    usable, the approver is not the competent one for the category, or a field the category
    needs is missing (or one it must not carry is present).
    """
    request_id = record.get("request_id")
    if not isinstance(request_id, str) or not valid_request_id(request_id):
        raise InvalidRequest("request_id", "must be 1-200 visible ASCII characters")
    try:
        category = Category(str(record.get("category")))
        approver_role = ApproverRole(str(record.get("approver_role")))
    except ValueError as exc:
        raise InvalidRequest("category/approver_role", "unknown symbol") from exc
    if APPROVER_FOR[category] is not approver_role:
        raise InvalidRequest(
            "approver_role", f"{category.value} is decided by {APPROVER_FOR[category].value}"
        )
    subject = record.get("subject")
    if category is Category.YOUTH_NUISANCE_DETAIL:
        if not record.get("postcode"):
            raise InvalidRequest("postcode", f"required for {category.value}")
        if subject is not None:
            raise InvalidRequest("subject", f"must be null for {category.value}")
    elif subject is None:
        raise InvalidRequest("subject", f"required for {category.value}")
    if category is Category.VICTIM and not record.get("mk_code"):
        raise InvalidRequest("mk_code", f"required for {category.value}")
    created_at, expires_at = record.get("created_at"), record.get("expires_at")
    if not isinstance(created_at, datetime) or not isinstance(expires_at, datetime):
        raise InvalidRequest("created_at/expires_at", "must be timestamps")
    return ApprovalRequest(
        request_id=request_id,
        category=category,
        approver_role=approver_role,
        created_at=created_at,
        expires_at=expires_at,
        mk_code=record.get("mk_code"),
        district_code=record.get("district_code"),
        record=MappingProxyType(dict(record)),
    )


@dataclass(frozen=True, slots=True)
class RequestState:
    """What deciding needs to know of a stored request."""

    request_id: str
    category: Category
    approver_role: ApproverRole
    status: Status
    deadline: datetime
    step: int = 0
    """Index into the category's chain: whose turn it is (``approver_role`` is its role)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """A decision of one step: the new state, who (in which role), when and why.

    ``next_role`` is set when the step passed the request on to the chain's next authority
    (the request stays pending); otherwise the decision is final.
    """

    request_id: str
    category: Category
    approver_role: ApproverRole
    outcome: Status
    decided_by: str
    decided_at: datetime
    reason: str | None
    next_role: ApproverRole | None = None
    next_step: int | None = None
    requested_at: datetime | None = None
    """When the request was created (its waiting time is counted in the evaluation report)."""

    @property
    def final(self) -> bool:
        return self.outcome is not Status.PENDING

    @property
    def deletes_personal_data(self) -> bool:
        return self.outcome in DELETES_PERSONAL_DATA


def normalise_reason(reason: str | None) -> str | None:
    """Trimmed reason, or None when blank."""
    if reason is None:
        return None
    reason = reason.strip()
    return reason or None


def decide(
    state: RequestState, action: Action, *, actor: str, reason: str | None, now: datetime
) -> Decision:
    """Decide on a request: the transition table, the reason rule and the deadline.

    An officer's ``APPROVE`` at a step that is not the chain's last is an ``ADVANCE``: the
    request passes to the next authority. Raises ReasonRequired (reject without reason),
    InvalidTransition (already decided) or RequestExpired (an officer's decision after the
    deadline: the request must expire).
    """
    reason = normalise_reason(reason)
    if action in REASON_REQUIRED and reason is None:
        raise ReasonRequired(f"a reason is required to {action.value.lower()}")
    if action is Action.ADVANCE:
        raise ValueError("an officer approves; whether that advances is the chain's to say")
    chain = CHAINS[state.category]
    if state.approver_role is not chain[state.step]:
        raise ValueError("the request's approver role is not its chain's current step")
    last = state.step == len(chain) - 1
    if action is Action.APPROVE and not last:
        action = Action.ADVANCE
    outcome = transition(state.status, action)
    if action is not Action.EXPIRE and now >= state.deadline:
        raise RequestExpired("the request passed its deadline and expires instead")
    if action is Action.EXPIRE:
        actor, reason = SYSTEM_ACTOR, reason or EXPIRY_REASON
    advanced = action is Action.ADVANCE
    return Decision(
        request_id=state.request_id,
        category=state.category,
        approver_role=state.approver_role,
        outcome=outcome,
        decided_by=actor,
        decided_at=now,
        reason=reason,
        next_role=chain[state.step + 1] if advanced else None,
        next_step=state.step + 1 if advanced else None,
    )


@dataclass(frozen=True, slots=True)
class Emission:
    """One record to publish: contract topic, key, value (a dict of the topic's schema)."""

    topic: str
    key: str
    value: dict[str, Any]


def emissions(
    decision: Decision, request: ApprovalRequest | None, *, escalation_valid: timedelta
) -> list[Emission]:
    """The records a decision publishes: nothing for a step that passes the request on; for a
    final decision the ``ApprovalDecision``, and on approval also the payload on its approved
    topic (``request`` is then required)."""
    if not decision.final:
        return []
    out = [
        Emission(
            DECISIONS_TOPIC,
            decision.request_id,
            {
                "request_id": decision.request_id,
                "decision": decision.outcome.value,
                "category": decision.category.value,
                "approver_role": decision.approver_role.value,
                "decided_by": decision.decided_by,
                # An officer's free text may name the person, and a record on this delete-only
                # topic cannot be erased: the reason stays in the approval service, beside the
                # audit log, erased with the request's personal data (ADR 0019).
                "reason": None,
                "decided_at": decision.decided_at,
                "requested_at": decision.requested_at,
            },
        )
    ]
    if decision.outcome is not Status.APPROVED:
        return out
    if request is None:
        raise ValueError("an approval needs the request it approves")
    out.append(_approved_payload(decision, request, escalation_valid))
    return out


def _approved_payload(
    decision: Decision, request: ApprovalRequest, escalation_valid: timedelta
) -> Emission:
    record = request.record
    topic = APPROVED_TOPIC[request.category]
    common = {"approved_by": decision.decided_by, "approved_at": decision.decided_at}
    match request.category:
        case Category.SUSPECT | Category.PERSON_OF_INTEREST:
            value = {
                "request_id": request.request_id,
                "category": request.category.value,
                "source_key": record["source_key"],
                "mk_code": record.get("mk_code"),
                "district_code": record.get("district_code"),
                "person": record["subject"],
                "notice_kind": record.get("notice_kind"),
                "valid_until": record.get("valid_until"),
                **common,
            }
            return Emission(topic, request.request_id, value)
        case Category.VICTIM:
            value = {
                "request_id": request.request_id,
                "source_key": record["source_key"],
                "mk_code": record["mk_code"],
                "district_code": record.get("district_code"),
                "person": record["subject"],
                "modus_operandi": record.get("modus_operandi"),
                **common,
            }
            return Emission(topic, request.request_id, value)
        case Category.YOUTH_NUISANCE_DETAIL:
            postcode = record["postcode"]
            value = {
                "postcode": postcode,
                "request_id": request.request_id,
                "valid_from": decision.decided_at,
                "valid_until": decision.decided_at + escalation_valid,
                **common,
            }
            return Emission(topic, postcode, value)
    raise AssertionError(f"no approved payload for {request.category}")  # pragma: no cover


class AuditAction(StrEnum):
    """What an audit row records (``what``)."""

    VIEW = "view"  # an officer saw a request's personal data
    STEP = "step"  # an officer approved a step of a chain: on to the next authority
    DECISION = "decision"  # an officer took the final decision: approved or rejected
    EXPIRY = "expiry"  # the deadline passed undecided
    ERASURE = "erasure"  # a tombstone on approval.requests deleted the personal data
    CONSENT_GRANT = "consent_grant"  # the OM granted a standing consent
    CONSENT_REVOKE = "consent_revoke"  # the OM revoked one (or a new grant superseded it)
    COVENANT_RENEWAL = "covenant_renewal"  # the covenant was renewed (verlenging)
    COVENANT_END = "covenant_end"  # the parties ended it early (tussentijdse beëindiging)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the append-only audit log: who, what, which request or consent, when, why.
    ``approver_role`` is the role a decision or step was taken in."""

    actor: str
    action: AuditAction
    request_id: str | None
    occurred_at: datetime
    outcome: Status | None = None
    reason: str | None = None
    consent_id: str | None = None
    approver_role: ApproverRole | None = None
    covenant_event_id: int | None = None


def audit_of(decision: Decision) -> AuditEntry:
    """The audit row of a decision (an expiry and a chain's step are recorded as such)."""
    if decision.outcome is Status.EXPIRED:
        action = AuditAction.EXPIRY
    elif decision.final:
        action = AuditAction.DECISION
    else:
        action = AuditAction.STEP
    return AuditEntry(
        actor=decision.decided_by,
        action=action,
        request_id=decision.request_id,
        occurred_at=decision.decided_at,
        outcome=decision.outcome if decision.final else Status.APPROVED,
        reason=decision.reason,
        approver_role=decision.approver_role,
    )


AGE_BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    ("0-1d", timedelta(days=1)),
    ("1-3d", timedelta(days=3)),
    ("3-7d", timedelta(days=7)),
    ("7-14d", timedelta(days=14)),
    ("14d+", None),
)
"""Age buckets of pending requests for the metric: (label, exclusive upper bound)."""


def age_bucket(age: timedelta) -> str:
    """The label of the bucket ``age`` falls in."""
    for label, bound in AGE_BUCKETS:
        if bound is None or age < bound:
            return label
    raise AssertionError("the last bucket is unbounded")  # pragma: no cover


RETRACTED_WHEN_WITHDRAWN: frozenset[Category] = frozenset(
    {Category.SUSPECT, Category.PERSON_OF_INTEREST, Category.VICTIM}
)
"""Approved payloads a withdrawal of their source retracts (a tombstone on the approved topic).

Not YOUTH_NUISANCE_DETAIL: its escalation is about a postcode area, not about one report, and
it ends by itself at its ``valid_until``; it carries no personal data."""


def retraction(request_id: str, category: Category) -> tuple[str, str] | None:
    """(topic, key) of the tombstone that retracts an approved request whose source the police
    withdrew, or None when its category is not retracted."""
    if category not in RETRACTED_WHEN_WITHDRAWN:
        return None
    return APPROVED_TOPIC[category], request_id
