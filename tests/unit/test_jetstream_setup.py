"""python -m fjordbank.adapters.jetstream_setup: its arguments, the plan it makes from what
the servers hold, and what it does with it, against an in-memory stand-in of the JetStream
API (no server): --check changes nothing, applying creates what is missing with the streams'
budgets and KV buckets that refuse roll-ups, a second run finds nothing to do, and only the
admin identity may run it."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DiscardPolicy, KeyValueConfig, PubAck, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from fjordbank import topology
from fjordbank.adapters import jetstream
from fjordbank.adapters import jetstream_setup as setup
from fjordbank.adapters.jetstream_setup import Change, Current

ADMIN_ENV = {
    "FJB_NATS_USER": "admin",
    "FJB_NATS_URLS": "tls://nats.nats.svc.cluster.local:4222",
    "FJB_NATS_PASSWORD": "x",
    "FJB_NATS_CA": "/var/run/secrets/nats/ca.pem",
    "FJB_NATS_CERT": "/var/run/secrets/nats/client.pem",
    "FJB_NATS_KEY": "/var/run/secrets/nats/client-key.pem",
}


# ---- arguments --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _keep_the_test_logging(monkeypatch):
    """main() sets up the JSON log handler on the root logger: not in a test session."""
    from fjordbank.runtime import logs

    monkeypatch.setattr(logs, "setup", lambda *_a, **_k: None)


def test_defaults_apply_and_wait_90_seconds():
    args = setup.parse_args([])
    assert (args.check, args.timeout) == (False, 90.0)


def test_check_and_timeout():
    args = setup.parse_args(["--check", "--timeout", "5"])
    assert (args.check, args.timeout) == (True, 5.0)


@pytest.mark.parametrize("argv", [["--timeout", "0"], ["--timeout", "soon"], ["--apply"], ["extra"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        setup.parse_args(argv)
    assert caught.value.code == setup.EXIT_USAGE
    assert "usage:" in capsys.readouterr().err


def test_main_runs_as_the_admin_identity(monkeypatch):
    seen: dict[str, Any] = {}

    async def fake(settings, *, check, timeout):
        seen.update(user=settings.nats.user, check=check, timeout=timeout)
        return setup.EXIT_DIFFERS

    monkeypatch.setattr(setup, "_connect_and_run", fake)
    assert setup.main(["--check", "--timeout", "7"], env={**ADMIN_ENV, "FJB_NATS_USER": ""}) == setup.EXIT_DIFFERS
    assert seen == {"user": "admin", "check": True, "timeout": 7.0}  # the admin identity by default


def test_main_refuses_a_service_identity_without_connecting(monkeypatch):
    async def never(*_a, **_k):
        raise AssertionError("connected")

    monkeypatch.setattr(setup, "_connect_and_run", never)
    assert setup.main([], env={**ADMIN_ENV, "FJB_NATS_USER": "ledger"}) == setup.EXIT_USAGE


def test_main_reports_a_configuration_error(monkeypatch, capsys):
    monkeypatch.setattr(setup, "_connect_and_run", None)
    assert setup.main([], env={**ADMIN_ENV, "FJB_ENV": "staging"}) == setup.EXIT_USAGE
    assert "FJB_ENV" in capsys.readouterr().err


# ---- what should be there ---------------------------------------------------------------


def test_desired_gives_every_stream_its_budget_and_refuses_new_messages_when_full():
    want = setup.desired()
    assert sorted(want.streams) == sorted(s.name for s in topology.STREAMS)
    for name, cfg in want.streams.items():
        assert cfg.max_bytes == setup.STREAM_BUDGETS[name] > 0
        assert cfg.discard == DiscardPolicy.NEW
    assert sorted(want.consumers) == sorted((d.stream, d.durable) for d in topology.DURABLES)
    assert sorted(want.buckets) == sorted([topology.OWNERS_BUCKET, topology.REPLAYED_BUCKET, topology.IN_HAND_BUCKET])


def test_desired_refuses_a_stream_without_a_budget_and_a_budget_without_a_stream():
    budgets = dict(setup.STREAM_BUDGETS)
    del budgets[topology.STREAM_DLQ]
    with pytest.raises(ValueError, match="DLQ"):
        setup.desired(budgets)
    with pytest.raises(ValueError, match="LOANS"):
        setup.desired({**setup.STREAM_BUDGETS, "LOANS": 1})


# ---- the plan ---------------------------------------------------------------------------


def echo_stream(cfg: StreamConfig) -> StreamConfig:
    """The config as the server hands it back (nanoseconds, plain strings)."""
    return StreamConfig.from_response(cfg.as_dict())


def echo_consumer(cfg: ConsumerConfig) -> ConsumerConfig:
    return ConsumerConfig.from_response(cfg.as_dict())


def kv_stream(kv: KeyValueConfig) -> StreamConfig:
    """A bucket's stream as this command makes it, as the server hands it back."""
    return echo_stream(jetstream.bucket_stream_config(kv))


