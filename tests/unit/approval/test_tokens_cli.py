"""``dagmonitor token``: refused without a development key, works with one."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import jwt
import pytest

from dagmonitor.errors import ConfigError
from dagmonitor_cli.cli import main
from services.approval.auth import TokenVerifier
from services.approval.config import ApprovalSettings
from services.approval.tokens import init_dev_key, issue_dev_token


def _run(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["dagmonitor", *args])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_token_is_refused_without_a_development_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DAGMONITOR_APPROVAL_DEV_SIGNING_KEY_FILE", raising=False)
    monkeypatch.setenv("DAGMONITOR_LOCAL_DIR", "/nonexistent-dagmonitor-local")
    assert _run(monkeypatch, "token", "--sub", "om-1", "--role", "OM") == 1
    captured = capsys.readouterr()
    assert "no development signing key is configured" in captured.err
    assert captured.out == ""


def test_init_dev_key_then_issue_and_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "approval" / "dev.pem"
    monkeypatch.setenv("DAGMONITOR_LOCAL_DIR", str(tmp_path))
    monkeypatch.setenv("DAGMONITOR_APPROVAL_DEV_SIGNING_KEY_FILE", str(key_file))
    assert _run(monkeypatch, "token", "--init-dev-key") == 0
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert (tmp_path / "approval" / "dev-jwks.json").is_file()
    assert _run(monkeypatch, "token", "--init-dev-key") == 1  # no silent overwrite
    capsys.readouterr()

    assert _run(monkeypatch, "token", "--sub", "om-1", "--role", "OM", "--minutes", "5") == 0
    token = capsys.readouterr().out.strip()
    settings = ApprovalSettings.load()
    principal = TokenVerifier.from_settings(settings).verify(token)
    assert (principal.sub, principal.roles) == ("om-1", frozenset({"OM"}))
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 300
    assert _run(monkeypatch, "token", "--sub", "om-1") == 2  # a role is required (usage)


def test_issue_dev_token_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--init-dev-key"):
        issue_dev_token(
            ApprovalSettings(approval_dev_signing_key_file=tmp_path / "missing.pem"),
            sub="x",
            roles=["OM"],
        )
    init_dev_key(tmp_path / "k.pem")
    with pytest.raises(ConfigError, match="exists already"):
        init_dev_key(tmp_path / "k.pem")
