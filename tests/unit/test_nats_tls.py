"""The NATS client TLS context from paths or from PEM text (a Firebase function gets its
certificate, key and CA from Secret Manager as environment variables' values)."""

from __future__ import annotations

import asyncio
import contextlib
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


# ---- TLS from the first byte (a listener that does not ask for TLS gets no secret) ----------
async def test_a_listener_that_does_not_ask_for_tls_gets_a_tls_hello_and_never_the_password(pki):
    """Whatever answers on the address plays a server whose INFO does not say tls_required
    (a man in the middle, a stray plaintext server). nats-py upgrades to TLS only when the
    plaintext INFO asks for it, whatever the tls:// URL, so without TLS first the client
    answered with its CONNECT, user and password in clear text. With it the first byte the
    listener gets opens a TLS record (0x16, a handshake: the ClientHello), before any INFO is
    read, and the connection fails on the listener's clear text."""
    received = bytearray()
    ended = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def listener(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        writer.write(b'INFO {"server_id":"not-nats","version":"2.15.1","auth_required":true,"max_payload":1048576}\r\n')
        await writer.drain()
        try:
            while chunk := await reader.read(4096):
                received.extend(chunk)
        except ConnectionError:
            pass
        finally:
            ended.set()

    server = await asyncio.start_server(listener, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    nats_settings = NatsSettings(
        urls=(f"tls://127.0.0.1:{port}",),
        user="edge",
        password="the-edge-secret",
        ca_file=str(pki / "ca.pem"),
        cert_file=str(pki / "client-edge.pem"),
        key_file=str(pki / "client-edge-key.pem"),
    )
    try:
        with pytest.raises(Exception):  # noqa: B017 - whichever error: what matters is what was sent
            nc = await nats_conn.connect(
                nats_settings, name="edge", allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=1
            )
            await nc.close()
        with contextlib.suppress(TimeoutError):  # the client gave up and closed: all it sent is in
            await asyncio.wait_for(ended.wait(), 2)
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
    assert received[:1] == b"\x16", f"the client's first bytes are not a TLS handshake: {bytes(received[:80])!r}"
    assert b"CONNECT" not in received
    assert b"the-edge-secret" not in received
