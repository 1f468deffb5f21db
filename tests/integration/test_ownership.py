"""The ownership matrix: Mallory, a signed-in approved customer with her own account and
card, tries every operation of the app's surface on Alice's objects. Every attempt is
refused the same way as for an object that does not exist, and nothing of Alice's moves."""

from __future__ import annotations

import datetime as dt

import pytest

from clientkit import push_devices
from clientkit.device import Device
from fjordbank.domain.norway import today_in_norway
from tests.support.app import Customer
from tests.support.bank import application, callables_for, refused, wait_card_active
from tests.support.clients import unique

pytestmark = pytest.mark.stack


def onboarded(auth, as_user, callables, ledger_admin, funds: int) -> dict:
    user = auth.sign_up()
    device = Device.new(user["uid"], "phone-")
    assert callables.call("sca_register_key", device.enrolment(), user["id_token"])[0] == 200
    status, body = callables.call("onboarding_submit", application(), user["id_token"])
    assert status == 200 and body["result"]["status"] == "approved", body
    account = body["result"]["accountId"]
    if funds:
        ledger_admin.run(ledger_admin.ledger.deposit(deposit_id=f"fund-{account}", account_id=account, amount=funds))
    card_id = callables.call("cards_issue", {"accountId": account}, user["id_token"])[1]["result"]["cardId"]
    app = as_user(user["id_token"])
    wait_card_active(app, card_id)
    return {"user": user, "app": app, "account": account, "card": card_id, "device": device}


@pytest.fixture(scope="module")
def world(stack, auth, as_user, ledger_admin):
    callables = callables_for(stack)
    alice = onboarded(auth, as_user, callables, ledger_admin, 50_000)
    mallory = onboarded(auth, as_user, callables, ledger_admin, 0)
    return {"alice": alice, "mallory": mallory, "callables": callables}


CALLABLE_ATTEMPTS = [
    ("accounts_rename", lambda a: {"accountId": a["account"], "name": "Mine now"}, ("NOT_FOUND", "unknown_account")),
    ("accounts_close", lambda a: {"accountId": a["account"]}, ("NOT_FOUND", "unknown_account")),
    (  # another customer's account paid out: the same answer as a missing one
        "accounts_payout",
        lambda a: {"accountId": a["account"], "toAccountId": "15030000037"},
        ("NOT_FOUND", "unknown_account"),
    ),
    ("cards_issue", lambda a: {"accountId": a["account"]}, ("NOT_FOUND", "unknown_account")),
    ("cards_freeze", lambda a: {"cardId": a["card"], "frozen": True}, ("NOT_FOUND", "unknown_card")),
    ("cards_limits", lambda a: {"cardId": a["card"], "limits": {"daily": 0}}, ("NOT_FOUND", "unknown_card")),
    ("cards_replace", lambda a: {"cardId": a["card"], "reason": "stolen"}, ("NOT_FOUND", "unknown_card")),
    (  # from another customer's account: the same answer as from a missing one
        "standing_orders_create",
        lambda a: {
            "orderId": unique("order-"),
            "fromAccount": a["account"],
            "toAccount": "15030000037",
            "amount": 1_000,
            "frequency": "monthly",
            "startDate": (today_in_norway() + dt.timedelta(days=1)).isoformat(),
        },
        ("NOT_FOUND", "unknown_account"),
    ),
    (
        "onboarding_decide",
        lambda a: {"uid": a["user"]["uid"], "decision": "reject", "reason": "x"},
        ("PERMISSION_DENIED", None),
    ),
    ("sca_revoke_key", lambda a: {"keyId": a["device"].key_id}, ("NOT_FOUND", "unknown_device_key")),
    (  # alice's device as the approver of a key of mallory's: not a device of hers
        "sca_add_device",
        lambda a: {
            **Device.new("x", "m-").enrolment(),
            "approval": {"keyId": a["device"].key_id, "signature": "A" * 88},
        },
        ("FAILED_PRECONDITION", "sca_invalid"),
    ),
    (
        "sca_reopen_enrolment",
        lambda a: {"uid": a["user"]["uid"], "reason": "it is me, honestly"},
        ("PERMISSION_DENIED", None),
    ),
]


@pytest.mark.parametrize(("name", "data", "expected"), CALLABLE_ATTEMPTS, ids=[c[0] for c in CALLABLE_ATTEMPTS])
def test_mallory_cannot_operate_on_alices_accounts_and_cards(world, name, data, expected):
    alice, mallory, callables = world["alice"], world["mallory"], world["callables"]
    result = callables.call(name, data(alice), mallory["user"]["id_token"])
    status, reason = refused(result)
    assert (status, reason if expected[1] else None) == expected
    card = alice["app"].get(f"cards/{alice['card']}")[1]
    account = alice["app"].get(f"accounts/{alice['account']}")[1]
    assert card["status"] == "active" and card["limits"]["daily"] > 0
    assert account["status"] == "open" and account["name"] == "Brukskonto" and account["balance"] == 50_000
    assert alice["app"].get(f"users/{alice['user']['uid']}/scaKeys/{alice['device'].key_id}")[0] == 200


READS = ["customers/{uid}", "accounts/{account}", "cards/{card}", "users/{uid}", "accounts/{account}/transactions/x"]


@pytest.mark.parametrize("path", READS)
def test_mallory_cannot_read_alices_documents(world, path):
    alice, mallory = world["alice"], world["mallory"]
    path = path.format(uid=alice["user"]["uid"], account=alice["account"], card=alice["card"])
    assert mallory["app"].get(path)[0] == 403


def test_mallory_cannot_pay_from_alices_account_or_write_under_her_name(world, audit):
    alice, mallory = world["alice"], world["mallory"]
    thief = Customer(mallory["user"]["uid"], mallory["user"]["id_token"], mallory["app"], [mallory["account"]])
    request_id = thief.request_payment(mallory["account"], 10_000, from_account=alice["account"])
    doc = thief.wait_final(request_id)
    assert doc["status"] == "rejected" and doc["reason"]["code"] == "unknown_account"
    body = {
        "v": 1,
        "fromAccount": alice["account"],
        "toAccount": mallory["account"],
        "amount": 10_000,
        "currency": "NOK",
    }
    resp = mallory["app"].create(f"users/{alice['user']['uid']}/paymentRequests", unique("req"), body)
    assert resp.status_code == 403
    phone = push_devices.register(mallory["app"], alice["user"]["uid"], "mallorys-phone", "mallorys-token", "android")
    assert phone.status_code == 403
    prefs = mallory["app"].create(f"users/{alice['user']['uid']}/settings", "notifications", {"payments": False})
    assert prefs.status_code == 403
    path = push_devices.settings_path(alice["user"]["uid"])
    assert mallory["app"].merge(path, {"payments": False}, ["payments"]).status_code == 403
    assert alice["app"].get(f"accounts/{alice['account']}")[1]["balance"] == 50_000
    audit()
