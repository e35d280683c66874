"""Fixtures of the distributor's integration tests: a private SMTP server per test (the
project's sink handler on aiosmtpd, optionally with STARTTLS and AUTH), a private PostgreSQL
schema, and settings pointing at both."""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import ssl
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from dagmonitor.settings import DagmonitorSettings
from dagmonitor_cli.platform.process import free_port
from dagmonitor_cli.platform.smtp_sink import MaildirHandler
from services.distributor.config import DistributorSettings
from tests.consents import record_consents

SAFETY = "veiligheid@gemeente.test.invalid"
MEETING = "overleg@gemeente.test.invalid"
TEAM_LEADER = "teamleider@gemeente.test.invalid"
RECIPIENTS = {
    "safety_unit_officer": [SAFETY],
    "enforcement_meeting_member": [MEETING],
    "enforcement_team_leader": [TEAM_LEADER],
}
SMTP_USER = "dagmonitor"
SMTP_PASSWORD = "test-only-secret"


def _authenticator(
    _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        SMTP_USER.encode(),
        SMTP_PASSWORD.encode(),
    )
    return AuthResult(success=ok)


@dataclass
class SmtpServer:
    """A real SMTP server (aiosmtpd + the sink's handler) that can be stopped and restarted."""

    mail_dir: Path
    port: int
    tls_context: ssl.SSLContext | None = None
    controller: Controller | None = field(default=None, init=False)

    def start(self) -> None:
        kwargs: dict[str, Any] = {}
        if self.tls_context is not None:
            kwargs = {
                "tls_context": self.tls_context,
                "require_starttls": True,
                "auth_required": True,
                "auth_require_tls": True,
                "authenticator": _authenticator,
            }
        self.controller = Controller(
            MaildirHandler(self.mail_dir), hostname="127.0.0.1", port=self.port, **kwargs
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def url(self) -> str:
        if self.tls_context is not None:
            return f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{self.port}"
        return f"smtp://127.0.0.1:{self.port}"

    def mails(self) -> list[EmailMessage]:
        """Every stored mail, parsed, oldest first."""
        return [
            email.message_from_bytes(path.read_bytes(), policy=default)  # type: ignore[misc]
            for path in sorted(self.mail_dir.glob("*.eml"))
        ]


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    """A plaintext SMTP server of this test alone."""
    server = SmtpServer(tmp_path / "mail", free_port())
    server.start()
    yield server
    server.stop()


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (test only); returns (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dagmonitor test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-test.crt", directory / "smtp-test.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_smtp_server(tmp_path: Path) -> Iterator[tuple[SmtpServer, Path]]:
    """An SMTP server that requires STARTTLS and AUTH; yields it and its CA file."""
    cert, key = make_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = SmtpServer(tmp_path / "mail", free_port(), tls_context=context)
    server.start()
    yield server, cert
    server.stop()


@pytest.fixture
async def db_schema(stack: DagmonitorSettings) -> AsyncIterator[str]:
    """A PostgreSQL schema of this test alone, dropped afterwards; migrated, with the OM's
    standing consents in force (without them the Dagmonitor and vehicle notices are held:
    tests of that revoke them, ``tests/consents.py``)."""
    schema = f"distributor_{uuid.uuid4().hex[:8]}"
    await record_consents(stack.database_url.get_secret_value(), schema)
    yield schema
    conn = await asyncpg.connect(stack.database_url.get_secret_value())
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


SettingsFactory = Callable[..., DistributorSettings]


@pytest.fixture
def make_settings(
    kafka_settings: DagmonitorSettings, db_schema: str, smtp_server: SmtpServer
) -> SettingsFactory:
    """Settings for this test: its schema, its SMTP server, the session's topics."""

    def make(**overrides: Any) -> DistributorSettings:
        values: dict[str, Any] = {
            "topic_prefix": kafka_settings.topic_prefix,
            "db_schema": db_schema,
            "smtp_url": smtp_server.url,
            "smtp_allow_plaintext": True,
            "distributor_recipients": RECIPIENTS,
            "covenant_end_date": dt.date(2099, 12, 31),
            "smtp_backoff_initial_seconds": 0.05,
            "smtp_backoff_max_seconds": 0.2,
            "smtp_max_attempts": 3,
            "message_id_domain": f"t{db_schema[-8:]}.invalid",
        }
        values.update(overrides)
        return DistributorSettings.load(**values)

    return make


async def connect(settings: DistributorSettings) -> asyncpg.Connection:
    conn = await asyncpg.connect(
        settings.database_url.get_secret_value(),
        server_settings={"search_path": settings.db_schema},
    )
    return conn
