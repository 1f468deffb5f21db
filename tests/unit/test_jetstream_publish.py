"""Publishing the next steps when JetStream says a message id is "in process".

A clustered stream answers a publish whose message id it has staged for an uncommitted
proposal with 409 err_code 10158 (JSStreamDuplicateMessageConflict); a moment later the
same publish gets the duplicate ack. The bench saw whole batches fail on it, retried one
message at a time, each republishing ids still in process: stalls. What is promised: the
409 is waited out, other errors are not; an event twice in a batch is published once; a
failed batch raises only after every publish of it has settled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json

import nats.js.errors
import pytest
from nats.js.api import PubAck

from fjordbank.adapters import jetstream_publish
from fjordbank.domain.payments import PaymentEvent, PaymentRequested
from fjordbank.runtime import events


def in_process() -> nats.js.errors.APIError:
    return nats.js.errors.APIError(code=409, err_code=10158, description="duplicate message id is in process")


class Js:
    """A JetStream context: per message id, the errors to answer before the ack."""

    def __init__(self, **answers: list[BaseException]) -> None:
        self.answers = answers
        self.calls: list[str] = []
        self.done: list[str] = []
        self.payloads: dict[str, dict] = {}

    async def publish(self, subject, payload=b"", timeout=None, stream=None, headers=None):
        msg_id = headers["Nats-Msg-Id"]
        self.calls.append(msg_id)
        self.payloads[msg_id] = json.loads(payload)
        pending = self.answers.get(msg_id) or []
        if pending:
            raise pending.pop(0)  # at once
        await asyncio.sleep(0.05)  # an ack takes longer than a failure
        self.done.append(msg_id)
        return PubAck(stream="PAYMENTS", seq=len(self.done), duplicate=False)


def payment(pid: str) -> PaymentRequested:
    return PaymentRequested(
        payment_id=pid,
        uid="u1",
        request_id=f"r-{pid}",
        kind="internal",
        from_account="97100000017",
        to_account="97100000025",
        amount=100,
        currency="NOK",
        message=None,
        kid=None,
        due_date="2026-12-01",
        body_hash="h",
        requested_at="2026-12-01T10:00:00Z",
    )


def test_a_message_id_in_process_is_published_again_until_it_is_acked():
    js = Js(m1=[in_process(), in_process()])
    ack = asyncio.run(jetstream_publish.publish(js, "payments.approved.1", b"{}", headers={"Nats-Msg-Id": "m1"}))
    assert ack.seq == 1 and js.calls == ["m1", "m1", "m1"]


def test_other_errors_are_not_waited_out_and_an_id_that_never_settles_gives_up(monkeypatch):
    refused = nats.js.errors.APIError(code=503, err_code=10077, description="maximum messages exceeded")
    js = Js(m1=[refused])
    with pytest.raises(nats.js.errors.APIError) as raised:
        asyncio.run(jetstream_publish.publish(js, "s", b"{}", headers={"Nats-Msg-Id": "m1"}))
    assert raised.value.err_code == 10077 and js.calls == ["m1"]
    monkeypatch.setattr(jetstream_publish, "SETTLE_SECONDS", 0.05)
    stuck = Js(m2=[in_process()] * 100)
    with pytest.raises(nats.js.errors.APIError) as raised:
        asyncio.run(jetstream_publish.publish(stuck, "s", b"{}", headers={"Nats-Msg-Id": "m2"}))
    assert jetstream_publish.in_process(raised.value) and 2 <= len(stuck.calls) < 10


def test_an_event_twice_in_a_batch_is_published_once():
    e = PaymentEvent(payment("p1"), "approved")
    js = Js()
    asyncio.run(events.publish(js, [e, e, PaymentEvent(payment("p2"), "approved")], parents={}))
    assert sorted(js.calls) == sorted([e.msg_id, PaymentEvent(payment("p2"), "approved").msg_id])


def test_a_failed_publish_is_raised_after_every_other_publish_of_the_batch_settled():
    batch = [PaymentEvent(payment(f"p{i}"), "approved") for i in range(5)]
    js = Js(**{batch[0].msg_id: [nats.js.errors.ServiceUnavailableError()]})
    with pytest.raises(nats.js.errors.ServiceUnavailableError):
        asyncio.run(events.publish(js, batch, parents={}))
    assert sorted(js.done) == sorted(e.msg_id for e in batch[1:])  # none still in flight


def test_a_state_nobody_shows_is_published_with_the_time_it_passed():
    # the notifier never sees "approved" or "reserved" (fjordbank.domain.payments.UNSHOWN):
    # the next service's answer carries these stamps on to it
    approved = PaymentEvent(payment("p1"), "approved")
    before = dt.datetime.now(dt.UTC)
    js = Js()
    asyncio.run(events.publish(js, [approved, PaymentEvent(payment("p2"), "completed")], parents={}))
    stamp = dt.datetime.fromisoformat(js.payloads["p1:approved"]["detail"]["passedAt"]["approved"])
    assert before <= stamp <= dt.datetime.now(dt.UTC)
    assert js.payloads["p2:completed"]["detail"] == {}  # shown as it happens: no stamp

    # the ledger's answer keeps screening's stamp and adds its own
    reserved = dataclasses.replace(PaymentEvent.from_json(js.payloads["p1:approved"]), status="reserved")
    asyncio.run(events.publish(js, [reserved], parents={}))
    passed = js.payloads["p1:reserved"]["detail"]["passedAt"]
    assert passed["approved"] == stamp.isoformat() and set(passed) == {"approved", "reserved"}
