"""The settings base every service's ``config.py`` builds on.

Configuration comes from environment variables starting with ``DAGMONITOR_`` (ARCHITECTURE.md,
section 9). After ``dagmonitor up`` the local stack writes where its servers listen into
``.local/stack.env``; that file is read as a fallback, so a real environment variable always
wins. Nothing outside a settings object reads the environment.
"""

from __future__ import annotations

import json
import os
import ssl
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from dagmonitor.covenant import Term
from dagmonitor.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]


def local_dir() -> Path:
    """The git-ignored folder that holds the local stack's data, logs, jars and mail."""
    return Path(os.environ.get("DAGMONITOR_LOCAL_DIR", REPO_ROOT / ".local")).resolve()


def stack_env_file() -> Path:
    """Where ``dagmonitor up`` writes the endpoints of the servers it runs or reuses."""
    return local_dir() / "stack.env"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class DagmonitorSettings(BaseSettings):
    """What every service and command needs; each service subclasses it with its own fields."""

    model_config = SettingsConfigDict(
        env_prefix="DAGMONITOR_",
        env_file=None,
        extra="ignore",
        frozen=True,
    )

    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated."
    )
    database_url: SecretStr = Field(
        default=SecretStr("postgresql://dagmonitor:dagmonitor@127.0.0.1:5432/dagmonitor"),
        description="PostgreSQL DSN; a secret because it carries the password.",
    )
    smtp_url: SecretStr = Field(
        default=SecretStr("smtp://127.0.0.1:2525"),
        description="smtp:// (STARTTLS) or smtps:// URL with optional user:password.",
    )
    topic_prefix: str = Field(
        default="",
        description="Prefixes every topic and consumer group, so covenants can share a cluster.",
    )
    municipality_code: str = Field(
        default="GM0344", description="CBS code of the covenant's municipality."
    )
    team_districts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="District codes where the enforcement team operates (comma-separated).",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="PLAINTEXT (local stack) or SASL_SSL with SCRAM-SHA-512 (Strimzi KafkaUser).",
    )
    kafka_sasl_username: str | None = Field(default=None, description="SCRAM user (SASL_SSL).")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SCRAM password.")
    kafka_ca_file: Path | None = Field(
        default=None, description="CA certificate of the brokers (SASL_SSL); system CAs if unset."
    )
    kafka_credentials_file: Path | None = Field(
        default=None,
        description="Local stack only: a JSON file of SCRAM passwords by user (written by "
        "`dagmonitor up`, mode 0600); the password of DAGMONITOR_KAFKA_SASL_USERNAME comes from "
        "it when DAGMONITOR_KAFKA_SASL_PASSWORD is unset.",
    )
    kafka_declare_topics: bool = Field(
        default=True,
        description="Let the stream services create their internal topics; false where they "
        "are managed outside (Kubernetes: KafkaTopic resources generated from the topic table).",
    )
    log_level: str = "INFO"
    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP traces endpoint; tracing export is off when unset."
    )

    @classmethod
    def load(cls, **overrides: Any) -> Self:
        """Read the environment, falling back to ``.local/stack.env`` written by ``up``."""
        env_file = stack_env_file()
        return cls(_env_file=env_file if env_file.is_file() else None, **overrides)  # type: ignore[call-arg]

    @field_validator("team_districts", mode="before")
    @classmethod
    def _split_team_districts(cls, value: object) -> object:
        return _split_csv(value)

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Self:
        # With the local stack's credentials file the principal may be chosen later (as_principal).
        if self.kafka_security_protocol == "SASL_SSL" and not (
            (self.kafka_sasl_username and self.kafka_sasl_password) or self.kafka_credentials_file
        ):
            raise ValueError(
                "DAGMONITOR_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs DAGMONITOR_KAFKA_SASL_USERNAME "
                "and DAGMONITOR_KAFKA_SASL_PASSWORD"
            )
        return self

    def as_principal(self, principal: str) -> Self:
        """These settings connecting as ``principal`` of the local stack's credentials file.

        On a broker the local stack does not manage (no credentials file) the settings stay as
        they are: whoever ``DAGMONITOR_KAFKA_SASL_USERNAME`` names connects.
        """
        if self.kafka_security_protocol != "SASL_SSL" or self.kafka_credentials_file is None:
            return self
        # No password of its own: the credentials file gives the principal's.
        cleared = {"kafka_sasl_username": principal, "kafka_sasl_password": None}  # nosec B105
        return self.model_copy(update=cleared)

    def default_principal(self, principal: str) -> Self:
        """As ``as_principal``, unless the environment already names a principal (the test
        suite's, an operator's): a command's own principal, overridable."""
        return self if self.kafka_sasl_username else self.as_principal(principal)

    def _sasl_password(self) -> str:
        if not self.kafka_sasl_username:
            raise ConfigError(
                "connect to Kafka as which principal? Set DAGMONITOR_KAFKA_SASL_USERNAME "
                "(the local stack's users: deploy/k8s/access.py)"
            )
        if self.kafka_sasl_password is not None:
            return self.kafka_sasl_password.get_secret_value()
        assert self.kafka_credentials_file is not None  # checked by the validator
        try:
            passwords = json.loads(self.kafka_credentials_file.read_text())
            return str(passwords[self.kafka_sasl_username])
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(
                f"no SCRAM password for Kafka user {self.kafka_sasl_username!r} in "
                f"{self.kafka_credentials_file} ({type(exc).__name__})"
            ) from None

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for the brokers (None on PLAINTEXT)."""
        if self.kafka_security_protocol == "PLAINTEXT":
            return None
        cafile = str(self.kafka_ca_file) if self.kafka_ca_file else None
        return ssl.create_default_context(cafile=cafile)

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection options for an aiokafka producer, consumer or admin client."""
        options: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers}
        if self.kafka_security_protocol == "SASL_SSL":
            options.update(
                security_protocol="SASL_SSL",
                sasl_mechanism="SCRAM-SHA-512",
                sasl_plain_username=self.kafka_sasl_username,
                sasl_plain_password=self._sasl_password(),
                ssl_context=self.kafka_ssl_context(),
            )
        return options

    @property
    def bootstrap_servers(self) -> list[str]:
        """The bootstrap list as aiokafka takes it."""
        return [part.strip() for part in self.kafka_bootstrap.split(",") if part.strip()]

    def topic(self, name: str) -> str:
        """The physical name of a contract topic under this deployment's prefix."""
        return f"{self.topic_prefix}{name}"

    def group(self, service: str) -> str:
        """The consumer group id of a service under this deployment's prefix."""
        return f"{self.topic_prefix}dagmonitor-{service}"


