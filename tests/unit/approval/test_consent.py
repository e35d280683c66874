"""The OM's standing consents without servers: granting, limits, revoking, who may."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dagmonitor.covenant import Term
from dagmonitor.gates import GateCategory
from services.approval import consent
from services.approval.access import ConsentCapability, Principal, consent_scope
from services.approval.api import BadRequest, parse_grant, parse_revoke
from services.approval.domain import AuditAction
from services.approval.errors import ConsentRevoked, InvalidConsent

AMS = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LIMIT = Term(date(2026, 4, 1), date(2027, 3, 31)).ends_at(AMS)


def _grant(**overrides: object) -> consent.Consent:
    values: dict[str, object] = {
        "consent_id": "consent-1",
        "category": GateCategory.DAGMONITOR,
        "reference": " OM/2026/0042 ",
        "valid_until": None,
        "actor": "om-officier-1",
        "now": NOW,
        "limit": LIMIT,
    }
    values.update(overrides)
    return consent.grant(**values)  # type: ignore[arg-type]


def test_the_limit_is_the_end_of_the_covenants_last_day() -> None:
    assert datetime(2027, 4, 1, 0, 0, tzinfo=AMS) == LIMIT


def test_a_grant_records_who_when_which_reference_and_until_the_covenants_end() -> None:
    granted = _grant()
    assert (granted.granted_by, granted.granted_at, granted.reference) == (
        "om-officier-1",
        NOW,
        "OM/2026/0042",
    )
    assert granted.valid_until == LIMIT
    assert granted.in_force(NOW) and granted.in_force(LIMIT - timedelta(seconds=1))
    assert not granted.in_force(LIMIT) and not granted.in_force(NOW - timedelta(seconds=1))
    audit = consent.audit_of_grant(granted)
    assert (audit.action, audit.consent_id, audit.request_id) == (
        AuditAction.CONSENT_GRANT,
        "consent-1",
        None,
    )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"reference": "   "}, "reference"),
        ({"reference": "x" * 201}, "reference"),
        ({"reference": "OM\x00"}, "reference"),
        ({"valid_until": NOW}, "valid_until"),
        ({"valid_until": LIMIT + timedelta(seconds=1)}, "valid_until"),
        ({"valid_until": datetime(2027, 1, 1)}, "valid_until"),  # no offset
    ],
)
def test_a_grant_breaking_a_rule_names_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidConsent) as raised:
        _grant(**overrides)
    assert raised.value.field == field


def test_revoking_holds_from_then_and_only_once() -> None:
    granted = _grant()
    later = NOW + timedelta(days=3)
    revoked = consent.revoke(granted, actor="om-officier-2", reason=" onderzoek ", now=later)
    assert (revoked.revoked_by, revoked.revoked_at, revoked.revoke_reason) == (
        "om-officier-2",
        later,
        "onderzoek",
    )
    assert granted.in_force(later) and not revoked.in_force(later)
    assert consent.audit_of_revoke(revoked).action is AuditAction.CONSENT_REVOKE
    with pytest.raises(ConsentRevoked):
        consent.revoke(revoked, actor="om-officier-2", reason="nogmaals", now=later)
    with pytest.raises(InvalidConsent):
        consent.revoke(granted, actor="om-officier-2", reason="  ", now=later)


def test_the_published_record_carries_every_field() -> None:
    record = _grant().record()
    assert set(record) == {
        "consent_id",
        "category",
        "granted_by",
        "granted_at",
        "reference",
        "valid_until",
        "revoked_at",
        "revoked_by",
        "revoke_reason",
    }
    assert record["category"] == "DAGMONITOR"


@pytest.mark.parametrize("value", ["VICTIM", "SUSPECT", "YOUTH_NUISANCE_DETAIL", "OTHER", 3])
def test_only_consent_categories_can_be_granted(value: object) -> None:
    with pytest.raises(InvalidConsent):
        consent.consent_category(value)


@pytest.mark.parametrize(
    ("roles", "allowed"),
    [
        ({"OM"}, {GateCategory.DAGMONITOR, GateCategory.VEHICLE_SIGNAL}),
        ({"OM", "POLICE_DISTRICT"}, {GateCategory.DAGMONITOR, GateCategory.VEHICLE_SIGNAL}),
        ({"POLICE_BURGLARY_TEAM"}, set()),
        ({"POLICE_DISTRICT"}, set()),
        ({"MUNICIPALITY_ANALYST"}, set()),
        (set(), set()),
    ],
)
def test_only_the_om_lists_grants_and_revokes(roles: set[str], allowed: set[GateCategory]) -> None:
    principal = Principal("x", frozenset(roles))
    for capability in ConsentCapability:
        assert consent_scope(principal, capability) == allowed


def test_grant_and_revoke_bodies() -> None:
    category, reference, until = parse_grant(
        b'{"category": "VEHICLE_SIGNAL", "reference": "OM/1", "valid_until": "2027-03-31"}', AMS
    )
    assert (category, reference) == (GateCategory.VEHICLE_SIGNAL, "OM/1")
    assert until is not None and until.date() == date(2027, 3, 31) and until.tzinfo is AMS
    assert parse_grant(b'{"category": "DAGMONITOR", "reference": "OM/1"}', AMS)[2] is None
    assert parse_revoke(b'{"reason": "ingetrokken"}') == "ingetrokken"
    for bad in (
        b"[]",
        b'{"category": "DAGMONITOR"}',
        b'{"category": "DAGMONITOR", "reference": "r", "by": "x"}',
        b'{"category": "DAGMONITOR", "reference": "r", "valid_until": "morgen"}',
        b'{"category": "DAGMONITOR", "reference": "r", "valid_until": 5}',
    ):
        with pytest.raises(BadRequest):
            parse_grant(bad, AMS)
    with pytest.raises(InvalidConsent):
        parse_grant(b'{"category": "VICTIM", "reference": "r"}', AMS)
    with pytest.raises(BadRequest):
        parse_revoke(b"{}")
