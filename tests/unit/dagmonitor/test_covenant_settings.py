"""The covenant's term is required configuration of every service, and the local stack writes
a development term (docs/adr/0018-covenant-term.md)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from dagmonitor.settings import ServiceSettings
from dagmonitor_cli.platform.stack import TERM_VARIABLES, development_term_env

TERM_ENV = ("DAGMONITOR_COVENANT_START_DATE", "DAGMONITOR_COVENANT_END_DATE")


def test_a_service_without_a_term_does_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TERM_ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match="covenant_start_date"):
        ServiceSettings()


def test_an_end_before_the_start_is_refused() -> None:
    with pytest.raises(ValidationError, match="lies before"):
        ServiceSettings(covenant_start_date=date(2026, 2, 1), covenant_end_date=date(2026, 1, 31))


def test_the_configured_term() -> None:
    settings = ServiceSettings(
        covenant_start_date=date(2026, 1, 1), covenant_end_date=date(2026, 12, 31)
    )
    assert settings.covenant_term.label() == "2026-01-01..2026-12-31"


def test_the_local_stack_writes_a_development_term_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in TERM_ENV:
        monkeypatch.delenv(name, raising=False)
    assert TERM_VARIABLES == TERM_ENV
    env_file = tmp_path / "stack.env"
    first = development_term_env(env_file)
    start, end = (date.fromisoformat(first[name]) for name in TERM_ENV)
    assert start.day == 1 and start <= date.today() <= end
    env_file.write_text(
        "DAGMONITOR_COVENANT_START_DATE=2026-01-01\nDAGMONITOR_COVENANT_END_DATE=2026-12-31\n"
    )
    assert development_term_env(env_file) == {
        "DAGMONITOR_COVENANT_START_DATE": "2026-01-01",
        "DAGMONITOR_COVENANT_END_DATE": "2026-12-31",
    }, "a term written before is kept (renewals recorded for it still apply)"
    monkeypatch.setenv("DAGMONITOR_COVENANT_START_DATE", "2025-01-01")
    assert development_term_env(env_file)["DAGMONITOR_COVENANT_START_DATE"] == "2026-01-01"
