"""What the consumer runtime does when a message gets no outcome: a handler call that never
returns is cut off and its messages given back; a message delivered again and again without
an outcome is dead-lettered rather than handled once more (the server delivers for ever, so
the runtime is what gives up); a batch retried one message at a time stops when its
partition moves, and one that failed on a transient error is given back whole; a partition
held by nobody here is waited on, not spun on."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from types import SimpleNamespace

import nats.errors
import pytest

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


def service(handler, durable: str = "ledger") -> tuple[ConsumerService, list[tuple[int, str]]]:
    svc = ConsumerService(durable=durable, settings=load_settings({}), handler=handler)
    letters: list[tuple[int, str]] = []

    async def dead_letter(d, reason, spec=None):
        letters.append((d.stream_sequence, reason))

    svc.dead_letter = dead_letter  # type: ignore[method-assign]
    return svc, letters


def acking(handled: list[int]):
    """A handler that acks every message and notes each one's stream sequence."""

    async def handler(batch):
        handled.extend(d.stream_sequence for d in batch)
        return [Ack() for _ in batch]

    return handler


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
    handled: list[int] = []
    svc, letters = service(acking(handled))
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


def _ledger_partition(svc: ConsumerService, holds: dict[str, bool], n: int = 3) -> Binding:
    part = topology.consumer("ledger").partitions()[n]
    svc.leases = SimpleNamespace(holds=lambda _p: holds["now"])
    return Binding(part, svc.bindings[0].handler)


def settled(m: Msg) -> list[str]:
    return [what for _t, what in m.log if what != "wpi"]


async def test_deliveries_given_back_for_a_moved_partition_do_not_use_up_the_failures(monkeypatch):
    """Five handovers gave the message back unhandled; the first failure of its handler at
    the sixth delivery was a dead letter (found in review, 2026-12-06). Now it is a nak."""
    monkeypatch.setattr(consumer, "TRANSIENT_PAUSES", ())  # the in-hand retries spent
    calls = []

    async def handler(batch):
        calls.append(batch[0].num_delivered)
        raise Contention("the ledger's documents kept moving")

    svc, letters = service(handler)
    holds = {"now": False}
    binding = _ledger_partition(svc, holds)
    await svc._acquire(binding.spec.partition)
    m = Msg(42)
    for n in range(1, 6):  # given back each time: the partition moved
        m.metadata.num_delivered = n
        await svc.process([Delivery(m)], binding)
    holds["now"] = True
    for n in range(6, 11):  # handled: it fails, a failure at a time
        m.metadata.num_delivered = n
        await svc.process([Delivery(m)], binding)
    assert calls == [6, 7, 8, 9, 10] and letters == []
    assert settled(m) == ["nak"] * 10
    m.metadata.num_delivered = 11  # the sixth failure of its handler, counted here
    await svc.process([Delivery(m)], binding)
    assert letters == [] and m.log[-1][1] == "nak", "transient and young: given back"


async def test_a_handler_failing_on_its_own_is_dead_lettered_at_its_max_deliver_th_failure():
    spec = topology.consumer("ledger")

    async def handler(batch):
        return [consumer.Retry("KeyError: 'balance'") for _ in batch]

    svc, letters = service(handler)
    m = Msg(7)
    for n in range(1, spec.max_deliver + 1):
        m.metadata.num_delivered = n
        await svc.process([Delivery(m)])
    assert settled(m) == ["nak"] * (spec.max_deliver - 1) + ["term"]
    assert [seq for seq, _ in letters] == [7]
    assert len(svc.tally) == 0  # settled for good: forgotten


