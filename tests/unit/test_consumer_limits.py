"""What the consumer runtime does when a message gets no outcome: a handler call that never
returns is cut off and its messages given back; a message delivered again and again without
an outcome is dead-lettered rather than handled once more (the server delivers for ever, so
the runtime is what gives up); a batch retried one message at a time stops when its
partition moves, and one that failed on a transient error is given back whole; a partition
held by nobody here is waited on, not spun on."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from fjordbank import topology
from fjordbank.adapters.jetstream import consumer_config
from fjordbank.config import load_settings
from fjordbank.runtime import consumer
from fjordbank.runtime.consumer import Ack, Binding, ConsumerService, Delivery
from fjordbank.service_layer.ports import Contention
from tests.unit.test_consumer_heartbeat import Msg


def delivered(seq: int, times: int) -> Msg:
    m = Msg(seq)
    m.metadata.num_delivered = times
    return m


def service(handler) -> tuple[ConsumerService, list[tuple[int, str]]]:
    svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=handler)
    letters: list[tuple[int, str]] = []

    async def dead_letter(d, reason, spec=None):
        letters.append((d.stream_sequence, reason))

    svc.dead_letter = dead_letter  # type: ignore[method-assign]
    return svc, letters


def test_the_server_delivers_for_ever_and_the_runtime_counts():
    for spec in topology.DURABLES:
        assert consumer_config(spec).max_deliver == -1
        assert spec.max_deliver >= 1


async def test_a_handler_call_that_never_returns_is_cut_off_and_its_batch_given_back(monkeypatch):
    monkeypatch.setattr(consumer, "HANDLER_DEADLINE_SECONDS", 0.2)
    calls = []

    async def hangs(batch):
        calls.append(len(batch))
        await asyncio.Event().wait()  # never
        return []  # pragma: no cover

    svc, letters = service(hangs)
    msgs = [Msg(1), Msg(2)]
    started = time.monotonic()
    await svc.process([Delivery(m) for m in msgs])
    assert time.monotonic() - started < 2
    assert calls == [2], "not retried in hand, nor one message at a time: the hang is not the messages' fault"
    assert [m.log[-1][1] for m in msgs] == ["nak", "nak"] and letters == []


async def test_a_message_back_too_often_without_an_outcome_is_dead_lettered_not_handled():
    spec = topology.consumer("ledger")
    limit = consumer.UNSETTLED_DELIVERIES_FACTOR * spec.max_deliver
    handled = []

    async def handler(batch):
        handled.extend(d.stream_sequence for d in batch)
        return [Ack() for _ in batch]

    svc, letters = service(handler)
    msgs = [delivered(1, limit + 1), delivered(2, limit), delivered(3, 1)]
    await svc.process([Delivery(m) for m in msgs])
    assert handled == [2, 3]
    assert [seq for seq, _ in letters] == [1] and "without an outcome" in letters[0][1]
    assert [what for _t, what in msgs[0].log] == ["term"]
    assert [m.log[-1][1] for m in msgs[1:]] == ["ack", "ack"]


async def test_a_batch_retried_one_by_one_stops_when_its_partition_moves():
    part = topology.consumer("ledger").partitions()[2]
    holds = {"now": True}
    handled = []

    async def handler(batch):
        if len(batch) > 1:
            raise RuntimeError("one of them is bad")
        handled.append(batch[0].stream_sequence)
        holds["now"] = False  # the lease goes while the first message is handled
        return [Ack()]

    svc, _ = service(handler)
    await svc._acquire(part.partition)
    svc.leases = SimpleNamespace(holds=lambda _p: holds["now"])
    msgs = [Msg(1), Msg(2), Msg(3)]
    await svc.process([Delivery(m) for m in msgs], Binding(part, handler))
    assert handled == [1]
    assert [m.log[-1][1] for m in msgs] == ["ack", "nak", "nak"]


async def test_a_partition_whose_lease_lapsed_is_waited_on_not_spun_on():
    """Its event is still set while the lease lapsed (NATS out of reach): the worker sleeps
    between looks instead of asking thousands of times a second."""
    part = topology.consumer("ledger").partitions()[1]
    svc, _ = service(lambda batch: None)
    await svc._acquire(part.partition)
    svc.leases = SimpleNamespace(holds=lambda _p: False)
    looks = 0
    owns = svc._owns

    def counted(p: int) -> bool:
        nonlocal looks
        looks += 1
        return owns(p)

    svc._owns = counted  # type: ignore[method-assign]
    worker = asyncio.create_task(svc._partition_worker(SimpleNamespace(), Binding(part, svc.bindings[0].handler)))
    await asyncio.sleep(0.5)
    svc._stopping.set()
    await asyncio.wait_for(worker, 2)
    assert looks <= 10


async def test_a_batch_failing_on_a_transient_error_is_given_back_whole_not_one_at_a_time(monkeypatch):
    """The database overloaded (the in-hand retries spent): one at a time, each message
    took its own calls and retries, about 800 for a 200-message batch (found in review,
    2026-12-06). The batch comes back whole, after one delay."""
    monkeypatch.setattr(consumer, "TRANSIENT_PAUSES", (0.0, 0.0))
    calls = []

    async def overloaded(batch):
        calls.append(len(batch))
        raise Contention("the database is overloaded")

    svc, letters = service(overloaded)
    msgs = [Msg(i) for i in range(1, 51)]
    await svc.process([Delivery(m) for m in msgs])
    assert calls == [50, 50, 50]  # the in-hand tries only
    assert all(m.log[-1][1] == "nak" for m in msgs) and letters == []
