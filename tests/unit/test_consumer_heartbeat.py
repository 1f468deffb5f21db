"""The consumer runtime keeps the messages it works on: every unsettled message of the batch
in hand is marked in progress (+WPI) every third of ack_wait, and none after it is settled.
With that, ack_wait is short (topology: 6 s), so a killed or hung instance's messages come
back within seconds."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from types import SimpleNamespace

from fjordbank import topology
from fjordbank.config import load_settings
from fjordbank.runtime.consumer import IN_PROGRESS, Ack, Binding, ConsumerService, Delivery, Retry

ACK_WAIT = 0.6  # seconds: marks every 0.2 s


class Msg:
    def __init__(self, seq: int):
        self.subject, self.data, self.headers = "payments.approved", b"{}", {}
        self.metadata = SimpleNamespace(
            num_delivered=1, sequence=SimpleNamespace(stream=seq), timestamp=dt.datetime.now(dt.UTC)
        )
        self.log: list[tuple[float, str]] = []

    def _note(self, what: str) -> None:
        self.log.append((asyncio.get_running_loop().time(), what))

    async def in_progress(self):
        self._note("wpi")

    async def ack(self):
        self._note("ack")

    async def nak(self, delay=None):
        self._note("nak")

    async def term(self):
        self._note("term")

    def marks(self) -> int:
        return sum(what == "wpi" for _t, what in self.log)

    def marks_after_settling(self) -> int:
        settled = next(i for i, (_t, what) in enumerate(self.log) if what != "wpi")
        return sum(what == "wpi" for _t, what in self.log[settled:])


def service(handler) -> ConsumerService:
    svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=handler)
    svc.bindings[0] = Binding(dataclasses.replace(topology.consumer("ledger"), ack_wait_seconds=ACK_WAIT), handler)
    return svc


def test_ack_wait_is_short_for_every_consumer():
    assert {c.ack_wait_seconds for c in topology.DURABLES} == {4}


def test_a_slow_batch_marks_its_messages_until_it_settles_them():
    async def slow(batch):
        await asyncio.sleep(ACK_WAIT * 2.2)  # longer than ack_wait
        return [Ack() for _ in batch]

    msgs = [Msg(1), Msg(2)]
    before = IN_PROGRESS.labels("ledger")._value.get()
    asyncio.run(service(slow).process([Delivery(m) for m in msgs]))
    for m in msgs:
        assert m.log[-1][1] == "ack"
        assert m.marks() >= 5  # every ack_wait/3 while the handler ran
        assert m.marks_after_settling() == 0
        gaps = [b - a for (a, _), (b, _) in zip(m.log, m.log[1:], strict=False)]
        assert max(gaps) < ACK_WAIT, "a gap as long as ack_wait would let the message go"
    assert IN_PROGRESS.labels("ledger")._value.get() - before == sum(m.marks() for m in msgs)


def test_a_fast_batch_sends_no_marks():
    async def fast(batch):
        return [Ack() for _ in batch]

    m = Msg(1)
    asyncio.run(service(fast).process([Delivery(m)]))
    assert [what for _t, what in m.log] == ["ack"]


def test_a_batch_retried_one_by_one_keeps_the_waiting_messages():
    """A failed batch is retried a message at a time: those still waiting their turn keep
    being marked, those done are left alone."""
    calls = []

    async def handler(batch):
        calls.append(len(batch))
        if len(batch) > 1:
            raise RuntimeError("contention")
        await asyncio.sleep(ACK_WAIT * 0.8)
        return [Retry("later") if batch[0].msg.metadata.sequence.stream == 2 else Ack()]

    msgs = [Msg(1), Msg(2), Msg(3)]
    asyncio.run(service(handler).process([Delivery(m) for m in msgs]))
    assert calls == [3, 1, 1, 1]
    assert [m.log[-1][1] for m in msgs] == ["ack", "nak", "ack"]
    assert msgs[2].marks() > msgs[0].marks()  # the last waited longest
    assert all(m.marks_after_settling() == 0 for m in msgs)


def test_a_failed_mark_is_logged_not_fatal():
    class Lost(Msg):
        async def in_progress(self):
            raise ConnectionError("nats disconnected")

    async def slow(batch):
        await asyncio.sleep(ACK_WAIT)
        return [Ack() for _ in batch]

    m = Lost(1)
    asyncio.run(service(slow).process([Delivery(m)]))
    assert m.log[-1][1] == "ack"
