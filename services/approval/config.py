"""Settings of the approval service (ARCHITECTURE.md, section 6).

Every field reads the environment variable ``DAGMONITOR_<FIELD NAME IN UPPER CASE>``, e.g.
``DAGMONITOR_APPROVAL_JWT_ISSUER``; see ``services/approval/__init__.py`` for a local set-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from dagmonitor.settings import (
    ServiceSettings,
    _split_csv,
    owned_schema,
    service_port,
)

DEFAULT_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
"""Asymmetric algorithms only: a shared-secret (HS*) token could be forged by any verifier."""


class ApprovalSettings(ServiceSettings):
    """What the approval service and the officers' CLI read."""

    http_port: int = service_port(8083)
    db_schema: str = owned_schema("approval")
    approval_db_role: str | None = Field(
        default="dagmonitor_approval_app",
        description="Role the service's queries run as (SET ROLE); created by the migrations, "
        "without UPDATE/DELETE on the audit log. Empty: act as the login itself.",
    )
    approval_db_pool_size: int = Field(default=10, ge=1, le=100)

    approval_jwt_issuer: str = Field(
        default="dagmonitor-dev", description="The only 'iss' accepted in bearer tokens."
    )
    approval_jwt_audience: str = Field(
        default="dagmonitor-approval", description="The 'aud' every bearer token must carry."
    )
    approval_jwt_public_keys: str | None = Field(
        default=None, description="Trusted public key(s) as PEM text (several may follow)."
    )
    approval_jwks_file: Path | None = Field(
        default=None, description="A JSON Web Key Set file with the issuer's public keys."
    )
    approval_jwt_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_ALGORITHMS),
        description="Signature algorithms accepted (comma-separated).",
    )
    approval_jwt_leeway_seconds: int = Field(
        default=30, ge=0, le=300, description="Clock skew tolerated on exp/nbf/iat."
    )
    approval_dev_signing_key_file: Path | None = Field(
        default=None,
        description="Local development only: private key (PEM) that `dagmonitor token` signs "
        "with; its public half is trusted too. Unset in production.",
    )
    approval_dev_token_minutes: int = Field(default=480, ge=1, le=7 * 24 * 60)

    approval_expiry_days: float = Field(
        default=14, gt=0, description="A pending request expires this long after created_at."
    )
    approval_escalation_valid_days: float = Field(
        default=28, gt=0, description="How long an approved youth-nuisance escalation holds."
    )
    approval_sweep_interval_seconds: float = Field(default=60, gt=0)
    approval_relay_interval_seconds: float = Field(
        default=1.0, gt=0, description="Outbox poll interval (a decision also wakes the relay)."
    )
    approval_relay_batch_size: int = Field(default=200, ge=1, le=10_000)
    approval_relay_recovery_margin_seconds: float = Field(
        default=600,
        ge=0,
        description="Clock skew allowed between PostgreSQL and Kafka timestamps when the relay "
        "looks for records it published but did not mark.",
    )

    report_timezone: str = Field(
        default="Europe/Amsterdam",
        description="DAGMONITOR_REPORT_TIMEZONE: the zone the covenant's days are counted in.",
    )

    approval_api_url: str = Field(
        default="http://127.0.0.1:8083", description="Where the officers' CLI finds the API."
    )
    token: SecretStr | None = Field(
        default=None, description="DAGMONITOR_TOKEN: the bearer token the CLI sends."
    )

    @field_validator("approval_jwt_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("approval_jwt_algorithms")
    @classmethod
    def _no_symmetric_algorithms(cls, value: list[str]) -> list[str]:
        refused = [alg for alg in value if alg.upper().startswith("HS") or alg.lower() == "none"]
        if refused:
            raise ValueError(f"algorithms {refused} are not accepted: use asymmetric keys")
        return value

    @field_validator("approval_db_role", mode="before")
    @classmethod
    def _empty_role_is_none(cls, value: object) -> object:
        return None if value == "" else value
