"""The SMTP sink: a real SMTP conversation in, one ``.eml`` file per envelope out."""

from __future__ import annotations

import email
import uuid
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from urllib.parse import urlsplit

import aiosmtplib
import pytest

from dagmonitor.settings import DagmonitorSettings, local_dir

pytestmark = pytest.mark.integration


async def test_mail_is_stored_with_its_envelope(stack: DagmonitorSettings) -> None:
    smtp = urlsplit(stack.smtp_url.get_secret_value())
    marker = uuid.uuid4().hex
    message = EmailMessage()
    message["From"] = "dagmonitor@politie.example"
    message["To"] = "veiligheid@gemeente.example"
    message["Subject"] = f"Dagmonitor test {marker}"
    message["Message-ID"] = f"<{marker}@dagmonitor.test>"
    message.set_content("Geen incidenten.")
    await aiosmtplib.send(
        message,
        hostname=smtp.hostname,
        port=smtp.port,
        recipients=["veiligheid@gemeente.example", "handhaving@gemeente.example"],
        start_tls=False,
    )

    mail_dir: Path = local_dir() / "mail"
    stored = [p for p in mail_dir.glob("*.eml") if marker.encode() in p.read_bytes()]
    assert len(stored) == 1, "exactly one file per envelope"
    parsed = email.message_from_bytes(stored[0].read_bytes(), policy=default)
    assert parsed["Subject"] == f"Dagmonitor test {marker}"
    assert parsed.get_all("X-Envelope-To") == [
        "veiligheid@gemeente.example",
        "handhaving@gemeente.example",
    ]
    assert parsed.get_content().strip() == "Geen incidenten."
    leftovers = [p for p in mail_dir.iterdir() if not p.name.endswith(".eml")]
    assert not leftovers, "files are renamed into place, never half-written"