def describe_invalid(exc: ValidationError) -> str:
    """A settings error in one line, naming each variable (``DAGMONITOR_...``) and the rule,
    never the value (it may be a secret)."""
    problems = []
    for error in exc.errors():
        field = "_".join(str(part) for part in error["loc"]) or "settings"
        name = f"DAGMONITOR_{field.upper()}" if error["loc"] else field
        problems.append(f"{name}: {error['msg'].lower()}")
    return "invalid configuration: " + "; ".join(problems)


def known_time_zone(value: str) -> str:
    """``value`` if it names a time zone the system knows (``Europe/Amsterdam``)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


TimeZoneName = Annotated[str, AfterValidator(known_time_zone)]
"""A settings field naming a time zone, refused at load when the system does not know it."""


SCHEMA_NAME = r"^[a-z_][a-z0-9_]{0,62}$"
"""A PostgreSQL schema name the services accept (unquoted, lower case)."""


def service_port(port: int) -> Any:
    """The field of a service's HTTP port, defaulting to its port in the contract."""
    return Field(
        default=port,
        ge=1,
        le=65535,
        description="Port of the service's HTTP interface (/metrics, /healthz, /readyz, API).",
    )


def owned_schema(name: str) -> Any:
    """The field of the PostgreSQL schema a service owns, defaulting to ``name``."""
    return Field(
        default=name, pattern=SCHEMA_NAME, description="PostgreSQL schema owned by the service."
    )


class ServiceSettings(DagmonitorSettings):
    """What every service has besides the common settings: its HTTP interface."""

    http_host: str = Field(
        default="127.0.0.1", description="Interface the service's HTTP interface listens on."
    )
    http_port: int = service_port(8080)
    # The covenant's term (dagmonitor/covenant.py, docs/adr/0018-covenant-term.md): required,
    # so no service runs without knowing when it may provide anything.
    covenant_start_date: date = Field(
        description="DAGMONITOR_COVENANT_START_DATE: the covenant's first (local) day."
    )
    covenant_end_date: date = Field(
        description="DAGMONITOR_COVENANT_END_DATE: the covenant's last (local) day, as signed; "
        "renewals and an early end are recorded events (dagmonitor covenant renew|end)."
    )

    @model_validator(mode="after")
    def _term_in_order(self) -> Self:
        if self.covenant_end_date < self.covenant_start_date:
            raise ValueError(
                "DAGMONITOR_COVENANT_END_DATE lies before DAGMONITOR_COVENANT_START_DATE"
            )
        return self

    @property
    def covenant_term(self) -> Term:
        """The term as configured (before any recorded renewal or early end)."""
        return Term(self.covenant_start_date, self.covenant_end_date)
