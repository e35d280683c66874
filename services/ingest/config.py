"""Settings of the ingest service (environment variables ``DAGMONITOR_*``)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from pydantic import Field, SecretStr

from dagmonitor.settings import ServiceSettings, service_port


class IngestSettings(ServiceSettings):
    """What ingest needs beyond the shared settings."""

    http_port: int = service_port(8081)
    ingest_tokens: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "Bearer tokens of the publishing police systems, 'system=token' pairs separated by "
            "commas. Empty: the HTTP API accepts no one."
        ),
    )
    ingest_municipal_tokens: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "Bearer tokens of the municipality's reporting systems (e.g. Signalen), "
            "'system=token' pairs separated by commas; they may post municipal reports only, "
            "the police's tokens never. Empty: no municipal report over HTTP."
        ),
    )
    ingest_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    ingest_photo_max_bytes: int = Field(
        default=512 * 1024,
        ge=1024,
        le=900_000,  # the record must stay below Kafka's default 1 MB message limit
        description="The largest photo PUT /v1/photos/{photo_id} accepts, as sent.",
    )
    ingest_clock_skew_seconds: int = Field(default=300, ge=0)

    @property
    def clock_skew(self) -> timedelta:
        return timedelta(seconds=self.ingest_clock_skew_seconds)

    def system_for_token(self, token: str, *, municipal: bool = False) -> str | None:
        """The publishing system a bearer token belongs to, compared in constant time.

        ``municipal``: look among the municipality's reporting systems instead of the police's.
        """
        offered = hashlib.sha256(token.encode()).digest()
        found = None
        tokens = self.ingest_municipal_tokens if municipal else self.ingest_tokens
        for pair in tokens.get_secret_value().split(","):
            system, _, secret = pair.strip().partition("=")
            if system and secret:
                expected = hashlib.sha256(secret.encode()).digest()
                if hmac.compare_digest(offered, expected):
                    found = system
        return found
