"""Push notifications through the real emulators and the FCM-compatible sink: several
devices per user, each push under its collapse id (a push sent again shows once), per-kind
preferences (marketing off by default), tokens FCM reports as unregistered are deleted, a
removed device gets nothing, the rules keep the devices document to one well-formed
device per write, and a change to the devices that confirm payments is told whatever the
settings say."""

from __future__ import annotations

import time

import pytest

from clientkit import push_devices
from clientkit.device import Device
from fjordbank.domain.notifications import DEFAULT_PREFERENCES, DEVICE_TEXTS, MARKETING
from fjordbank.service_layer.push import collapse_id
from tests.support.app import new_customer
from tests.support.bank import application, callables_for, pushes, wait_push
from tests.support.clients import unique, wait_for

pytestmark = pytest.mark.stack


def add_device(app, uid: str, token: str) -> str:
    device_id = unique("dev")
    resp = push_devices.register(app, uid, device_id, token, "ios")
    assert resp.status_code == 200, resp.text
    return device_id


def devices_of(admin_db, uid: str) -> dict:
    snap = admin_db.document(push_devices.settings_path(uid)).get()
    return (snap.to_dict() or {}).get("devices", {}) if snap.exists else {}


def test_every_device_gets_the_push_and_an_unregistered_token_is_deleted(stack, auth, as_user, admin_db):
    user = auth.sign_up()
    app = as_user(user["id_token"])
    phone, tablet = unique("phone-token-"), unique("tablet-token-")
    add_device(app, user["uid"], phone)
    add_device(app, user["uid"], tablet)
    stale_token = unique("unregistered-old-phone-")  # the sink answers UNREGISTERED
    stale = add_device(app, user["uid"], stale_token)
    removed = unique("removed-token-")
    removed_id = add_device(app, user["uid"], removed)
    assert push_devices.remove(app, user["uid"], removed_id).status_code == 200  # the app signs out there
    assert sorted(t["token"] for t in devices_of(admin_db, user["uid"]).values()) == sorted(
        [phone, tablet, stale_token]
    )

    status, body = callables_for(stack).call("onboarding_submit", application(), user["id_token"])
    assert status == 200 and body["result"]["status"] == "approved"
    welcome = [wait_push(stack, token, "Welcome to Fjordbank") for token in (phone, tablet)]
    tag = collapse_id(f"customer:{user['uid']}:approved")
    assert all(m["android"]["notification"]["tag"] == tag for m in welcome)
    assert all(m["apns"]["headers"]["apns-collapse-id"] == tag for m in welcome)
    wait_for(
        lambda: stale not in devices_of(admin_db, user["uid"]),
        timeout=30,
        what="the unregistered token to be deleted",
    )
    assert pushes(stack, removed) == []
    assert sorted(t["token"] for t in devices_of(admin_db, user["uid"]).values()) == sorted([phone, tablet])
    assert not admin_db.collection("pushes").limit(1).get()  # nothing is written per push


def test_a_kind_the_customer_turned_off_is_not_pushed(stack, auth, as_user):
    """Two customers onboarded together, one of them with onboarding pushes turned off: once
    the other's push has come, and a while after, the muted one has had none."""
    muted, other = auth.sign_up(), auth.sign_up()
    tokens = {}
    for user in (muted, other):
        tokens[user["uid"]] = unique("device-token-")
        add_device(as_user(user["id_token"]), user["uid"], tokens[user["uid"]])
    # the preference beside the device in the same document, as the app writes it (a merge)
    resp = as_user(muted["id_token"]).merge(
        push_devices.settings_path(muted["uid"]), {"onboarding": False}, ["onboarding"]
    )
    assert resp.status_code == 200, resp.text
    for user in (muted, other):
        status, body = callables_for(stack).call("onboarding_submit", application(), user["id_token"])
        assert status == 200 and body["result"]["status"] == "approved"
    wait_push(stack, tokens[other["uid"]], "Welcome to Fjordbank")
    time.sleep(3)  # the muted one's push went through the same consumer and function before or beside it
    assert pushes(stack, tokens[muted["uid"]]) == []


def test_marketing_is_off_unless_chosen():
    assert DEFAULT_PREFERENCES[MARKETING] is False
    assert all(on for kind, on in DEFAULT_PREFERENCES.items() if kind != MARKETING)


