"""SMTP adapter: aiosmtplib with implicit TLS or required STARTTLS, and authentication.

Plaintext happens only when the settings allow it explicitly (a local sink); then STARTTLS is
still used when the server offers it. Library errors become ``DeliveryError`` with the SMTP
reply code and the error's class only: servers echo addresses in their replies, and those
stay out of logs and the database.
"""

from __future__ import annotations

import ssl

import aiosmtplib

from services.distributor.config import SmtpEndpoint
from services.distributor.errors import DeliveryError


def _tls_context(endpoint: SmtpEndpoint) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if endpoint.ca_file is not None:
        context.load_verify_locations(cafile=str(endpoint.ca_file))
    return context


class SmtpSession:
    """One SMTP connection, used for the messages of one sending round."""

    def __init__(self, endpoint: SmtpEndpoint, *, timeout: float) -> None:
        self._endpoint = endpoint
        self._client = aiosmtplib.SMTP(
            hostname=endpoint.hostname,
            port=endpoint.port,
            use_tls=endpoint.use_tls,
            start_tls=endpoint.start_tls,
            tls_context=_tls_context(endpoint),
            username=endpoint.username,
            password=endpoint.password.get_secret_value() if endpoint.password else None,
            timeout=timeout,
        )

    async def open(self) -> None:
        """Connect, say EHLO, STARTTLS or TLS as configured, and log in when configured."""
        try:
            await self._client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            self._client.close()
            raise DeliveryError.wrap(exc, stage="connect") from exc

    async def close(self) -> None:
        if self._client.is_connected:
            try:
                await self._client.quit()
            except (aiosmtplib.SMTPException, OSError):
                self._client.close()

    @property
    def usable(self) -> bool:
        return self._client.is_connected

    async def send(self, sender: str, recipient: str, message: bytes) -> str:
        """Send one message to one envelope recipient; returns the server's final reply.

        Raises DeliveryError unless the server accepted it (reply 250).
        """
        try:
            refused, reply = await self._client.sendmail(sender, [recipient], message)
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError.wrap(exc, stage="send") from exc
        if refused:
            raise DeliveryError("send", "recipient_refused", None)
        return reply
