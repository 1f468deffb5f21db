"""Connections to the NATS cluster: TLS 1.3, a client certificate, and a per-identity secret."""

from __future__ import annotations

import logging
import ssl

import nats
from nats.aio.client import Client

from fjordbank.config import NatsSettings
from fjordbank.errors import ConfigError

log = logging.getLogger(__name__)


def tls_context(settings: NatsSettings) -> ssl.SSLContext:
    """Client TLS: only TLS 1.3, the stack's CA, and this identity's certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    try:
        ctx.load_cert_chain(settings.cert_file, settings.key_file)
    except (FileNotFoundError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the NATS client certificate {settings.cert_file}: {exc}") from exc
    return ctx


async def connect(settings: NatsSettings, *, name: str, **options) -> Client:
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
    nc = await nats.connect(
        servers=list(settings.urls),
        name=name,
        tls=tls_context(settings),
        user=settings.user,
        password=settings.password,
        inbox_prefix=settings.inbox_prefix,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        **options,
    )
    return nc
