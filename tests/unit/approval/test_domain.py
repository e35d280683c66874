"""The approval rules without servers: transitions, deciding, request checks, payloads."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from dagmonitor import topics
from dagmonitor.codec import default_codec
from services.approval import domain
from services.approval.domain import (
    Action,
    ApproverRole,
    AuditAction,
    Category,
    RequestState,
    Status,
)
from services.approval.errors import (
    InvalidRequest,
    InvalidTransition,
    ReasonRequired,
    RequestExpired,
)
from tests.unit.approval.samples import CREATED_AT, approval_request

# The covenant's life of a request, written out by hand (not derived from TRANSITIONS).
ALLOWED = {
    (Status.PENDING, Action.APPROVE): Status.APPROVED,
    (Status.PENDING, Action.ADVANCE): Status.PENDING,  # an earlier step of a chain approved
    (Status.PENDING, Action.REJECT): Status.REJECTED,
    (Status.PENDING, Action.EXPIRE): Status.EXPIRED,
}
EVERY_PAIR = list(itertools.product(Status, Action))
OFFICER_PAIRS = [(s, a) for s, a in EVERY_PAIR if a is not Action.ADVANCE]


@pytest.mark.parametrize(("current", "action"), EVERY_PAIR, ids=lambda v: str(v))
def test_transition_table(current: Status, action: Action) -> None:
    if (current, action) in ALLOWED:
        assert domain.transition(current, action) is ALLOWED[(current, action)]
    else:
        with pytest.raises(InvalidTransition, match=f"state {current.value}"):
            domain.transition(current, action)


def test_the_table_is_exactly_the_covenants() -> None:
    assert dict(domain.TRANSITIONS) == ALLOWED


def _state(status: Status = Status.PENDING, *, deadline_in: timedelta = timedelta(days=1)):
    return RequestState(
        "req-1", Category.SUSPECT, ApproverRole.OM, status, CREATED_AT + deadline_in
    )


@pytest.mark.parametrize(("current", "action"), OFFICER_PAIRS, ids=lambda v: str(v))
def test_decide_follows_the_table(current: Status, action: Action) -> None:
    reason = "onderzoeksbelang" if action is Action.REJECT else None
    if (current, action) not in ALLOWED:
        with pytest.raises(InvalidTransition):
            domain.decide(_state(current), action, actor="om-1", reason=reason, now=CREATED_AT)
        return
    decision = domain.decide(_state(current), action, actor="om-1", reason=reason, now=CREATED_AT)
    assert decision.outcome is ALLOWED[(current, action)]
    assert decision.decided_at == CREATED_AT
    if action is Action.EXPIRE:
        assert decision.decided_by == "system" and decision.reason == domain.EXPIRY_REASON
        assert domain.audit_of(decision).action is AuditAction.EXPIRY
    else:
        assert decision.decided_by == "om-1" and decision.reason == reason
        assert domain.audit_of(decision).action is AuditAction.DECISION
    assert decision.deletes_personal_data == (decision.outcome is not Status.APPROVED)


@pytest.mark.parametrize("reason", [None, "", "   \n"])
def test_reject_needs_a_reason(reason: str | None) -> None:
    with pytest.raises(ReasonRequired):
        domain.decide(_state(), Action.REJECT, actor="om-1", reason=reason, now=CREATED_AT)


def test_reason_is_trimmed_and_optional_on_approve() -> None:
    approve = domain.decide(_state(), Action.APPROVE, actor="om-1", reason=None, now=CREATED_AT)
    assert approve.reason is None
    reject = domain.decide(_state(), Action.REJECT, actor="om-1", reason=" nee ", now=CREATED_AT)
    assert reject.reason == "nee"


def test_an_officer_cannot_decide_after_the_deadline() -> None:
    state = _state(deadline_in=timedelta(0))
    with pytest.raises(RequestExpired):
        domain.decide(state, Action.APPROVE, actor="om-1", reason=None, now=CREATED_AT)
    expired = domain.decide(state, Action.EXPIRE, actor="x", reason=None, now=CREATED_AT)
    assert expired.outcome is Status.EXPIRED


def test_deadline_is_the_sooner_of_expires_at_and_the_configured_period() -> None:
    soon = domain.parse_request(approval_request("SUSPECT", expires_in=timedelta(days=3)))
    assert soon.deadline(timedelta(days=14)) == CREATED_AT + timedelta(days=3)
    late = domain.parse_request(approval_request("SUSPECT", expires_in=timedelta(days=30)))
    assert late.deadline(timedelta(days=14)) == CREATED_AT + timedelta(days=14)


@pytest.mark.parametrize("category", list(Category))
def test_every_category_parses(category: Category) -> None:
    request = domain.parse_request(approval_request(category, "req-abc"))
    assert request.category is category
    assert request.approver_role is domain.APPROVER_FOR[category]


@pytest.mark.parametrize(
    ("category", "overrides", "field"),
    [
        ("SUSPECT", {"approver_role": "POLICE_DISTRICT"}, "approver_role"),
        ("VICTIM", {"approver_role": "OM"}, "approver_role"),
        ("YOUTH_NUISANCE_DETAIL", {"approver_role": "OM"}, "approver_role"),
        ("SUSPECT", {"subject": None}, "subject"),
        ("PERSON_OF_INTEREST", {"subject": None}, "subject"),
        ("VICTIM", {"mk_code": None}, "mk_code"),
        ("YOUTH_NUISANCE_DETAIL", {"postcode": None}, "postcode"),
        ("YOUTH_NUISANCE_DETAIL", {"subject": {"surname": "X"}}, "subject"),
        ("SUSPECT", {"request_id": ""}, "request_id"),
        ("SUSPECT", {"request_id": "has space"}, "request_id"),
        ("SUSPECT", {"request_id": "x" * 201}, "request_id"),
        ("SUSPECT", {"category": "NOPE"}, "category"),
    ],
)
def test_contract_breaches_are_refused_naming_the_field(
    category: str, overrides: dict[str, object], field: str
) -> None:
    record = {**approval_request(category), **overrides}
    with pytest.raises(InvalidRequest) as raised:
        domain.parse_request(record)
    assert field in raised.value.field
    assert "Verzonnen" not in str(raised.value)


@pytest.mark.parametrize("category", list(Category))
def test_emissions_per_category_encode_with_the_topic_schemas(category: Category) -> None:
    request = domain.parse_request(approval_request(category, "req-abc"))
    chain = domain.CHAINS[category]  # the chain's last step: its approval provides
    state = RequestState(
        "req-abc", category, chain[-1], Status.PENDING, request.expires_at, len(chain) - 1
    )
    approved = domain.decide(state, Action.APPROVE, actor="officer-7", reason=None, now=CREATED_AT)
    out = domain.emissions(approved, request, escalation_valid=timedelta(days=28))
    assert [e.topic for e in out] == ["approval.decisions", domain.APPROVED_TOPIC[category]]
    codec = default_codec()
    for emission in out:  # the codec refuses a value that does not fit the topic's schema
        codec.encode(topics.get(emission.topic).schema, emission.value)
    decision, payload = out
    assert decision.key == "req-abc" and decision.value["decision"] == "APPROVED"
    assert payload.value["approved_by"] == "officer-7"
    if category is Category.YOUTH_NUISANCE_DETAIL:
        assert payload.key == "3511AB"
        assert payload.value["valid_until"] - payload.value["valid_from"] == timedelta(days=28)
    else:
        assert payload.key == "req-abc"
        assert payload.value["person"]["surname"] == "Verzonnen"

    rejected = domain.decide(state, Action.REJECT, actor="officer-7", reason="nee", now=CREATED_AT)
    only = domain.emissions(rejected, None, escalation_valid=timedelta(days=28))
    assert [(e.topic, e.value["decision"]) for e in only] == [("approval.decisions", "REJECTED")]
    assert "person" not in only[0].value and "subject" not in only[0].value


@pytest.mark.parametrize(
    ("age", "bucket"),
    [
        (timedelta(0), "0-1d"),
        (timedelta(hours=23), "0-1d"),
        (timedelta(days=1), "1-3d"),
        (timedelta(days=6, hours=23), "3-7d"),
        (timedelta(days=13), "7-14d"),
        (timedelta(days=14), "14d+"),
        (timedelta(days=400), "14d+"),
    ],
)
def test_age_buckets(age: timedelta, bucket: str) -> None:
    assert domain.age_bucket(age) == bucket


@pytest.mark.parametrize(
    ("value", "valid"),
    [("req-" + "a" * 32, True), ("a", True), ("", False), ("a/b c", False), ("é", False)],
)
def test_request_id_shape(value: str, valid: bool) -> None:
    assert domain.valid_request_id(value) is valid


# -- approval chains (dagmonitor/gates.py) -------------------------------------------------


def test_chains_are_the_gate_tables() -> None:
    assert dict(domain.CHAINS) == {
        Category.SUSPECT: (ApproverRole.OM,),
        Category.PERSON_OF_INTEREST: (ApproverRole.OM,),
        Category.VICTIM: (ApproverRole.POLICE_BURGLARY_TEAM, ApproverRole.OM),
        Category.YOUTH_NUISANCE_DETAIL: (ApproverRole.POLICE_DISTRICT,),
    }
    assert domain.APPROVER_FOR[Category.VICTIM] is ApproverRole.POLICE_BURGLARY_TEAM


def _victim(step: int) -> RequestState:
    role = domain.CHAINS[Category.VICTIM][step]
    return RequestState(
        "req-v", Category.VICTIM, role, Status.PENDING, CREATED_AT + timedelta(days=1), step
    )


def test_the_burglary_teams_approval_passes_a_victim_on_to_the_om_and_provides_nothing() -> None:
    request = domain.parse_request(approval_request(Category.VICTIM, "req-v"))
    step = domain.decide(_victim(0), Action.APPROVE, actor="inbraak-1", reason=None, now=CREATED_AT)
    assert step.outcome is Status.PENDING and not step.final
    assert (step.next_role, step.next_step) == (ApproverRole.OM, 1)
    assert not step.deletes_personal_data
    assert domain.emissions(step, request, escalation_valid=timedelta(days=28)) == []
    audit = domain.audit_of(step)
    assert (audit.action, audit.actor, audit.approver_role, audit.outcome) == (
        AuditAction.STEP,
        "inbraak-1",
        ApproverRole.POLICE_BURGLARY_TEAM,
        Status.APPROVED,
    )


def test_the_oms_approval_after_the_burglary_team_provides_the_victim() -> None:
    request = domain.parse_request(approval_request(Category.VICTIM, "req-v"))
    final = domain.decide(_victim(1), Action.APPROVE, actor="om-1", reason=None, now=CREATED_AT)
    assert final.outcome is Status.APPROVED and final.next_role is None
    out = domain.emissions(final, request, escalation_valid=timedelta(days=28))
    assert [e.topic for e in out] == ["approval.decisions", "victims.approved"]
    assert out[0].value["approver_role"] == "OM" and out[1].value["approved_by"] == "om-1"
    assert domain.audit_of(final).action is AuditAction.DECISION


@pytest.mark.parametrize("step", [0, 1])
def test_a_rejection_or_expiry_at_any_step_ends_the_chain(step: int) -> None:
    for action, outcome in ((Action.REJECT, Status.REJECTED), (Action.EXPIRE, Status.EXPIRED)):
        decision = domain.decide(
            _victim(step),
            action,
            actor="x",
            reason="nee",
            now=CREATED_AT + timedelta(days=2) if action is Action.EXPIRE else CREATED_AT,
        )
        assert decision.outcome is outcome and decision.final
        assert decision.deletes_personal_data


def test_a_state_out_of_step_with_its_chain_is_refused() -> None:
    wrong = RequestState(
        "req-v", Category.VICTIM, ApproverRole.OM, Status.PENDING, CREATED_AT + timedelta(days=1)
    )
    with pytest.raises(ValueError, match="chain"):
        domain.decide(wrong, Action.APPROVE, actor="om-1", reason=None, now=CREATED_AT)
    with pytest.raises(ValueError, match="chain"):
        domain.decide(_victim(0), Action.ADVANCE, actor="x", reason=None, now=CREATED_AT)
