"""The local stack's TLS material: a private CA and the broker's certificate.

Generated once with ``cryptography`` into ``.local/kafka/tls/`` (every file mode 0600), so
no keytool or JKS is needed: the broker reads a PKCS#12 key store and trusts the PEM CA
(``ssl.truststore.type=PEM``), as clients do (``ca.pem``). The broker certificate names
``127.0.0.1`` and ``localhost`` and serves both as a server certificate (the SASL_SSL
listener) and as the client certificate the broker shows the controller listener (mutual TLS,
ADR 0021).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BROKER_CN = "dagmonitor-local-broker"
BROKER_PRINCIPAL = f"User:CN={BROKER_CN}"
"""The principal Kafka's default SSL principal builder gives the broker on mutual TLS."""
VALID_DAYS = 825


@dataclass(frozen=True)
class TlsFiles:
    """Where the CA certificate, the broker's key+chain and the key's password are."""

    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def broker(self) -> Path:
        """The broker's key store: its key, its certificate and the CA's (PKCS#12)."""
        return self.root / "broker.p12"

    @property
    def key_password(self) -> Path:
        return self.root / "broker.key-password"

    def exists(self) -> bool:
        return self.ca.is_file() and self.broker.is_file() and self.key_password.is_file()


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


def ensure(files: TlsFiles) -> bool:
    """Create the CA and the broker certificate unless present; returns True when created."""
    if files.exists():
        return False
    files.root.mkdir(parents=True, exist_ok=True)
    files.root.chmod(0o700)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dagmonitor local CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, BROKER_CN)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    password = secrets.token_urlsafe(24)
    # Kafka's PEM key store file wants an encrypted PKCS#8 key, which Java 17 cannot decrypt
    # when it is PBES2 ("PBES2 SecretKeyFactory not available") and cryptography writes no
    # other: the key store is PKCS#12 instead (written here too, no keytool). The files' 0600
    # mode is the protection; the password sits beside the store.
    store = pkcs12.serialize_key_and_certificates(
        BROKER_CN.encode(),
        key,
        cert,
        [ca_cert],
        serialization.BestAvailableEncryption(password.encode()),
    )
    _write_private(files.key_password, password.encode())
    _write_private(files.broker, store)
    _write_private(files.ca, ca_cert.public_bytes(serialization.Encoding.PEM))
    return True
