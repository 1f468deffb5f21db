"""Customers screened again against the sanctions list, on the real stack: the
rescreen-customers job through its real path (`bankctl jobs run` -> Pub/Sub ->
on_scheduled_job, with the list the functions screen onboarding with: the repository's
sample on the emulator), a frozen customer's payments, card purchases and accounts through
the app's surface, and compliance's decisions through `bankctl sanctions`.

A customer becomes "listed since they were taken on" by their application's record
(``kyc/{uid}``) taking a listed person's name and birth date, which is what a new list naming
them amounts to: the functions' list is the sample, read once per instance. The job is
scoped to the test's customers (``--customer``: the emulator only), so it neither walks nor
alerts anyone else's.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest

from fjordbank.service_layer.rescreening import alert_path
from tests.support.app import new_customer
from tests.support.bank import callables_for, make_national_id, processor, refused
from tests.support.cards import buy, new_cardholder
from tests.support.clients import wait_for

pytestmark = pytest.mark.stack

LISTED = {"name": "Sølvi Marte Ødegård", "birthDate": "1975-11-02"}  # EU.9901.02 in the sample list
LIKE_LISTED = {
    "name": "Solvi Marte Odegart",
    "birthDate": "1975-11-02",
}  # one letter off (Odegaard is the listed name: aa is å)


@pytest.fixture(scope="module")
def callables(stack):
    return callables_for(stack)


def bankctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bankctl", *args], capture_output=True, text=True, timeout=120, check=False
    )


def kyc_record(person: dict) -> dict:
    """The bank's record of an application as onboarding writes it (every field the other
    tests read: the personal-data sweep reads each record's identity number)."""
    number = make_national_id(dt.date.fromisoformat(person["birthDate"]))
    return {**person, "idKind": "fnr", "nationalId": number, "screening": [], "appliedAt": dt.datetime.now(dt.UTC)}


def listed_since(ledger_admin, uid: str, person: dict) -> None:
    """The customer as an approved application recorded them, now the list's person."""
    ledger_admin.set_document(f"customers/{uid}", {"uid": uid, "status": "approved", "name": person["name"]})
    ledger_admin.set_document(f"kyc/{uid}", {**kyc_record(person), "decision": "approved"})


def rescreen(admin_db, uid: str, status: str) -> dict:
    """Run the job for this customer as the scheduler would, and wait for its alert."""
    done = bankctl("jobs", "run", "rescreen-customers", "--customer", uid)
    assert done.returncode == 0, done.stderr

    def alerted():
        snap = admin_db.document(alert_path(uid)).get()
        return snap.exists and snap.to_dict()["status"] == status and snap.to_dict()

    return wait_for(alerted, timeout=90, interval=0.5, what=f"the rescreen's {status} alert on {uid}")


def reason(customer, request_id) -> str | None:
    doc = customer.wait_final(request_id)
    return (doc.get("reason") or {}).get("code") if doc["status"] == "rejected" else doc["status"]


