"""Local development tokens: a key pair under ``.local/approval/`` and tokens signed with it.

Production tokens come from the configured issuer (the police's and OM's identity provider);
this module exists so that a developer, a demo or a benchmark can act as an officer on a
laptop. It only signs when ``DAGMONITOR_APPROVAL_DEV_SIGNING_KEY_FILE`` names a key.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import (
    PrivateKeyTypes,
    PublicKeyTypes,
)

from dagmonitor.errors import ConfigError
from dagmonitor.settings import local_dir
from services.approval.config import ApprovalSettings

DEV_ALGORITHM = "ES256"
DEV_KEY_NAME = "dev-signing-key.pem"
DEV_JWKS_NAME = "dev-jwks.json"


def default_dev_key_path() -> Path:
    """Where ``dagmonitor token --init-dev-key`` writes the key unless configured otherwise."""
    return local_dir() / "approval" / DEV_KEY_NAME


def key_id(public_key: PublicKeyTypes) -> str:
    """A stable id for a public key: the start of the SHA-256 of its DER encoding."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:16]


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The EC private key (PEM) of ``path``; a ConfigError says what is wrong."""
    try:
        key: PrivateKeyTypes = serialization.load_pem_private_key(path.read_bytes(), None)
    except FileNotFoundError:
        raise ConfigError(
            f"the development signing key {path} does not exist: "
            "create it with `dagmonitor token --init-dev-key`"
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a PEM private key without password: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path}: the development key must be an EC P-256 key")
    return key


def init_dev_key(path: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Create an EC P-256 key pair: the private key at ``path`` (mode 0600) and a public
    JWKS beside it. Returns both paths; refuses to overwrite unless ``force``."""
    jwks_path = path.with_name(DEV_JWKS_NAME)
    if path.exists() and not force:
        raise ConfigError(f"{path} exists already (use --force to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public = private.public_key()
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
    jwk.update({"kid": key_id(public), "alg": DEV_ALGORITHM, "use": "sig"})
    jwks_path.write_text(json.dumps({"keys": [jwk]}, indent=2) + "\n")
    return path, jwks_path


def issue_token(
    private_key: ec.EllipticCurvePrivateKey,
    *,
    issuer: str,
    audience: str,
    sub: str,
    roles: Iterable[str],
    lifetime: timedelta,
    now: datetime | None = None,
) -> str:
    """A signed JWT with ``sub``, ``roles``, ``iss``, ``aud``, ``iat``, ``exp`` and ``jti``."""
    issued = now or datetime.now(UTC)
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": sub,
        "roles": sorted(set(roles)),
        "iat": issued,
        "exp": issued + lifetime,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(
        claims,
        private_key,
        algorithm=DEV_ALGORITHM,
        headers={"kid": key_id(private_key.public_key())},
    )


def issue_dev_token(
    settings: ApprovalSettings, *, sub: str, roles: Iterable[str], minutes: int | None = None
) -> str:
    """A development token signed with the configured development key.

    Raises ConfigError unless ``DAGMONITOR_APPROVAL_DEV_SIGNING_KEY_FILE`` is set.
    """
    if settings.approval_dev_signing_key_file is None:
        raise ConfigError(
            "no development signing key is configured: development tokens are refused. "
            "Locally: `dagmonitor token --init-dev-key`, then set "
            "DAGMONITOR_APPROVAL_DEV_SIGNING_KEY_FILE to the file it names"
        )
    key = load_private_key(settings.approval_dev_signing_key_file)
    return issue_token(
        key,
        issuer=settings.approval_jwt_issuer,
        audience=settings.approval_jwt_audience,
        sub=sub,
        roles=roles,
        lifetime=timedelta(minutes=minutes or settings.approval_dev_token_minutes),
    )
