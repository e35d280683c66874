"""The OM's standing consents (``dagmonitor.gates``): the rules as plain functions, no I/O.

A consent is granted by an OM officer for one category whose gate is a standing consent
(the Dagmonitor, stolen-vehicle plates), with the reference of the OM's letter, valid until a
moment no later than the covenant's end; it is in force from its grant until then, unless
revoked. At most one consent per category is unrevoked: a new grant supersedes the one before.
Its current state is published on ``approval.consents``, keyed by category.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from dagmonitor import gates
from services.approval.domain import MAX_REASON_LENGTH, AuditAction, AuditEntry
from services.approval.errors import ConsentRevoked, InvalidConsent

CONSENTS_TOPIC = "approval.consents"
MAX_REFERENCE_LENGTH = 200
SUPERSEDED = "superseded by consent {consent_id}"

_CONSENT_ID = re.compile(r"^[\x21-\x7e]{1,200}$")


def valid_consent_id(value: str) -> bool:
    return bool(_CONSENT_ID.match(value))


@dataclass(frozen=True, slots=True)
class Consent:
    """One standing consent, as stored and as published (``nl.dagmonitor.Consent``)."""

    consent_id: str
    category: gates.GateCategory
    granted_by: str
    granted_at: datetime
    reference: str
    valid_until: datetime
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    revoke_reason: str | None = None

    def in_force(self, now: datetime) -> bool:
        """Granted, not revoked, and ``now`` before ``valid_until``."""
        return self.revoked_at is None and self.granted_at <= now < self.valid_until

    def record(self) -> dict[str, Any]:
        """The ``nl.dagmonitor.Consent`` value."""
        return {
            "consent_id": self.consent_id,
            "category": self.category.value,
            "granted_by": self.granted_by,
            "granted_at": self.granted_at,
            "reference": self.reference,
            "valid_until": self.valid_until,
            "revoked_at": self.revoked_at,
            "revoked_by": self.revoked_by,
            "revoke_reason": self.revoke_reason,
        }


def consent_category(value: object) -> gates.GateCategory:
    """The category of a grant; InvalidConsent unless its gate is a standing consent."""
    try:
        category = gates.GateCategory(str(value))
    except ValueError:
        allowed = ", ".join(c.value for c in gates.CONSENT_CATEGORIES)
        raise InvalidConsent("category", f"must be one of: {allowed}") from None
    if not gates.needs_consent(category):
        raise InvalidConsent(
            "category", f"{category.value} passes by per-case approvals, not a standing consent"
        )
    return category


def grant(
    *,
    consent_id: str,
    category: gates.GateCategory,
    reference: str,
    valid_until: datetime | None,
    actor: str,
    now: datetime,
    limit: datetime,
) -> Consent:
    """A new consent; ``valid_until`` None means until ``limit`` (the covenant's end).

    Raises InvalidConsent naming the field when the reference is blank or too long, or
    ``valid_until`` is not after ``now`` or later than ``limit``.
    """
    reference = _plain_text("reference", reference, MAX_REFERENCE_LENGTH)
    until = limit if valid_until is None else valid_until
    if until.tzinfo is None:
        raise InvalidConsent("valid_until", "must carry a time zone offset")
    if until <= now:
        raise InvalidConsent("valid_until", "must lie in the future")
    if until > limit:
        raise InvalidConsent(
            "valid_until", f"must not lie after the covenant's end ({limit.isoformat()})"
        )
    return Consent(consent_id, category, actor, now, reference, until)


def revoke(consent: Consent, *, actor: str, reason: str, now: datetime) -> Consent:
    """``consent`` revoked by ``actor``; raises ConsentRevoked when it is revoked already and
    InvalidConsent when the reason is blank or too long."""
    reason = _plain_text("reason", reason, MAX_REASON_LENGTH)
    if consent.revoked_at is not None:
        raise ConsentRevoked("the consent is revoked already")
    return replace(consent, revoked_at=now, revoked_by=actor, revoke_reason=reason)


def _plain_text(field: str, value: str, max_length: int) -> str:
    """``value`` trimmed; InvalidConsent when blank, too long, or carrying control characters
    or lone surrogates (which neither PostgreSQL nor Avro can store)."""
    value = value.strip()
    if not value or len(value) > max_length:
        raise InvalidConsent(field, f"must be 1-{max_length} characters")
    if any(ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise InvalidConsent(field, "must not contain control characters")
    return value


def audit_of_grant(consent: Consent) -> AuditEntry:
    return AuditEntry(
        actor=consent.granted_by,
        action=AuditAction.CONSENT_GRANT,
        request_id=None,
        occurred_at=consent.granted_at,
        reason=f"{consent.category.value} until {consent.valid_until.isoformat()}",
        consent_id=consent.consent_id,
    )


def audit_of_revoke(consent: Consent) -> AuditEntry:
    if consent.revoked_at is None or consent.revoked_by is None:
        raise ValueError("the consent is not revoked")
    return AuditEntry(
        actor=consent.revoked_by,
        action=AuditAction.CONSENT_REVOKE,
        request_id=None,
        occurred_at=consent.revoked_at,
        reason=consent.revoke_reason,
        consent_id=consent.consent_id,
    )
