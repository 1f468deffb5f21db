"""The NATS client TLS context from paths or from PEM text (a Firebase function gets its
certificate, key and CA from Secret Manager as environment variables' values)."""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path

import pytest

from devstack.pki import ensure_pki
from fjordbank.adapters import nats_conn
from fjordbank.config import NatsSettings
from fjordbank.errors import ConfigError


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    ensure_pki(directory, ["edge"])
    return directory


def settings(ca: str, cert: str, key: str) -> NatsSettings:
    return NatsSettings(
        urls=("tls://127.0.0.1:4222",), user="edge", password="x", ca_file=ca, cert_file=cert, key_file=key
    )


def temp_pems() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("fjb-nats-*.pem")}


def test_paths(pki):
    ctx = nats_conn.tls_context(
        settings(str(pki / "ca.pem"), str(pki / "client-edge.pem"), str(pki / "client-edge-key.pem"))
    )
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert len(ctx.get_ca_certs()) == 1


def test_pem_text_as_secret_manager_hands_it_over(pki):
    before = temp_pems()
    ctx = nats_conn.tls_context(
        settings(
            (pki / "ca.pem").read_text(),
            (pki / "client-edge.pem").read_text(),
            (pki / "client-edge-key.pem").read_text().rstrip("\n"),  # a secret's value may lose its last newline
        )
    )
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
    assert len(ctx.get_ca_certs()) == 1
    assert temp_pems() == before, "the key written for ssl must not stay on disk"


def test_a_broken_pem_is_a_config_error_naming_the_variable(pki):
    before = temp_pems()
    with pytest.raises(ConfigError, match="FJB_NATS_CERT"):
        nats_conn.tls_context(
            settings(
                str(pki / "ca.pem"),
                "-----BEGIN CERTIFICATE-----\nnot a certificate\n",
                str(pki / "client-edge-key.pem"),
            )
        )
    with pytest.raises(ConfigError, match="FJB_NATS_CA"):
        nats_conn.tls_context(
            settings(
                "-----BEGIN CERTIFICATE-----\nbroken\n", str(pki / "client-edge.pem"), str(pki / "client-edge-key.pem")
            )
        )
    assert temp_pems() == before


def test_a_missing_file_is_a_config_error(pki, tmp_path):
    with pytest.raises(ConfigError, match="client certificate"):
        nats_conn.tls_context(settings(str(pki / "ca.pem"), str(tmp_path / "nope.pem"), str(tmp_path / "nope-key.pem")))
    with pytest.raises(ConfigError, match="CA certificate"):
        nats_conn.tls_context(
            settings(str(tmp_path / "ca.pem"), str(pki / "client-edge.pem"), str(pki / "client-edge-key.pem"))
        )


# ---- the certificates' ends (fjb_nats_certificate_expiry_timestamp_seconds) ----------------
def test_the_client_certificate_and_the_ca_are_read_for_their_end_from_paths_or_pem(pki):
    from cryptography import x509

    def end(path: Path) -> float:
        return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc.timestamp()

    ca, cert, key = pki / "ca.pem", pki / "client-edge.pem", pki / "client-edge-key.pem"
    want = {"client": end(cert), "ca": end(ca)}
    assert nats_conn.certificate_expiries(settings(str(ca), str(cert), str(key))) == want
    assert nats_conn.certificate_expiries(settings(ca.read_text(), cert.read_text(), str(key))) == want


def test_a_ca_bundle_ends_with_its_first_certificate_to_end_and_an_unreadable_part_is_left_out(
    pki, tmp_path, monkeypatch
):
    said: list[str] = []
    monkeypatch.setattr(nats_conn.log, "warning", lambda msg, *args, **kwargs: said.append(msg))
    ca, cert, key = pki / "ca.pem", pki / "client-edge.pem", pki / "client-edge-key.pem"
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(ca.read_text() + cert.read_text())  # a rollover's two CAs, one ending sooner
    got = nats_conn.certificate_expiries(settings(str(bundle), str(tmp_path / "missing.pem"), str(key)))
    ends = nats_conn.certificate_expiries(settings(str(ca), str(cert), str(key)))
    assert got == {"ca": min(ends.values())}
    assert said == ["certificate not read for its expiry"]
