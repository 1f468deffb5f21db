"""fjordbank.runtime.steps: the one shape of the consumers' batch handlers."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

from fjordbank import topology
from fjordbank.domain.events import IssueCard
from fjordbank.domain.payments import PaymentEvent, PaymentRequested
from fjordbank.runtime import events, steps
from fjordbank.runtime.consumer import Ack, Delivery, Reject, Retry


def payment(pid: str) -> PaymentEvent:
    p = PaymentRequested(
        payment_id=pid,
        uid="u1",
        request_id="r-" + pid,
        kind="internal",
        from_account="97100000001",
        to_account="97100000002",
        amount=100,
        currency="NOK",
        message=None,
        kid=None,
        due_date="2026-11-30",
        body_hash="h",
        requested_at="2026-11-30T12:00:00+00:00",
    )
    return PaymentEvent(p, "approved")


def delivery(subject: str, data: bytes) -> Delivery:
    return Delivery(SimpleNamespace(subject=subject, data=data, headers={}))


def of(event: PaymentEvent) -> Delivery:
    return delivery(event.subject, events.encode(event))


async def test_every_message_gets_the_outcome_the_step_decided():
    a, b = payment("p1"), payment("p2")
    seen = []

    async def step(s: steps.Step[PaymentEvent]) -> None:
        seen.append([e.payment.payment_id for e in s.events])
        s.ack(s.items[0][0])
        s.reject(s.items[1][0], "refused")

    out = await steps.payment_step(step)([of(a), delivery(a.subject, b"not json"), of(b)])
    assert seen == [["p1", "p2"]]  # the malformed one never reaches the step
    assert out[0] == Ack() and out[2] == Reject("refused")
    assert isinstance(out[1], Reject) and "malformed" in out[1].reason


async def test_a_message_whose_status_is_not_its_subject_is_rejected_before_the_step():
    event = payment("p1")
    called = []

    async def step(s: steps.Step[PaymentEvent]) -> None:
        called.append(s)

    out = await steps.payment_step(step)(
        [delivery(topology.payment_subject("settled", "97100000001"), events.encode(event))]
    )
    assert called == []  # nothing readable: the step is not called
    assert isinstance(out[0], Reject) and "does not match subject" in out[0].reason


async def test_a_message_left_undecided_is_retried_and_logged(caplog):
    async def step(s: steps.Step[PaymentEvent]) -> None:
        s.ack(s.items[0][0])  # forgets the second

    with caplog.at_level(logging.ERROR):
        out = await steps.payment_step(step)([of(payment("p1")), of(payment("p2"))])
    assert out[0] == Ack() and out[1] == Retry(steps.UNDECIDED)
    assert steps.UNDECIDED in caplog.text


async def test_contracts_are_decoded_to_their_types():
    command = IssueCard(uid="u1", card_id="c1", account_id="97100000001")
    got = []

    async def step(s: steps.Step) -> None:
        got.extend(s.events)
        s.ack_all()

    body = json.dumps(command.to_json()).encode()
    out = await steps.contract_step(step)(
        [delivery(topology.SUBJECT_CARD_ISSUE, body), delivery(topology.SUBJECT_CARD_ISSUE, b"[1]")]
    )
    assert got == [command]
    assert out[0] == Ack() and isinstance(out[1], Reject)


async def test_a_message_nested_past_the_parsers_depth_is_rejected_and_the_rest_of_its_batch_handled():
    """json.loads raised RecursionError, which decoding did not take: the whole batch's
    handler failed, every message beside it was retried one at a time, on each of the bad
    one's deliveries (found in review)."""
    good = payment("p1")

    async def step(s):
        s.ack_all()

    poison = delivery(good.subject, b"[" * 100_000 + b"]" * 100_000)
    out = await steps.payment_step(step)([of(good), poison])
    assert out[0] == Ack() and isinstance(out[1], Reject)
