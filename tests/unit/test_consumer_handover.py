"""A partition's messages stay with the instance that holds the partition, at every step
(fjordbank/runtime/consumer.py, fjordbank/runtime/ownership.py):

- a handler is never started, nor tried again after a transient failure, once the
  partition is no longer held here (the lease may be another instance's by then): the
  batch is given back at once (nak, no delay);
- at a handover, messages delivered to this instance but not fetched yet (nats-py keeps
  a late answer to a pull request for the next fetch) are given back before the new holder
  starts, not left to come back after ack_wait behind the payer's later payments;
- a batch given back whole (its handler timed out) comes back after one delay, so a
  message delivered more often does not come back after the payer's later ones;
- a failure to open the lease bucket at start-up (a timeout, a 503 while the cluster
  elects a leader) is tried again, and a lease loop that ends while the service runs
  stops the service (exit 1, restarted), where it stayed ready holding nothing."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import nats.errors
from nats.aio.subscription import Subscription
from nats.js.client import JetStreamContext

from fjordbank import topology
from fjordbank.config import load_settings
from fjordbank.runtime import consumer
from fjordbank.runtime.consumer import Ack, Binding, ConsumerService, Delivery
from fjordbank.runtime.ownership import LeaseThread
from tests.unit.test_consumer_heartbeat import Msg
from tests.unit.test_ownership import FakeConnection, FakeKV


def outcomes(*msgs: Msg) -> dict[int, list[str]]:
    return {m.metadata.sequence.stream: [what for _t, what in m.log if what != "wpi"] for m in msgs}


async def held_partition(handler, *, held: dict[str, bool], p: int = 4, **kwargs) -> tuple[ConsumerService, Binding]:
    svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=handler, **kwargs)
    part = topology.consumer("ledger").partitions()[p]
    await svc._acquire(part.partition)
    svc.leases = SimpleNamespace(holds=lambda _p: held["now"])
    return svc, Binding(part, handler)


async def test_a_handler_is_not_started_once_the_lease_lapsed_during_the_fill():
    calls = []

    async def handler(batch):
        calls.append([d.stream_sequence for d in batch])
        return [Ack() for _ in batch]

    held = {"now": True}
    svc, binding = await held_partition(handler, held=held)

    async def fill(_msgs, _waited):
        held["now"] = False  # the fill's round trips (up to 2 s) outlasted the lease's validity
        return [more]

    first, more = Msg(1), Msg(2)
    await svc.process([Delivery(first)], binding, fill=fill)
    assert calls == []
    assert outcomes(first, more) == {1: ["nak"], 2: ["nak"]}  # at once, for the new holder


async def test_a_transient_failure_is_not_tried_again_once_the_lease_lapsed(monkeypatch):
    monkeypatch.setattr(consumer, "TRANSIENT_PAUSES", (0.01, 0.01, 0.01))
    calls = 0
    held = {"now": True}

    async def handler(batch):
        nonlocal calls
        calls += 1
        if calls == 1:
            held["now"] = False  # NATS trouble: the publish timed out, and the renewals failed too
            raise nats.errors.TimeoutError()
        return [Ack() for _ in batch]

    svc, binding = await held_partition(handler, held=held)
    m = Msg(1)
    await svc.process([Delivery(m)], binding)
    assert calls == 1
    assert outcomes(m) == {1: ["nak"]}


async def test_a_batch_given_back_whole_comes_back_after_one_delay(monkeypatch):
    monkeypatch.setattr(consumer, "HANDLER_DEADLINE_SECONDS", 0.05)
    delays: dict[int, float | None] = {}

    class M(Msg):
        async def nak(self, delay=None):
            delays[self.metadata.sequence.stream] = delay
            self._note("nak")

    async def hangs(batch):
        await asyncio.Event().wait()

    svc, binding = await held_partition(hangs, held={"now": True}, p=3)
    x1, x2 = M(1), M(2)
    x1.subject = x2.subject = "payments.approved.3"
    x1.metadata.num_delivered = 3  # came back before (a kill, a move); x2 arrived after it
    await svc.process([Delivery(x1), Delivery(x2)], binding)
    longest = binding.spec.nak_delay(3)
    assert delays == {1: longest, 2: longest}


class ScriptedNC:
    """The server side of the pull requests: the first fetch answered at once, the fill's
    ask answered with one message at once and one after the fill returned."""

    is_closed = False

    def __init__(self) -> None:
        self.sub: Subscription | None = None
        self.requests = 0
        self.m1, self.m2, self.m3 = self.msg(1, 2), self.msg(2, 1), self.msg(3, 0)

    @staticmethod
    def msg(seq: int, behind: int) -> Msg:
        m = Msg(seq)
        m.subject, m.headers = "payments.approved.4", None  # a plain delivery (no status header)
        m.metadata.num_pending = behind
        return m

    async def publish(self, subject, payload=b"", reply="", headers=None):
        self.requests += 1
        assert self.sub is not None
        queue = self.sub._pending_queue
        if self.requests == 1:
            queue.put_nowait(self.m1)
        elif self.requests == 2:
            queue.put_nowait(self.m2)
            asyncio.get_running_loop().call_later(0.15, queue.put_nowait, self.m3)


async def test_a_handover_gives_back_what_was_delivered_but_not_fetched():
    nc = ScriptedNC()
    nc.sub = Subscription(nc)
    js = SimpleNamespace(_nc=nc, _prefix="$JS.API")
    sub = JetStreamContext.PullSubscription(js, nc.sub, "PAYMENTS", "ledger-p4", b"_INBOX.x")
    started = asyncio.Event()

    async def handler(batch):
        started.set()
        await asyncio.sleep(0.3)  # the batch in hand; m3 lands in the client's queue meanwhile
        return [Ack() for _ in batch]

    held = {"now": True}
    svc, binding = await held_partition(handler, held=held, fetch_wait=0.1)
    svc._subs[4] = [(sub, "ledger-p4")]
    worker = asyncio.create_task(svc._partition_worker(sub, binding))
    await asyncio.wait_for(started.wait(), 2)
    held["now"] = False  # the lease thread gives the partition up (a rebalance) ...
    await svc._release(4)  # ... and hands it over once this returns
    assert outcomes(nc.m1, nc.m2, nc.m3) == {1: ["ack"], 2: ["ack"], 3: ["nak"]}
    assert sub.pending_msgs == 0
    svc._stopping.set()
    await asyncio.wait_for(worker, 3)


def lease_thread(connection: FakeConnection, main_loop: asyncio.AbstractEventLoop) -> LeaseThread:
    async def hook(_p):
        pass

    async def connect():
        return connection

    return LeaseThread(connect, "ledger", "ledger-1", main_loop=main_loop, on_acquire=hook, on_release=hook)


def test_the_lease_bucket_is_opened_again_after_a_transient_failure():
    class Flaky(FakeConnection):
        failures = 2

        def jetstream(self):
            js = super().jetstream()
            opened = js.key_value

            async def key_value(bucket):
                if Flaky.failures:
                    Flaky.failures -= 1
                    raise nats.errors.TimeoutError()
                return await opened(bucket)

            js.key_value = key_value
            return js

    async def scenario() -> bool:
        leases = lease_thread(Flaky(FakeKV(clock=time.monotonic)), asyncio.get_running_loop())  # type: ignore[arg-type]
        leases.start()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not all(leases.holds(p) for p in range(topology.PAYMENT_PARTITIONS)):
            await asyncio.sleep(0.05)
        every = all(leases.holds(p) for p in range(topology.PAYMENT_PARTITIONS))
        await leases.stop()
        return every

    assert asyncio.run(scenario())


async def test_the_service_stops_when_its_lease_loop_ends():
    async def handler(batch):
        return [Ack() for _ in batch]

    svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=handler)
    dead = SimpleNamespace(is_alive=lambda: False)
    await asyncio.wait_for(svc._watch_leases(dead), 2)  # type: ignore[arg-type]
    assert svc._stopping.is_set() and svc._leases_failed and not svc._alive


async def test_the_service_stops_when_its_nats_connection_is_closed_for_good():
    """nats-py closes a client, never to reconnect, on some server errors: the service
    stops (not live, exit 1 after the clean stop's steps) rather than fail every fetch
    while it answers live and ready (found in review, 2026-12-06)."""

    async def handler(batch):
        return [Ack() for _ in batch]

    svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=handler)
    closed = SimpleNamespace(is_closed=True)
    await asyncio.wait_for(svc._watch_connection(closed, every=0.01), 2)  # type: ignore[arg-type]
    assert svc._stopping.is_set() and svc._connection_closed and not svc._alive


async def test_an_open_connection_is_watched_until_the_service_stops():
    async def handler(batch):
        return [Ack() for _ in batch]

    svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=handler)
    watch = asyncio.create_task(svc._watch_connection(SimpleNamespace(is_closed=False), every=0.01))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert not watch.done() and svc._alive
    svc._stopping.set()
    await asyncio.wait_for(watch, 1)
    assert not svc._connection_closed and svc._alive
