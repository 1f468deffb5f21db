"""Push notifications through the real emulators and the FCM-compatible sink: several
devices per user, each push under its collapse id (a push sent again shows once), per-kind
preferences (marketing off by default), tokens FCM reports as unregistered are deleted, a
removed device gets nothing, and the rules keep the devices document to one well-formed
device per write."""

from __future__ import annotations

import time

import pytest

from clientkit import push_devices
from fjordbank.domain.notifications import DEFAULT_PREFERENCES, MARKETING
from fjordbank.service_layer.push import collapse_id
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
