"""The distributor's settings: recipients from JSON, SMTP security rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from dagmonitor.errors import ConfigError
from services.distributor.config import DistributorSettings
from services.distributor.entitlements import Role


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGMONITOR_LOCAL_DIR", str(tmp_path))
    for name in ("SMTP_URL", "SMTP_ALLOW_PLAINTEXT", "DISTRIBUTOR_RECIPIENTS", "DB_SCHEMA"):
        monkeypatch.delenv(f"DAGMONITOR_{name}", raising=False)


def test_defaults() -> None:
    settings = DistributorSettings.load()
    assert settings.http_port == 8084
    assert settings.db_schema == "distributor"
    assert settings.daily_report_time.isoformat() == "07:00:00"
    assert str(settings.tz) == "Europe/Amsterdam"
    assert set(settings.recipients) == set(Role)
    assert all(
        a.endswith(".invalid") for addresses in settings.recipients.values() for a in addresses
    )


def test_recipients_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "DAGMONITOR_DISTRIBUTOR_RECIPIENTS",
        json.dumps({"safety_unit_officer": ["a@gemeente.nl", "b@gemeente.nl"]}),
    )
    assert DistributorSettings.load().recipients == {
        Role.SAFETY_UNIT_OFFICER: ["a@gemeente.nl", "b@gemeente.nl"]
    }


@pytest.mark.parametrize(
    "value",
    [{"burgemeester": ["a@gemeente.nl"]}, {"safety_unit_officer": ["not an address"]}],
)
def test_unknown_roles_and_bad_addresses_are_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        DistributorSettings.load(distributor_recipients=value)


def test_plaintext_url_without_the_explicit_switch_is_refused() -> None:
    settings = DistributorSettings.load(smtp_url="smtp://127.0.0.1:2525")
    with pytest.raises(ConfigError, match="DAGMONITOR_SMTP_ALLOW_PLAINTEXT"):
        settings.smtp_endpoint()


def test_starttls_and_auth_by_default() -> None:
    endpoint = DistributorSettings.load(smtp_url="smtp://mailer:s3cret@mx.invalid").smtp_endpoint()
    assert (endpoint.start_tls, endpoint.use_tls, endpoint.port) == (True, False, 587)
    assert endpoint.username == "mailer"
    assert endpoint.password is not None and endpoint.password.get_secret_value() == "s3cret"


def test_implicit_tls() -> None:
    endpoint = DistributorSettings.load(smtp_url="smtps://u:p@mx.invalid").smtp_endpoint()
    assert (endpoint.use_tls, endpoint.start_tls, endpoint.port) == (True, False, 465)


def test_plaintext_only_when_allowed_explicitly() -> None:
    settings = DistributorSettings.load(smtp_url="smtp://127.0.0.1:2525", smtp_allow_plaintext=True)
    endpoint = settings.smtp_endpoint()
    assert (endpoint.start_tls, endpoint.username, endpoint.port) == (None, None, 2525)


@pytest.mark.parametrize("url", ["http://mx.invalid", "smtp://", "smtp://u:p@mx.invalid:99999"])
def test_malformed_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        DistributorSettings.load(smtp_url=url, smtp_allow_plaintext=True).smtp_endpoint()


def test_secrets_stay_out_of_the_start_log() -> None:
    settings = DistributorSettings.load(smtp_url="smtp://mailer:s3cret@mx.invalid")
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.describe())
    assert "@" not in str(settings.describe()), "no addresses in the start log"
