"""The payment pipeline end to end through the app's surface, with the ledger audit after
every scenario: concurrency, external payments through clearing, screening, idempotency,
pushes."""

from __future__ import annotations

import concurrent.futures

import pytest
import requests

from tests.support.app import new_customer
from tests.support.bank import register_device
from tests.support.clients import unique, wait_for
from tests.support.schemas import assert_valid_pain001

pytestmark = pytest.mark.stack

EXTERNAL_OK = "15030000002"  # another bank (15xx); settles
EXTERNAL_CLOSED = "15030000010"  # the simulated counterparty answers AC04 (closed)
EXTERNAL_MOD10_KID = "15030000037"  # the payee requires a MOD10 KID
BLOCKED = "12345678903"  # on the screening policy's blocked list


def test_fifty_concurrent_payments_from_an_account_funded_for_ten(stack, auth, as_user, ledger_admin, audit):
    alice = new_customer(auth, as_user, ledger_admin, 10 * 1_000, 0)
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(lambda _: alice.request_payment(alice.accounts[1], 1_000), range(50)))
    docs = [alice.wait_final(i, timeout=120) for i in ids]
    statuses = [d["status"] for d in docs]
    assert statuses.count("completed") == 10, statuses
    assert statuses.count("failed") == 40
    assert {d["reason"]["code"] for d in docs if d["status"] == "failed"} == {"insufficient_funds"}
    assert alice.balance(alice.accounts[0]) == 0
    assert alice.balance(alice.accounts[1]) == 10_000
    audit()


def test_external_payment_is_cleared_in_a_schema_valid_pain001_and_settles(stack, auth, as_user, ledger_admin, audit):
    alice = new_customer(auth, as_user, ledger_admin, 50_000)
    request_id = alice.request_payment(EXTERNAL_OK, 12_345, message="Faktura 1001", payeeName="Bergen Rør AS")
    doc = alice.wait_final(request_id, timeout=90)
    assert doc["status"] == "completed", doc
    assert doc["timeline"].keys() >= {"requested", "approved", "reserved", "submitted", "settled", "completed"}
    assert alice.balance() == 50_000 - 12_345
    account = alice.app.get(f"accounts/{alice.accounts[0]}")[1]
    assert account["held"] == 0 and account["available"] == 50_000 - 12_345

    payment_id = doc["paymentId"]
    sent = stack.s.state_dir / "clearing" / "sent"
    files = [f for f in sent.glob("*.xml") if payment_id.encode() in f.read_bytes()]
    assert len(files) == 1, "the payment went out in exactly one file"
    assert_valid_pain001(files[0].read_bytes())
    assert "<Nm>Bergen Rør AS</Nm>" in files[0].read_text()  # the creditor, as the customer named it
    entry = alice.app.get(f"accounts/{alice.accounts[0]}/transactions/{payment_id}")[1]
    assert entry["counterpartyName"] == "Bergen Rør AS" and entry["counterpartyAccount"] == EXTERNAL_OK
    audit()


def test_an_answer_to_a_file_the_bank_has_no_record_of_is_moved_aside(stack, auth, as_user, ledger_admin, audit):
    """(The emulators lost their data, or another environment's answer arrived.) It must
    not block the answers behind it."""
    alice = new_customer(auth, as_user, ledger_admin, 50_000)
    first = alice.wait_final(alice.request_payment(EXTERNAL_OK, 1_000), timeout=90)
    assert first["status"] == "completed", first
    clearing = stack.s.state_dir / "clearing"
    answer = next(
        f for f in (clearing / "processed").glob("*-status.xml") if first["paymentId"].encode() in f.read_bytes()
    )
    original = answer.name.removesuffix("-status.xml")
    stray = unique("FJBSTRAY")[:30]
    (clearing / "inbox" / f"{stray}-status.xml").write_bytes(
        answer.read_bytes().replace(original.encode(), stray.encode())
    )
    wait_for(lambda: (clearing / "processed" / f"{stray}-status.xml.unknown").exists(), timeout=30, what="moved aside")
    later = alice.wait_final(alice.request_payment(EXTERNAL_OK, 2_000), timeout=90)
    assert later["status"] == "completed", later
    assert alice.balance() == 50_000 - 3_000
    audit()


