"""Reading a stream's subject to the end (fjordbank/adapters/jetstream_read.py): the end is
the count the read's consumer had to deliver when it was made. nats-py's KeyValue.keys()
ends at the first sign of "nothing pending", which came before messages already on their
way (nats.py #842) and, with writes going on, at a message whose pending count was 0 with
more behind it (nats.py #995): `dlq list` showed a letter just replayed as waiting (CI,
2026-12-06)."""

from __future__ import annotations

from types import SimpleNamespace

import nats.errors
import pytest

from fjordbank.adapters.jetstream_read import ReadCut, kv_entries, read_to_the_end


class _Subscription:
    """An ordered consumer's subscription over ``count`` messages: ``in_flight`` of them sent
    before its first info (shown delivered, not pending), ``lost_after``: the connection
    goes, ``silent_after``: the waits run out with the rest still pending, ``gone_after``:
    the rest leave the stream (its age limit). Each message's own pending count says 0 from
    the second on, as a stale one did."""

    def __init__(
        self,
        messages: list,
        *,
        in_flight: int = 0,
        lost_after: int | None = None,
        silent_after: int | None = None,
        gone_after: int | None = None,
    ) -> None:
        self.messages, self.in_flight, self.n = messages, in_flight, 0
        self.lost_after, self.silent_after, self.gone_after = lost_after, silent_after, gone_after
        self.unsubscribed = False

    def _sendable(self) -> int:
        return len(self.messages) if self.gone_after is None else self.gone_after

    async def consumer_info(self):
        sent = max(self.in_flight, self.n)
        meta = getattr(self.messages[sent - 1], "metadata", None) if sent else None
        last = meta.sequence.stream if meta is not None else sent
        return SimpleNamespace(
            num_pending=self._sendable() - sent, delivered=SimpleNamespace(consumer_seq=sent, stream_seq=last)
        )

    async def next_msg(self, timeout):
        if self.lost_after is not None and self.n >= self.lost_after:
            raise nats.errors.ConnectionClosedError
        if self.n >= self._sendable() or (self.silent_after is not None and self.n >= self.silent_after):
            raise nats.errors.TimeoutError
        msg = self.messages[self.n]
        self.n += 1
        return msg

    async def unsubscribe(self) -> None:
        self.unsubscribed = True


class _JetStream:
    def __init__(self, sub: _Subscription, *later: _Subscription, last_seq: int = 0) -> None:
        self.sub, self.later, self.last_seq = sub, list(later), last_seq
        self.asked: dict = {}
        self.reads = 0

    async def subscribe(self, subject, **kw):
        self.asked = {"subject": subject, **kw}
        self.reads += 1
        return self.sub if self.reads == 1 else self.later[min(self.reads - 2, len(self.later) - 1)]

    async def stream_info(self, _name):
        return SimpleNamespace(state=SimpleNamespace(last_seq=self.last_seq))


def _letters(count: int) -> list:
    return [
        SimpleNamespace(
            subject="dlq.ledger",
            data=b"{}",
            headers={},
            metadata=SimpleNamespace(num_pending=0, sequence=SimpleNamespace(stream=n + 1)),
        )
        for n in range(count)
    ]


@pytest.mark.parametrize("in_flight", [0, 1, 3])
async def test_every_message_is_read_whatever_was_on_its_way_or_said_pending(in_flight: int) -> None:
    sub = _Subscription(_letters(3), in_flight=in_flight)
    assert len(await read_to_the_end(_JetStream(sub), "dlq.>", stream="DLQ")) == 3  # type: ignore[arg-type]
    assert sub.unsubscribed


async def test_nothing_there_is_an_empty_list_at_once() -> None:
    assert await read_to_the_end(_JetStream(_Subscription([])), "dlq.>") == []  # type: ignore[arg-type]


async def test_a_read_cut_short_is_an_error_not_the_end() -> None:
    """A connection lost midway printed part of the list and its count as the whole, exit 0
    (found in review, 2026-12-06)."""
    with pytest.raises(ReadCut, match="after 2 of 5"):
        await read_to_the_end(_JetStream(_Subscription(_letters(5), silent_after=2)), "dlq.>", wait=0.01)  # type: ignore[arg-type]
    with pytest.raises(nats.errors.ConnectionClosedError):
        await read_to_the_end(_JetStream(_Subscription(_letters(5), lost_after=2)), "dlq.>", wait=0.01)  # type: ignore[arg-type]


