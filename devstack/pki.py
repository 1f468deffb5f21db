"""A local certificate authority for the NATS cluster, made with `cryptography`.

Created on the first `up` and reused after: a CA, one server certificate (client port,
valid for localhost and 127.0.0.1), one route certificate (mutual TLS between nodes) and
one client certificate per NATS identity. Private keys are written 0600 under the state
directory, which git ignores.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=825)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fjordbank local stack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


class LocalCA:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.cert_path = directory / "ca.pem"
        self.key_path = directory / "ca-key.pem"

    def ensure(self) -> bool:
        """Create the CA if missing. Returns True when it was created."""
        if self.cert_path.exists() and self.key_path.exists():
            return False
        self.dir.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("Fjordbank local CA"))
            .issuer_name(_name("Fjordbank local CA"))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        _write_key(self.key_path, key)
        _write_cert(self.cert_path, cert)
        return True

    def issue(self, stem: str, common_name: str, *, server: bool, client: bool) -> tuple[Path, Path]:
        """Issue ``<stem>.pem`` and ``<stem>-key.pem`` unless they already exist."""
        cert_path, key_path = self.dir / f"{stem}.pem", self.dir / f"{stem}-key.pem"
        if cert_path.exists() and key_path.exists():
            return cert_path, key_path
        ca_key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.DNSName(common_name),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
        )
        cert = builder.sign(ca_key, hashes.SHA256())
        _write_key(key_path, key)
        _write_cert(cert_path, cert)
        return cert_path, key_path


def ensure_pki(directory: Path, identities: list[str]) -> dict[str, tuple[Path, Path]]:
    """CA, server, route and one client certificate per identity; returns their paths."""
    ca = LocalCA(directory)
    ca.ensure()
    issued = {
        "server": ca.issue("server", "nats.fjordbank.local", server=True, client=False),
        "route": ca.issue("route", "route.fjordbank.local", server=True, client=True),
    }
    for name in identities:
        issued[f"client-{name}"] = ca.issue(f"client-{name}", f"{name}.nats.fjordbank.local", server=False, client=True)
    return issued
