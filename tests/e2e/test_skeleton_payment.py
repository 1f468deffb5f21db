"""The walking skeleton, through the app's surface: a signed-in user creates a payment
request document; the trigger validates and publishes; the ledger posts; the request
document shows "completed" and both balances changed."""

from __future__ import annotations

import pytest

from tests.support.app import new_customer

pytestmark = pytest.mark.stack


def test_internal_transfer_completes_end_to_end(stack, auth, as_user, ledger_admin, audit):
    alice = new_customer(auth, as_user, ledger_admin, 100_000, 0)
    spending, savings = alice.accounts

    request_id = alice.request_payment(savings, 12_550, message="Til sparing")

    doc = alice.wait_final(request_id)
    assert doc["status"] == "completed", doc
    assert doc["timeline"].keys() >= {"requested", "completed"}
    assert alice.balance(spending) == 100_000 - 12_550
    assert alice.balance(savings) == 12_550
    audit()


def test_payment_from_someone_elses_account_is_rejected_with_a_reason(stack, auth, as_user, ledger_admin, audit):
    alice = new_customer(auth, as_user, ledger_admin, 5_000)
    bob = new_customer(auth, as_user, ledger_admin, 5_000)

    request_id = alice.request_payment(alice.accounts[0], 100, from_account=bob.accounts[0])

    doc = alice.wait_final(request_id)
    assert doc["status"] == "rejected"
    assert doc["reason"]["code"] == "unknown_account"
    assert bob.balance() == 5_000
    audit()


def test_payment_beyond_available_funds_fails_in_the_ledger(stack, auth, as_user, ledger_admin, audit):
    alice = new_customer(auth, as_user, ledger_admin, 1_000, 0)

    request_id = alice.request_payment(alice.accounts[1], 1_001)

    doc = alice.wait_final(request_id)
    assert doc["status"] == "failed"
    assert doc["reason"]["code"] == "insufficient_funds"
    assert alice.balance(alice.accounts[0]) == 1_000
    audit()
