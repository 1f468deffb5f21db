"""A stopping consumer service (SIGTERM: a rollout, a scale-in) lets its background tasks
finish the work in hand before it cancels them, for at most BACKGROUND_GRACE_SECONDS: the
card service's partner API answers the requests in flight and runs their reversals (cut
off at once, an approval the processor never had kept its hold for days). A task that
does not return in that time is cancelled, so a stop never hangs.

ConsumerService._main runs here with NATS replaced at its edges (the connection, the
binding of the durables, the workers): what is under test is the order of the stop."""

from __future__ import annotations

import asyncio

import pytest

from fjordbank.config import load_settings
from fjordbank.runtime import consumer
from fjordbank.runtime.consumer import Ack, ConsumerService


class FakeConnection:
    is_closed = False

    def __init__(self) -> None:
        self.closed = False

    def jetstream(self) -> object:
        return object()

    async def flush(self, timeout: float) -> None:
        return None

    async def close(self) -> None:
        self.closed = True


def service(monkeypatch: pytest.MonkeyPatch, background: list) -> tuple[ConsumerService, FakeConnection]:
    async def handler(batch):
        return [Ack() for _ in batch]

    svc = ConsumerService(durable="cards", settings=load_settings({}), handler=handler, background=background)
    nc = FakeConnection()

    async def connect(*_args, **_kwargs):
        return nc

    async def bind():
        return [(svc.bindings[0], object())], []

    async def worker(_sub, _binding):
        await svc._stopping.wait()

    async def no_lag(_subs, _name):
        await asyncio.Event().wait()

    monkeypatch.setattr(consumer.nats_conn, "connect", connect)
    monkeypatch.setattr(svc, "_bind", bind)
    monkeypatch.setattr(svc, "_worker", worker)
    monkeypatch.setattr(svc, "_watch_lag", no_lag)
    return svc, nc


async def test_a_background_task_finishes_its_work_in_hand_before_the_service_stops(monkeypatch) -> None:
    done: list[str] = []

    async def partner_api(stop: asyncio.Event) -> None:
        await stop.wait()
        await asyncio.sleep(0.3)  # the requests in flight answered, their reversals run
        done.append("reversals run")

    svc, nc = service(monkeypatch, [partner_api])
    main = asyncio.create_task(svc._main())
    await asyncio.sleep(0.05)
    svc._stopping.set()
    await asyncio.wait_for(main, timeout=5)
    assert done == ["reversals run"] and nc.closed


async def test_a_background_task_that_does_not_return_is_cancelled_after_the_grace(monkeypatch) -> None:
    monkeypatch.setattr(consumer, "BACKGROUND_GRACE_SECONDS", 0.2)
    seen: list[str] = []

    async def stuck(stop: asyncio.Event) -> None:
        await stop.wait()
        try:
            await asyncio.Event().wait()  # never returns
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    svc, nc = service(monkeypatch, [stuck])
    main = asyncio.create_task(svc._main())
    await asyncio.sleep(0.05)
    svc._stopping.set()
    await asyncio.wait_for(main, timeout=5)  # the stop does not hang on it
    assert seen == ["cancelled"] and nc.closed


async def test_the_lag_is_the_partitions_sum_and_the_unacknowledged_their_largest(monkeypatch) -> None:
    """max_ack_pending is each partition durable's: the sum of eight partitions' batches in
    hand (8 x 200) met FjbConsumerAckPendingHigh's 1,600 under an ordinary load (found in
    review, 2026-12-07). The lag stays the whole backlog."""
    from types import SimpleNamespace

    from prometheus_client import REGISTRY

    svc = ConsumerService(durable="cards", settings=load_settings({}), handler=lambda *_a: None)

    class Sub:
        def __init__(self, pending: int, ack_pending: int) -> None:
            self.info = SimpleNamespace(num_pending=pending, num_ack_pending=ack_pending)

        async def consumer_info(self):
            return self.info

    async def once(_seconds):
        raise asyncio.CancelledError

    monkeypatch.setattr(consumer.asyncio, "sleep", once)
    with pytest.raises(asyncio.CancelledError):
        await svc._watch_lag([Sub(10, 200) for _ in range(7)] + [Sub(5, 250)], "watched")  # type: ignore[list-item]
    assert REGISTRY.get_sample_value("fjb_consumer_lag", {"consumer": "watched"}) == 75
    assert REGISTRY.get_sample_value("fjb_consumer_ack_pending", {"consumer": "watched"}) == 250
