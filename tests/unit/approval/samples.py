"""Approval requests for tests, one per category. Every name and address here is invented."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.approval.domain import APPROVER_FOR, Category

CREATED_AT = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def subject(*, with_phone: bool = False) -> dict[str, Any]:
    return {
        "first_names": "Testje",
        "surname_prefix": "van",
        "surname": "Verzonnen",
        "birth_date": date(1999, 4, 1),
        "address": {
            "street": "Voorbeeldstraat",
            "house_number": 12,
            "house_number_suffix": "bis",
            "postcode": "3511AB",
            "city": "Utrecht",
        },
        "phone": "0600000000" if with_phone else None,
        "photo_ref": None if with_phone else "bvh://photos/0001",
    }


def approval_request(
    category: Category | str,
    request_id: str | None = None,
    *,
    created_at: datetime = CREATED_AT,
    expires_in: timedelta = timedelta(days=14),
    **overrides: Any,
) -> dict[str, Any]:
    """A valid ``ApprovalRequest`` of ``category`` (as the classifier would make it)."""
    category = Category(category)
    youth = category is Category.YOUTH_NUISANCE_DETAIL
    record: dict[str, Any] = {
        "request_id": request_id or f"req-{uuid.uuid4().hex}",
        "category": category.value,
        "approver_role": APPROVER_FOR[category].value,
        "source_key": "3511AB" if youth else "PL0900-2026012345",
        "source_version": 1,
        "mk_code": "E35" if youth else ("B20" if category is Category.VICTIM else "A20"),
        "district_code": "DC01",
        "subject": None if youth else subject(with_phone=category is Category.VICTIM),
        "modus_operandi": "Achterdeur geforceerd" if category is Category.VICTIM else None,
        "notice_kind": "REPEAT_OFFENDER" if category is Category.PERSON_OF_INTEREST else None,
        "valid_until": (
            CREATED_AT + timedelta(days=90) if category is Category.PERSON_OF_INTEREST else None
        ),
        "postcode": "3511AB",
        "created_at": created_at,
        "expires_at": created_at + expires_in,
    }
    record.update(overrides)
    return record
