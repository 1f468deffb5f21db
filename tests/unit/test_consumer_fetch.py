"""How the runtime fills a batch: one message waited for, then as many of those the server
has pending behind it as there is room for, asked for only when there are some."""

from __future__ import annotations

import nats.errors

from fjordbank.config import load_settings
from fjordbank.runtime.consumer import ConsumerService
from tests.unit.test_consumer_heartbeat import Msg


async def nothing(batch):  # pragma: no cover - never called
    return []


def pending(seq: int, behind: int) -> Msg:
    m = Msg(seq)
    m.metadata.num_pending = behind
    return m


class Sub:
    """A pull subscription that hands out numbered messages and records what was asked."""

    def __init__(self, stream_pending: int, fail_second: type[Exception] | None = None) -> None:
        self.left = stream_pending
        self.asked: list[tuple[int, float]] = []
        self.fail_second = fail_second
        self.seq = 0

    async def fetch(self, n: int, timeout: float) -> list[Msg]:
        self.asked.append((n, timeout))
        if self.fail_second is not None and len(self.asked) == 2:
            raise self.fail_second()
        out = []
        for _ in range(min(n, self.left)):
            self.seq += 1
            self.left -= 1
            out.append(pending(self.seq, self.left))
        return out


def service(batch_size: int) -> ConsumerService:
    return ConsumerService(durable="ledger", settings=load_settings({}), handler=nothing, batch_size=batch_size)


async def test_a_lone_message_is_not_followed_by_a_second_ask() -> None:
    sub = Sub(1)
    assert len(await service(100)._fetch(sub)) == 1  # type: ignore[arg-type]
    assert sub.asked == [(1, 1.0)]


async def test_a_backlog_fills_the_batch_in_one_more_ask_given_the_whole_fetch_wait() -> None:
    sub = Sub(500)
    batch = await service(100)._fetch(sub)  # type: ignore[arg-type]
    assert len(batch) == 100 and sub.asked == [(1, 1.0), (99, 1.0)]


async def test_the_room_is_asked_for_and_what_is_there_taken() -> None:
    sub = Sub(6)
    batch = await service(100)._fetch(sub)  # type: ignore[arg-type]
    assert len(batch) == 6 and sub.asked == [(1, 1.0), (99, 1.0)]


async def test_a_batch_of_one_never_asks_for_more() -> None:
    sub = Sub(50)
    assert len(await service(1)._fetch(sub)) == 1  # type: ignore[arg-type]
    assert sub.asked == [(1, 1.0)]


async def test_an_unanswered_second_ask_leaves_the_first_message() -> None:
    sub = Sub(50, fail_second=nats.errors.TimeoutError)
    assert len(await service(100)._fetch(sub)) == 1  # type: ignore[arg-type]


async def test_a_second_ask_nats_cannot_take_leaves_the_first_message() -> None:
    # (a reconnect between the two asks: the message in hand is not dropped unsettled)
    for error in (nats.errors.ConnectionReconnectingError, nats.errors.ConnectionClosedError):
        sub = Sub(50, fail_second=error)
        assert len(await service(100)._fetch(sub)) == 1  # type: ignore[arg-type]


async def test_messages_without_a_count_are_taken_alone() -> None:
    class Bare(Sub):
        async def fetch(self, n: int, timeout: float) -> list[Msg]:
            self.asked.append((n, timeout))
            return [Msg(1)]  # made by hand: no num_pending

    sub = Bare(0)
    assert len(await service(100)._fetch(sub)) == 1  # type: ignore[arg-type]
    assert sub.asked == [(1, 1.0)]
