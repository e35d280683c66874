"""One rendered report, addressed to one recipient: an RFC 5322 message with a fixed identity.

The Message-ID and the provision id are derived from (report kind, period or batch,
recipient address) only, so rendering the same report for the same recipient again (after a
crash, or by ``dagmonitor report`` on demand) gives the same identity: the outbox refuses a
second copy, and a mail re-sent after a crash carries the Message-ID of the first attempt.
The address is hashed, so the identity itself carries no address.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from services.distributor.entitlements import Recipient
from services.distributor.rendering import Rendered

_PROVISION_NAMESPACE = uuid.UUID("6f1c9a52-3d0e-4c55-9a57-2b9d8f0f4e21")

SENSITIVITY = "Company-Confidential"
"""The ``Sensitivity`` header (RFC 2156) of every mail: mail clients mark it confidential."""


def _digest(kind: str, period: str, address: str) -> str:
    identity = f"{kind}\n{period}\n{address.strip().lower()}"
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()


def message_id(kind: str, period: str, address: str, domain: str) -> str:
    """``<kind.digest@domain>``: the same inputs always give the same Message-ID.

    Short enough that the header is never folded (a folded Message-ID trips some parsers).
    """
    return f"<{kind}.{_digest(kind, period, address)[:24]}@{domain}>"


def provision_id(message_id_: str) -> str:
    """The provision register's id of the delivery of one message (a UUID derived from it)."""
    return str(uuid.uuid5(_PROVISION_NAMESPACE, message_id_))


def compose(
    rendered: Rendered,
    recipient: Recipient,
    *,
    sender: str,
    message_id_: str,
    date: datetime,
) -> bytes:
    """The message as bytes for SMTP (CRLF line ends): text and HTML alternatives, inline
    images in a ``multipart/related`` with the HTML, attachments after them; marked
    ``Sensitivity: Company-Confidential`` whatever its kind."""
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = recipient.address
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id_
    message["Sensitivity"] = SENSITIVITY
    message["X-Dagmonitor-Category"] = rendered.category.value
    message["X-Dagmonitor-Period"] = rendered.period
    message["X-Dagmonitor-Recipient-Role"] = recipient.role.value
    message.set_content(rendered.text, subtype="plain", charset="utf-8")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8")
    if rendered.inline:
        html_part = next(
            part for part in message.iter_parts() if part.get_content_type() == "text/html"
        )
        for part in rendered.inline:
            html_part.add_related(
                part.data, part.maintype, part.subtype, cid=f"<{part.cid}>", filename=part.filename
            )
    for part in rendered.attachments:
        params = {"charset": "utf-8"} if part.maintype == "text" else None
        message.add_attachment(
            part.data, part.maintype, part.subtype, filename=part.filename, params=params
        )
    return message.as_bytes()
