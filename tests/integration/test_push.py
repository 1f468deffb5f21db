"""Push notifications through the real emulators and the FCM-compatible sink: several
devices per user, each push under its collapse id (a push sent again shows once), per-kind
preferences (marketing off by default), tokens FCM reports as unregistered are deleted, a
removed device gets nothing."""

from __future__ import annotations

import time

import pytest

from fjordbank.domain.notifications import DEFAULT_PREFERENCES, MARKETING
from fjordbank.service_layer.push import collapse_id
from tests.support.bank import application, callables_for, pushes, wait_push
from tests.support.clients import unique, wait_for

pytestmark = pytest.mark.stack


def add_device(app, uid: str, token: str) -> str:
    device_id = unique("dev")
    resp = app.create(f"users/{uid}/devices", device_id, {"token": token, "platform": "ios", "uid": uid})
    assert resp.status_code == 200, resp.text
    return device_id


def test_every_device_gets_the_push_and_an_unregistered_token_is_deleted(stack, auth, as_user, admin_db):
    user = auth.sign_up()
    app = as_user(user["id_token"])
    phone, tablet = unique("phone-token-"), unique("tablet-token-")
    add_device(app, user["uid"], phone)
    add_device(app, user["uid"], tablet)
    stale = add_device(app, user["uid"], unique("unregistered-old-phone-"))  # the sink answers UNREGISTERED
    removed = unique("removed-token-")
    removed_id = add_device(app, user["uid"], removed)
    assert app.delete(f"users/{user['uid']}/devices/{removed_id}").status_code == 200  # the app signs out there

    status, body = callables_for(stack).call("onboarding_submit", application(), user["id_token"])
    assert status == 200 and body["result"]["status"] == "approved"
    welcome = [wait_push(stack, token, "Welcome to Fjordbank") for token in (phone, tablet)]
    tag = collapse_id(f"customer:{user['uid']}:approved")
    assert all(m["android"]["notification"]["tag"] == tag for m in welcome)
    assert all(m["apns"]["headers"]["apns-collapse-id"] == tag for m in welcome)
    wait_for(
        lambda: not admin_db.document(f"users/{user['uid']}/devices/{stale}").get().exists,
        timeout=30,
        what="the unregistered token to be deleted",
    )
    assert pushes(stack, removed) == []
    assert not admin_db.collection("pushes").limit(1).get()  # nothing is written per push


def test_a_kind_the_customer_turned_off_is_not_pushed(stack, auth, as_user):
    """Two customers onboarded together, one of them with onboarding pushes turned off: once
    the other's push has come, and a while after, the muted one has had none."""
    muted, other = auth.sign_up(), auth.sign_up()
    tokens = {}
    for user in (muted, other):
        tokens[user["uid"]] = unique("device-token-")
        add_device(as_user(user["id_token"]), user["uid"], tokens[user["uid"]])
    resp = as_user(muted["id_token"]).create(f"users/{muted['uid']}/settings", "notifications", {"onboarding": False})
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