async def test_a_transient_failure_is_dead_lettered_only_once_it_has_failed_for_an_hour(monkeypatch):
    """A brownout of minutes must not dead-letter every step in flight; one that lasts
    past TRANSIENT_MAX_AGE_SECONDS does. Counted from the first failure seen, not from
    when the message was published: a backlog handled after an outage gets the same hour."""
    monkeypatch.setattr(consumer, "TRANSIENT_PAUSES", ())
    spec = topology.consumer("ledger")

    async def handler(batch):
        raise nats.errors.NoServersError()  # NATS away (a publish's): transient too

    svc, letters = service(handler)
    young, old = Msg(1), Msg(2)
    young.metadata.timestamp = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)  # published long ago
    hour_ago = time.monotonic() - consumer.TRANSIENT_MAX_AGE_SECONDS - 60
    svc.tally.failed(("ledger", 2), now=hour_ago)  # failing here for over an hour
    for m, deliveries in ((young, spec.max_deliver + 1), (old, spec.max_deliver - 1)):
        for n in range(1, deliveries + 1):
            m.metadata.num_delivered = n
            await svc.process([Delivery(m)])
    assert settled(young) == ["nak"] * (spec.max_deliver + 1)
    assert settled(old) == ["nak"] * (spec.max_deliver - 2) + ["term"]  # its sixth failure here
    assert [seq for seq, _ in letters] == [2]


async def test_a_message_given_back_often_here_is_not_taken_for_one_without_an_outcome():
    spec = topology.consumer("ledger")
    limit = consumer.UNSETTLED_DELIVERIES_FACTOR * spec.max_deliver
    handled: list[int] = []
    svc, letters = service(acking(handled))
    for _ in range(limit):  # each an outcome seen here (given back unhandled)
        svc.tally.gave_back(("ledger", 5))
    await svc.process([Delivery(delivered(5, limit + 3))])
    assert handled == [5] and letters == []


async def test_a_batch_that_failed_before_is_split_so_one_message_cannot_take_the_others_down(monkeypatch):
    """One message fails its batch every time with a transient-looking error (contention on
    a hot document): given back whole each time, its companions shared its fate, to the
    DLQ in the end (found in review, 2026-12-06). The second time, it is split."""
    monkeypatch.setattr(consumer, "TRANSIENT_PAUSES", ())
    handled = []

    async def handler(batch):
        if any(d.stream_sequence == 2 for d in batch):
            raise Contention("the hot document kept moving")
        handled.extend(d.stream_sequence for d in batch)
        return [Ack() for _ in batch]

    svc, letters = service(handler)
    msgs = [Msg(1), Msg(2), Msg(3)]
    await svc.process([Delivery(m) for m in msgs])
    assert handled == [] and [settled(m) for m in msgs] == [["nak"]] * 3  # given back whole, once
    for m in msgs:
        m.metadata.num_delivered = 2
    await svc.process([Delivery(m) for m in msgs])
    # split: the first goes through; the second fails again on its own, and the rest is
    # given back at once rather than tried while the failure may be everyone's
    assert handled == [1] and settled(msgs[1]) == ["nak", "nak"] and settled(msgs[2]) == ["nak", "nak"]
    assert svc.tally.failures(("ledger", 3)) == 1  # given back, not failed, the second time
    msgs[2].metadata.num_delivered = 3
    await svc.process([Delivery(msgs[2])])
    assert handled == [1, 3] and letters == []


async def test_a_message_failing_on_other_instances_too_is_allowed_deliveries_for_its_age():
    """Delivered 30 times and failing on the other replica in turn: unknown here, taken
    for one without an outcome at its 13th delivery (found in review, 2026-12-06). It is
    allowed one more for each TRANSIENT_LATE_DELAY_SECONDS of its age."""
    spec = topology.consumer("ledger")
    handled: list[int] = []
    svc, letters = service(acking(handled))
    old = delivered(1, 30)
    old.metadata.timestamp = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)
    fresh = delivered(2, 30)  # 30 deliveries in no time: its handling stopped each time
    await svc.process([Delivery(old), Delivery(fresh)])
    assert handled == [1] and [seq for seq, _ in letters] == [2]
    assert consumer.unsettled_limit(spec, 0) == consumer.UNSETTLED_DELIVERIES_FACTOR * spec.max_deliver
    assert consumer.unsettled_limit(spec, 10 * consumer.TRANSIENT_MAX_AGE_SECONDS) == consumer.unsettled_limit(
        spec, consumer.TRANSIENT_MAX_AGE_SECONDS
    )  # no more than an hour's allowance


