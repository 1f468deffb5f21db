"""fjordbank.service_layer.push on the in-memory documents: one queued push delivered to a
customer's devices, with a fake FCM sender.

What is promised: a push is delivered once per dedupe key however often it is handed over
(Pub/Sub delivers at least once, the notifier may queue it twice); the customer's
preferences decide per kind; a token FCM reports as unregistered is deleted; a malformed
push in a batch is counted and skipped.
"""

from __future__ import annotations

import pytest

from fjordbank.adapters.push import PushResult
from fjordbank.service_layer import push
from tests.support.memory import MemoryDocuments
from tests.support.use_cases import data, fixed_clock, paths, seed

UID = "alice"


class Sender:
    """A fake FCM: each token's answer; what was sent, in order."""

    def __init__(self, **answers: PushResult) -> None:
        self.answers, self.sent = answers, []

    def send(self, token: str, *, title: str, body: str, data: dict) -> PushResult:
        self.sent.append((token, title))
        return self.answers.get(token) or PushResult(token, ok=True, message_id="m")


@pytest.fixture
def docs() -> MemoryDocuments:
    docs = MemoryDocuments(fixed_clock())
    seed(
        docs,
        {f"users/{UID}/devices/phone": {"token": "tok-phone"}, f"users/{UID}/devices/tablet": {"token": "tok-tab"}},
    )
    return docs


def a_push(key: str = "payment-1:completed", kind: str = "payments", uid: str = UID) -> dict:
    return {"uid": uid, "kind": kind, "dedupeKey": key, "title": "Betaling fullført", "body": "1 000 kr til Bob"}


def test_a_push_goes_to_every_device_once_per_dedupe_key(docs):
    sender = Sender()
    assert push.deliver(docs, sender, a_push()) == "sent"
    assert sorted(t for t, _ in sender.sent) == ["tok-phone", "tok-tab"]
    record = data(docs, "pushes/payment-1:completed")
    assert (record["status"], record["sent"], record["removedTokens"], record["uid"]) == ("sent", 2, 0, UID)
    assert push.deliver(docs, sender, a_push()) == "duplicate"
    assert push.deliver_batch(docs, sender, {"pushes": [a_push(), a_push()]}) == {"duplicate": 2}
    assert len(sender.sent) == 2


def test_an_unregistered_token_is_deleted_and_the_others_still_get_it(docs):
    gone = PushResult("tok-tab", ok=False, unregistered=True, error="HTTP 404", code="UNREGISTERED")
    assert push.deliver(docs, Sender(**{"tok-tab": gone}), a_push()) == "sent"
    assert paths(docs, f"users/{UID}/devices") == [f"users/{UID}/devices/phone"]
    assert data(docs, "pushes/payment-1:completed")["removedTokens"] == 1


def test_a_kind_the_customer_turned_off_is_not_pushed_and_marketing_is_off_unless_chosen(docs):
    seed(docs, {f"users/{UID}/settings/notifications": {"payments": False}})
    sender = Sender()
    assert push.deliver(docs, sender, a_push()) == "muted"
    assert push.deliver(docs, sender, a_push("offer-1", kind="marketing")) == "muted"
    assert push.deliver(docs, sender, a_push("card-1", kind="card")) == "sent"
    assert data(docs, "pushes/payment-1:completed")["status"] == "muted"
    assert push.preferences(docs, "nobody")["marketing"] is False


def test_a_customer_without_devices_gets_no_push(docs):
    failed = PushResult("tok-phone", ok=False, error="HTTP 500", code="INTERNAL")
    assert push.deliver(docs, Sender(), a_push(uid="carol")) == "no_devices"
    seed(docs, {f"users/{UID}/devices/tablet": {}})  # a device without a token is skipped
    assert push.deliver(docs, Sender(**{"tok-phone": failed}), a_push("payment-2:completed")) == "no_devices"


def test_malformed_pushes_in_a_batch_are_counted_and_skipped(docs):
    batch = {"pushes": [a_push(), {"uid": UID}, {**a_push("x"), "dedupeKey": 5}, "junk", a_push("payment-3:completed")]}
    assert push.deliver_batch(docs, Sender(), batch) == {"sent": 2, "malformed": 3}
    assert push.deliver_batch(docs, Sender(), "not a message") == {}