class _Captured(Exception):
    pass


class _CaptureStream(JetStreamContext):
    """nats-py's own create_key_value, stopped at the stream it asks the server for."""

    def __init__(self) -> None:  # no connection: add_stream is the only call it makes here
        self.config: StreamConfig | None = None

    async def add_stream(self, config: StreamConfig | None = None, **params: Any) -> Any:
        self.config = config
        raise _Captured


async def made_by_nats_py(kv: KeyValueConfig) -> StreamConfig:
    """The stream nats-py's create_key_value makes for ``kv``, as the server hands it back."""
    capture = _CaptureStream()
    with pytest.raises(_Captured):
        await capture.create_key_value(kv)
    assert capture.config is not None
    return echo_stream(capture.config)


def in_line(want: setup.Desired) -> Current:
    return Current(
        streams={n: echo_stream(c) for n, c in want.streams.items()},
        consumers={k: echo_consumer(c) for k, c in want.consumers.items()},
        buckets={b: kv_stream(k) for b, k in want.buckets.items()},
    )


def test_an_empty_server_gets_everything_created_streams_first():
    want = setup.desired()
    changes = setup.plan(Current(), want)
    assert all(c.action == "create" for c in changes)
    kinds = [c.kind for c in changes]
    assert kinds == ["stream"] * len(want.streams) + ["consumer"] * len(want.consumers) + ["bucket"] * 3
    assert Change("create", "consumer", "PAYMENTS/ledger-p3") in changes


def test_a_server_in_line_needs_nothing():
    want = setup.desired()
    assert setup.plan(in_line(want), want) == []


def test_the_streams_as_they_were_get_their_budgets():
    """Before the budgets: no max_bytes (-1 on the server) and DiscardPolicy.OLD."""
    want = setup.desired()
    current = in_line(want)
    payments = current.streams[topology.STREAM_PAYMENTS]
    current.streams[topology.STREAM_PAYMENTS] = dataclasses.replace(payments, max_bytes=-1, discard=DiscardPolicy.OLD)
    (change,) = setup.plan(current, want)
    assert (change.action, change.kind, change.name) == ("update", "stream", "PAYMENTS")
    assert {f.split(":")[0] for f in change.fields} == {"max_bytes", "discard"}
    assert setup.blocked(change) is None
    assert "max_bytes: -1 -> 128849018880" in str(change)


def test_a_changed_consumer_is_updated_and_an_undeclared_one_deleted():
    want = setup.desired()
    current = in_line(want)
    key = (topology.STREAM_PAYMENTS, "ledger-p0")
    current.consumers[key] = dataclasses.replace(current.consumers[key], ack_wait=30.0)
    current.consumers[(topology.STREAM_PAYMENTS, "ledger")] = echo_consumer(ConsumerConfig(durable_name="ledger"))
    changes = setup.plan(current, want)
    assert [(c.action, c.name) for c in changes] == [("update", "PAYMENTS/ledger-p0"), ("delete", "PAYMENTS/ledger")]
    assert changes[0].fields == ("ack_wait: 30.0 -> 4.0",)


def test_a_bucket_changed_in_place_or_not_at_all():
    want = setup.desired()
    current = in_line(want)
    owners = current.buckets[topology.OWNERS_BUCKET]
    current.buckets[topology.OWNERS_BUCKET] = dataclasses.replace(owners, max_age=6.0)
    (ttl,) = setup.plan(current, want)
    assert ttl.kind == "bucket" and ttl.fields == ("ttl: 6.0 -> 3.0",) and setup.blocked(ttl) is None
    current.buckets[topology.OWNERS_BUCKET] = dataclasses.replace(owners, storage=StorageType.FILE)
    (storage,) = setup.plan(current, want)
    assert "cannot change storage" in (setup.blocked(storage) or "")


# ---- the KV buckets refuse roll-ups ------------------------------------------------------
# Every service may publish on its own keys of the shared buckets ($KV.<bucket>.<service>.>);
# with roll-ups allowed (nats-py's create_key_value) one message with `Nats-Rollup: all` on
# one of them purged the whole bucket: every service's partition leases or in-hand marks.