async def test_a_dead_letter_whose_publish_failed_is_still_counted_when_it_comes_back():
    spec = topology.consumer("ledger")

    async def handler(batch):
        return [consumer.Retry("KeyError: 'balance'") for _ in batch]

    svc, letters = service(handler)
    calls = {"n": 0}
    record = svc.dead_letter

    async def flaky(d, reason, spec_=None):
        calls["n"] += 1
        if calls["n"] == 1:
            raise TimeoutError("the DLQ publish got no answer")
        await record(d, reason, spec_)

    svc.dead_letter = flaky  # type: ignore[method-assign]
    m = Msg(9)
    for n in range(1, spec.max_deliver + 2):
        m.metadata.num_delivered = n
        await svc.process([Delivery(m)])
    # the failed publish left it unsettled: the next delivery is dead-lettered, as its
    # failures here were kept (not counted from nothing again)
    assert [seq for seq, _ in letters] == [9] and settled(m)[-1] == "term"


async def test_the_rest_of_a_split_batch_comes_back_after_the_failed_message_s_delay_never_at_once(monkeypatch):
    """Given back with no delay, the rest overtook the message that failed (a payer's later
    payments first) and came back hot (found in review, 2026-12-06)."""
    monkeypatch.setattr(consumer, "TRANSIENT_PAUSES", ())
    naks: dict[int, list[float | None]] = {}

    class Noted(Msg):
        async def nak(self, delay=None):
            naks.setdefault(self.metadata.sequence.stream, []).append(delay)
            await super().nak(delay)

    async def handler(batch):
        raise TimeoutError("the database did not answer")

    svc, _letters = service(handler)
    msgs = [Noted(1), Noted(2), Noted(3)]
    svc.tally.failed(("ledger", 1))  # failed before: the batch is split
    await svc.process([Delivery(m) for m in msgs])
    spec = topology.consumer("ledger")
    assert naks[1] == [spec.nak_delay(2)] and naks[2] == naks[3] == [spec.nak_delay(2)]
    assert svc.tally.failures(("ledger", 2)) == 0  # given back, not failed


async def test_a_message_alone_that_times_out_is_its_own_failure(monkeypatch):
    """As a transient failure it held one of the process's two turns for the handler's
    deadline at each try, for an hour (found in review, 2026-12-06)."""
    monkeypatch.setattr(consumer, "HANDLER_DEADLINE_SECONDS", 0.05)
    spec = topology.consumer("ledger")

    async def hangs(batch):
        await asyncio.Event().wait()

    svc, letters = service(hangs)
    svc._last_ack = float("inf")  # other messages go through here meanwhile, all the time
    m = Msg(4)
    for n in range(1, spec.max_deliver + 1):
        m.metadata.num_delivered = n
        await svc.process([Delivery(m)])
    assert settled(m)[-1] == "term" and [seq for seq, _ in letters] == [4]


async def test_a_message_alone_that_times_out_while_nothing_goes_through_is_everyones_failure(monkeypatch):
    """The database hanging for all: counted as its own, a healthy message was dead-lettered
    after six deadlines (found in review, 2026-12-06). It is given the hour instead."""
    monkeypatch.setattr(consumer, "HANDLER_DEADLINE_SECONDS", 0.05)
    spec = topology.consumer("ledger")

    async def hangs(batch):
        await asyncio.Event().wait()

    svc, letters = service(hangs)
    m = Msg(4)
    for n in range(1, spec.max_deliver + 2):
        m.metadata.num_delivered = n
        await svc.process([Delivery(m)])
    assert "term" not in settled(m) and letters == [] and svc.tally.own_failures(("ledger", 4)) == 0


