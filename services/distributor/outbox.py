"""The outbox's plain parts: the message row as data, its identity, and the retry schedule.

Exactly once per recipient (docs/adr/0005-distributor-outbox.md): render, store, send, mark.
A message is stored, with its final bytes and its deterministic Message-ID, before any SMTP
conversation; the states a stored message goes through are::

    pending --claim--> sending --250--> sent          (body dropped, provision written)
       ^                 |  \\--error--> pending        (retry after ``retry.Backoff``)
       |                 |   \\-error, attempts used up--> failed (retried much later)
       \\--recovery-------/     (a 'sending' row whose sender died: re-sent, same Message-ID)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.distributor.entitlements import Recipient
from services.distributor.mail import compose, message_id, provision_id
from services.distributor.rendering import RecordRef, Rendered


class State(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One mail to one recipient, as stored before it is sent."""

    message_id: str
    provision_id: str
    kind: str
    period: str
    category: str
    recipient_role: str
    recipient_address: str
    subject: str
    body: bytes
    records: tuple[RecordRef, ...]
    withdraws: tuple[str, ...] = ()
    """For a withdrawal notice: the provisions whose records it withdraws."""


def address(
    rendered: Rendered,
    recipient: Recipient,
    *,
    sender: str,
    domain: str,
    date: datetime,
) -> OutboxMessage:
    """The outbox row of ``rendered`` for ``recipient``: identity fixed, bytes final."""
    mid = message_id(rendered.kind, rendered.period, recipient.address, domain)
    return OutboxMessage(
        message_id=mid,
        provision_id=provision_id(mid),
        kind=rendered.kind,
        period=rendered.period,
        category=rendered.category.value,
        recipient_role=recipient.role.value,
        recipient_address=recipient.address,
        subject=rendered.subject,
        body=compose(rendered, recipient, sender=sender, message_id_=mid, date=date),
        records=rendered.records,
    )