def test_the_settings_document_takes_one_well_formed_device_per_write(stack, auth, as_user):
    user, other = auth.sign_up(), auth.sign_up()
    app, uid = as_user(user["id_token"]), user["uid"]
    path = push_devices.settings_path(uid)

    def write(fields: dict, *device_ids: str) -> int:
        mask = [f"devices.`{d}`" for d in device_ids] + ["changed"]
        return app.merge(path, fields, mask).status_code

    assert write({"devices": {"phone": {"token": "t1", "platform": "ios"}}, "changed": "phone"}, "phone") == 200
    two = {"a": {"token": "t2", "platform": "ios"}, "b": {"token": "t3", "platform": "ios"}}
    assert write({"devices": two, "changed": "a"}, "a", "b") == 403  # two devices at once
    assert write({"devices": {"c": {"token": "t", "platform": "ios"}}, "changed": "d"}, "c") == 403  # not named
    assert write({"devices": {"c": {"token": "", "platform": "ios"}}, "changed": "c"}, "c") == 403  # no token
    assert write({"devices": {"c": {"token": "t", "platform": "symbian"}}, "changed": "c"}, "c") == 403
    bad = {"token": "t", "platform": "ios", "admin": True}
    assert write({"devices": {"c": bad}, "changed": "c"}, "c") == 403
    assert write({"devices": {"c/d": {"token": "t", "platform": "ios"}}, "changed": "c/d"}, "c/d") == 403
    for n in range(9):  # ten devices in all, then no more
        assert push_devices.register(app, uid, f"dev{n}", f"tok{n}", "android").status_code == 200
    assert push_devices.register(app, uid, "dev10", "tok10", "android").status_code == 403
    assert push_devices.remove(app, uid, "dev0").status_code == 200
    assert push_devices.register(as_user(other["id_token"]), uid, "x", "t", "ios").status_code == 403  # not theirs
    assert app.delete(path).status_code == 403  # devices leave one by one


def test_every_change_to_the_devices_that_confirm_payments_is_told_on_every_device(stack, auth, as_user, ledger_admin):
    """A security notice, with every push kind the app can switch off switched off: the
    phone approves a tablet (both the phone and the tablet's own push token hear of it),
    then the tablet is removed."""
    alice = new_customer(auth, as_user, ledger_admin, 0)
    phone_token, tablet_token = unique("phone-token-"), unique("tablet-token-")
    add_device(alice.app, alice.uid, phone_token)
    add_device(alice.app, alice.uid, tablet_token)
    off = dict.fromkeys(DEFAULT_PREFERENCES, False)
    assert alice.app.merge(push_devices.settings_path(alice.uid), off, sorted(off)).status_code == 200
    refused = alice.app.merge(push_devices.settings_path(alice.uid), {"security": False}, ["security"])
    assert refused.status_code == 403  # no setting for the security notices
    tablet = Device.new(alice.uid, "tablet-")
    callables = callables_for(stack)
    status, body = callables.call("sca_add_device", alice.device.approve(tablet), alice.id_token)
    assert status == 200, body
    for token in (phone_token, tablet_token):
        told = wait_push(stack, token, DEVICE_TEXTS["added"][0])
        assert told["data"] == {"change": "added", "keyId": tablet.key_id}
    status, body = callables.call("sca_revoke_key", {"keyId": tablet.key_id}, alice.id_token)
    assert status == 200, body
    wait_push(stack, phone_token, DEVICE_TEXTS["revoked"][0])


def test_a_token_registered_by_another_customer_no_longer_gets_the_first_one_s_pushes(stack, auth, as_user, admin_db):
    """One app install, one token, whoever is signed in on it: Alice's entry, left behind by
    a sign-out whose removal did not get through, is taken out when Bob registers the token
    (the settings trigger, fjordbank.service_layer.push_tokens), and her pushes no longer
    reach his lock screen."""
    alice, bob = auth.sign_up(), auth.sign_up()
    shared, hers = unique("shared-phone-token-"), unique("alices-tablet-token-")
    add_device(as_user(alice["id_token"]), alice["uid"], shared)
    add_device(as_user(alice["id_token"]), alice["uid"], hers)
    add_device(as_user(bob["id_token"]), bob["uid"], shared)
    wait_for(
        lambda: sorted(t["token"] for t in devices_of(admin_db, alice["uid"]).values()) == [hers],
        timeout=30,
        what="the shared token to be taken from Alice's devices",
    )
    assert [t["token"] for t in devices_of(admin_db, bob["uid"]).values()] == [shared]
    status, body = callables_for(stack).call("onboarding_submit", application(), alice["id_token"])
    assert status == 200 and body["result"]["status"] == "approved"
    wait_push(stack, hers, "Welcome to Fjordbank")
    assert [m for m in pushes(stack, shared) if m["message"]["notification"]["title"] == "Welcome to Fjordbank"] == []
