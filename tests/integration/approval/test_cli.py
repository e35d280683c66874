"""The officers' CLI against the running API over real HTTP."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import timedelta

import pytest

from dagmonitor_cli.cli import main
from services.approval.domain import Category
from tests.integration.approval.conftest import Officers, approval_settings, seed
from tests.integration.approval.threaded import ThreadedService
from tests.unit.approval.samples import approval_request

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def service(approval_kafka, officers: Officers) -> Iterator[ThreadedService]:
    with ThreadedService(approval_settings(approval_kafka, officers)) as running:
        yield running


def _dagmonitor(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["dagmonitor", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _json(out: str) -> dict[str, object]:
    """The CLI's JSON document (the in-process service's log lines may precede it)."""
    start = out.index("{\n")
    document: dict[str, object] = json.loads(out[start:])
    return document


def test_list_show_approve_reject(
    service: ThreadedService,
    officers: Officers,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = service.run(seed(service.app, approval_request(Category.SUSPECT)))
    second = service.run(seed(service.app, approval_request(Category.PERSON_OF_INTEREST)))
    victim = service.run(seed(service.app, approval_request(Category.VICTIM)))
    monkeypatch.setenv("DAGMONITOR_APPROVAL_API_URL", service.url)
    monkeypatch.setenv("DAGMONITOR_TOKEN", officers.token(["OM"], sub="om-cli"))

    code, out, _ = _dagmonitor(monkeypatch, capsys, "approvals", "list")
    assert code == 0
    assert first in out and second in out and victim not in out
    assert "Verzonnen" not in out

    code, out, _ = _dagmonitor(monkeypatch, capsys, "approvals", "show", first)
    assert code == 0 and _json(out)["subject"]["surname"]  # type: ignore[index] == "Verzonnen"

    code, out, _ = _dagmonitor(monkeypatch, capsys, "approvals", "approve", first)
    assert code == 0 and _json(out)["status"] == "APPROVED"
    code, out, err = _dagmonitor(monkeypatch, capsys, "approvals", "approve", first)
    assert code == 1 and "HTTP 409" in err

    code, out, err = _dagmonitor(monkeypatch, capsys, "approvals", "reject", second)
    assert code == 2 and "--reason" in err  # click: the option is required
    code, out, _ = _dagmonitor(
        monkeypatch, capsys, "approvals", "reject", second, "--reason", "lopend onderzoek"
    )
    assert code == 0 and _json(out)["status"] == "REJECTED"

    code, out, err = _dagmonitor(monkeypatch, capsys, "approvals", "show", victim)
    assert code == 1 and "HTTP 404: no such request" in err

    code, out, _ = _dagmonitor(monkeypatch, capsys, "approvals", "list", "--status", "approved")
    assert code == 0 and first in out


def test_token_problems_are_one_line_errors(
    service: ThreadedService,
    officers: Officers,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DAGMONITOR_APPROVAL_API_URL", service.url)
    monkeypatch.delenv("DAGMONITOR_TOKEN", raising=False)
    code, _, err = _dagmonitor(monkeypatch, capsys, "approvals", "list")
    assert code == 1 and "no bearer token" in err
    expired = officers.token(["OM"], lifetime=-timedelta(hours=1))
    code, _, err = _dagmonitor(monkeypatch, capsys, "approvals", "list", "--token", expired)
    assert code == 1 and "HTTP 401: token expired" in err
    code, _, err = _dagmonitor(
        monkeypatch, capsys, "approvals", "list", "--api-url", "http://127.0.0.1:9", "--token", "x"
    )
    assert code == 1 and "cannot reach the approval API" in err
