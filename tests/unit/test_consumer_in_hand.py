"""A message that stops its process (an OOM kill, a native crash: nothing the handler sees)
is found by handling the suspect messages of its batch alone, with marks that outlive the
process (fjordbank/runtime/in_hand.py), and dead-lettered alone: the others of its batch go
through. Each "life" below is a new process: a new ConsumerService (its tally starts from
nothing) on the same bucket, given the messages again with the server's delivery count."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import nats.errors
import nats.js.errors

from fjordbank import topology
from fjordbank.config import load_settings
from fjordbank.runtime import in_hand
from fjordbank.runtime.consumer import Ack, Binding, ConsumerService, Delivery, Retry
from fjordbank.runtime.in_hand import InHandMarks
from tests.unit.test_consumer_heartbeat import Msg


class Bucket:
    """An in-memory KV bucket with nats-py's errors."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.revisions: dict[str, int] = {}
        self.writes = 0
        self.failing = False
        self.failing_deletes = False
        self.world: World | None = None  # the process's: nothing it sends after its death lands

    def _check(self) -> None:
        if self.failing:
            raise nats.errors.TimeoutError
        if self.world is not None and self.world.dead:
            raise Stopped

    async def get(self, key: str):
        self._check()
        if key not in self.values:
            raise nats.js.errors.KeyNotFoundError
        return SimpleNamespace(value=self.values[key], revision=self.revisions.get(key))

    async def put(self, key: str, value: bytes) -> int:
        self._check()
        self.writes += 1
        self.values[key] = value
        self.revisions[key] = self.writes
        return self.writes

    async def delete(self, key: str, last: int | None = None) -> bool:
        self._check()
        if self.failing_deletes:
            raise nats.errors.TimeoutError
        if last is not None and self.revisions.get(key) != last:
            raise nats.js.errors.BadRequestError(description="wrong last sequence", err_code=10071)
        self.values.pop(key, None)
        self.revisions.pop(key, None)
        return True


class Stopped(BaseException):
    """The process dies where it stands (an OOM kill): nothing it does after reaches NATS."""


class World:
    """One process's life: once dead, its acks, naks and bucket writes go nowhere (asyncio
    still runs its finally blocks and the other tasks until asyncio.run cancels them; a
    killed process runs nothing)."""

    def __init__(self) -> None:
        self.dead = False


class LifeMsg(Msg):
    def __init__(self, seq: int, world: World) -> None:
        super().__init__(seq)
        self.world = world

    def _note(self, what: str) -> None:
        if not self.world.dead:
            super()._note(what)


