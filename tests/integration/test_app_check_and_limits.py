"""App Check on every callable (the emulator's debug path) and per-user rate limits on
onboarding and payments."""

from __future__ import annotations

import time

import pytest

from fjordbank.adapters.app_check import mint_debug_token
from fjordbank.domain.ratelimit import LIMITS, window
from fjordbank.service_layer import ratelimits
from tests.support.app import new_customer
from tests.support.bank import app_check_token, application, callables_for, refused

pytestmark = pytest.mark.stack
CALLABLES = [
    "onboarding_submit",
    "onboarding_decide",
    "accounts_open",
    "accounts_rename",
    "accounts_close",
    "accounts_payout",
    "cards_issue",
    "cards_freeze",
    "cards_limits",
    "cards_replace",
    "sca_register_key",
    "sca_add_device",
    "sca_revoke_key",
    "sca_reopen_enrolment",
    "invoices_scan",
]


@pytest.fixture(scope="module")
def callables(stack):
    return callables_for(stack)


@pytest.mark.parametrize("name", CALLABLES)
def test_every_callable_refuses_calls_without_a_valid_app_check_token(stack, auth, callables, name):
    user = auth.sign_up()
    expired = app_check_token(stack, ttl=-60)
    forged = mint_debug_token("not-the-stack-secret-but-32-bytes-long", stack.s.project_id)
    other_project = mint_debug_token(stack.app_check_debug_secret(), "someone-elses-project")
    for token in (None, "", "garbage", expired, forged, other_project):
        status, body = callables.call(name, {}, user["id_token"], app_check=token)
        assert status == 401 and body["error"]["status"] == "UNAUTHENTICATED", (name, token, body)
        assert body["error"]["details"]["reason"] == "app_check"


def exhaust(db, uid: str, action: str) -> None:
    """Fill ``action``'s counts for this window and the next two, as after a burst: the
    limit then refuses for at least one more whole period whatever the trigger's clock
    says when it runs (no race with the time the request takes to arrive)."""
    limit = LIMITS[action]
    now = window(limit, time.time()).index
    counts = {ratelimits.window_key(i): limit.capacity for i in range(now, now + 3)}
    db.document(f"{ratelimits.RATE_LIMITS}/{ratelimits.document_id(uid, action)}").set({"w": counts}, merge=True)


def test_onboarding_is_rate_limited_per_user(auth, callables, admin_db):
    user = auth.sign_up()
    bad = application(phone="12")  # refused each time, and each attempt counts
    limit = LIMITS["onboarding"].capacity
    results = [callables.call("onboarding_submit", bad, user["id_token"]) for _ in range(limit + 1)]
    assert all(refused(r) == ("INVALID_ARGUMENT", "invalid_phone") for r in results[:limit])
    status, body = results[limit]
    assert (status, body["error"]["status"], body["error"]["details"]["reason"]) == (
        429,
        "RESOURCE_EXHAUSTED",
        "rate_limited",
    )
    assert body["error"]["details"]["retryAfter"] > 0
    # another user is not affected
    other = auth.sign_up()
    assert callables.call("onboarding_submit", application(), other["id_token"])[1]["result"]["status"] == "approved"
    assert not admin_db.document(f"customers/{user['uid']}").get().exists


def test_payments_are_rate_limited_per_user_and_publish_nothing(auth, as_user, ledger_admin, admin_db, audit):
    alice = new_customer(auth, as_user, ledger_admin, 10_000, 0)
    exhaust(admin_db, alice.uid, "payments")  # as after a burst of payments
    request_id = alice.request_payment(alice.accounts[1], 1_000)
    doc = alice.wait_final(request_id)
    assert doc["status"] == "rejected" and doc["reason"]["code"] == "rate_limited"
    assert "paymentId" not in doc or not admin_db.document(f"ledgerPayments/{doc.get('paymentId')}").get().exists
    assert alice.balance() == 10_000
    audit()


def test_a_redelivered_trigger_is_not_checked_again(auth, as_user, ledger_admin, admin_db, audit):
    """Firestore triggers may fire twice: the second delivery of a handled request neither
    counts against the rate limit nor can it reject the request in flight."""
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.service_layer import edge

    alice = new_customer(auth, as_user, ledger_admin, 10_000, 0)
    request_id = alice.request_payment(alice.accounts[1], 1_000)
    assert alice.wait_final(request_id)["status"] == "completed"
    exhaust(admin_db, alice.uid, "payments")

    class NoPublish:
        def publish_json(self, *_a, **_k):
            raise AssertionError("a handled request is not published again")

    body = {
        "v": 1,
        "fromAccount": alice.accounts[0],
        "toAccount": alice.accounts[1],
        "amount": 1_000,
        "currency": "NOK",
    }
    status = edge.handle_payment_request(
        FirestoreDocuments(admin_db), NoPublish(), uid=alice.uid, request_id=request_id, body=body, bank_regs=("9710",)
    )
    assert status == "completed" and alice.request(request_id)["status"] == "completed"
    audit()


def test_invoice_scanning_is_rate_limited_per_user(auth, callables):
    user = auth.sign_up()
    limit = LIMITS["invoices"].capacity
    results = [callables.call("invoices_scan", {"ocrLine": "not a giro"}, user["id_token"]) for _ in range(limit + 1)]
    assert all(refused(r) == ("INVALID_ARGUMENT", "invalid_ocr_line") for r in results[:limit])
    assert refused(results[limit]) == ("RESOURCE_EXHAUSTED", "rate_limited")