def test_a_customer_the_list_names_is_frozen_takes_money_in_and_is_cleared_by_compliance(
    stack, auth, as_user, ledger_admin, admin_db, callables, audit
):
    alice = new_customer(auth, as_user, ledger_admin, 500_000, 0)
    bob = new_customer(auth, as_user, ledger_admin, 100_000)
    assert reason(alice, alice.request_payment(bob.accounts[0], 1_000)) == "completed"
    listed_since(ledger_admin, alice.uid, LISTED)
    alert = rescreen(admin_db, alice.uid, "frozen")
    assert sorted(alert["frozenAccounts"]) == sorted(alice.accounts)
    assert [m["entity_id"] for m in alert["matches"]] == ["990102"]
    # as the app sees it: every account frozen, nothing paid out of them
    assert [alice.app.get(f"accounts/{a}")[1]["status"] for a in alice.accounts] == ["frozen", "frozen"]
    assert reason(alice, alice.request_payment(bob.accounts[0], 1_000)) == "account_frozen"
    assert reason(alice, alice.request_payment(alice.accounts[1], 1_000)) == "account_frozen"  # nor moved
    assert refused(callables.call("accounts_close", {"accountId": alice.accounts[1]}, alice.id_token)) == (
        "FAILED_PRECONDITION",
        "account_frozen",
    )
    assert refused(callables.call("accounts_open", {"kind": "savings"}, alice.id_token)) == (
        "FAILED_PRECONDITION",
        "customer_frozen",
    )
    # money may still come in, frozen with the rest
    assert reason(bob, bob.request_payment(alice.accounts[0], 2_500)) == "completed"
    assert alice.app.get(f"accounts/{alice.accounts[0]}")[1]["balance"] == 500_000 - 1_000 + 2_500

    shown = bankctl("sanctions", "list", "--status", "frozen", "--json")
    assert shown.returncode == 0, shown.stderr
    [seen] = [row["version"] for row in json.loads(shown.stdout) if row["uid"] == alice.uid]
    assert (
        bankctl("sanctions", "clear", alice.uid, "--by", "Kari Compliance", "--note", "another person").returncode == 2
    )
    assert (
        bankctl("sanctions", "clear", alice.uid, "--by", "K", "--note", "n", "--seen", seen).returncode == 1
    )  # too short
    cleared = bankctl(
        "sanctions",
        "clear",
        alice.uid,
        "--by",
        "Kari Compliance",
        "--note",
        "passport: another person",
        "--seen",
        seen,
        "--json",
    )
    assert cleared.returncode == 0, cleared.stderr
    assert json.loads(cleared.stdout)["status"] == "cleared"
    assert [alice.app.get(f"accounts/{a}")[1]["status"] for a in alice.accounts] == ["open", "open"]
    assert reason(alice, alice.request_payment(bob.accounts[0], 1_000)) == "completed"
    again = bankctl("sanctions", "clear", alice.uid, "--by", "Kari Compliance", "--note", "once more", "--seen", seen)
    assert again.returncode == 1 and "refused" in again.stderr  # decided once
    audit()


def test_a_name_like_a_listed_one_waits_for_compliance_who_freezes_the_card_too(
    stack, auth, as_user, ledger_admin, admin_db, callables, audit
):
    holder = new_cardholder(stack, auth, as_user, callables, ledger_admin)
    proc = processor(stack)
    listed_since(ledger_admin, holder.uid, LIKE_LISTED)
    alert = rescreen(admin_db, holder.uid, "open")
    assert alert.get("frozenAccounts") is None
    assert buy(proc, holder, 1_000)["approved"] is True  # nothing frozen until compliance decides
    frozen = bankctl(
        "sanctions", "freeze", holder.uid, "--by", "Kari Compliance", "--note", "the listed person: ID checked"
    )
    assert frozen.returncode == 0, frozen.stderr
    assert holder.account_doc()["status"] == "frozen"
    declined = buy(proc, holder, 1_000)
    assert (declined["approved"], declined["reason"]) == (False, "account_frozen")
    audit()


def test_an_applicant_frozen_in_review_is_approved_with_a_frozen_account_that_a_clear_opens(
    stack, auth, admin_db, callables, audit
):
    """The list names an applicant while they wait in review: frozen before they have an
    account, the account their approval opens is frozen from the start; compliance clears
    them (another person) and it opens."""
    uid = auth.sign_up()["uid"]
    # an application in review (as onboarding leaves one) that the list now names
    admin_db.document(f"customers/{uid}").set({"uid": uid, "status": "review", "name": LISTED["name"]})
    admin_db.document(f"kyc/{uid}").set({**kyc_record(LISTED), "decision": "review"})
    assert rescreen(admin_db, uid, "frozen")["frozenAccounts"] == []
    operator = auth.make_operator()
    decide = {"uid": uid, "decision": "approve", "reason": "another person"}
    status, body = callables.call("onboarding_decide", decide, operator["id_token"])
    assert status == 200, body
    account = body["result"]["accountId"]
    assert admin_db.document(f"accounts/{account}").get().to_dict()["status"] == "frozen"
    assert admin_db.document(alert_path(uid)).get().to_dict()["frozenAccounts"] == [account]
    shown = json.loads(bankctl("sanctions", "list", "--status", "frozen", "--json").stdout)
    [seen] = [row["version"] for row in shown if row["uid"] == uid]
    cleared = bankctl(
        "sanctions", "clear", uid, "--by", "Kari Compliance", "--note", "another person: passport", "--seen", seen
    )
    assert cleared.returncode == 0, cleared.stderr
    assert admin_db.document(f"accounts/{account}").get().to_dict()["status"] == "open"
    audit()