class Bank:
    """The stream's side: which messages are settled, and how often each was delivered.
    ``parts``: the messages of each of the ledger's partitions (a batch per partition in
    hand at once, on the process's two turns)."""

    def __init__(self, seqs: list[int] | None = None, parts: dict[int, list[int]] | None = None) -> None:
        self.parts = {0: list(seqs or [])} if parts is None else {p: list(v) for p, v in parts.items()}
        self.delivered = {seq: 0 for v in self.parts.values() for seq in v}
        self.acked: list[int] = []
        self.letters: dict[int, str] = {}
        self.calls: list[list[int]] = []
        self.spans: list[tuple[list[int], float, float]] = []  # each handler call's, loop time

    @property
    def pending(self) -> list[int]:
        return [seq for v in self.parts.values() for seq in v]

    def life(self, bucket: Bucket, stops_on, *, slow: float = 0.0) -> bool:
        """One process: each partition's pending messages delivered again as one batch;
        whether it stopped."""
        import asyncio

        world = World()
        bucket.world = world

        async def handler(batch):
            seqs = [d.stream_sequence for d in batch]
            self.calls.append(seqs)
            started = asyncio.get_running_loop().time()
            await asyncio.sleep(slow)  # (the other turn in hand meanwhile)
            if stops_on(seqs):
                world.dead = True
                raise Stopped
            self.spans.append((seqs, started, asyncio.get_running_loop().time()))
            return [Ack() for _ in batch]

        svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=handler)
        svc.marks = InHandMarks(bucket, "ledger")

        async def dead_letter(d, reason, spec=None):
            if world.dead:
                raise Stopped
            self.letters[d.stream_sequence] = reason

        svc.dead_letter = dead_letter  # type: ignore[method-assign]
        msgs: dict[int, list[LifeMsg]] = {}
        for p, seqs in self.parts.items():
            msgs[p] = []
            for seq in seqs:
                self.delivered[seq] += 1
                m = LifeMsg(seq, world)
                m.metadata.num_delivered = self.delivered[seq]
                msgs[p].append(m)
        specs = topology.consumer("ledger").partitions()

        async def run() -> None:
            await asyncio.gather(
                *(
                    svc.process([Delivery(m) for m in batch], Binding(specs[p], handler))
                    for p, batch in msgs.items()
                    if batch
                )
            )

        try:
            asyncio.run(run())
        except Stopped:
            pass
        self._settled(msgs)
        bucket.world = None
        return world.dead

    def _settled(self, msgs: dict[int, list[LifeMsg]]) -> None:
        """What the server saw settled before the process stopped."""
        for p, batch in msgs.items():
            for m in batch:
                done = {what for _t, what in m.log}
                seq = m.metadata.sequence.stream
                if done & {"ack", "term"}:
                    self.parts[p].remove(seq)
                if "ack" in done:
                    self.acked.append(seq)


def lives(bank: Bank, bucket: Bucket, stops_on, most: int = 12, slow: float = 0.0) -> int:
    n = 0
    while bank.pending and n < most:
        n += 1
        bank.life(bucket, stops_on, slow=slow)
    return n


def test_a_message_that_stops_its_process_is_dead_lettered_alone_and_its_batch_goes_through():
    bank, bucket = Bank([1, 2, 3, 4, 5]), Bucket()
    poison = 3
    n = lives(bank, bucket, lambda seqs: poison in seqs)
    assert bank.pending == []
    assert sorted(bank.acked) == [1, 2, 4, 5], "every other message of its batch went through"
    assert list(bank.letters) == [poison] and "stopped 2 times" in bank.letters[poison]
    # two lives as a batch (one stop is any kill's: not suspect yet), then alone twice, then the DLQ
    assert n == 5 and bank.delivered[poison] == 5
    assert bank.calls[-1] == [4, 5], "the rest of its batch as one batch again, once it was found"
    assert bucket.values == {}, "every mark removed once its message had an outcome"


def test_two_messages_that_stop_the_process_in_one_batch_are_both_found():
    bank, bucket = Bank([1, 2, 3, 4, 5, 6]), Bucket()
    lives(bank, bucket, lambda seqs: 2 in seqs or 5 in seqs)
    assert sorted(bank.acked) == [1, 3, 4, 6]
    assert sorted(bank.letters) == [2, 5]


def test_one_kill_while_a_message_is_handled_alone_does_not_dead_letter_it():
    bank, bucket = Bank([1, 2]), Bucket()
    stops = iter([True, True, True])  # two lives as a batch, and one kill of its own while 1 is alone

    def stops_on(seqs):
        return next(stops, False)

    lives(bank, bucket, stops_on)
    assert sorted(bank.acked) == [1, 2] and bank.letters == {}
    assert bucket.values == {}


def test_a_restarts_batch_delivered_a_second_time_is_handled_whole_and_unmarked():
    bank, bucket = Bank([1, 2, 3]), Bucket()
    first = iter([True])
    lives(bank, bucket, lambda seqs: next(first, False))
    assert bank.calls == [[1, 2, 3], [1, 2, 3]], "a kill's batch, back once, at full speed"
    assert bucket.writes == 0


