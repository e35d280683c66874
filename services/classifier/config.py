"""Settings of the classifier (environment variables ``DAGMONITOR_*``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr, field_validator

from dagmonitor.settings import ServiceSettings, service_port
from services.classifier.escalation import Area, WindowRule
from services.classifier.policy import PolicyConfig

DEVELOPMENT_ID_KEY = "dagmonitor-development-id-key"


class ClassifierSettings(ServiceSettings):
    """What the classifier needs beyond the shared settings."""

    http_port: int = service_port(8082)
    e35_threshold: int = Field(default=5, ge=1)
    e35_window_days: int = Field(default=7, ge=1)
    escalation_area: Area = Field(
        default=Area.PC6,
        description=(
            "The covenant's 'postcodegebied' that E35 reports are counted and escalated in: "
            "pc6 (the full postcode 1234AB, the default) or pc4 (its four digits); ADR 0013."
        ),
    )
    approval_period_days: int = Field(default=14, ge=1)
    id_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_ID_KEY),
        description="Key of the keyed hash that makes request ids (set a secret in production).",
    )

    @field_validator("escalation_area", mode="before")
    @classmethod
    def _area_in_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    def policy(self) -> PolicyConfig:
        return PolicyConfig(
            municipality_code=self.municipality_code.strip().upper(),
            team_districts=frozenset(self.team_districts),
            id_key=self.id_key.get_secret_value().encode("utf-8"),
            approval_period=timedelta(days=self.approval_period_days),
        )

    def window_rule(self) -> WindowRule:
        return WindowRule(self.e35_threshold, self.e35_window_days * 24 * 3600 * 1000)
