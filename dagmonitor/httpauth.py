"""The ``Authorization`` header of the project's HTTP APIs (RFC 6750 bearer tokens)."""

from __future__ import annotations


def bearer_token(header: str | None) -> str | None:
    """The token of ``Bearer <token>`` (the scheme in any case), or None if it is not one."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