async def test_a_new_bucket_stream_is_what_nats_py_makes_except_that_it_refuses_rollups():
    for kv in jetstream.bucket_configs():
        theirs = await made_by_nats_py(kv)
        ours = kv_stream(kv)
        assert theirs.allow_rollup_hdrs is True  # why nats-py's create_key_value is not used
        assert ours.allow_rollup_hdrs is False, kv.bucket
        assert dataclasses.replace(ours, allow_rollup_hdrs=True) == theirs, kv.bucket


def test_buckets_nats_py_made_are_reported_and_changed_in_place():
    want = setup.desired()
    current = in_line(want)
    for bucket in want.buckets:
        current.buckets[bucket] = dataclasses.replace(current.buckets[bucket], allow_rollup_hdrs=True)
    changes = setup.plan(current, want)
    assert [(c.action, c.kind, c.name) for c in changes] == [("update", "bucket", b) for b in want.buckets]
    for change in changes:
        assert change.fields == ("allow_rollup_hdrs: True -> False",)
        assert setup.blocked(change) is None  # the server lets roll-ups be turned off


async def test_nats_py_binds_a_bucket_whose_stream_refuses_rollups():
    """js.key_value(bucket), how every service opens a bucket, looks at the stream's history
    (max_msgs_per_subject) only: it binds the same."""
    kv = jetstream.owners_config()

    class Bind(JetStreamContext):
        def __init__(self) -> None:  # no connection: stream_info is the only call it makes
            pass

        async def stream_info(self, name: str, subjects_filter: str | None = None) -> Any:
            assert name == setup.kv_stream(kv.bucket)
            return SimpleNamespace(config=kv_stream(kv))

    bucket = await Bind().key_value(kv.bucket)
    assert isinstance(bucket, KeyValue) and bucket._direct is True


async def test_the_kv_writes_the_services_make_carry_no_rollup():
    """put, create, update and delete (ownership, in-hand marks, replayed letters) send no
    Nats-Rollup header, which the streams now refuse; only purge, which nothing here calls,
    does (shown, so the check would see one)."""
    sent: list[dict[str, Any]] = []

    class Record:
        async def publish(self, subject: str, payload: bytes = b"", **kw: Any) -> PubAck:
            sent.append(kw.get("headers") or {})
            return PubAck(stream="KV_b", seq=len(sent))

    bucket = KeyValue(name="b", stream="KV_b", pre="$KV.b.", js=Record(), direct=True)  # type: ignore[arg-type]
    await bucket.put("ledger.p0", b"a")
    await bucket.create("ledger.p1", b"a")
    await bucket.update("ledger.p1", b"b", last=2)
    await bucket.delete("ledger.p1", last=3)
    await bucket.delete("ledger.members.x")
    assert len(sent) == 5 and not any("Nats-Rollup" in headers for headers in sent)
    await bucket.purge("ledger.p0")
    assert "Nats-Rollup" in sent[-1]


# ---- running it against a stand-in of the JetStream API --------------------------------


class FakeJetStream:
    """The JetStream calls the command makes, on dicts; every mutating call is recorded."""

    def __init__(self) -> None:
        self.streams: dict[str, StreamConfig] = {}
        self.consumers: dict[tuple[str, str], ConsumerConfig] = {}
        self.calls: list[tuple[str, str]] = []

    async def stream_info(self, name: str) -> Any:
        if name not in self.streams:
            raise NotFoundError(code=404, err_code=10059, description="stream not found")
        return SimpleNamespace(config=self.streams[name])

    async def consumers_info(self, stream: str) -> list[Any]:
        return [SimpleNamespace(name=d, config=c) for (s, d), c in self.consumers.items() if s == stream]

    async def add_stream(self, config: StreamConfig) -> None:
        self.calls.append(("add_stream", config.name))
        self.streams[config.name] = echo_stream(config)

    async def update_stream(self, config: StreamConfig) -> None:
        self.calls.append(("update_stream", config.name))
        self.streams[config.name] = echo_stream(config)

    async def add_consumer(self, stream: str, config: ConsumerConfig) -> None:
        self.calls.append(("add_consumer", f"{stream}/{config.durable_name}"))
        self.consumers[(stream, config.durable_name)] = echo_consumer(config)

    async def delete_consumer(self, stream: str, durable: str) -> None:
        self.calls.append(("delete_consumer", f"{stream}/{durable}"))
        del self.consumers[(stream, durable)]

    async def create_key_value(self, config: KeyValueConfig) -> None:
        """As nats-py makes a bucket: its stream allows roll-ups."""
        self.calls.append(("create_key_value", config.bucket))
        self.streams[setup.kv_stream(config.bucket)] = await made_by_nats_py(config)

    def bucket_streams(self) -> list[StreamConfig]:
        return [self.streams[setup.kv_stream(kv.bucket)] for kv in jetstream.bucket_configs()]


