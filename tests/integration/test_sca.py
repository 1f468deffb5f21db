"""Strong customer authentication (PSD2 RTS dynamic linking) through the app's surface:
the device registers a P-256 key once; a payment to a new payee or above the threshold
must carry the device's signature over its request id, amount, currency and payee."""

from __future__ import annotations

import base64
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from clientkit.device import Device
from fjordbank.domain import sca
from fjordbank.domain.sca import DEFAULT_THRESHOLD
from tests.support.app import new_customer
from tests.support.bank import application, callables_for, refused
from tests.support.clients import unique

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def callables(stack):
    return callables_for(stack)


@pytest.fixture
def alice(auth, as_user, ledger_admin):
    return new_customer(auth, as_user, ledger_admin, 2_000_000, 0)


@pytest.fixture
def bob(auth, as_user, ledger_admin):
    return new_customer(auth, as_user, ledger_admin, 0)


def reason(customer, request_id) -> str | None:
    doc = customer.wait_final(request_id)
    return (doc.get("reason") or {}).get("code") if doc["status"] == "rejected" else doc["status"]


def test_a_device_registers_one_key_through_the_callable(auth, callables, as_user):
    user = auth.sign_up()
    key = ec.generate_private_key(ec.SECP256R1())
    data = {"keyId": unique("phone-"), "publicKey": sca.public_key_b64(key)}
    status, body = callables.call("sca_register_key", data, user["id_token"])
    assert status == 200 and body["result"]["keyId"] == data["keyId"], body
    assert as_user(user["id_token"]).get(f"users/{user['uid']}/scaKeys/{data['keyId']}")[1]["publicKey"]
    other = {"keyId": unique("phone-"), "publicKey": sca.public_key_b64(ec.generate_private_key(ec.SECP256R1()))}
    assert refused(callables.call("sca_register_key", other, user["id_token"])) == ("ALREADY_EXISTS", "sca_key_exists")
    rsa_like = base64.b64encode(b"\x30\x03\x02\x01\x01").decode()
    for bad in (rsa_like, "not base64!", "A" * 300, 42):
        fresh = auth.sign_up()
        result = callables.call("sca_register_key", {"keyId": unique("phone-"), "publicKey": bad}, fresh["id_token"])
        assert refused(result) == ("INVALID_ARGUMENT", "invalid_key"), bad
    # enrolment is part of onboarding: an onboarded customer's session cannot add a key
    onboarded = auth.sign_up()
    assert callables.call("onboarding_submit", application(), onboarded["id_token"])[0] == 200
    late = {"keyId": unique("phone-"), "publicKey": sca.public_key_b64(ec.generate_private_key(ec.SECP256R1()))}
    assert refused(callables.call("sca_register_key", late, onboarded["id_token"])) == (
        "FAILED_PRECONDITION",
        "enrolment_closed",
    )
    p384 = sca.public_key_b64(ec.generate_private_key(ec.SECP384R1()))
    fresh = auth.sign_up()
    result = callables.call("sca_register_key", {"keyId": unique("phone-"), "publicKey": p384}, fresh["id_token"])
    assert refused(result) == ("INVALID_ARGUMENT", "invalid_key")


def test_many_users_enrol_their_devices_at_the_same_time(auth, callables):
    from concurrent.futures import ThreadPoolExecutor

    users = [auth.sign_up() for _ in range(8)]

    def enrol(user: dict) -> int:
        key = {"keyId": unique("phone-"), "publicKey": sca.public_key_b64(ec.generate_private_key(ec.SECP256R1()))}
        return callables.call("sca_register_key", key, user["id_token"])[0]

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(enrol, users)) == [200] * 8


def test_a_new_payee_needs_the_devices_signature(alice, bob, audit):
    unconfirmed = alice.request_payment(bob.accounts[0], 10_000, confirm=False)
    assert reason(alice, unconfirmed) == "sca_required"
    confirmed = alice.request_payment(bob.accounts[0], 10_000)
    assert reason(alice, confirmed) == "completed"
    # now a known payee: small payments need no confirmation, large ones still do
    assert reason(alice, alice.request_payment(bob.accounts[0], 5_000, confirm=False)) == "completed"
    large = alice.request_payment(bob.accounts[0], DEFAULT_THRESHOLD + 1, confirm=False)
    assert reason(alice, large) == "sca_required"
    assert reason(alice, alice.request_payment(bob.accounts[0], DEFAULT_THRESHOLD + 1)) == "completed"
    # the customer's own accounts are never new payees
    assert reason(alice, alice.request_payment(alice.accounts[1], 1_000, confirm=False)) == "completed"
    audit()


