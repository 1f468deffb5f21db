"""Fault injection for chaos runs (fjordbank/adapters/faults.py), without the stack.

- The switch: an entry is on until its ``until``, for the services it names; the file is
  re-read when it changes; outside the emulator the setting is refused.
- Firestore: a real ``AsyncClient`` (its gRPC channel to an address nobody listens on)
  gets its faults from the channel's interceptors, as google.api_core exceptions of the
  right types, with the gRPC error behind them, exactly as a server's would come: ABORTED
  only inside a transaction; a streaming read fails where the code above iterates it.
- NATS: a publish times out (nats.errors.TimeoutError) at the rate, some after the message
  was stored; with the entry off, everything goes through.
- The chaos kinds (bench/chaos/injected.py): what the seed draws, the counts they report.
The same injectors against the running stack: tests/integration/test_injected_faults.py.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import grpc
import nats.errors
import pytest
from google.api_core import exceptions as api_errors
from prometheus_client import REGISTRY

from fjordbank.adapters import faults
from fjordbank.adapters.firestore import async_client, is_transient
from fjordbank.errors import ConfigError

EMULATOR = {"FIRESTORE_EMULATOR_HOST": "127.0.0.1:9"}


def injected(fault: str) -> float:
    return REGISTRY.get_sample_value("fjb_faults_injected_total", {"fault": fault}) or 0.0


def switch_for(path: Path, service: str = "ledger", **kwargs) -> faults.FaultSwitch:
    return faults.FaultSwitch(path, service, poll_seconds=0, **kwargs)


# ---- the switch ---------------------------------------------------------------------------
def test_an_entry_is_on_until_its_until_and_only_for_the_services_it_names(tmp_path):
    path = tmp_path / "faults.json"
    now = [1000.0]
    faults.write(
        path,
        {
            "firestore": {"until": 1010, "rate": 0.5, "services": ["ledger"]},
            "publish_timeout": {"until": 1010, "rate": 0.2},
        },
    )
    ledger = switch_for(path, "ledger", clock=lambda: now[0])
    notifier = switch_for(path, "notifier", clock=lambda: now[0])
    assert ledger.active("firestore") == {"until": 1010, "rate": 0.5, "services": ["ledger"]}
    assert notifier.active("firestore") is None  # not named
    assert notifier.active("publish_timeout") is not None  # no services: every service
    assert ledger.active("clearing_channel_down") is None  # no such entry
    now[0] = 1010.0
    assert ledger.active("firestore") is None and notifier.active("publish_timeout") is None


def test_the_file_is_read_again_when_it_changes_and_a_missing_file_means_no_faults(tmp_path):
    path = tmp_path / "faults.json"
    switch = switch_for(path)
    assert switch.active("firestore") is None
    faults.write(path, {"firestore": {"until": time.time() + 60, "rate": 1.0}})
    assert switch.active("firestore")["rate"] == 1.0
    faults.write(path, {"firestore": {"until": time.time() + 60, "rate": 0.25}})
    _touch_later(path)
    assert switch.active("firestore")["rate"] == 0.25
    path.unlink()
    assert switch.active("firestore") is None


def test_the_file_is_not_read_again_before_poll_seconds(tmp_path):
    path = tmp_path / "faults.json"
    faults.write(path, {"firestore": {"until": time.time() + 60, "rate": 1.0}})
    switch = faults.FaultSwitch(path, "ledger", poll_seconds=3600)
    assert switch.active("firestore") is not None
    path.unlink()
    assert switch.active("firestore") is not None  # the last reading holds until the next poll


def test_update_sets_and_removes_one_entry_and_keeps_the_others(tmp_path):
    path = tmp_path / "chaos" / "faults.json"
    faults.update(path, "firestore", {"until": 1, "rate": 0.1})
    faults.update(path, "clearing_channel_down", {"until": 2})
    faults.update(path, "firestore", {"until": 3, "rate": 0.2})
    assert faults.read(path) == {"firestore": {"until": 3, "rate": 0.2}, "clearing_channel_down": {"until": 2}}
    faults.update(path, "firestore", None)
    assert faults.read(path) == {"clearing_channel_down": {"until": 2}}


def test_faults_are_refused_outside_the_emulator_and_off_without_the_setting(tmp_path):
    with pytest.raises(ConfigError):
        faults.FaultSwitch.from_env("ledger", {"FJB_FAULTS_FILE": str(tmp_path / "f.json")})
    assert faults.FaultSwitch.from_env("ledger", dict(EMULATOR)) is None
    switch = faults.FaultSwitch.from_env("ledger", {"FJB_FAULTS_FILE": str(tmp_path / "f.json"), **EMULATOR})
    assert switch is not None and switch.service == "ledger"


def _touch_later(path: Path) -> None:
    """A new modification time even on a file system with coarse timestamps."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