def test_a_publish_refused_for_what_it_is_is_not_transient():
    from fjordbank.errors import PublishError

    def wrapped(cause: BaseException) -> PublishError:
        try:
            raise PublishError("could not publish") from cause
        except PublishError as exc:
            return exc

    assert consumer.transient(wrapped(nats.errors.TimeoutError()))
    assert consumer.transient(wrapped(nats.errors.NoRespondersError()))
    assert not consumer.transient(wrapped(nats.errors.MaxPayloadError()))
    assert consumer.transient(PublishError("no cause said"))


def test_the_allowance_for_deliveries_elsewhere_is_small_and_never_below_the_base():
    spec = topology.consumer("ledger")
    base = consumer.UNSETTLED_DELIVERIES_FACTOR * spec.max_deliver
    assert consumer.unsettled_limit(spec, -120) == base  # a clock behind the server's
    assert consumer.unsettled_limit(spec, 10**6) == base + 20
    assert consumer.unsettled_limit(spec, 10**6, failing_here=True) == base + 120  # an hour's worth


class _Timed(Msg):
    """A message that keeps the delay of its last nak."""

    delay: float | None = None

    async def nak(self, delay=None):
        self.delay = delay
        await super().nak(delay)


@pytest.mark.parametrize("instances", [1, 2, 3])
async def test_a_message_failing_transiently_on_every_instance_of_a_shared_consumer_gets_the_hour(
    monkeypatch, instances
):
    """A database brownout on a shared durable pulled by several instances, its message
    redelivered to whichever pulls: each instance took the failures at its siblings for
    deliveries without an outcome, and dead-lettered the message at 27 minutes on two
    instances and 17 on three, where one instance gives it TRANSIENT_MAX_AGE_SECONDS (found
    in review, 2026-12-07). Now it is dead-lettered for its failures, once the hour is up,
    however many instances share it. The message's age and each process's clock (the
    tally's) run on the simulated time of the naks' delays."""
    from fjordbank.runtime import tally

    monkeypatch.setattr(consumer, "TRANSIENT_PAUSES", ())  # no tries in hand (they add seconds)
    clock = {"now": 0.0}
    monkeypatch.setattr(tally, "time", SimpleNamespace(monotonic=lambda: clock["now"]))

    async def brownout(batch):
        raise TimeoutError("firestore DEADLINE_EXCEEDED")

    services = [service(brownout, "notifier-cards") for _ in range(instances)]
    m = _Timed(42)
    m.subject = topology.SUBJECT_CARD_CAPTURED
    published = dt.datetime.now(dt.UTC)
    n = 0
    while not any(letters for _svc, letters in services) and n < 1000:
        n += 1
        m.metadata.num_delivered = n
        m.metadata.timestamp = published - dt.timedelta(seconds=clock["now"])
        svc, _letters = services[(n - 1) % instances]  # each redelivery to the next instance pulling
        await svc.process([Delivery(m)])
        if settled(m)[-1] == "nak":
            assert m.delay is not None
            clock["now"] += m.delay
    ((seq, reason),) = [letter for _svc, letters in services for letter in letters]
    assert seq == 42 and reason == "TimeoutError: firestore DEADLINE_EXCEEDED", "its failures', not a stop's"
    max_age = consumer.TRANSIENT_MAX_AGE_SECONDS
    assert max_age <= clock["now"] <= max_age + consumer.TRANSIENT_LATE_DELAY_SECONDS
    assert settled(m)[-1] == "term"


class _Stopped(BaseException):
    """The process dies where it stands (an OOM kill): nothing the handler's except sees."""