def test_without_its_bucket_a_suspect_message_is_handled_alone_unmarked(caplog):
    bank, bucket = Bank([1, 2]), Bucket()
    stopping = iter([True, True])
    lives(bank, bucket, lambda seqs: next(stopping, False), most=2)
    bucket.failing = True
    with caplog.at_level(logging.WARNING):
        bank.life(bucket, lambda seqs: False)
    assert bank.calls[-2:] == [[1], [2]] and sorted(bank.acked) == [1, 2]
    assert "could not read a message's in-hand mark" in caplog.text


def test_suspect_counts_deliveries_before_this_one_without_an_outcome_known_here():
    assert not in_hand.suspect(num_delivered=1, ended_here=0)
    assert not in_hand.suspect(num_delivered=2, ended_here=0)  # one kill: anybody's
    assert in_hand.suspect(num_delivered=3, ended_here=0)
    assert not in_hand.suspect(num_delivered=3, ended_here=2)  # failed or given back here


def test_the_handling_crash_point_kills_only_on_a_batch_with_its_text(monkeypatch):
    from fjordbank.runtime import crash

    killed: list[int] = []
    monkeypatch.setattr(crash.os, "kill", lambda pid, sig: killed.append(sig))
    monkeypatch.setattr(crash, "_armed", "screening.handling:stops-1")

    def batch(*bodies: bytes) -> list[SimpleNamespace]:
        return [SimpleNamespace(data=b) for b in bodies]

    crash.handling("ledger", batch(b'{"marker": "stops-1"}'))  # another consumer's point
    crash.handling("screening", batch(b"{}", b'{"a": 1}'))
    assert killed == []
    crash.handling("screening", batch(b"{}", b'{"marker": "stops-1"}'))
    assert len(killed) == 1


def test_a_batch_in_hand_on_the_other_turn_when_the_process_stops_is_not_blamed():
    # two partitions' batches at once (PARTITION_BATCHES_IN_FLIGHT): a marked message's call
    # has the process's handler calls to itself, so the other turn's message is never marked
    # while the one that stops the process runs (found in review of the first version,
    # where payment 103 was dead-lettered with it)
    bank, bucket = Bank(parts={0: [1, 2, 3, 4, 5], 1: [101, 102, 103, 104, 105]}), Bucket()
    lives(bank, bucket, lambda seqs: 3 in seqs, slow=0.05)
    assert list(bank.letters) == [3]
    assert sorted(bank.acked) == [1, 2, 4, 5, 101, 102, 103, 104, 105]


def test_the_other_turns_calls_wait_while_a_marked_message_is_handled():
    bank, bucket = Bank(parts={0: [1, 2, 3], 1: [101, 102, 103, 104]}), Bucket()
    bank.delivered.update({1: 2, 2: 2, 3: 2})  # partition 0's come back a third time: alone, marked
    bank.life(bucket, lambda seqs: False, slow=0.02)
    assert sorted(bank.acked) == [1, 2, 3, 101, 102, 103, 104] and bucket.values == {}
    marked = [(a, b) for seqs, a, b in bank.spans if seqs in ([1], [2], [3])]
    others = [(a, b) for seqs, a, b in bank.spans if seqs not in ([1], [2], [3])]
    assert len(marked) == 3 and others
    assert not [(m, o) for m in marked for o in others if o[0] < m[1] and m[0] < o[1]], "no call beside a marked one"


def test_a_mark_left_by_a_failed_removal_in_a_live_process_is_no_stop():
    import asyncio

    bucket = Bucket()
    bucket.failing_deletes = True
    letters: dict[int, str] = {}

    async def failing(batch):
        return [Retry("firestore UNAVAILABLE", transient=True) for _ in batch]

    async def run() -> list[str]:
        svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=failing)
        svc.marks = InHandMarks(bucket, "ledger")

        async def dead_letter(d, reason, spec=None):
            letters[d.stream_sequence] = reason

        svc.dead_letter = dead_letter  # type: ignore[method-assign]
        seen = []
        for n in range(3, 8):  # twice elsewhere without an outcome: suspect here, and failing
            m = Msg(7)
            m.metadata.num_delivered = n
            await svc.process([Delivery(m)])
            seen.append(m.log[-1][1])
        return seen

    assert asyncio.run(run()) == ["nak"] * 5 and letters == {}
    assert bucket.values  # its removal still failing: another process reading it counts one stop
    bucket.failing_deletes = False
    assert asyncio.run(InHandMarks(bucket, "ledger").stops("ledger", 7)) == 1


