"""The bearer token of an Authorization header, as both HTTP APIs read it."""

from __future__ import annotations

import pytest

from dagmonitor.httpauth import bearer_token


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def", "abc.def"),
        ("bearer abc", "abc"),  # the scheme is case-insensitive (RFC 7235)
        ("  Bearer   abc  ", "abc"),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer", None),
        ("Bearer   ", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token
