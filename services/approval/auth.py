"""Bearer-token authentication: a JWT from the configured issuer, checked fully.

Checked on every call: the signature (against the configured public keys: PEM text, a JWKS
file, and in local development the public half of the development signing key), ``exp``
(required), ``nbf``/``iat`` when present, ``iss`` (exactly the configured issuer) and ``aud``
(must contain the configured audience). Only asymmetric algorithms are accepted, never
``none`` or a shared secret. The token yields a ``Principal``: ``sub`` and ``roles``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from dagmonitor.errors import ConfigError
from dagmonitor.httpauth import bearer_token
from services.approval.access import Principal
from services.approval.config import ApprovalSettings
from services.approval.domain import MAX_ACTOR_LENGTH
from services.approval.errors import AuthenticationError

_PEM_BEGIN = "-----BEGIN"
MAX_TOKEN_LENGTH = 16_384


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A trusted public key; ``kid`` None matches any token (PEM keys carry no id)."""

    kid: str | None
    key: Any


def load_pem_keys(text: str) -> list[VerificationKey]:
    """The public keys in ``text`` (one or more PEM blocks)."""
    keys = []
    blocks = [_PEM_BEGIN + part for part in text.split(_PEM_BEGIN)[1:]]
    for number, block in enumerate(blocks, start=1):
        try:
            key = serialization.load_pem_public_key(block.strip().encode())
        except ValueError as exc:
            raise ConfigError(f"public key {number}: not a PEM public key ({exc})") from None
        keys.append(VerificationKey(None, key))
    if not keys:
        raise ConfigError("approval_jwt_public_keys holds no PEM block")
    return keys


def load_jwks_file(path: Path) -> list[VerificationKey]:
    """The public keys of a JSON Web Key Set file."""
    try:
        data = json.loads(path.read_text())
        key_set = jwt.PyJWKSet.from_dict(data)
    except OSError as exc:
        raise ConfigError(f"cannot read the JWKS file {path}: {exc.strerror}") from None
    except (ValueError, jwt.PyJWTError) as exc:
        raise ConfigError(f"{path} is not a usable JSON Web Key Set: {exc}") from None
    return [VerificationKey(jwk.key_id, jwk.key) for jwk in key_set.keys]


def public_key_of(private_pem_file: Path) -> PublicKeyTypes:
    """The public half of a PEM private key file."""
    from services.approval.tokens import load_private_key

    return load_private_key(private_pem_file).public_key()


class TokenVerifier:
    """Turns an ``Authorization`` header into a ``Principal`` or an AuthenticationError."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: Sequence[VerificationKey],
        algorithms: Sequence[str],
        leeway_seconds: float = 30,
    ) -> None:
        if not keys:
            raise ConfigError(
                "no key to verify bearer tokens with: set DAGMONITOR_APPROVAL_JWT_PUBLIC_KEYS "
                "or DAGMONITOR_APPROVAL_JWKS_FILE (or, locally, "
                "DAGMONITOR_APPROVAL_DEV_SIGNING_KEY_FILE)"
            )
        self._issuer = issuer
        self._audience = audience
        self._keys = list(keys)
        self._algorithms = list(algorithms)
        self._leeway = leeway_seconds

    @classmethod
    def from_settings(cls, settings: ApprovalSettings) -> TokenVerifier:
        """Keys from the settings: PEM text, a JWKS file and the development key's half."""
        from services.approval.tokens import key_id

        keys: list[VerificationKey] = []
        if settings.approval_jwt_public_keys:
            keys += load_pem_keys(settings.approval_jwt_public_keys)
        if settings.approval_jwks_file is not None:
            keys += load_jwks_file(settings.approval_jwks_file)
        if settings.approval_dev_signing_key_file is not None:
            public = public_key_of(settings.approval_dev_signing_key_file)
            keys.append(VerificationKey(key_id(public), public))
        return cls(
            issuer=settings.approval_jwt_issuer,
            audience=settings.approval_jwt_audience,
            keys=keys,
            algorithms=settings.approval_jwt_algorithms,
            leeway_seconds=settings.approval_jwt_leeway_seconds,
        )

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer <jwt>`` header value."""
        if not authorization:
            raise AuthenticationError("missing bearer token")
        token = bearer_token(authorization)
        if token is None:
            raise AuthenticationError("the Authorization header must be 'Bearer <token>'")
        return self.verify(token)

    def verify(self, token: str) -> Principal:
        """Check a compact JWT; raises AuthenticationError with a reason safe to show."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthenticationError("token too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError("malformed token") from None
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            raise AuthenticationError("token algorithm not accepted")
        kid = header.get("kid")
        candidates = [
            k
            for k in self._keys
            if (k.kid is None or kid is None or k.kid == kid) and _fits(algorithm, k.key)
        ]
        for candidate in candidates:
            try:
                claims = jwt.decode(
                    token,
                    candidate.key,
                    algorithms=[algorithm],
                    audience=self._audience,
                    issuer=self._issuer,
                    leeway=self._leeway,
                    options={"require": ["exp", "iss", "aud", "sub"]},
                )
            except (jwt.InvalidSignatureError, jwt.InvalidKeyError, TypeError, ValueError):
                continue  # not this key: try the next one
            except jwt.ExpiredSignatureError:
                raise AuthenticationError("token expired") from None
            except jwt.ImmatureSignatureError:
                raise AuthenticationError("token not yet valid") from None
            except jwt.InvalidIssuerError:
                raise AuthenticationError("token from another issuer") from None
            except jwt.InvalidAudienceError:
                raise AuthenticationError("token for another audience") from None
            except jwt.MissingRequiredClaimError as exc:
                raise AuthenticationError(f"token lacks the '{exc.claim}' claim") from None
            except jwt.PyJWTError:
                raise AuthenticationError("invalid token") from None
            return _principal(claims)
        raise AuthenticationError("invalid token signature")


def _fits(algorithm: str, key: Any) -> bool:
    """Whether ``key`` is of the kind ``algorithm`` signs with."""
    if algorithm.startswith(("RS", "PS")):
        return isinstance(key, rsa.RSAPublicKey)
    if algorithm.startswith("ES"):
        return isinstance(key, ec.EllipticCurvePublicKey)
    if algorithm == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    return False


def _principal(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip() or len(sub) > MAX_ACTOR_LENGTH:
        raise AuthenticationError(f"claim 'sub' must be a string of 1-{MAX_ACTOR_LENGTH} chars")
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise AuthenticationError("claim 'roles' must be a list of strings")
    return Principal(sub=sub, roles=frozenset(roles))
