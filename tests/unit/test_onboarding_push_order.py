""" "We are checking your application" is not pushed once the application is decided
(found in review, 2026-12-06, and left then): the outbox relay publishes the events it
never tried before those that failed, so a `customers.review` whose first publish failed
can reach the notifier after the operator's `customers.approved`, and the customer read
"checking" after "welcome"."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from fjordbank import topology
from fjordbank.domain.notifications import customer_pushes, superseded
from fjordbank.runtime.consumer import Delivery
from fjordbank.service_layer.onboarding import customer_event
from tests.support.memory import AsyncMemoryDocuments
from tests.unit.test_push_stream_time import Topic


def _delivery(uid: str, status: str) -> Delivery:
    event = customer_event(uid, status, None, "12345678903" if status == "approved" else None)
    msg = SimpleNamespace(subject=event.subject, data=json.dumps(event.body).encode(), headers=None, metadata=None)
    return Delivery(msg)  # type: ignore[arg-type]


class Reads(AsyncMemoryDocuments):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[list[str]] = []

    async def get_many(self, paths: Any) -> Any:
        self.reads.append(list(paths))
        return await super().get_many(paths)


def _put(docs: AsyncMemoryDocuments, path: str, data: dict[str, Any]) -> None:
    batch = docs.batch()
    batch.set(path, data)
    asyncio.run(batch.commit())


def _queued(docs: AsyncMemoryDocuments, batch: list[Delivery]) -> list[str]:
    from run_services.notifier import NotifierHandler

    topic = Topic()
    asyncio.run(NotifierHandler(docs, topic).pushes_of(customer_pushes)(batch))  # type: ignore[arg-type]
    return [p["dedupeKey"] for p in topic.pushes]


@pytest.mark.parametrize("decided", ["approved", "rejected"])
def test_a_review_push_behind_its_decision_is_not_queued(decided: str) -> None:
    docs = Reads()
    _put(docs, "customers/ann", {"status": decided})
    _put(docs, "customers/bob", {"status": "review"})
    batch = [_delivery("ann", "review"), _delivery("bob", "review"), _delivery("ann", decided)]
    assert _queued(docs, batch) == ["customer:bob:review", f"customer:ann:{decided}"]
    assert docs.reads == [["customers/ann", "customers/bob"]]  # one round trip for the batch


def test_decisions_are_queued_without_a_read() -> None:
    docs = Reads()
    _put(docs, "customers/ann", {"status": "review"})  # (whatever it says: a decision is final)
    assert _queued(docs, [_delivery("ann", "approved"), _delivery("cid", "rejected")]) == [
        "customer:ann:approved",
        "customer:cid:rejected",
    ]
    assert docs.reads == []


def test_a_review_push_whose_customer_cannot_be_read_as_decided_is_queued() -> None:
    docs = Reads()  # no customer document: nothing says it is decided
    _put(docs, "customers/bob", {"status": "frozen?"})
    assert _queued(docs, [_delivery("ann", "review"), _delivery("bob", "review")]) == [
        "customer:ann:review",
        "customer:bob:review",
    ]


def test_only_a_review_push_can_be_out_of_date() -> None:
    [review] = customer_pushes(_delivery("ann", "review").json())
    [welcome] = customer_pushes(_delivery("ann", "approved").json())
    assert review.kind == "onboarding" and superseded(review, "approved") and superseded(review, "rejected")
    assert not superseded(review, "review") and not superseded(review, None)
    assert not superseded(welcome, "review") and not superseded(welcome, "rejected")
    assert topology.SUBJECT_CUSTOMER_REVIEW == "customers.review"


def test_a_review_push_fcm_refused_for_now_is_not_sent_by_a_retry_after_the_decision():
    """The notifier checks when it queues; a "checking" push FCM answered UNAVAILABLE was
    sent by the message's retry (for up to 23 hours: it is not news) after the decision's
    "Welcome", and stayed on the phone after it (found in review, 2026-12-07). The push
    function reads the customer of such a push only, and finishes it unsent."""
    import datetime as dt

    from fjordbank.adapters.push import PushResult
    from fjordbank.service_layer import push
    from tests.support.memory import MemoryDocuments

    docs = MemoryDocuments()
    docs.store.apply(
        [
            ("set", push.settings_path("u1"), {"devices": {"d1": {"token": "tok", "platform": "ios"}}}, False),
            ("set", "customers/u1", {"status": "review"}, False),
        ]
    )
    (review,) = customer_pushes(json.loads(json.dumps(customer_event("u1", "review", None, None).body)))
    message = {"pushes": [{**review.to_json(), "queuedAt": dt.datetime.now(dt.UTC).isoformat()}]}

    class Fcm:
        def __init__(self) -> None:
            self.answers, self.sent = [False], []

        def send(self, token, *, title, body, data, collapse_id=None):
            ok = self.answers.pop(0) if self.answers else True
            if ok:
                self.sent.append(title)
            return PushResult(token, ok=ok, code=None if ok else "UNAVAILABLE", message_id="m" if ok else None)

    fcm = Fcm()
    with pytest.raises(push.PushesNotSent):
        push.deliver_batch(docs, fcm, message)
    docs.store.apply([("set", "customers/u1", {"status": "approved"}, False)])  # the operator decides
    statuses: list[str | None] = [None]
    assert push.deliver_batch(docs, fcm, message, statuses=statuses) == {push.SUPERSEDED: 1}  # Pub/Sub's retry
    assert fcm.sent == [] and statuses == [push.SUPERSEDED]
    docs.store.apply([("set", "customers/u1", {"status": "review"}, False)])
    assert push.deliver_batch(docs, fcm, message) == {push.SENT: 1}  # still in review: sent
    assert fcm.sent == [review.title]
