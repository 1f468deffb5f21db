"""Connect to the test cluster as one of the topology's identities (or as an impostor)."""

from __future__ import annotations

import ssl

import nats

from devstack import natsconf


def identity_env(stack, identity: str) -> dict[str, str]:
    return stack.nats_env(identity)


def tls(
    stack,
    identity: str | None,
    *,
    max_version: ssl.TLSVersion | None = None,
    min_version: ssl.TLSVersion | None = ssl.TLSVersion.TLSv1_2,
) -> ssl.SSLContext:
    pki = stack.s.pki_dir
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "ca.pem"))
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    if identity:
        ctx.load_cert_chain(str(pki / f"client-{identity}.pem"), str(pki / f"client-{identity}-key.pem"))
    return ctx


def secret(stack, identity: str) -> str:
    return natsconf.ensure_user_secrets(stack.s.secrets_file)[identity]


async def connect(
    stack,
    identity: str,
    *,
    password: str | None = None,
    tls_ctx: ssl.SSLContext | None = None,
    errors: list | None = None,
    servers: list[str] | None = None,
    **kw,
):
    async def on_error(exc):
        if errors is not None:
            errors.append(exc)

    # TLS first, as the services connect (fjordbank/adapters/nats_conn.py): the servers expect
    # it (handshake_first). A test of a client that waits for the INFO passes it False.
    return await nats.connect(
        servers=servers or [n.url for n in stack.s.nats_nodes],
        tls=tls_ctx or tls(stack, identity, min_version=ssl.TLSVersion.TLSv1_3),
        user=identity,
        password=secret(stack, identity) if password is None else password,
        inbox_prefix=f"_INBOX_{identity}",
        error_cb=on_error,
        **{"allow_reconnect": False, "connect_timeout": 3, "tls_handshake_first": True, **kw},
    )