async def test_messages_that_left_the_stream_while_it_was_read_end_it() -> None:
    """Five due at the first info, two aged out before they were sent: three, not a cut."""

    class Aging(_Subscription):
        async def consumer_info(self):
            if not self.n:
                return SimpleNamespace(num_pending=5, delivered=SimpleNamespace(consumer_seq=0))
            return await super().consumer_info()

    read = await read_to_the_end(_JetStream(Aging(_letters(5), gone_after=3)), "dlq.>", wait=0.01)  # type: ignore[arg-type]
    assert len(read) == 3


async def test_a_buckets_entries_are_its_keys_last_values_without_the_deleted() -> None:
    bucket = "dead-letters-replayed"
    messages = [
        SimpleNamespace(subject=f"$KV.{bucket}.7", data=b'{"times": 2}', headers=None),
        SimpleNamespace(subject=f"$KV.{bucket}.8", data=b"", headers={"KV-Operation": "DEL"}),
        SimpleNamespace(subject=f"$KV.{bucket}.9", data=b"", headers={"Nats-Marker-Reason": "MaxAge"}),
        SimpleNamespace(subject=f"$KV.{bucket}.10", data=b"{}", headers={}),
    ]
    js = _JetStream(_Subscription(messages, in_flight=4))
    assert await kv_entries(js, bucket) == {"7": b'{"times": 2}', "10": b"{}"}  # type: ignore[arg-type]
    assert js.asked["subject"] == f"$KV.{bucket}.>" and js.asked["stream"] == f"KV_{bucket}"
    assert js.asked["ordered_consumer"] is True and js.asked["deliver_policy"].value == "last_per_subject"


async def test_messages_lost_after_the_ordered_consumer_was_replaced_are_a_cut_not_the_end() -> None:
    """nats-py replaces an ordered consumer after a gap, and the new one counts from 0: by
    count, the two messages lost at the end after a replacement looked like messages that
    had left the stream, and part of the list came back as the whole (found in review,
    2026-12-06). By stream sequence, they are a cut."""

    class Replaced(_Subscription):
        async def consumer_info(self):
            if not self.n:
                return SimpleNamespace(num_pending=10, delivered=SimpleNamespace(consumer_seq=0, stream_seq=0))
            # replaced after the fifth: the new consumer sent 6..10 (5), the last two lost on the way
            return SimpleNamespace(num_pending=0, delivered=SimpleNamespace(consumer_seq=5, stream_seq=10))

    with pytest.raises(ReadCut, match="after 8 of 10"):
        await read_to_the_end(_JetStream(Replaced(_letters(10), silent_after=8)), "dlq.>", wait=0.01)  # type: ignore[arg-type]


def _entries(bucket: str, keys: range) -> list:
    return [
        SimpleNamespace(
            subject=f"$KV.{bucket}.{k}",
            data=b"%d" % k,
            headers={},
            metadata=SimpleNamespace(sequence=SimpleNamespace(stream=k + 1)),
        )
        for k in keys
    ]


async def test_a_bucket_read_without_the_streams_last_write_is_read_again(monkeypatch) -> None:
    """The read's consumer may stand on a replica that has not applied a write its leader
    acknowledged: right after the 29th write a read had 28 (CI, 2026-12-07). The stream's
    last sequence (its leader's) is in a whole read; one without it is made again."""
    from fjordbank.adapters import jetstream_read

    monkeypatch.setattr(jetstream_read, "KV_READ_PAUSE", 0.0)
    bucket = "dead-letters-replayed"
    stale, whole = _Subscription(_entries(bucket, range(28))), _Subscription(_entries(bucket, range(29)))
    js = _JetStream(stale, whole, last_seq=29)
    assert await kv_entries(js, bucket) == {str(k): b"%d" % k for k in range(29)}  # type: ignore[arg-type]
    assert js.reads == 2
    always_stale = _JetStream(*(_Subscription(_entries(bucket, range(28))) for _ in range(6)), last_seq=29)
    assert len(await kv_entries(always_stale, bucket)) == 28  # type: ignore[arg-type]  # (taken after KV_READS)
    assert always_stale.reads == jetstream_read.KV_READS
