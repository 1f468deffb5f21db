"""The dead-letter replay's check (fjordbank/runtime/dead_letters.py replay_problem, for
`bankctl dlq replay` and the production module): a dead letter is published again only on
a subject its consumer takes, in the partition its payment's account gives. The letter's
headers are written by whoever may publish on its dlq subject (each service may, on its
own), and the replay publishes as admin: before the check a letter on
dlq.insights-payments naming payments.approved.3 became a payment the ledger would post
without screening, and one naming $JS.API.STREAM.PURGE.PAYMENTS would have emptied the
payments stream."""

from __future__ import annotations

import json

import pytest

from fjordbank import topology
from fjordbank.domain.payments import PaymentEvent, PaymentRequested
from fjordbank.runtime.dead_letters import replay_problem

PAYMENT = PaymentRequested(
    payment_id="uid1_req-0001",
    uid="uid1",
    request_id="req-0001",
    kind="internal",
    from_account="97100000028",
    to_account="97100000036",
    amount=12_500,
    currency="NOK",
    message=None,
    kid=None,
    due_date="2027-05-03",
    body_hash="0" * 64,
    requested_at="2027-05-03T10:00:00+00:00",
)


def letter(status: str) -> tuple[str, bytes]:
    event = PaymentEvent(PAYMENT, status)
    return event.subject, json.dumps(event.to_json()).encode()


def test_a_payment_s_dead_letter_goes_back_to_its_own_partition() -> None:
    subject, data = letter("approved")
    assert replay_problem("dlq.ledger", subject, data) is None
    assert replay_problem(topology.dlq_subject("notifier-customers"), topology.SUBJECT_CUSTOMER_APPROVED, b"{}") is None


@pytest.mark.parametrize(
    ("dead_letter", "original", "problem"),
    [
        ("dlq.insights-payments", "approved", "is not a subject consumer insights-payments takes"),
        ("dlq.ledger", "$JS.API.STREAM.PURGE.PAYMENTS", "is not a subject consumer ledger takes"),
        ("dlq.ledger", None, "does not say where it came from"),
        ("dlq.nobody", "approved", "is no consumer's dead letter subject"),
        ("dlq.ledger-p3", "approved", "is no consumer's dead letter subject"),
    ],
)
def test_a_dead_letter_naming_another_consumer_s_subject_is_refused(dead_letter, original, problem) -> None:
    subject, data = letter("approved")
    named = subject if original == "approved" else original
    assert problem in (replay_problem(dead_letter, named, data) or "")


def test_a_payment_named_for_another_partition_or_unreadable_is_refused() -> None:
    subject, data = letter("approved")
    base, _, n = subject.rpartition(".")
    other = f"{base}.{(int(n) + 1) % topology.PAYMENT_PARTITIONS}"
    assert f"belongs on {subject}" in (replay_problem("dlq.ledger", other, data) or "")
    assert "cannot be read" in (replay_problem("dlq.ledger", subject, b"not json") or "")
