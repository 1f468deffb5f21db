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

from fjordbank.config import load_settings
from fjordbank.runtime import in_hand
from fjordbank.runtime.consumer import Ack, ConsumerService, Delivery
from fjordbank.runtime.in_hand import InHandMarks
from tests.unit.test_consumer_heartbeat import Msg


class Bucket:
    """An in-memory KV bucket with nats-py's errors."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.writes = 0
        self.failing = False

    def _check(self) -> None:
        if self.failing:
            raise nats.errors.TimeoutError

    async def get(self, key: str):
        self._check()
        if key not in self.values:
            raise nats.js.errors.KeyNotFoundError
        return SimpleNamespace(value=self.values[key])

    async def put(self, key: str, value: bytes) -> int:
        self._check()
        self.writes += 1
        self.values[key] = value
        return self.writes

    async def delete(self, key: str) -> bool:
        self._check()
        self.values.pop(key, None)
        return True


class Stopped(BaseException):
    """The process dies where it stands: no except, no finally of the runtime's runs after."""


class Bank:
    """The stream's side: which messages are settled, and how often each was delivered."""

    def __init__(self, seqs: list[int]) -> None:
        self.pending = list(seqs)
        self.delivered = dict.fromkeys(seqs, 0)
        self.acked: list[int] = []
        self.letters: dict[int, str] = {}
        self.calls: list[list[int]] = []

    def life(self, bucket: Bucket, stops_on) -> bool:
        """One process: the pending messages delivered again as one batch; whether it stopped."""
        import asyncio

        async def handler(batch):
            seqs = [d.stream_sequence for d in batch]
            self.calls.append(seqs)
            if stops_on(seqs):
                raise Stopped
            return [Ack() for _ in batch]

        svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=handler)
        svc.marks = InHandMarks(bucket, "ledger")

        async def dead_letter(d, reason, spec=None):
            self.letters[d.stream_sequence] = reason

        svc.dead_letter = dead_letter  # type: ignore[method-assign]
        msgs = []
        for seq in self.pending:
            self.delivered[seq] += 1
            m = Msg(seq)
            m.metadata.num_delivered = self.delivered[seq]
            msgs.append(m)
        try:
            asyncio.run(svc.process([Delivery(m) for m in msgs]))
            stopped = False
        except Stopped:
            stopped = True
        for m in msgs:  # what the server saw settled before the process stopped
            if any(what in ("ack", "term") for _t, what in m.log):
                seq = m.metadata.sequence.stream
                self.pending.remove(seq)
                if any(what == "ack" for _t, what in m.log):
                    self.acked.append(seq)
        return stopped


def lives(bank: Bank, bucket: Bucket, stops_on, most: int = 12) -> int:
    n = 0
    while bank.pending and n < most:
        n += 1
        bank.life(bucket, stops_on)
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
    crash.handling("ledger", [b'{"marker": "stops-1"}'])  # another consumer's point
    crash.handling("screening", [b"{}", b'{"a": 1}'])
    assert killed == []
    crash.handling("screening", [b"{}", b'{"marker": "stops-1"}'])
    assert len(killed) == 1
