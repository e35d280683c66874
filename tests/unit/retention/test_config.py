"""The retention service's settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.retention.config import RetentionSettings


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGMONITOR_LOCAL_DIR", str(tmp_path))
    for name in ("DB_SCHEMA", "HTTP_PORT", "RETENTION_SWEEP_TIME", "RETENTION_TIMEZONE"):
        monkeypatch.delenv(f"DAGMONITOR_{name}", raising=False)


def test_defaults_follow_the_contract() -> None:
    settings = RetentionSettings.load()
    assert settings.http_port == 8085
    assert settings.db_schema == "retention"
    assert settings.retention_sweep_time.isoformat() == "03:00:00"
    assert str(settings.tz) == "Europe/Amsterdam"
    assert settings.retention_roll_delay_seconds == 86400 + 60


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGMONITOR_DB_SCHEMA", "retention_gm0344")
    monkeypatch.setenv("DAGMONITOR_RETENTION_SWEEP_TIME", "04:30")
    monkeypatch.setenv("DAGMONITOR_RETENTION_TIMEZONE", "UTC")
    settings = RetentionSettings.load()
    assert settings.db_schema == "retention_gm0344"
    assert settings.retention_sweep_time.isoformat() == "04:30:00"
    assert str(settings.tz) == "UTC"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("retention_timezone", "Mars/Olympus"),
        ("db_schema", "Retention; DROP"),
        ("retention_batch_size", 0),
        ("retention_roll_delay_seconds", 0),
    ],
)
def test_bad_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        RetentionSettings.load(**{field: value})
