"""The settings base: environment first, ``.local/stack.env`` as fallback, secrets hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagmonitor.errors import ConfigError
from dagmonitor.settings import DagmonitorSettings


@pytest.fixture
def local_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DAGMONITOR_LOCAL_DIR", str(tmp_path))
    for name in ("KAFKA_BOOTSTRAP", "DATABASE_URL", "SMTP_URL", "TOPIC_PREFIX", "TEAM_DISTRICTS"):
        monkeypatch.delenv(f"DAGMONITOR_{name}", raising=False)
    return tmp_path


def test_stack_env_is_the_fallback(local_dir: Path) -> None:
    (local_dir / "stack.env").write_text("DAGMONITOR_KAFKA_BOOTSTRAP=127.0.0.1:19092\n")
    assert DagmonitorSettings.load().kafka_bootstrap == "127.0.0.1:19092"


def test_environment_wins_over_stack_env(local_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (local_dir / "stack.env").write_text("DAGMONITOR_KAFKA_BOOTSTRAP=127.0.0.1:19092\n")
    monkeypatch.setenv("DAGMONITOR_KAFKA_BOOTSTRAP", "broker-a:9092,broker-b:9092")
    settings = DagmonitorSettings.load()
    assert settings.bootstrap_servers == ["broker-a:9092", "broker-b:9092"]


def test_team_districts_from_comma_separated_env(
    local_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGMONITOR_TEAM_DISTRICTS", " DC01, DC03 ,,DC07")
    assert DagmonitorSettings.load().team_districts == ["DC01", "DC03", "DC07"]


def test_prefix_applies_to_topics_and_groups(local_dir: Path) -> None:
    settings = DagmonitorSettings.load(topic_prefix="gm0344.")
    assert settings.topic("bvh.incidents") == "gm0344.bvh.incidents"
    assert settings.group("ingest") == "gm0344.dagmonitor-ingest"


def test_secrets_never_show_in_repr(local_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGMONITOR_DATABASE_URL", "postgresql://u:hunter2@db/x")
    monkeypatch.setenv("DAGMONITOR_SMTP_URL", "smtp://mailer:s3cret@mx:587")
    settings = DagmonitorSettings.load()
    assert "hunter2" not in repr(settings)
    assert "s3cret" not in repr(settings)
    assert settings.database_url.get_secret_value().endswith("@db/x")


def test_settings_are_frozen(local_dir: Path) -> None:
    settings = DagmonitorSettings.load()
    with pytest.raises(ValueError, match="frozen"):
        settings.topic_prefix = "x"  # type: ignore[misc]


def test_a_principal_of_the_local_credentials_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.delenv("DAGMONITOR_KAFKA_SASL_USERNAME", raising=False)  # the suite's own
    passwords = tmp_path / "credentials.json"
    passwords.write_text(json.dumps({"dagmonitor-ingest": "i-pw", "dagmonitor-admin": "a-pw"}))
    local = DagmonitorSettings(kafka_security_protocol="SASL_SSL", kafka_credentials_file=passwords)
    with pytest.raises(ConfigError, match="which principal"):
        local.kafka_client_options()
    ingest = local.as_principal("dagmonitor-ingest")
    assert ingest.kafka_client_options()["sasl_plain_password"] == "i-pw"
    assert local.default_principal("dagmonitor-admin").kafka_sasl_username == "dagmonitor-admin"
    assert ingest.default_principal("dagmonitor-admin") is ingest, "a chosen principal stays"
    with pytest.raises(ConfigError, match="no SCRAM password"):
        local.as_principal("nobody").kafka_client_options()
    external = DagmonitorSettings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_username="u", kafka_sasl_password="p"
    )
    assert external.as_principal("dagmonitor-admin") is external, "a broker we do not manage"