def test_a_suspect_batch_is_handled_in_smaller_pieces_the_more_it_came_back():
    handled: list[int] = []
    for before, sizes in ((2, {25}), (3, {6, 4}), (4, {1})):
        bank, bucket = Bank(list(range(1, 101))), Bucket()
        for seq in bank.delivered:
            bank.delivered[seq] = before
        bank.life(bucket, lambda seqs: False)
        assert sorted(bank.acked) == list(range(1, 101))
        assert {len(c) for c in bank.calls} == sizes, before
        handled.append(bucket.writes)
    assert handled == [0, 0, 100], "marks only for messages handled alone"


def test_a_stopper_whose_dead_letter_could_not_be_published_keeps_its_stops():
    import asyncio

    bucket = Bucket()
    bucket.values["ledger.ledger.9"] = b"2 another-process"
    bucket.revisions["ledger.ledger.9"] = 1

    async def run() -> None:
        svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=None)  # type: ignore[arg-type]
        svc.marks = InHandMarks(bucket, "ledger")

        async def dead_letter(d, reason, spec=None):
            raise nats.errors.TimeoutError

        svc.dead_letter = dead_letter  # type: ignore[method-assign]
        m = Msg(9)
        m.metadata.num_delivered = 6
        await svc.process([Delivery(m)])

    asyncio.run(run())
    assert bucket.values == {"ledger.ledger.9": b"2 another-process"}, "found again at its next delivery"


def test_a_hanging_suspect_message_has_the_process_for_a_short_deadline_and_its_timeout_is_its_own(monkeypatch):
    import asyncio
    import time

    from fjordbank.runtime import consumer

    monkeypatch.setattr(consumer, "ALONE_DEADLINE_SECONDS", 0.3)

    async def hangs(batch):
        await asyncio.Event().wait()
        return []  # pragma: no cover

    async def run() -> tuple[float, Msg]:
        svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=hangs)
        svc.marks = InHandMarks(Bucket(), "ledger")
        svc._last_ack = time.monotonic()  # others went through just before it took the process
        m = Msg(7)
        m.metadata.num_delivered = 4
        started = time.monotonic()
        await svc.process([Delivery(m)])
        assert svc.tally.own_failures(("ledger", 7)) == 1, "its own failure: others went through before"
        return time.monotonic() - started, m

    took, m = asyncio.run(run())
    assert took < 2 and m.log[-1][1] == "nak"


def test_a_piece_whose_rest_was_given_back_stops_the_pieces_so_a_payers_order_holds(monkeypatch):
    import asyncio

    from fjordbank.runtime import consumer

    monkeypatch.setattr(consumer, "TRANSIENT_PAUSES", ())

    async def handler(batch):
        if 3 in [d.stream_sequence for d in batch]:
            raise TimeoutError("firestore DEADLINE_EXCEEDED")
        return [Ack() for _ in batch]

    async def run(num_delivered: int) -> dict[int, list[str]]:
        svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=handler)
        spec = topology.consumer("ledger").partitions()[0]
        svc.tally.failed((spec.durable, 3))  # 3 failed here once before (a brownout)
        msgs = [Msg(seq) for seq in range(1, 9)]
        for m in msgs:
            m.metadata.num_delivered = num_delivered
        await svc.process([Delivery(m) for m in msgs], Binding(spec, handler))
        return {m.metadata.sequence.stream: [w for _, w in m.log if w != "wpi"] for m in msgs}

    for num_delivered in (1, 3):  # not suspect; suspect (in pieces of two)
        outcomes = asyncio.run(run(num_delivered))
        assert outcomes == {1: ["ack"], 2: ["ack"], **{seq: ["nak"] for seq in range(3, 9)}}, num_delivered


