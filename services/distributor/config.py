"""The distributor's settings: recipients, schedule, SMTP security, covenant end date.

Environment variables (prefix ``DAGMONITOR_``), besides the shared ones:

- ``DAGMONITOR_DISTRIBUTOR_RECIPIENTS``: JSON object, role -> list of addresses, e.g.
  ``{"safety_unit_officer": ["veiligheid@gemeente.nl"], "enforcement_team_leader": [...]}``;
  roles are those of ``entitlements.Role``.
- ``DAGMONITOR_DAILY_REPORT_TIME`` (``07:00``), ``DAGMONITOR_REPORT_TIMEZONE``
  (``Europe/Amsterdam``), ``DAGMONITOR_HOTSPOTS_ANCHOR_DATE`` (a day the bi-weekly report runs;
  it runs every 14 days from there), ``DAGMONITOR_NOTICE_INTERVAL_SECONDS`` (900).
- ``DAGMONITOR_COVENANT_START_DATE`` / ``DAGMONITOR_COVENANT_END_DATE`` (required, every
  service): the covenant's term; outside it no mail leaves (docs/adr/0018-covenant-term.md).
- ``DAGMONITOR_SMTP_ALLOW_PLAINTEXT``: ``true`` only for a local sink; otherwise the SMTP URL
  must carry credentials and the connection must be TLS (``smtps://``) or STARTTLS
  (``smtp://``). ``DAGMONITOR_SMTP_CA_FILE`` trusts an extra CA (e.g. a test certificate).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator

from dagmonitor.errors import ConfigError
from dagmonitor.settings import ServiceSettings, TimeZoneName, owned_schema, service_port
from services.distributor.entitlements import Role

_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")

DEFAULT_RECIPIENTS: dict[Role, list[str]] = {
    Role.SAFETY_UNIT_OFFICER: ["veiligheid@gemeente.example.invalid"],
    Role.ENFORCEMENT_MEETING_MEMBER: ["handhavingsoverleg@gemeente.example.invalid"],
    Role.ENFORCEMENT_TEAM_LEADER: ["teamleider.th@gemeente.example.invalid"],
}


@dataclass(frozen=True)
class SmtpEndpoint:
    """How to reach the SMTP server, checked against the security rules."""

    hostname: str
    port: int
    use_tls: bool
    """Implicit TLS (``smtps://``)."""
    start_tls: bool | None
    """True: STARTTLS required; None: upgrade when offered (plaintext allowed only)."""
    username: str | None
    password: SecretStr | None
    ca_file: Path | None


class DistributorSettings(ServiceSettings):
    """Settings of the distributor service (ARCHITECTURE.md, section 7)."""

    http_port: int = service_port(8084)
    db_schema: str = owned_schema("distributor")

    distributor_recipients: dict[Role, list[str]] = Field(
        default_factory=lambda: {role: list(a) for role, a in DEFAULT_RECIPIENTS.items()},
        description="Role -> e-mail addresses (JSON).",
    )

    daily_report_time: time = Field(default=time(7, 0), description="Local time of the daily run.")
    report_timezone: TimeZoneName = "Europe/Amsterdam"
    hotspots_anchor_date: date = Field(
        default=date(2026, 1, 5), description="A run day of the bi-weekly hotspot report."
    )
    hotspots_chart_top: int = Field(
        default=15,
        ge=1,
        le=50,
        description="How many ranks of places (PC6 and PC4) the hotspot report and its chart list.",
    )
    hotspots_min_count: int = Field(
        default=2, ge=1, description="Incidents a place needs in the period to rank as a hotspot."
    )
    notice_interval_seconds: float = Field(default=900.0, gt=0)
    photo_unclaimed_days: int = Field(
        default=14,
        ge=1,
        description=(
            "Days a photo no notice refers to is kept (a request still pending, rejected or "
            "never made); a photo a notice refers to goes with that notice (ADR 0017)."
        ),
    )
    report_complete_wait_seconds: float = Field(
        default=900.0,
        ge=0,
        description="How long a scheduled report waits for the pipeline to catch up with what "
        "was registered before it was due; then it goes out marked provisional.",
    )

    supplement_interval_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="At most one supplement (Aanvulling Dagmonitor) per reported day in this "
        "interval, counted from the day's report or its previous supplement.",
    )
    supplement_horizon_days: int = Field(
        default=7,
        ge=1,
        le=31,
        description="How many days back a day's changes still go out as a supplement.",
    )

    smtp_allow_plaintext: bool = False
    smtp_ca_file: Path | None = None
    smtp_from: str = "dagmonitor@politie.example.invalid"
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    smtp_max_attempts: int = Field(default=6, ge=1)
    smtp_backoff_initial_seconds: float = Field(default=2.0, gt=0)
    smtp_backoff_max_seconds: float = Field(default=600.0, gt=0)
    smtp_failed_retry_seconds: float = Field(
        default=3600.0, gt=0, description="When a mail that exhausted its attempts is tried again."
    )
    outbox_poll_seconds: float = Field(default=5.0, gt=0)
    message_id_domain: str = "dagmonitor.example.invalid"

    @field_validator("distributor_recipients")
    @classmethod
    def _check_addresses(cls, value: dict[Role, list[str]]) -> dict[Role, list[str]]:
        for role, addresses in value.items():
            for address in addresses:
                if not _ADDRESS.match(address.strip()):
                    raise ValueError(
                        f"an address of role {role.value} is not a plain e-mail address"
                    )
        return value

    @field_validator("smtp_from")
    @classmethod
    def _check_from(cls, value: str) -> str:
        if not _ADDRESS.match(value):
            raise ValueError("DAGMONITOR_SMTP_FROM is not a plain e-mail address")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.report_timezone)

    @property
    def recipients(self) -> dict[Role, list[str]]:
        """The configured addresses per role."""
        return {
            role: [a.strip() for a in addresses]
            for role, addresses in self.distributor_recipients.items()
        }

    def smtp_endpoint(self) -> SmtpEndpoint:
        """The SMTP endpoint, or ConfigError when the URL breaks the security rules.

        Without ``smtp_allow_plaintext``: ``smtps://`` (implicit TLS) or ``smtp://`` with
        STARTTLS required, and a user and password in the URL. With it (a local sink only):
        ``smtp://`` without credentials is accepted, upgraded to TLS when the server offers it.
        """
        raw = self.smtp_url.get_secret_value()
        parts = urlsplit(raw)
        if parts.scheme not in ("smtp", "smtps"):
            raise ConfigError("DAGMONITOR_SMTP_URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ConfigError("DAGMONITOR_SMTP_URL has no host")
        try:
            port = parts.port
        except ValueError as exc:
            raise ConfigError("DAGMONITOR_SMTP_URL has an invalid port") from exc
        use_tls = parts.scheme == "smtps"
        username = unquote(parts.username) if parts.username else None
        password = SecretStr(unquote(parts.password)) if parts.password else None
        if not self.smtp_allow_plaintext and (username is None or password is None):
            raise ConfigError(
                "DAGMONITOR_SMTP_URL has no user and password: mail is sent with STARTTLS and "
                "authentication unless DAGMONITOR_SMTP_ALLOW_PLAINTEXT=true is set explicitly "
                "(local development against a plaintext sink only)"
            )
        if self.smtp_ca_file is not None and not self.smtp_ca_file.is_file():
            raise ConfigError("DAGMONITOR_SMTP_CA_FILE does not name a readable file")
        # smtps: TLS from the first byte; smtp: STARTTLS required, or opportunistic when
        # plaintext is explicitly allowed.
        start_tls: bool | None = False if use_tls else (None if self.smtp_allow_plaintext else True)
        return SmtpEndpoint(
            hostname=parts.hostname,
            port=port or (465 if use_tls else 587),
            use_tls=use_tls,
            start_tls=start_tls,
            username=username,
            password=password,
            ca_file=self.smtp_ca_file,
        )

    def describe(self) -> dict[str, Any]:
        """Non-secret settings worth logging at start (no addresses: counts per role only)."""
        return {
            "db_schema": self.db_schema,
            "recipients_per_role": {
                r.value: len(a) for r, a in self.distributor_recipients.items()
            },
            "daily_report_time": self.daily_report_time.isoformat(),
            "report_timezone": self.report_timezone,
            "covenant_start_date": self.covenant_start_date.isoformat(),
            "covenant_end_date": self.covenant_end_date.isoformat(),
            "smtp_allow_plaintext": self.smtp_allow_plaintext,
        }