def test_returned_external_payment_releases_the_hold_and_says_why(stack, auth, as_user, ledger_admin, audit):
    alice = new_customer(auth, as_user, ledger_admin, 20_000)
    request_id = alice.request_payment(EXTERNAL_CLOSED, 5_000)
    doc = alice.wait_final(request_id, timeout=90)
    assert doc["status"] == "failed"
    assert doc["reason"]["code"] == "AC04"
    assert "closed" in doc["reason"]["message"]
    account = alice.app.get(f"accounts/{alice.accounts[0]}")[1]
    assert account["balance"] == 20_000 and account["held"] == 0 and account["available"] == 20_000
    entry = alice.app.get(f"accounts/{alice.accounts[0]}/transactions/{doc['paymentId']}")[1]
    assert entry["status"] == "cancelled" and entry["reason"] == "AC04"
    audit()


def test_wrong_kid_for_the_payee_is_returned_with_the_kid_reason(stack, auth, as_user, ledger_admin, audit):
    alice = new_customer(auth, as_user, ledger_admin, 20_000)
    # valid MOD11 KID ("1234567890-" style needs MOD11) that the payee's MOD10 agreement refuses
    from fjordbank.domain.norway import kid_mod10_check, kid_mod11_check

    body = "123456789"
    mod11 = body + kid_mod11_check(body)
    assert mod11 != body + kid_mod10_check(body)
    request_id = alice.request_payment(EXTERNAL_MOD10_KID, 3_000, kid=mod11)
    doc = alice.wait_final(request_id, timeout=90)
    assert doc["status"] == "failed" and doc["reason"]["code"] == "invalid_kid"
    assert alice.balance() == 20_000
    audit()


@pytest.mark.parametrize(
    ("to_account", "amount", "reason"),
    [
        (BLOCKED, 1_000, "blocked_counterparty"),
        (EXTERNAL_OK, 5_000_001, "new_payee_limit"),
        (EXTERNAL_OK, 50_000_001, "over_payment_limit"),
    ],
)
def test_screening_rejects_with_a_precise_reason(stack, auth, as_user, ledger_admin, audit, to_account, amount, reason):
    alice = new_customer(auth, as_user, ledger_admin, 60_000_000)
    doc = alice.wait_final(alice.request_payment(to_account, amount), timeout=60)
    assert doc["status"] == "rejected"
    assert doc["reason"]["code"] == reason
    assert alice.balance() == 60_000_000
    audit()


def test_a_retry_with_the_same_key_and_body_is_a_no_op_and_a_different_body_is_refused(
    stack, auth, as_user, ledger_admin, audit
):
    alice = new_customer(auth, as_user, ledger_admin, 10_000, 0)
    body = {
        "v": 1,
        "fromAccount": alice.accounts[0],
        "toAccount": alice.accounts[1],
        "amount": 2_500,
        "currency": "NOK",
    }
    request_id = alice.request_payment(alice.accounts[1], 2_500)
    first = alice.wait_final(request_id)
    assert first["status"] == "completed"

    path = f"users/{alice.uid}/paymentRequests/{request_id}"
    same = alice.app.patch(path, body)  # the app's retry: a merge write of the same body
    assert same.status_code == 200, same.text
    changed = alice.app.patch(path, {**body, "amount": 9_999})
    assert changed.status_code == 403
    recreate = alice.app.create(f"users/{alice.uid}/paymentRequests", request_id, body)
    assert recreate.status_code in (403, 409)

    again = alice.request(request_id)
    assert again["status"] == "completed" and again["amount"] == 2_500
    assert alice.balance(alice.accounts[0]) == 7_500
    audit()


def test_completed_and_failed_payments_push_to_the_customers_devices(stack, auth, as_user, ledger_admin, audit):
    alice = new_customer(auth, as_user, ledger_admin, 1_000, 0)
    token = register_device(alice.app, alice.uid)

    ok = alice.request_payment(alice.accounts[1], 600)
    too_much = alice.request_payment(alice.accounts[1], 600)
    assert alice.wait_final(ok)["status"] == "completed"
    assert alice.wait_final(too_much)["status"] == "failed"

    sink = stack.fcm_sink_url

    def pushes():
        return requests.get(f"{sink}/sink/messages", params={"token": token}, timeout=5).json()

    got = wait_for(lambda: len(pushes()) >= 2 and pushes(), timeout=60, what="two pushes")
    by_status = {m["message"]["data"]["status"]: m["message"] for m in got}
    assert by_status.keys() == {"completed", "failed"}
    assert by_status["failed"]["notification"]["title"] == "Payment not completed"
    assert len(got) == 2, "each push is delivered once"
    audit()