def test_a_message_that_stops_every_instance_of_a_shared_consumer_keeps_the_small_allowance():
    """The hour's allowance goes only to a message a live process has seen fail: one that
    stops each process handling it (here without the in-hand marks, whose bucket would find
    it sooner) is dead-lettered once its deliveries pass the small allowance, as before."""
    spec = topology.consumer("notifier-cards")

    async def stops(batch):
        raise _Stopped

    m = Msg(42)
    m.subject = topology.SUBJECT_CARD_CAPTURED
    m.metadata.timestamp = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    letters: list[tuple[int, str]] = []
    lives = 0
    while not letters and lives < 200:
        lives += 1
        m.metadata.num_delivered = lives
        svc, letters = service(stops, "notifier-cards")  # a new process each life (either instance)
        try:
            asyncio.run(svc.process([Delivery(m)]))
        except _Stopped:
            pass
    assert lives == consumer.unsettled_limit(spec, 30 * 60) + 1
    assert "without an outcome" in letters[0][1] and settled(m)[-1] == "term"


async def test_a_message_failing_transiently_for_reasons_of_its_own_holds_up_the_others_only_for_its_tries(monkeypatch):
    """Contention on a document only it writes, every time: the messages behind it went
    back behind it at each try and waited the hour a transient failure is given before it
    was dead-lettered (found in review, 2026-12-06). They wait for its tries (max_deliver),
    as behind a message failing for reasons of its own, and never overtake it before."""
    monkeypatch.setattr(consumer, "TRANSIENT_PAUSES", ())
    handled: list[int] = []

    async def handler(batch):
        if any(d.stream_sequence == 2 for d in batch):
            raise Contention("payment 2's document kept moving")
        handled.extend(d.stream_sequence for d in batch)
        return [Ack() for _ in batch]

    svc, letters = service(handler)
    svc._last_ack = float("inf")  # other partitions' messages go through here meanwhile
    spec = topology.consumer("ledger")
    msgs = [Msg(2), Msg(3), Msg(4)]  # the failing one first: a payer's earlier payment, say
    tries = 0
    while not handled and tries < 3 * spec.max_deliver:
        tries += 1
        for m in msgs:
            m.metadata.num_delivered = tries
        await svc.process([Delivery(m) for m in msgs])
    assert handled == [3, 4] and letters == []
    assert svc.tally.alone_failures(("ledger", 2)) == spec.max_deliver  # not one try before its tries alone


async def test_a_batch_with_a_message_that_hung_before_is_split_without_a_whole_try_first(monkeypatch):
    """Tried whole first each time, a message that hangs its handler cost two deadlines a
    try, 22 minutes before it was dead-lettered, the messages behind it given back each time
    (found in review, 2026-12-06)."""
    monkeypatch.setattr(consumer, "HANDLER_DEADLINE_SECONDS", 0.05)
    monkeypatch.setattr(consumer, "TRANSIENT_PAUSES", ())
    calls: list[list[int]] = []

    async def handler(batch):
        calls.append([d.stream_sequence for d in batch])
        if any(d.stream_sequence == 2 for d in batch):
            await asyncio.Event().wait()
        return [Ack() for _ in batch]

    svc, _letters = service(handler)
    svc._last_ack = float("inf")  # other partitions' messages go through here meanwhile
    msgs = [Msg(2), Msg(3), Msg(4)]
    await svc.process([Delivery(m) for m in msgs])  # whole, times out: back whole
    for m in msgs:
        m.metadata.num_delivered = 2
    await svc.process([Delivery(m) for m in msgs])  # whole again, then one at a time
    for m in msgs:
        m.metadata.num_delivered = 3
    calls.clear()
    await svc.process([Delivery(msgs[0]), Delivery(msgs[1])])
    assert calls == [[2]]  # no whole try: the hanging one alone (then the rest back behind it)


async def test_a_handlers_own_cancelled_error_is_its_messages_failure_not_the_workers_end(monkeypatch):
    """A CancelledError of the handler's own (something it awaited was cancelled) escaped
    the worker, which ended and stopped the service; the batch came back to the next
    instance (found in review, 2026-12-06)."""
    monkeypatch.setattr(consumer, "TRANSIENT_PAUSES", ())

    async def handler(batch):
        raise asyncio.CancelledError()

    svc, letters = service(handler)
    m = Msg(7)
    await svc.process([Delivery(m)])  # returns: no CancelledError out of the worker
    assert settled(m) == ["nak"] and svc.tally.failures(("ledger", 7)) == 1 and letters == []


