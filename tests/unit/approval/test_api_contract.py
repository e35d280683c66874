"""The HTTP layer without a server: body parsing, and routes versus the OpenAPI document."""

from __future__ import annotations

import re

import pytest

from services.approval.api import ApprovalApi, BadRequest, openapi_document, parse_decision
from services.approval.auth import TokenVerifier, VerificationKey
from services.approval.domain import Action


def _api() -> ApprovalApi:
    verifier = TokenVerifier(
        issuer="i", audience="a", keys=[VerificationKey(None, object())], algorithms=["ES256"]
    )
    return ApprovalApi(lambda: None, verifier)


def _route_set() -> set[tuple[str, str]]:
    found = set()
    for route in _api().routes():
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", route.path)  # type: ignore[attr-defined]
        found.add((route.method.lower(), path))  # type: ignore[attr-defined]
    return found


def test_routes_and_openapi_document_agree() -> None:
    document = openapi_document()
    documented = {
        (method, path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert _route_set() == documented
    assert document["openapi"].startswith("3.")


def test_every_v1_operation_requires_the_bearer_scheme_and_documents_401() -> None:
    document = openapi_document()
    assert document["security"] == [{"bearerAuth": []}]
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path.startswith("/v1/"):
                assert "security" not in operation  # inherits the bearer requirement
                assert "401" in operation["responses"]
            else:
                assert operation["security"] == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"decision": "approve"}', (Action.APPROVE, None)),
        (b'{"decision": "approve", "reason": null}', (Action.APPROVE, None)),
        (
            b'{"decision": "reject", "reason": "onderzoek loopt"}',
            (Action.REJECT, "onderzoek loopt"),
        ),
        # a missing reason on reject is the domain's rule (400 there), not a parse error
        (b'{"decision": "reject"}', (Action.REJECT, None)),
    ],
)
def test_good_bodies(body: bytes, expected: tuple[Action, str | None]) -> None:
    assert parse_decision(body) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not JSON"),
        (b"{", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        (b'{"decision": ' + b"9" * 50_000 + b"}", "a number is too long"),
        (b"[]", "JSON object"),
        (b'"approve"', "JSON object"),
        (b"{}", "'decision' is required"),
        (b'{"decision": "APPROVE"}', 'must be "approve" or "reject"'),
        (b'{"decision": 1}', 'must be "approve" or "reject"'),
        (b'{"decision": "approve", "reason": 5}', "'reason' must be a string"),
        (b'{"decision": "approve", "reason": "' + b"x" * 2001 + b'"}', "longer than 2000"),
        (b'{"decision": "approve", "by": "someone"}', "unknown field(s): 'by'"),
        # PostgreSQL text cannot hold NUL: once a 500 from the fuzz test
        (b'{"decision": "reject", "reason": "q\\u0000x"}', "reason: holds a control character"),
        (b'{"decision": "reject", "reason": "\\u001b[31m"}', "reason: holds a control character"),
    ],
)
def test_bad_bodies_get_a_precise_message(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as raised:
        parse_decision(body)
    assert message in str(raised.value)
