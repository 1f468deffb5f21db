"""A new customer's first day, through the app's surface only (Auth, Firestore under the
rules, callables) and the card network's simulator."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from clientkit import push_devices
from clientkit.device import Device
from tests.support.app import Customer, new_customer
from tests.support.bank import (
    application,
    callables_for,
    card_details,
    processor,
    pushes,
    register_device,
    wait_card_active,
    wait_push,
)

pytestmark = pytest.mark.stack


def test_sign_up_to_an_approved_customer_with_an_account_a_card_and_pushes(stack, auth, as_user, ledger_admin, audit):
    callables = callables_for(stack)
    # 1. sign up (Auth) and register this phone for pushes; keep marketing off
    user = auth.sign_up()
    app = as_user(user["id_token"])
    token = register_device(app, user["uid"])
    # beside the phone in the same document: a merge of the preferences, as the app writes them
    chosen = {"marketing": False, "card": True}
    prefs = app.merge(push_devices.settings_path(user["uid"]), chosen, list(chosen))
    assert prefs.status_code == 200, prefs.text
    # the phone enrols its key for strong customer authentication before applying
    phone = Device(user["uid"], "phone-ingrid-1", ec.generate_private_key(ec.SECP256R1()))
    assert callables.call("sca_register_key", phone.enrolment(), user["id_token"])[0] == 200

    # 2. onboarding: approved, first account opened, welcome push
    status, body = callables.call("onboarding_submit", application(name="Ingrid Alvhild Fjeldstad"), user["id_token"])
    assert status == 200 and body["result"]["status"] == "approved", body
    account = body["result"]["accountId"]
    wait_push(stack, token, "Welcome to Fjordbank")
    assert app.get(f"customers/{user['uid']}")[1]["status"] == "approved"

    # 3. a second account for savings, renamed
    status, body = callables.call("accounts_open", {"kind": "savings"}, user["id_token"])
    assert status == 200, body
    savings = body["result"]["accountId"]
    assert callables.call("accounts_rename", {"accountId": savings, "name": "Ferie"}, user["id_token"])[0] == 200

    # 4. a friend sends money: the new customer is told
    friend = new_customer(auth, as_user, ledger_admin, 50_000)
    request_id = friend.request_payment(account, 30_000, message="Velkommen!")
    assert friend.wait_final(request_id)["status"] == "completed"
    wait_push(stack, token, "Money received")
    assert app.get(f"accounts/{account}")[1]["balance"] == 30_000

    # 5. a virtual card, used in a shop; the purchase holds, the capture posts
    status, body = callables.call("cards_issue", {"accountId": account}, user["id_token"])
    assert status == 200, body
    card_id = body["result"]["cardId"]
    card = wait_card_active(app, card_id)
    details = card_details(stack, card_id)
    assert card["last4"] == details["pan"][-4:]
    answer = processor(stack).authorize(
        pan=details["pan"],
        exp_month=details["exp_month"],
        exp_year=details["exp_year"],
        cvv=details["cvv"],
        amount=12_900,
        merchant_name="Narvesen Oslo S",
        mcc="5994",
    )
    assert answer["approved"] is True
    assert wait_push(stack, token, "Card purchase")["data"]["cardId"] == card_id
    assert processor(stack).capture(answer["reference"])[0] == 200
    acct = app.get(f"accounts/{account}")[1]
    assert (acct["balance"], acct["held"], acct["available"]) == (17_100, 0, 17_100)
    feed = app.get(f"accounts/{account}/transactions/{answer['authorizationId']}")[1]
    assert feed["status"] == "posted" and feed["merchantName"] == "Narvesen Oslo S"
    assert feed["category"] == "shopping"  # MCC 5994, news dealers

    # paying a new payee (the friend) needs the phone's confirmation
    unconfirmed = Customer(user["uid"], user["id_token"], app, [account])
    first = unconfirmed.request_payment(friend.accounts[0], 2_000)
    assert unconfirmed.wait_final(first)["reason"]["code"] == "sca_required"
    confirmed = Customer(user["uid"], user["id_token"], app, [account], phone)
    assert confirmed.wait_final(confirmed.request_payment(friend.accounts[0], 2_000))["status"] == "completed"

    # every push was delivered once (the last one is on its way through Pub/Sub and on_push)
    wait_push(stack, token, "Payment completed")
    titles = [m["message"]["notification"]["title"] for m in pushes(stack, token)]
    # (a request refused at the door is shown on its document while the app is open: no push)
    expected = ["Welcome to Fjordbank", "Money received", "Card purchase", "Payment completed"]
    assert sorted(titles) == sorted(expected), titles
    audit()