def test_a_late_removal_never_takes_a_mark_another_process_wrote_since():
    import asyncio

    bucket = Bucket()

    async def run() -> None:
        a, b = InHandMarks(bucket, "ledger", "A"), InHandMarks(bucket, "ledger", "B")
        assert await a.mark("ledger", 9, 0)
        bucket.failing_deletes = True
        await a.clear("ledger", 9)  # fails: tried again later
        bucket.failing_deletes = False
        assert await b.stops("ledger", 9) == 1  # (A alive, its removal failed: one stop to B)
        assert await b.mark("ledger", 9, 1)  # and B stops while it has it
        await a.stops("ledger", 8)  # A's removal tried again: the mark is B's now
        assert bucket.values == {"ledger.ledger.9": b"2 B"}

    asyncio.run(run())


def test_a_call_waiting_for_the_gate_alone_and_cancelled_lets_the_shared_ones_go_on():
    import asyncio

    async def run() -> bool:
        gate = in_hand.Gate()
        release = asyncio.Event()
        entered: list[str] = []

        async def sharer(name: str) -> None:
            async with gate.shared():
                entered.append(name)
                await release.wait()

        async def loner() -> None:
            async with gate.alone():
                entered.append("alone")  # pragma: no cover

        first = asyncio.create_task(sharer("first"))
        await asyncio.sleep(0.01)
        waiting = asyncio.create_task(loner())
        await asyncio.sleep(0.01)
        second = asyncio.create_task(sharer("second"))  # waits: a call wants the gate alone
        await asyncio.sleep(0.01)
        assert entered == ["first"]
        waiting.cancel()
        await asyncio.sleep(0.01)
        went_on = entered == ["first", "second"]  # beside the first, not after it
        release.set()
        await asyncio.wait_for(asyncio.gather(first, second), 1)
        return went_on

    assert asyncio.run(run())


def _hanging_alone(monkeypatch, prepare) -> int:
    """A suspect message whose handler hangs, handled alone once; its own failures after."""
    import asyncio

    from fjordbank.runtime import consumer

    monkeypatch.setattr(consumer, "ALONE_DEADLINE_SECONDS", 0.3)

    async def hangs(batch):
        await asyncio.Event().wait()
        return []  # pragma: no cover

    async def run() -> int:
        svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=hangs)
        svc.marks = InHandMarks(Bucket(), "ledger")
        prepare(svc)
        m = Msg(7)
        m.metadata.num_delivered = 4
        await svc.process([Delivery(m)])
        return svc.tally.own_failures(("ledger", 7))

    return asyncio.run(run())


def test_a_suspect_messages_timeout_is_everyones_without_fresh_evidence_that_others_go_through(monkeypatch):
    import time

    def long_ago(svc) -> None:  # the database hung for all: the last ack long before
        svc._last_ack = time.monotonic() - 60

    def before_its_failure(svc) -> None:  # an ack, then its failure: nothing went through since
        svc._last_ack = time.monotonic() - 0.1
        svc.tally.failed(("ledger", 7))

    assert _hanging_alone(monkeypatch, long_ago) == 0
    assert _hanging_alone(monkeypatch, before_its_failure) == 0


def test_a_suspect_messages_deadline_grows_with_the_slowest_call_that_went_through():
    import time

    svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=None)  # type: ignore[arg-type]
    assert svc._alone_deadline() == 30.0
    svc._went_through(time.monotonic() - 50)  # a call of 50 s acked: the database slow for all
    assert 100 <= svc._alone_deadline() < 101
    svc._went_through(time.monotonic() - 90)
    assert svc._alone_deadline() == 120.0  # never more than any call's


def test_three_stoppers_in_a_batch_of_two_hundred_are_each_found_and_no_other_is_dead_lettered():
    bank, bucket = Bank(list(range(1, 201))), Bucket()
    stoppers = {40, 100, 160}
    lives(bank, bucket, lambda seqs: bool(stoppers & set(seqs)), most=16)
    assert sorted(bank.letters) == [40, 100, 160]
    assert all("stopped 2 times" in reason for reason in bank.letters.values())
    assert sorted(bank.acked) == sorted(set(range(1, 201)) - stoppers)


