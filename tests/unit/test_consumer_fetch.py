"""How the runtime fills a batch: one message waited for, then as many of those the server
has pending behind it as there is room for, asked for only when there are some."""

from __future__ import annotations

from types import SimpleNamespace

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

    infos = 0  # consumer_info calls
    info_error: type[Exception] | None = None

    async def consumer_info(self) -> SimpleNamespace:
        self.infos += 1
        if self.info_error is not None:
            raise self.info_error()
        return SimpleNamespace(num_pending=self.left)

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


# ---- a batch that waited for its partition's turn (process(fill=...)) --------------------


async def test_a_batch_that_waited_asks_what_is_pending_now_when_its_count_said_none() -> None:
    sub = Sub(30)
    first = pending(1, 0)  # nothing was behind it when it was delivered; 30 came meanwhile
    more = await service(100)._more(sub, [first], waited=True)  # type: ignore[arg-type]
    assert len(more) == 30 and sub.infos == 1 and sub.asked == [(99, 1.0)]


async def test_a_batch_that_waited_with_nothing_pending_now_does_not_fetch() -> None:
    sub = Sub(0)
    assert await service(100)._more(sub, [pending(1, 0)], waited=True) == []  # type: ignore[arg-type]
    assert sub.infos == 1 and sub.asked == []  # no long poll held with the turn


async def test_a_batch_that_did_not_wait_believes_its_count() -> None:
    sub = Sub(30)
    assert await service(100)._more(sub, [pending(1, 0)]) == []  # type: ignore[arg-type]
    assert sub.infos == 0 and sub.asked == []


async def test_a_count_that_says_some_are_there_is_not_asked_again() -> None:
    sub = Sub(30)
    more = await service(100)._more(sub, [pending(1, 12)], waited=True)  # type: ignore[arg-type]
    assert len(more) == 30 and sub.infos == 0


async def test_a_waited_batch_whose_count_nats_cannot_give_goes_on_alone() -> None:
    sub = Sub(30)
    sub.info_error = nats.errors.ConnectionReconnectingError
    assert await service(100)._more(sub, [pending(1, 0)], waited=True) == []  # type: ignore[arg-type]
    assert sub.asked == []


async def test_a_slow_answer_about_what_is_pending_is_not_waited_for_past_a_fetch() -> None:
    import asyncio

    class Slow(Sub):
        async def consumer_info(self) -> SimpleNamespace:
            await asyncio.sleep(60)
            raise AssertionError("not waited for")

    svc = service(100)
    svc.fetch_wait = 0.05
    assert await svc._more(Slow(30), [pending(1, 0)], waited=True) == []  # type: ignore[arg-type]
