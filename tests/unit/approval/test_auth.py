"""Bearer-token checks with real keys and tokens (no servers)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from dagmonitor.errors import ConfigError
from services.approval.auth import TokenVerifier, load_jwks_file, load_pem_keys
from services.approval.config import ApprovalSettings
from services.approval.errors import AuthenticationError
from services.approval.tokens import init_dev_key, issue_token, key_id

ISSUER, AUDIENCE = "https://login.example.test/om", "dagmonitor-approval"


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def verifier(key: ec.EllipticCurvePrivateKey) -> TokenVerifier:
    settings = ApprovalSettings(
        approval_jwt_issuer=ISSUER,
        approval_jwt_audience=AUDIENCE,
        approval_jwt_public_keys=_pem(key),
    )
    return TokenVerifier.from_settings(settings)


def _token(key: ec.EllipticCurvePrivateKey, **overrides: object) -> str:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "om-officer-1",
        "roles": ["OM"],
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="ES256")


def test_a_good_token_yields_its_principal(verifier: TokenVerifier, key) -> None:
    principal = verifier.authenticate(f"Bearer {_token(key, roles=['OM', 'X'])}")
    assert principal.sub == "om-officer-1"
    assert principal.roles == {"OM", "X"}
    assert verifier.authenticate(f"bearer {_token(key, roles=None)}").roles == frozenset()


def _tampered(token: str) -> str:
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["roles"] = ["OM", "POLICE_DISTRICT"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


def _none_alg(key: ec.EllipticCurvePrivateKey) -> str:
    head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = _token(key).split(".")[1]
    return f"{head}.{body}."


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda k, o: None, "missing bearer token"),
        (lambda k, o: "Basic dXNlcjpwYXNz", "must be 'Bearer <token>'"),
        (lambda k, o: "Bearer ", "must be 'Bearer <token>'"),
        (lambda k, o: "Bearer not.a.jwt", "malformed token"),
        (lambda k, o: "Bearer " + _token(o), "invalid token signature"),
        (lambda k, o: "Bearer " + _tampered(_token(k)), "invalid token signature"),
        (lambda k, o: "Bearer " + _none_alg(k), "algorithm not accepted"),
        (
            lambda k, o: "Bearer " + jwt.encode({"sub": "x"}, "secret" * 8, algorithm="HS256"),
            "algorithm not accepted",
        ),
        (
            lambda k, o: (
                "Bearer " + _token(k, exp=datetime.now(UTC) - timedelta(hours=1), iat=None)
            ),
            "expired",
        ),
        (
            lambda k, o: "Bearer " + _token(k, nbf=datetime.now(UTC) + timedelta(hours=1)),
            "not yet valid",
        ),
        (lambda k, o: "Bearer " + _token(k, iss="https://evil.example"), "another issuer"),
        (lambda k, o: "Bearer " + _token(k, aud="some-other-api"), "another audience"),
        (lambda k, o: "Bearer " + _token(k, exp=None), "'exp'"),
        (lambda k, o: "Bearer " + _token(k, sub=None), "'sub'"),
        (lambda k, o: "Bearer " + _token(k, sub=""), "sub"),
        (lambda k, o: "Bearer " + _token(k, roles="OM"), "'roles' must be a list"),
        (lambda k, o: "Bearer " + "a" * 20_000, "too long"),
    ],
    ids=[
        "no-header",
        "basic",
        "empty-bearer",
        "garbage",
        "unknown-key",
        "tampered",
        "alg-none",
        "hs256",
        "expired",
        "not-yet-valid",
        "wrong-issuer",
        "wrong-audience",
        "no-exp",
        "no-sub",
        "empty-sub",
        "roles-string",
        "too-long",
    ],
)
def test_bad_tokens_are_refused_with_a_reason(verifier, key, other_key, make, message) -> None:
    with pytest.raises(AuthenticationError, match=message):
        verifier.authenticate(make(key, other_key))


def test_jwks_file_and_key_ids(tmp_path: Path, key, other_key) -> None:
    private_path, jwks_path = init_dev_key(tmp_path / "k.pem")
    keys = load_jwks_file(jwks_path)
    assert len(keys) == 1 and keys[0].kid is not None
    dev_key = serialization.load_pem_private_key(private_path.read_bytes(), None)
    assert isinstance(dev_key, ec.EllipticCurvePrivateKey)
    verifier = TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, keys=keys, algorithms=["ES256"], leeway_seconds=0
    )
    good = issue_token(
        dev_key, issuer=ISSUER, audience=AUDIENCE, sub="a", roles=["OM"], lifetime=timedelta(1)
    )
    assert verifier.verify(good).sub == "a"
    assert jwt.get_unverified_header(good)["kid"] == key_id(dev_key.public_key())
    stranger = issue_token(
        other_key, issuer=ISSUER, audience=AUDIENCE, sub="a", roles=["OM"], lifetime=timedelta(1)
    )
    with pytest.raises(AuthenticationError, match="signature"):
        verifier.verify(stranger)


def test_several_pem_keys_and_rsa(key) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    verifier = TokenVerifier(
        issuer=ISSUER,
        audience=AUDIENCE,
        keys=load_pem_keys(_pem(key) + _pem(rsa_key)),
        algorithms=["ES256", "RS256"],
    )
    now = datetime.now(UTC)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "b", "exp": now + timedelta(minutes=1)}
    assert verifier.verify(jwt.encode(claims, rsa_key, algorithm="RS256")).sub == "b"
    assert verifier.verify(jwt.encode(claims, key, algorithm="ES256")).sub == "b"


def test_configuration_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no key to verify"):
        TokenVerifier.from_settings(ApprovalSettings())
    with pytest.raises(ConfigError, match="PEM"):
        load_pem_keys("not a key")
    bad = tmp_path / "jwks.json"
    bad.write_text("{}")
    with pytest.raises(ConfigError, match="JSON Web Key Set"):
        load_jwks_file(bad)
    with pytest.raises(ValueError, match="asymmetric"):
        ApprovalSettings(approval_jwt_algorithms="ES256,HS256")