def test_signatures_over_other_values_by_another_key_or_reused_are_refused(alice, bob, audit):
    def refused_with(sca_field, amount=10_000, to=None, request_id=None):
        rid = request_id or unique("req")
        made = alice.request_payment(to or bob.accounts[0], amount, request_id=rid, sca=sca_field)
        return reason(alice, made)

    rid = unique("req")
    over_other_amount = alice.confirm(rid, 99_999, bob.accounts[0])
    assert refused_with(over_other_amount, request_id=rid) == "sca_invalid"
    rid = unique("req")
    over_other_payee = alice.confirm(rid, 10_000, alice.accounts[1])
    assert refused_with(over_other_payee, request_id=rid) == "sca_invalid"
    rid = unique("req")
    mallory_key = ec.generate_private_key(ec.SECP256R1())
    by_other_key = {
        "keyId": alice.key_id,
        "signature": sca.sign(mallory_key, sca.challenge(rid, 10_000, "NOK", bob.accounts[0])),
    }
    assert refused_with(by_other_key, request_id=rid) == "sca_invalid"
    assert refused_with({"keyId": "unknown-key-1", "signature": "AAAA"}) == "sca_invalid"
    assert refused_with({"keyId": alice.key_id, "signature": "not base64"}) == "sca_invalid"

    first = unique("req")
    good = alice.confirm(first, 10_000, bob.accounts[0])
    assert refused_with(good, request_id=first) == "completed"
    assert refused_with(good) == "sca_reused"  # the same confirmation on another request
    assert bob.balance() == 10_000
    audit()


def test_a_customers_devices_after_onboarding(auth, callables, alice, bob, ledger_admin, audit, as_user):
    """Through the callables: the phone approves a tablet, which then confirms payments; the
    tablet revoked signs nothing and its approval cannot bring it back; another customer
    cannot revoke a key of alice's; with every device lost, an operator reopens the
    enrolment for the new phone it was shown (its key id and fingerprint): that phone
    enrols with the session alone, the stolen password's own key cannot."""
    phone, token = alice.device, alice.id_token
    tablet = Device.new(alice.uid, "tablet-")
    status, body = callables.call("sca_add_device", phone.approve(tablet), token)
    assert status == 200 and body["result"] == {"keyId": tablet.key_id}, body
    alice.device = tablet
    assert reason(alice, alice.request_payment(bob.accounts[0], 10_000)) == "completed"  # a new payee

    mallory = auth.sign_up()
    assert refused(callables.call("sca_revoke_key", {"keyId": tablet.key_id}, mallory["id_token"])) == (
        "NOT_FOUND",
        "unknown_device_key",
    )
    status, body = callables.call("sca_revoke_key", {"keyId": tablet.key_id}, token)
    assert status == 200 and body["result"] == {
        "keyId": tablet.key_id,
        "revoked": True,
        "devicesLeft": 1,
        "signedOut": False,
    }, body
    assert reason(alice, alice.request_payment(bob.accounts[0], DEFAULT_THRESHOLD + 1)) == "sca_invalid"
    assert refused(callables.call("sca_add_device", phone.approve(tablet), token)) == (
        "FAILED_PRECONDITION",
        "device_key_revoked",
    )

    # every device lost: a session alone enrols nothing until the bank reopens
    ledger_admin.set_document(f"customers/{alice.uid}", {"status": "approved"})
    new_phone = Device.new(alice.uid, "phone-")
    callables.call("sca_revoke_key", {"keyId": phone.key_id}, token)
    assert refused(callables.call("sca_register_key", new_phone.enrolment(), token)) == (
        "FAILED_PRECONDITION",
        "enrolment_closed",
    )
    shown = sca.fingerprint(base64.b64decode(new_phone.public_key))  # what the new phone shows the operator
    reopen = {"uid": alice.uid, "reason": "BankID at the branch", "keyId": new_phone.key_id, "fingerprint": shown}
    assert refused(callables.call("sca_reopen_enrolment", reopen, token))[0] == "PERMISSION_DENIED"
    operator = auth.make_operator()
    time.sleep(1.1)  # Auth counts in whole seconds: a token of the reset's second stays good
    status, body = callables.call("sca_reopen_enrolment", reopen, operator["id_token"])
    assert status == 200 and body["result"]["revoked"] == [], body  # both were revoked already
    # the reset ended every session: the lost phone's token is refused at once, and the new
    # phone signs in again (the thief with the password can too: the window is the key's)
    assert refused(callables.call("sca_register_key", new_phone.enrolment(), token)) == (
        "UNAUTHENTICATED",
        "session_ended",
    )
    token = auth.sign_in(auth.kit.email_for_uid(alice.uid))["id_token"]
    alice.id_token, alice.app = token, as_user(token)
    thief = Device.new(alice.uid, "thief-")  # the stolen password's own key, in the window
    assert refused(callables.call("sca_register_key", thief.enrolment(), token)) == (
        "FAILED_PRECONDITION",
        "unexpected_device_key",
    )
    assert callables.call("sca_register_key", new_phone.enrolment(), token)[0] == 200
    assert refused(callables.call("sca_register_key", thief.enrolment(), token)) == (
        "ALREADY_EXISTS",
        "sca_key_exists",
    )
    alice.device = new_phone
    assert reason(alice, alice.request_payment(bob.accounts[0], DEFAULT_THRESHOLD + 1)) == "completed"
    assert bob.balance() == 10_000 + DEFAULT_THRESHOLD + 1
    audit()


