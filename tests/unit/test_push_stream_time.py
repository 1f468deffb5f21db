"""A push is stamped with the time its event entered the stream, not the time the notifier
queued it (found in review, 2026-12-06): a backlog at the notifier or a batch whose commit
was tried again queued hours-old news with a fresh stamp, and the push function
(fjordbank.service_layer.push.NEWS_MAX_AGE) sent it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from types import SimpleNamespace
from typing import Any

from fjordbank import topology
from fjordbank.adapters.pubsub import PushQueue
from fjordbank.domain.notifications import Push, card_pushes, payment_pushes
from fjordbank.runtime import steps
from fjordbank.runtime.consumer import Delivery
from tests.support.use_cases import NOW, fixed_clock
from tests.unit.test_contracts import AUTHORIZATION
from tests.unit.test_notifications import event


class Topic:
    def __init__(self) -> None:
        self.pushes: list[dict[str, Any]] = []

    async def publish_json(self, body: dict[str, Any], **_attributes: str) -> str:
        self.pushes.extend(body["pushes"])
        return "1"


def ago(**kw: float) -> dt.datetime:
    return NOW - dt.timedelta(**kw)


def test_the_queue_stamps_the_time_the_event_entered_the_stream_capped_at_now():
    topic = Topic()
    pushes = [Push("alice", "payments", "t", "b", {}, f"p{i}:completed", news=True) for i in range(3)]
    entered = [ago(hours=3), None, NOW + dt.timedelta(minutes=5)]  # old, unknown, ahead of this clock
    asyncio.run(PushQueue(topic, clock=fixed_clock(NOW))(pushes, entered=entered))
    assert [p["queuedAt"] for p in topic.pushes] == [ago(hours=3).isoformat(), NOW.isoformat(), NOW.isoformat()]


def _delivery(
    body: object,
    published: dt.datetime | None,
    subject: str = topology.SUBJECT_CARD_AUTHORIZED,
    headers: dict[str, str] | None = None,
) -> Delivery:
    metadata = SimpleNamespace(timestamp=published) if published is not None else None
    msg = SimpleNamespace(subject=subject, data=json.dumps(body).encode(), headers=headers, metadata=metadata)
    return Delivery(msg)  # type: ignore[arg-type]


def _handler(topic: Topic):
    from run_services.notifier import NotifierHandler

    handler = NotifierHandler(SimpleNamespace(), topic)  # type: ignore[arg-type]
    handler.queue_pushes.clock = fixed_clock(NOW)
    return handler


def test_a_card_or_customer_push_carries_its_event_s_stream_time():
    topic = Topic()
    card = AUTHORIZATION.to_json()
    batch = [_delivery(card, ago(hours=3)), _delivery(card, ago(seconds=2)), _delivery(card, None)]
    asyncio.run(_handler(topic).pushes_of(card_pushes)(batch))
    assert [p["queuedAt"] for p in topic.pushes] == [
        ago(hours=3).isoformat(),
        ago(seconds=2).isoformat(),
        NOW.isoformat(),  # no stream time (not a JetStream message): the time it is queued
    ]


def test_a_payment_s_pushes_carry_its_event_s_stream_time():
    """The payment path queues from the use case (fjordbank.service_layer.notifier.project_batch),
    which sees the events, not the messages: the handler's queue stamps each push by its payment."""
    topic = Topic()
    completed = event("completed")
    failed = event("failed", "insufficient_funds", pid="pay-2")
    batch = [_delivery({}, ago(hours=2)), _delivery({}, ago(seconds=1))]
    step = steps.Step(batch, [(0, completed), (1, failed)], [None, None])
    queue = _handler(topic).queue_for(step)
    asyncio.run(queue(payment_pushes(failed, payee_uid=None) + payment_pushes(completed, payee_uid="bob")))
    assert [(p["dedupeKey"], p["queuedAt"]) for p in topic.pushes] == [
        ("pay-2:failed", ago(seconds=1).isoformat()),
        (f"{completed.payment.payment_id}:completed", ago(hours=2).isoformat()),
        (f"{completed.payment.payment_id}:received", ago(hours=2).isoformat()),
    ]


def test_a_replayed_dead_letter_s_news_keeps_its_first_time():
    """A replay is a new message with a new stream time: a letter of the notifier's replayed
    days later pushed its "Money received" as fresh news. The dead letter keeps its first
    time (fjordbank.runtime.dead_letters.ORIGINAL_TIME) and the replay carries it."""
    from fjordbank.runtime.dead_letters import ORIGINAL_TIME, original_time_header

    topic = Topic()
    card = AUTHORIZATION.to_json()
    first = original_time_header(ago(days=3))
    assert first == {ORIGINAL_TIME: ago(days=3).isoformat()}
    batch = [
        _delivery(card, ago(seconds=1), headers=first),  # replayed now: its first time
        _delivery(card, ago(seconds=1), headers={ORIGINAL_TIME: ago(seconds=-60).isoformat()}),  # later: ignored
        _delivery(card, ago(seconds=1), headers={ORIGINAL_TIME: "yesterday"}),  # unreadable: the stream's
        _delivery(card, ago(seconds=1), headers={ORIGINAL_TIME: "2026-12-01T10:00:00"}),  # no zone: the stream's
        _delivery(card, None, headers=first),  # no stream time: the first time
    ]
    assert [d.entered for d in batch] == [ago(days=3), ago(seconds=1), ago(seconds=1), ago(seconds=1), ago(days=3)]
    asyncio.run(_handler(topic).pushes_of(card_pushes)(batch))
    assert topic.pushes[0]["queuedAt"] == ago(days=3).isoformat()
    assert {p["queuedAt"] for p in topic.pushes[1:4]} == {ago(seconds=1).isoformat()}
