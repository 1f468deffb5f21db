"""A consumer that takes a partition tells its use case (``on_partition``), which forgets
the versions it remembers: another owner may have written those documents meanwhile
(fjordbank.service_layer.recent)."""

from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace

from fjordbank import topology
from fjordbank.config import load_settings
from fjordbank.runtime.consumer import PARTITION_BATCHES_IN_FLIGHT, Ack, Binding, ConsumerService, Delivery
from fjordbank.service_layer.recent import Version, Versions
from tests.unit.test_consumer_heartbeat import Msg


async def nothing(batch):  # pragma: no cover - never called
    return []


async def test_taking_a_partition_forgets_what_the_use_case_remembers():
    known = Versions(10)
    known.put("accounts/1", Version({"balance": 1}, dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=nothing, on_partition=known.clear)
    await svc._acquire(3)
    assert len(known) == 0 and known.get("accounts/1") is None
    assert svc._active[3].is_set()


def test_the_most_recent_are_kept_and_the_least_recently_used_go_first():
    known: Versions = Versions(2)
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for path in ("a", "b"):
        known.put(path, Version({}, at))
    assert known.get("a") is not None  # a used: b is now the oldest
    known.put("c", Version({}, at))
    assert (known.get("a") is not None, known.get("b"), known.get("c") is not None) == (True, None, True)
    known.forget(["a"])
    assert len(known) == 1


async def test_a_process_works_on_a_few_partitions_batches_at_a_time():
    """Every partition an instance holds has its own worker; at most
    PARTITION_BATCHES_IN_FLIGHT of their batches are handled at once, the others wait their
    turn (and are all handled), so one batch finishes before many more start."""
    running, most, done = 0, 0, []

    async def handler(batch):
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        done.append(batch[0].msg.metadata.sequence.stream)
        return [Ack() for _ in batch]

    svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=handler)
    parts = topology.consumer("ledger").partitions()
    await asyncio.gather(*(svc.process([Delivery(Msg(p.partition))], Binding(p, handler)) for p in parts[:8]))
    assert PARTITION_BATCHES_IN_FLIGHT == 2 and most == PARTITION_BATCHES_IN_FLIGHT
    assert sorted(done) == sorted(p.partition for p in parts[:8])


async def test_a_batch_whose_partition_moved_while_it_waited_is_given_back():
    """Ownership is asked again once the batch has its turn: a partition that moved to
    another instance meanwhile has its batch naked at once, not handled here."""
    called = []

    async def handler(batch):  # pragma: no cover - must not be called
        called.append(batch)
        return [Ack() for _ in batch]

    svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=handler)
    part = topology.consumer("ledger").partitions()[5]
    await svc._acquire(part.partition)
    svc.leases = SimpleNamespace(holds=lambda _p: False)  # the lease went to another instance
    msg = Msg(1)
    await svc.process([Delivery(msg)], Binding(part, handler))
    assert called == [] and [what for _t, what in msg.log] == ["nak"]


async def test_a_partition_batch_is_filled_only_once_it_has_its_turn():
    """A partition's worker waits for its turn with one message and takes the rest of the
    batch then: what came in while it waited is in the batch, and is handled and settled."""
    seen: list[list[int]] = []
    filled_while_held: list[bool] = []
    gate = asyncio.Event()

    async def handler(batch):
        seen.append([d.msg.metadata.sequence.stream for d in batch])
        if batch[0].msg.metadata.sequence.stream == 100:
            await gate.wait()  # holds the only turn until the test lets it go
        return [Ack() for _ in batch]

    svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=handler)
    svc._turns = asyncio.Semaphore(1)
    parts = topology.consumer("ledger").partitions()
    more = [Msg(2), Msg(3)]
    fills = []
    waits: list[bool] = []

    async def fill(batch, waited):
        fills.append([m.metadata.sequence.stream for m in batch])
        filled_while_held.append(svc._turns.locked())
        waits.append(waited)
        return more

    holder = asyncio.create_task(svc.process([Delivery(Msg(100))], Binding(parts[0], handler)))
    await asyncio.sleep(0.01)
    first = Msg(1)
    waiting = asyncio.create_task(svc.process([Delivery(first)], Binding(parts[1], handler), fill=fill))
    await asyncio.sleep(0.05)
    assert fills == []  # not while another batch holds the turn
    gate.set()
    await asyncio.gather(holder, waiting)
    assert fills == [[1]] and filled_while_held == [True] and seen[-1] == [1, 2, 3]
    assert waits == [True]  # it waited: its count of what was pending may be old
    assert all([what for _t, what in m.log if what != "wpi"] == ["ack"] for m in (first, *more))


async def test_a_batch_that_cannot_be_filled_goes_on_with_what_it_has():
    """The fill a partition's worker passes (``_more``) answers nothing when NATS cannot
    be asked: the message in hand is handled and acked, not dropped until ack_wait."""
    import functools

    import nats.errors

    seen: list[list[int]] = []

    async def handler(batch):
        seen.append([d.msg.metadata.sequence.stream for d in batch])
        return [Ack() for _ in batch]

    class Reconnecting:
        async def fetch(self, n, timeout):
            raise nats.errors.ConnectionReconnectingError()

    svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=handler)
    part = topology.consumer("ledger").partitions()[2]
    first = Msg(7)
    first.metadata.num_pending = 40  # the server said more were there
    fill = functools.partial(svc._more, Reconnecting())
    await svc.process([Delivery(first)], Binding(part, handler), fill=fill)
    assert seen == [[7]] and [what for _t, what in first.log if what != "wpi"] == ["ack"]
