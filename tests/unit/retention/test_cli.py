"""The command's shape, without servers: registration, help, parsing of --now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import click
import pytest
from click.testing import CliRunner

from dagmonitor_cli.cli import cli
from services.retention.cli import parse_now


def test_retention_sweep_is_a_verb_of_dagmonitor() -> None:
    result = CliRunner().invoke(cli, ["retention", "sweep", "--help"])
    assert result.exit_code == 0
    assert "--dry-run" in result.output
    assert "--now ISO" in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-11-28T03:00:00Z", datetime(2027, 11, 28, 3, 0, tzinfo=UTC)),
        (
            "2027-11-28T03:00:00+01:00",
            datetime(2027, 11, 28, 3, 0, tzinfo=timezone(timedelta(hours=1))),
        ),
        ("2027-11-28T03:00:00.001+00:00", datetime(2027, 11, 28, 3, 0, 0, 1000, tzinfo=UTC)),
    ],
)
def test_now_is_an_iso_instant_with_an_offset(text: str, expected: datetime) -> None:
    assert parse_now(text) == expected
    assert parse_now(None) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [("2027-11-28T03:00:00", "no UTC offset"), ("next tuesday", "not an ISO 8601")],
)
def test_bad_now_is_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(click.BadParameter, match=message):
        parse_now(text)
