"""A security notice goes to every device (README: "so a device someone else added is seen
at once"), so it is not sent while any of its devices could not take it for now (found in
review, 2026-12-07): the new, possibly someone else's, device took it, the customer's own
phone answered UNAVAILABLE, and the notice counted as sent, never to be tried again. The
message's retry record holds each device that took the notice (`push.reached`), so its
next delivery sends it to the others only, and a record written before (push ids only)
reads as it did.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from fjordbank.adapters.push import PushResult
from fjordbank.service_layer import push
from tests.support.memory import MemoryDocuments
from tests.support.use_cases import NOW, data, fixed_clock, seed
from tests.unit.test_push_use_case import Sender, a_push, phone

MESSAGE = "4711"
NOTICE = a_push("device:alice:enrolled:k9", kind="security")
# The customer's own phone could not take it for now. UNAVAILABLE, as FCM answered in the
# review, holds the message's sends not started back (test_push_fcm_retries.py), so the
# answer waits for the other device's send to have been made (`Phone`); the tests that need
# no particular order take a timeout.
AWAY = PushResult("tok-own-phone", ok=False, error="HTTP 503", code="UNAVAILABLE")
TIMED_OUT = PushResult("tok-own-phone", ok=False, error="timed out", code="DEADLINE_EXCEEDED")


class Phone(Sender):
    """The own phone's answer given once the new device was sent to."""

    def __init__(self, **answers: PushResult) -> None:
        super().__init__(**answers)
        self.new_sent = threading.Event()

    def send(self, token: str, **kwargs: Any) -> PushResult:
        if token == "tok-own-phone":
            self.new_sent.wait(5)
        result = super().send(token, **kwargs)
        if token == "tok-new-device":
            self.new_sent.set()
        return result


def after_a_reset() -> MemoryDocuments:
    """The bank ended the customer's sessions: their own phone is among the signed-out
    devices (which get security notices), and a new device registered since."""
    docs = MemoryDocuments(fixed_clock())
    settings = {
        "devices": {"new": phone("tok-new-device")},
        "signedOutDevices": {"own": {**phone("tok-own-phone"), "signedOutAt": 1}},
    }
    seed(docs, {push.settings_path("alice"): settings})
    return docs


def sent_to(sender: Sender) -> list[str]:
    return sorted(token for token, _title, _collapse in sender.sent)


def test_a_security_notice_only_the_new_device_took_is_not_sent_and_comes_again():
    docs = after_a_reset()
    first = Phone(**{"tok-own-phone": AWAY})
    with pytest.raises(push.PushesNotSent) as raised:
        push.deliver_batch(docs, first, {"pushes": [NOTICE]})
    assert sent_to(first) == ["tok-new-device", "tok-own-phone"]
    assert raised.value.outcomes == {"not_sent": 1} and raised.value.urgent
    pid = push.push_id(NOTICE)
    assert raised.value.done == {push.reached(pid, "tok-new-device")}  # not the push: it is not finished


def test_its_next_delivery_sends_it_to_the_devices_that_did_not_take_it_only():
    docs = after_a_reset()
    with pytest.raises(push.PushesNotSent) as raised:
        push.deliver_batch(docs, Sender(**{"tok-own-phone": TIMED_OUT}), {"pushes": [NOTICE]})
    push.record_done(docs, MESSAGE, raised.value.done, published=NOW)
    again = Sender()  # the phone is back
    done = push.done_before(docs, MESSAGE)
    assert push.deliver_batch(docs, again, {"pushes": [NOTICE]}, done=done) == {"sent": 1}
    assert sent_to(again) == ["tok-own-phone"]  # the new device is not sent it twice


def test_the_retry_record_holds_no_device_token():
    docs = after_a_reset()
    with pytest.raises(push.PushesNotSent) as raised:
        push.deliver_batch(docs, Sender(**{"tok-own-phone": TIMED_OUT}), {"pushes": [NOTICE]})
    push.record_done(docs, MESSAGE, raised.value.done, published=NOW)
    record = data(docs, push.retry_path(MESSAGE))
    assert "tok-" not in repr(record)
    (entry,) = record["done"]
    assert entry.startswith(f"{push.push_id(NOTICE)}:")


def test_a_device_that_answers_it_never_will_does_not_hold_a_security_notice_back():
    docs = after_a_reset()
    gone = PushResult("tok-own-phone", ok=False, unregistered=True, error="HTTP 404", code="UNREGISTERED")
    assert push.deliver_batch(docs, Sender(**{"tok-own-phone": gone}), {"pushes": [NOTICE]}) == {"sent": 1}


def test_a_security_notice_to_two_signed_in_devices_waits_for_both_and_other_kinds_for_one():
    docs = MemoryDocuments(fixed_clock())
    seed(docs, {push.settings_path("alice"): {"devices": {"phone": phone("tok-phone"), "tablet": phone("tok-tab")}}})
    later = PushResult("tok-tab", ok=False, error="timed out", code="DEADLINE_EXCEEDED")
    payment = a_push("payment-1:completed")
    with pytest.raises(push.PushesNotSent) as raised:
        push.deliver_batch(docs, Sender(**{"tok-tab": later}), {"pushes": [NOTICE, payment]})
    assert raised.value.outcomes == {"not_sent": 1, "sent": 1}  # the payment's push: one device is enough
    assert raised.value.done == {push.push_id(payment), push.reached(push.push_id(NOTICE), "tok-phone")}
    again = Sender()
    assert push.deliver_batch(docs, again, {"pushes": [NOTICE, payment]}, done=raised.value.done) == {
        "sent": 1,
        "sent_before": 1,
    }
    assert sent_to(again) == ["tok-tab"]


def test_a_record_written_before_with_push_ids_only_reads_as_it_did():
    """A message retried across the deploy: its record holds the finished pushes' ids."""
    docs = after_a_reset()
    payment = a_push("payment-1:completed", uid="alice")
    seed(docs, {push.retry_path(MESSAGE): {"done": [push.push_id(NOTICE)], "expiresAt": NOW}})
    done = push.done_before(docs, MESSAGE)
    sender = Sender()
    assert push.deliver_batch(docs, sender, {"pushes": [NOTICE, payment]}, done=done) == {"sent_before": 1, "sent": 1}
    assert sent_to(sender) == ["tok-new-device"]  # the payment's push: signed-in devices only
