"""Connections to the NATS cluster: TLS 1.3 from the first byte, a client certificate, and a per-identity secret."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import tempfile
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from fjordbank.config import NatsSettings
from fjordbank.errors import ConfigError

log = logging.getLogger(__name__)


PEM_MARK = "-----BEGIN "


def _is_pem(value: str) -> bool:
    return value.lstrip().startswith(PEM_MARK)


def _pem_file(pem: str, what: str) -> str:
    """A private (0600) file holding ``pem``: ssl can load a certificate chain from files
    only. Where the value is the PEM itself (a Firebase function's secret arrives as an
    environment variable's content), it is written to the instance's own temporary folder,
    which on Cloud Functions is memory, never a persistent disk."""
    fd, path = tempfile.mkstemp(prefix=f"fjb-nats-{what}-", suffix=".pem")
    with os.fdopen(fd, "w") as fh:
        fh.write(pem if pem.endswith("\n") else pem + "\n")
    return path


def tls_context(settings: NatsSettings) -> ssl.SSLContext:
    """Client TLS: only TLS 1.3, the stack's CA, and this identity's certificate.

    Each of ca_file, cert_file and key_file is a path or the PEM text itself (how Secret
    Manager hands a secret to a Firebase function: as an environment variable's value)."""
    try:
        if _is_pem(settings.ca_file):
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=settings.ca_file)
        else:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.ca_file)
    except (FileNotFoundError, ssl.SSLError) as exc:
        where = "the PEM in FJB_NATS_CA" if _is_pem(settings.ca_file) else settings.ca_file
        raise ConfigError(f"cannot load the NATS CA certificate {where}: {exc}") from exc
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    cert, key = settings.cert_file, settings.key_file
    made: list[str] = []
    try:
        if _is_pem(cert):
            cert = _pem_file(cert, "cert")
            made.append(cert)
        if _is_pem(key):
            key = _pem_file(key, "key")
            made.append(key)
        ctx.load_cert_chain(cert, key)
    except (FileNotFoundError, ssl.SSLError) as exc:
        where = "the PEM in FJB_NATS_CERT" if _is_pem(settings.cert_file) else settings.cert_file
        raise ConfigError(f"cannot load the NATS client certificate {where}: {exc}") from exc
    finally:
        for path in made:  # loaded into the context: the key need not stay on disk
            os.unlink(path)
    return ctx


def _pem_text(value: str) -> bytes:
    return value.encode() if _is_pem(value) else Path(value).read_bytes()


def certificate_expiries(settings: NatsSettings) -> dict[str, float]:
    """When this identity's client certificate and the CA it trusts stop being valid (Unix
    seconds; the earliest of the CA file's certificates). Operators issue both by hand
    (k8s/README.md), and an expired one stops the service connecting at its next start or
    reconnect: the services export these (fjb_nats_certificate_expiry_timestamp_seconds)
    for FjbNatsCertificateExpiring. A part that cannot be read is left out (the TLS
    context refuses it with the reason)."""
    from cryptography import x509

    found: dict[str, float] = {}
    for part, value in (("client", settings.cert_file), ("ca", settings.ca_file)):
        try:
            certs = x509.load_pem_x509_certificates(_pem_text(value))
        except (OSError, ValueError) as exc:
            log.warning("certificate not read for its expiry", extra={"cert": part, "error": repr(exc)})
            continue
        found[part] = min(c.not_valid_after_utc.timestamp() for c in certs)
    return found


async def connect(settings: NatsSettings, *, name: str, **options: Any) -> Client:
    """One long-lived connection that reconnects forever across node failures."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats error", extra={"error": repr(exc)})

    async def on_disconnect() -> None:
        log.info("nats disconnected")

    async def on_reconnect() -> None:
        log.info("nats reconnected", extra={"server": str(nc.connected_url.netloc if nc.connected_url else "")})

    options.setdefault("max_reconnect_attempts", -1)
    options.setdefault("reconnect_time_wait", 0.5)
    options.setdefault("connect_timeout", 5)
    # A hung server (stopped, partitioned, its disk stalled) answers no ping: the client
    # gives it up after 2 missed pings 2 s apart (4-6 s) and reconnects to another node,
    # instead of nats-py's default 2 x 120 s.
    options.setdefault("ping_interval", 2)
    options.setdefault("max_outstanding_pings", 2)
    nc = await nats.connect(
        servers=list(settings.urls),
        name=name,
        tls=tls_context(settings),
        # TLS before anything else (the servers' `handshake_first`). Otherwise nats-py reads the
        # server's INFO in clear text and upgrades only when it says tls_required, whatever the
        # tls:// URL: anything answering on the address with an INFO without it got the CONNECT,
        # user and password included, in clear text. Not an option a caller can turn off.
        tls_handshake_first=True,
        user=settings.user,
        password=settings.password,
        inbox_prefix=settings.inbox_prefix,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        **options,
    )
    return nc


async def closed_for_good(nc: Client, stopping: asyncio.Event, every: float = 1.0) -> bool:
    """Wait until ``nc`` is closed for good (True) or ``stopping`` is set (False). nats-py
    closes a client, never to reconnect whatever ``max_reconnect_attempts`` says, on a
    server error other than a stale connection or a permissions violation (an
    authorization violation after a credentials rotation, say); a reconnect is not a close."""
    while not stopping.is_set():
        if nc.is_closed:
            return True
        await asyncio.sleep(every)
    return False
