"""The walking skeleton, through the app's surface: a signed-in user creates a payment
request document; the trigger validates and publishes; the ledger posts; the request
document shows "completed" and both balances changed."""

from __future__ import annotations

import pytest

from tests.support.clients import new_account_number, unique, wait_for

pytestmark = pytest.mark.stack


def test_internal_transfer_completes_end_to_end(stack, auth, as_user, ledger_admin, admin_db, audit):
    user = auth.sign_up()
    spending = ledger_admin.open_funded_account(user["uid"], new_account_number(), 100_000)
    savings = ledger_admin.open_funded_account(user["uid"], new_account_number(), 0, name="Sparekonto")
    app = as_user(user["id_token"])

    request_id = unique("req")
    resp = app.create(f"users/{user['uid']}/paymentRequests", request_id, {
        "v": 1, "fromAccount": spending, "toAccount": savings, "amount": 12_550,
        "currency": "NOK", "message": "Til sparing",
    })
    assert resp.status_code == 200, resp.text

    doc = wait_for(lambda: (d := app.get(f"users/{user['uid']}/paymentRequests/{request_id}")[1])
                   and d.get("status") in ("completed", "failed", "rejected") and d,
                   timeout=60, what="the request to complete")
    assert doc["status"] == "completed", doc
    assert app.get(f"accounts/{spending}")[1]["balance"] == 100_000 - 12_550
    assert app.get(f"accounts/{savings}")[1]["balance"] == 12_550
    audit()


def test_invalid_request_is_rejected_with_a_reason(stack, auth, as_user, ledger_admin):
    user = auth.sign_up()
    spending = ledger_admin.open_funded_account(user["uid"], new_account_number(), 5_000)
    other = auth.sign_up()
    not_mine = ledger_admin.open_funded_account(other["uid"], new_account_number(), 5_000)
    app = as_user(user["id_token"])

    request_id = unique("req")
    resp = app.create(f"users/{user['uid']}/paymentRequests", request_id, {
        "v": 1, "fromAccount": not_mine, "toAccount": spending, "amount": 100, "currency": "NOK",
    })
    assert resp.status_code == 200, resp.text
    doc = wait_for(lambda: (d := app.get(f"users/{user['uid']}/paymentRequests/{request_id}")[1])
                   and d.get("status") and d, timeout=60, what="a verdict")
    assert doc["status"] == "rejected"
    assert doc["reason"]["code"] == "not_account_owner"