# ---- Firestore ----------------------------------------------------------------------------
@pytest.fixture
def faulty_db(tmp_path, monkeypatch):
    """A real AsyncClient with the fault interceptors; its channel points at a port nobody
    listens on, so a call the faults let through fails with the real UNAVAILABLE."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", EMULATOR["FIRESTORE_EMULATOR_HOST"])
    path = tmp_path / "faults.json"
    switch = switch_for(path)

    def make(rate: float, codes: list[str]):
        faults.write(path, {"firestore": {"until": time.time() + 60, "rate": rate, "codes": codes}})
        _touch_later(path)
        return async_client("demo-faults", faults=switch)

    return make


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("ABORTED", api_errors.Aborted),
        ("UNAVAILABLE", api_errors.ServiceUnavailable),
        ("DEADLINE_EXCEEDED", api_errors.DeadlineExceeded),
    ],
)
async def test_a_transaction_commit_fails_with_the_code_as_a_real_one_would(faulty_db, code, error):
    db = faulty_db(1.0, [code])
    label = faults.FIRESTORE_FAULTS[code]
    before = injected(label)
    with pytest.raises(error) as caught:
        await db._firestore_api.commit(
            request={"database": db._database_string, "writes": [], "transaction": b"tx-1"},
            retry=None,  # GAPIC's own retry of UNAVAILABLE would otherwise try again for 60 s
        )
    exc = caught.value
    assert isinstance(exc.response, grpc.aio.AioRpcError) and exc.response.code() == getattr(grpc.StatusCode, code)
    assert exc.grpc_status_code == getattr(grpc.StatusCode, code)
    assert is_transient(exc)
    assert injected(label) == before + 1


async def test_aborted_only_inside_a_transaction(faulty_db):
    db = faulty_db(1.0, ["ABORTED"])
    before = injected("firestore_aborted")
    with pytest.raises(api_errors.ServiceUnavailable):  # went through to the closed port
        await db._firestore_api.begin_transaction(request={"database": db._database_string}, retry=None, timeout=5)
    assert injected("firestore_aborted") == before


async def test_a_streaming_read_fails_where_the_caller_reads_it(faulty_db):
    db = faulty_db(1.0, ["DEADLINE_EXCEEDED"])
    before = injected("firestore_deadline_exceeded")
    with pytest.raises(api_errors.DeadlineExceeded):
        async for _snap in db.get_all([db.collection("accounts").document("a")]):
            pass
    assert injected("firestore_deadline_exceeded") == before + 1


async def test_a_rate_of_zero_lets_every_call_through(faulty_db):
    db = faulty_db(0.0, ["DEADLINE_EXCEEDED"])
    before = injected("firestore_deadline_exceeded")
    with pytest.raises(api_errors.ServiceUnavailable):  # the real answer of the closed port
        await db._firestore_api.commit(
            request={"database": db._database_string, "writes": [], "transaction": b"tx-1"}, retry=None, timeout=5
        )
    assert injected("firestore_deadline_exceeded") == before


def test_without_a_switch_the_client_only_counts(monkeypatch):
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", EMULATOR["FIRESTORE_EMULATOR_HOST"])
    interceptors = async_client("demo-faults")._fjb_interceptors
    assert interceptors and {type(i).__module__ for i in interceptors} == {"fjordbank.adapters.firestore_calls"}


# ---- NATS publish timeouts ---------------------------------------------------------------
class FakeJetStream:
    def __init__(self) -> None:
        self.stored: list[tuple[str, bytes, dict]] = []

    async def publish(self, subject, payload=b"", timeout=None, stream=None, headers=None):
        self.stored.append((subject, payload, headers or {}))
        return {"seq": len(self.stored)}

    async def stream_info(self, name):
        return name


async def test_publishes_time_out_at_the_rate_some_after_the_message_was_stored(tmp_path):
    path = tmp_path / "faults.json"
    faults.write(path, {"publish_timeout": {"until": time.time() + 60, "rate": 0.3}})
    switch = switch_for(path)
    switch._rng = random.Random(7)  # the draws of this test, not the service's
    js = FakeJetStream()
    wrapped = faults.jetstream(js, switch)
    not_sent, ack_lost = injected(faults.PUBLISH_NOT_SENT), injected(faults.PUBLISH_ACK_LOST)
    ok = timeouts = 0
    for i in range(400):
        try:
            await wrapped.publish("payments.completed", b"{}", headers={"Nats-Msg-Id": f"p{i}:completed"})
            ok += 1
        except nats.errors.TimeoutError:
            timeouts += 1
    lost = injected(faults.PUBLISH_ACK_LOST) - ack_lost
    assert 80 <= timeouts <= 160  # 30 % of 400
    assert injected(faults.PUBLISH_NOT_SENT) - not_sent + lost == timeouts
    assert 0 < lost < timeouts  # some of them after JetStream had stored the message
    assert len(js.stored) == ok + lost
    assert await wrapped.stream_info("PAYMENTS") == "PAYMENTS"  # the rest is the context's own


async def test_without_the_entry_or_a_switch_every_publish_goes_through(tmp_path):
    js = FakeJetStream()
    assert faults.jetstream(js, None) is js
    wrapped = faults.jetstream(js, switch_for(tmp_path / "none.json"))
    for i in range(50):
        await wrapped.publish("payments.completed", b"{}", headers={"Nats-Msg-Id": f"p{i}"})
    assert len(js.stored) == 50


# ---- the chaos kinds ----------------------------------------------------------------------
def test_the_kinds_draw_their_rates_targets_and_durations_from_the_seed():
    from bench.chaos import injected as kinds
    from bench.chaos.kinds import Context, Fault, registry
    from fjordbank import topology

    ctx = Context(consumers=list(topology.SERVICES), nats=["nats-1", "nats-2", "nats-3"])
    assert {"firestore-errors", "publish-timeouts"} <= set(registry())
    for kind, (low, high) in ((kinds.FirestoreErrors(), (0.05, 0.25)), (kinds.PublishTimeouts(), (0.10, 0.30))):
        draws = [kind.choose(random.Random(seed), ctx) for seed in range(50)]
        assert draws == [kind.choose(random.Random(seed), ctx) for seed in range(50)]
        for targets, seconds in draws:
            fault = Fault(kind.name, targets, 0.0, seconds)
            assert low <= kinds.rate_of(fault) <= high and 10 <= seconds <= 30
            assert set(kinds.services_of(fault)) <= set(topology.SERVICES)
    services = [
        kinds.services_of(Fault("f", t, 0, s))
        for t, s in (kinds.FirestoreErrors().choose(random.Random(n), ctx) for n in range(50))
    ]
    assert any(len(s) == 1 for s in services) and any(s == list(topology.SERVICES) for s in services)


def test_injected_counts_are_the_growth_in_the_window_a_restarted_service_from_zero():
    from bench.chaos.injected import injected_between

    before = {"ledger": {"firestore_aborted": 5.0}, "screening": {"publish_timeout_not_sent": 9.0}}
    after = {
        "ledger": {"firestore_aborted": 8.0, "firestore_unavailable": 2.0},
        "screening": {"publish_timeout_not_sent": 3.0},  # restarted meanwhile
        "notifier": {},
    }
    assert injected_between(before, after) == {
        "ledger": {"firestore_aborted": 3, "firestore_unavailable": 2},
        "screening": {"publish_timeout_not_sent": 3},
    }


# ---- the consumer runtime's answer to them ------------------------------------------------
class RuntimeMsg:
    """A fetched message as the runtime sees it (what it settles it with is logged)."""

    def __init__(self, seq: int) -> None:
        self.subject, self.data, self.headers = "payments.approved", b"{}", {}
        self.metadata = SimpleNamespace(
            num_delivered=1, sequence=SimpleNamespace(stream=seq), timestamp=dt.datetime.now(dt.UTC)
        )
        self.log: list[str] = []

    async def in_progress(self):
        self.log.append("wpi")

    async def ack(self):
        self.log.append("ack")

    async def nak(self, delay=None):
        self.log.append("nak")

    async def term(self):
        self.log.append("term")


def runtime_with(handler):
    from fjordbank.config import load_settings
    from fjordbank.runtime.consumer import ConsumerService

    return ConsumerService(durable="ledger", settings=load_settings({}), handler=handler)


@pytest.mark.parametrize(
    "error",
    [
        api_errors.Aborted("contention"),
        api_errors.ServiceUnavailable("unavailable"),
        api_errors.DeadlineExceeded("deadline"),
        nats.errors.TimeoutError(),
    ],
    ids=["aborted", "unavailable", "deadline", "publish-timeout"],
)
async def test_the_runtime_tries_a_batch_again_in_hand_after_a_transient_error(error):
    """What the injected faults raise costs no delivery when it passes within seconds: no
    nak, so six unlucky deliveries in a row can never dead-letter a message."""
    from fjordbank.runtime.consumer import Ack, Delivery

    calls = []

    async def handler(batch):
        calls.append(len(batch))
        if len(calls) <= 2:
            raise error
        return [Ack() for _ in batch]

    msgs = [RuntimeMsg(1), RuntimeMsg(2)]
    await runtime_with(handler).process([Delivery(m) for m in msgs])
    assert calls == [2, 2, 2]
    assert [m.log for m in msgs] == [["ack"], ["ack"]]


async def test_a_lasting_transient_error_is_naked_and_any_other_error_is_not_tried_again_in_hand():
    from fjordbank.runtime.consumer import TRANSIENT_PAUSES, Delivery

    calls = []

    async def unavailable(batch):
        calls.append(len(batch))
        raise api_errors.ServiceUnavailable("down")

    m = RuntimeMsg(1)
    await runtime_with(unavailable).process([Delivery(m)])
    assert calls == [1] * (len(TRANSIENT_PAUSES) + 1) and m.log[-1] == "nak"

    calls.clear()

    async def bug(batch):
        calls.append(len(batch))
        raise KeyError("amount")

    m = RuntimeMsg(2)
    await runtime_with(bug).process([Delivery(m)])
    assert calls == [1] and m.log[-1] == "nak"  # redelivered with backoff, dead-lettered if it lasts


def test_a_kind_switches_its_entry_on_for_its_time_and_off_keeping_the_other_entries(tmp_path):
    from bench.chaos.injected import FirestoreErrors, PublishTimeouts
    from bench.chaos.kinds import Fault

    stack = SimpleNamespace(faults_file=tmp_path / "chaos" / "faults.json", s=SimpleNamespace(service_ports={}))
    faults.update(stack.faults_file, "clearing_channel_down", {"until": time.time() + 60})
    for kind, name, targets in (
        (FirestoreErrors(), faults.FIRESTORE, ["ledger", "rate=0.2"]),
        (PublishTimeouts(), faults.PUBLISH_TIMEOUT, ["screening", "ledger", "clearing", "rate=0.25"]),
    ):
        fault = Fault(kind.name, targets, 0.0, 0.6)
        seen = []
        applied = threading.Thread(target=kind.apply, args=(stack, fault, threading.Event()))
        applied.start()
        time.sleep(0.3)
        seen.append(faults.read(stack.faults_file).get(name))
        applied.join(timeout=5)
        entry = seen[0]
        assert entry is not None and entry["rate"] == float(targets[-1].removeprefix("rate="))
        assert entry["services"] == targets[:-1] and entry["until"] > time.time()
        assert name not in faults.read(stack.faults_file)  # off again
        assert "clearing_channel_down" in faults.read(stack.faults_file)  # the other entry kept
        assert fault.detail["rate"] == entry["rate"] and fault.detail["injected_total"] == 0