def test_after_a_pieces_last_message_or_a_stoppers_rest_fails_for_all_the_later_pieces_wait(monkeypatch):
    import asyncio

    from fjordbank.runtime import consumer

    monkeypatch.setattr(consumer, "TRANSIENT_PAUSES", ())
    spec = topology.consumer("ledger").partitions()[0]

    def run(handler, count: int, stopper: int | None = None) -> dict[int, list[str]]:
        async def main() -> dict[int, list[str]]:
            bucket = Bucket()
            svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=handler)
            svc.marks = InHandMarks(bucket, "ledger")
            if stopper is not None:  # it stopped its process twice alone before
                await bucket.put(svc.marks.key(spec.durable, stopper), b"2 another-process")

            async def dead_letter(d, reason, spec=None):
                pass

            svc.dead_letter = dead_letter  # type: ignore[method-assign]
            msgs = [Msg(seq) for seq in range(1, count + 1)]
            for m in msgs:
                m.metadata.num_delivered = 3  # suspect, level 1: pieces of a quarter
            await svc.process([Delivery(m) for m in msgs], Binding(spec, handler))
            return {m.metadata.sequence.stream: [w for _, w in m.log if w != "wpi"] for m in msgs}

        return asyncio.run(main())

    async def last_of_its_piece_fails(batch):  # piece [3, 4]: 3 a bug, then 4 alone transient
        seqs = [d.stream_sequence for d in batch]
        if 3 in seqs:
            raise ValueError("a bug on message 3")
        if seqs == [4]:
            raise TimeoutError("firestore DEADLINE_EXCEEDED")
        return [Ack() for _ in batch]

    assert run(last_of_its_piece_fails, 8) == {1: ["ack"], 2: ["ack"], **{seq: ["nak"] for seq in range(3, 9)}}

    async def stoppers_rest_fails(batch):  # piece [1..4]: 1 a bug, 2 the stopper, [3, 4] transient
        seqs = [d.stream_sequence for d in batch]
        if 1 in seqs:
            raise ValueError("a bug on message 1")
        if seqs == [3, 4]:
            raise TimeoutError("firestore UNAVAILABLE")
        return [Ack() for _ in batch]

    outcomes = run(stoppers_rest_fails, 16, stopper=2)
    assert outcomes[2] == ["term"] and all(outcomes[seq] == ["nak"] for seq in range(3, 17))


def test_the_wait_behind_a_message_handled_alone_is_not_the_handlers_time(monkeypatch):
    """asyncio.timeout fixes its end when it is made: made before the call had the gate, the
    wait behind a suspect message handled alone counted as the handler's own, a 50 ms
    handler was timed out at its first await and counted as failing alone, and six such
    waits dead-lettered it (found in review, 2026-12-07)."""
    import asyncio
    import time

    from fjordbank.runtime import consumer
    from tests.unit.test_consumer_limits import service

    monkeypatch.setattr(consumer, "HANDLER_DEADLINE_SECONDS", 0.5)
    ran: list[float] = []

    async def handler(batch):
        await asyncio.sleep(0.05)
        ran.append(time.monotonic())
        return [Ack() for _ in batch]

    async def scenario():
        svc, _letters = service(handler)
        svc._last_ack = time.monotonic()

        async def alone_call():  # a suspect message handled alone for longer than the deadline
            async with svc._gate.alone():
                await asyncio.sleep(0.8)

        task = asyncio.create_task(alone_call())
        await asyncio.sleep(0.01)
        msg = Msg(7)
        await svc.process([Delivery(msg)])
        await task
        return svc, msg

    svc, msg = asyncio.run(scenario())
    assert len(ran) == 1 and [what for _, what in msg.log] == ["ack"]
    assert svc.tally.failures(("ledger", 7)) == 0