async def test_check_changes_nothing_and_says_so():
    js = FakeJetStream()
    assert await setup.run(js, check=True) == setup.EXIT_DIFFERS  # type: ignore[arg-type]
    assert js.calls == []


async def test_apply_creates_everything_with_budgets_then_finds_nothing_to_do():
    js = FakeJetStream()
    assert await setup.run(js, check=False) == setup.EXIT_IN_LINE  # type: ignore[arg-type]
    want = setup.desired()
    assert len(js.calls) == len(want.streams) + len(want.consumers) + len(want.buckets)
    assert js.streams[topology.STREAM_PAYMENTS].max_bytes == setup.STREAM_BUDGETS[topology.STREAM_PAYMENTS]
    assert ("create_key_value", topology.OWNERS_BUCKET) not in js.calls
    for cfg in js.bucket_streams():
        assert (cfg.allow_rollup_hdrs, cfg.deny_delete, cfg.allow_msg_ttl) == (False, True, True), cfg.name
    js.calls.clear()
    assert await setup.run(js, check=False) == setup.EXIT_IN_LINE  # type: ignore[arg-type]
    assert await setup.run(js, check=True) == setup.EXIT_IN_LINE  # type: ignore[arg-type]
    assert js.calls == []  # idempotent


async def test_apply_turns_rollups_off_on_the_buckets_nats_py_made_and_keeps_the_rest():
    js = FakeJetStream()
    await setup.run(js, check=False)  # type: ignore[arg-type]
    for kv in jetstream.bucket_configs():  # an existing deployment's buckets
        await js.create_key_value(kv)
    replayed = setup.kv_stream(topology.REPLAYED_BUCKET)  # one made by an older nats-py, without message TTLs
    js.streams[replayed] = dataclasses.replace(js.streams[replayed], allow_msg_ttl=False)
    js.calls.clear()
    assert await setup.run(js, check=True) == setup.EXIT_DIFFERS  # type: ignore[arg-type]
    assert js.calls == []
    assert await setup.run(js, check=False) == setup.EXIT_IN_LINE  # type: ignore[arg-type]
    assert js.calls == [("update_stream", setup.kv_stream(b)) for b in setup.desired().buckets]
    assert [cfg.allow_rollup_hdrs for cfg in js.bucket_streams()] == [False, False, False]
    # the server refuses to turn message TTLs off: each stream keeps what it has
    assert [cfg.allow_msg_ttl for cfg in js.bucket_streams()] == [True, False, True]


async def test_the_local_stacks_topology_makes_and_mends_buckets_without_rollups():
    """devstack's ensure_topology: the same buckets, and a local stack's state from before
    (buckets nats-py made) brought in line at the next start."""
    js = FakeJetStream()
    await jetstream.ensure_topology(js, replicas=1)  # type: ignore[arg-type]
    assert not [c for c in js.calls if c[0] == "create_key_value"]
    assert [cfg.allow_rollup_hdrs for cfg in js.bucket_streams()] == [False, False, False]
    for kv in jetstream.bucket_configs(replicas=1):
        await js.create_key_value(kv)
    await jetstream.ensure_topology(js, replicas=1)  # type: ignore[arg-type]
    assert [cfg.allow_rollup_hdrs for cfg in js.bucket_streams()] == [False, False, False]
    assert [cfg.num_replicas for cfg in js.bucket_streams()] == [1, 1, 1]


async def test_apply_updates_an_old_stream_in_place_and_deletes_an_old_durable():
    js = FakeJetStream()
    await setup.run(js, check=False)  # type: ignore[arg-type]
    payments = js.streams[topology.STREAM_PAYMENTS]
    js.streams[topology.STREAM_PAYMENTS] = dataclasses.replace(payments, max_bytes=-1, discard=DiscardPolicy.OLD)
    js.consumers[(topology.STREAM_PAYMENTS, "ledger")] = echo_consumer(ConsumerConfig(durable_name="ledger"))
    js.calls.clear()
    assert await setup.run(js, check=False) == setup.EXIT_IN_LINE  # type: ignore[arg-type]
    assert js.calls == [("update_stream", "PAYMENTS"), ("delete_consumer", "PAYMENTS/ledger")]


async def test_apply_leaves_what_jetstream_cannot_change_and_exits_1():
    js = FakeJetStream()
    await setup.run(js, check=False)  # type: ignore[arg-type]
    kv = setup.kv_stream(topology.OWNERS_BUCKET)
    js.streams[kv] = dataclasses.replace(js.streams[kv], storage=StorageType.FILE)
    js.calls.clear()
    assert await setup.run(js, check=False) == setup.EXIT_DIFFERS  # type: ignore[arg-type]
    assert js.calls == []
