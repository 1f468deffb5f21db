"""Push notifications through the real emulators and the FCM-compatible sink: several
devices per user, per-kind preferences (marketing off by default), tokens FCM reports as
unregistered are deleted, a removed device gets nothing."""

from __future__ import annotations

import pytest

from fjordbank.domain.notifications import DEFAULT_PREFERENCES, MARKETING
from tests.support.bank import application, callables_for, pushes, wait_push
from tests.support.clients import unique, wait_for

pytestmark = pytest.mark.stack


def add_device(app, uid: str, token: str) -> str:
    device_id = unique("dev")
    resp = app.create(f"users/{uid}/devices", device_id, {"token": token, "platform": "ios"})
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
    for token in (phone, tablet):
        wait_push(stack, token, "Welcome to Fjordbank")
    wait_for(
        lambda: not admin_db.document(f"users/{user['uid']}/devices/{stale}").get().exists,
        timeout=30,
        what="the unregistered token to be deleted",
    )
    assert pushes(stack, removed) == []
    record = admin_db.document(f"pushes/customer:{user['uid']}:approved").get().to_dict()
    assert record["status"] == "sent" and record["sent"] == 2 and record["removedTokens"] == 1


def test_a_kind_the_customer_turned_off_is_not_pushed(stack, auth, as_user, admin_db):
    user = auth.sign_up()
    app = as_user(user["id_token"])
    token = unique("device-token-")
    add_device(app, user["uid"], token)
    resp = app.create(f"users/{user['uid']}/settings", "notifications", {"onboarding": False})
    assert resp.status_code == 200, resp.text
    status, body = callables_for(stack).call("onboarding_submit", application(), user["id_token"])
    assert status == 200 and body["result"]["status"] == "approved"
    ref = admin_db.document(f"pushes/customer:{user['uid']}:approved")
    wait_for(lambda: ref.get().exists and ref.get().get("status") == "muted", timeout=60, what="a muted push")
    assert pushes(stack, token) == []


def test_marketing_is_off_unless_chosen():
    assert DEFAULT_PREFERENCES[MARKETING] is False
    assert all(on for kind, on in DEFAULT_PREFERENCES.items() if kind != MARKETING)