def test_a_lost_phone_removed_with_sign_out_and_the_banks_reset_end_every_session(
    auth, callables, alice, ledger_admin, as_user, admin_db
):
    """The tablet approved by the phone is lost: removed with signOutEverywhere, Auth no
    longer takes the ID tokens issued before, and neither do the callables nor the rules,
    at once (the customer signs in again); the bank's reset ends every session the same way."""
    tablet = Device.new(alice.uid, "tablet-")
    assert callables.call("sca_add_device", alice.device.approve(tablet), alice.id_token)[0] == 200
    time.sleep(1.1)  # Auth counts in whole seconds: a token of the revocation's second stays good
    assert auth.kit.takes(alice.id_token)
    refused_ = refused(
        callables.call("sca_revoke_key", {"keyId": tablet.key_id, "signOutEverywhere": "yes"}, alice.id_token)
    )
    assert refused_ == ("INVALID_ARGUMENT", "invalid_request")
    settings = admin_db.document(f"users/{alice.uid}/settings/notifications")
    settings.set(
        {"marketing": True, "devices": {"tablet": {"token": "tok-lost", "platform": "web"}}, "changed": "tablet"}
    )
    status, body = callables.call("sca_revoke_key", {"keyId": tablet.key_id, "signOutEverywhere": True}, alice.id_token)
    assert status == 200 and body["result"]["signedOut"] is True, body
    assert not auth.kit.takes(alice.id_token)
    # no device of an ended session gets a push, but the security notices
    after = settings.get().to_dict()
    assert set(after) == {"marketing", "signedOutDevices"} and set(after["signedOutDevices"]) == {"tablet"}
    assert after["signedOutDevices"]["tablet"]["token"] == "tok-lost"
    # the lost phone's token has not expired, and is refused at once all the same: by a
    # callable and by the Firestore rules (its sign-in is before the bank ended the sessions)
    lost = alice.id_token
    answer = callables.call("accounts_rename", {"accountId": alice.accounts[0], "name": "x"}, lost)
    assert refused(answer) == ("UNAUTHENTICATED", "session_ended")
    assert isinstance(answer[1]["error"]["details"]["validAfter"], int)  # from when a sign-in is taken
    assert as_user(lost).get(f"users/{alice.uid}/settings/notifications")[0] == 403
    assert as_user(lost).get(f"accounts/{alice.accounts[0]}")[0] == 403
    again = auth.sign_in(auth.kit.email_for_uid(alice.uid))
    assert auth.kit.takes(again["id_token"])
    assert as_user(again["id_token"]).get(f"accounts/{alice.accounts[0]}")[0] == 200
    renamed = callables.call(
        "accounts_rename", {"accountId": alice.accounts[0], "name": "Brukskonto"}, again["id_token"]
    )
    assert renamed[0] == 200, renamed

    ledger_admin.set_document(f"customers/{alice.uid}", {"status": "approved"})
    new_phone = Device.new(alice.uid, "phone-")
    shown = sca.fingerprint(base64.b64decode(new_phone.public_key))
    reopen = {"uid": alice.uid, "reason": "BankID at the branch", "keyId": new_phone.key_id, "fingerprint": shown}
    time.sleep(1.1)
    status, body = callables.call("sca_reopen_enrolment", reopen, auth.make_operator()["id_token"])
    assert status == 200 and body["result"]["signedOut"] is True, body
    assert not auth.kit.takes(again["id_token"])
    assert as_user(again["id_token"]).get(f"accounts/{alice.accounts[0]}")[0] == 403