async def test_after_an_outage_a_batch_whose_messages_failed_transiently_is_still_tried_whole(monkeypatch):
    """Split for any failure before, every batch after a short outage went a message at a
    time while the backlog came (found in review of the first fix, 2026-12-06)."""
    monkeypatch.setattr(consumer, "TRANSIENT_PAUSES", ())
    sizes: list[int] = []
    down = True

    async def handler(batch):
        sizes.append(len(batch))
        if down:
            raise TimeoutError("the database did not answer")
        return [Ack() for _ in batch]

    svc, _letters = service(handler)
    msgs = [Msg(n) for n in range(1, 11)]
    await svc.process([Delivery(m) for m in msgs])  # the outage: back whole, a transient failure each
    down = False
    sizes.clear()
    for m in msgs:
        m.metadata.num_delivered = 2
    await svc.process([Delivery(m) for m in msgs])
    assert sizes == [10] and all(settled(m)[-1] == "ack" for m in msgs)


@pytest.mark.parametrize("hangs", [False, True], ids=["fails", "hangs"])
async def test_after_an_outage_a_payers_later_payment_never_goes_before_the_earlier_one(monkeypatch, hangs):
    """The head of each split failed (or timed out) alone in the outage every time; counted
    among its tries alone, the next transient failure after it let the payer's later payment
    be booked first once the database came back (found in reviews of the first and third
    fixes, 2026-12-06)."""
    monkeypatch.setattr(consumer, "TRANSIENT_PAUSES", ())
    monkeypatch.setattr(consumer, "HANDLER_DEADLINE_SECONDS", 0.02)
    spec = topology.consumer("ledger")
    booked: list[int] = []
    state = {"down": True, "flaky": 0}

    async def handler(batch):
        if state["down"]:
            if hangs:
                await asyncio.Event().wait()
            raise TimeoutError("the database did not answer")
        state["flaky"] += 1
        if state["flaky"] <= 2:  # back, but the whole try and the first alone fail
            raise TimeoutError("the database did not answer")
        booked.extend(d.stream_sequence for d in batch)
        return [Ack() for _ in batch]

    svc, _letters = service(handler)
    msgs = [Msg(1), Msg(2)]  # the same payer's earlier and later payment
    outage = spec.max_deliver + 3
    for n in range(1, outage + 2):
        state["down"] = n <= outage
        for m in msgs:
            m.metadata.num_delivered = n
        await svc.process([Delivery(m) for m in msgs])
    for m in msgs:
        m.metadata.num_delivered = outage + 2
    await svc.process([Delivery(m) for m in msgs])
    assert booked == [1, 2]


async def test_a_dead_letter_keeps_its_message_s_first_time(monkeypatch):
    """A replay is a new message: the letter keeps when its message first entered the stream
    (fjordbank.runtime.dead_letters.ORIGINAL_TIME), and a letter of a replay keeps the first."""
    from fjordbank.adapters import jetstream_publish
    from fjordbank.runtime.dead_letters import ORIGINAL_TIME

    published: list[dict[str, str]] = []

    async def publish(js, subject, data, *, headers):
        published.append(headers)
        return SimpleNamespace(seq=1)

    monkeypatch.setattr(jetstream_publish, "publish", publish)
    svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=acking([]))
    svc.js = SimpleNamespace()  # type: ignore[assignment]
    first = Msg(5)
    await svc.dead_letter(Delivery(first), "KeyError")  # type: ignore[arg-type]
    assert published[-1][ORIGINAL_TIME] == first.metadata.timestamp.isoformat()
    again = Msg(9)
    again.headers = {ORIGINAL_TIME: "2026-12-01T08:00:00+00:00"}  # a replay of an older letter
    await svc.dead_letter(Delivery(again), "KeyError")  # type: ignore[arg-type]
    assert published[-1][ORIGINAL_TIME] == "2026-12-01T08:00:00+00:00"
