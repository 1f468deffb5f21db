"""Payees at other banks screened by name against the sanctions list, on the real stack:
payments through the app's surface, screening with the list it reads (the repository's
fictional sample, FJB_SANCTIONS_LIST's local default), compliance's decisions through
`bankctl payees`, the clearing file the payment goes out in, and the ledger audit.

Each test pays an account of another bank drawn for it, so a run again on the same stack
meets no alert an earlier run decided (an alert is per account and name).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

import pytest

from fjordbank.domain import payee_screening as rules
from fjordbank.domain.norway import InvalidAccountNumber, make_account_number
from fjordbank.service_layer import screening
from tests.support.app import new_customer

pytestmark = pytest.mark.stack

LISTED = "Nordkapp Phantom Trading AS"  # an enterprise on the sample list (EU.9901.08)


def other_bank_account() -> str:
    """An account at another bank (15xx) that the simulated counterparty settles."""
    rng = random.SystemRandom()
    while True:
        try:
            number = make_account_number("1503", f"{rng.randrange(10, 100)}", rng.randrange(10_000))
        except InvalidAccountNumber:
            continue
        if number not in {"15030000010", "15030000029", "15030000037"}:  # the simulator's special ones
            return number


def bankctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bankctl", *args], capture_output=True, text=True, timeout=120, check=False
    )


def payee_alert(to_account: str, name: str, status: str) -> dict:
    listed = bankctl("payees", "list", "--status", status, "--json")
    assert listed.returncode == 0, listed.stderr
    key = rules.payee_key(to_account, name)
    [found] = [a for a in json.loads(listed.stdout) if a["key"] == key]
    return found


def rejected_for(doc: dict) -> str | None:
    return (doc.get("reason") or {}).get("code") if doc["status"] == "rejected" else doc["status"]


def test_a_payee_like_a_listed_one_is_refused_until_compliance_clears_it(stack, auth, as_user, ledger_admin, audit):
    alice = new_customer(auth, as_user, ledger_admin, 100_000)
    bob = new_customer(auth, as_user, ledger_admin, 100_000)
    payee = other_bank_account()
    first = alice.wait_final(alice.request_payment(payee, 10_000, payeeName=LISTED), timeout=90)
    assert rejected_for(first) == rules.IN_REVIEW, first
    assert first["reason"]["message"] == rules.IN_REVIEW_MESSAGE
    again = bob.wait_final(bob.request_payment(payee, 5_000, payeeName="nordkapp phantom trading as"), timeout=90)
    assert rejected_for(again) == rules.IN_REVIEW, again
    renamed = alice.wait_final(alice.request_payment(payee, 10_000, payeeName="Kari Nordmann"), timeout=90)
    assert rejected_for(renamed) == rules.IN_REVIEW, renamed  # the account is checked, under any name
    assert alice.balance() == 100_000 and bob.balance() == 100_000  # nothing reserved, nothing paid
    account = alice.app.get(f"accounts/{alice.accounts[0]}")[1]
    assert account["held"] == 0

    alert = payee_alert(payee, LISTED, "open")  # one alert for the payee, whoever tried
    assert alert["toAccount"] == payee and alert["payeeName"] == LISTED
    assert alert["attempts"] == 3 and sorted(alert["payers"]) == sorted([alice.uid, bob.uid])
    assert [m["entity_id"] for m in alert["matches"]] == ["990108"]
    # the app cannot read it (firestore.rules: backend only)
    status, _body = alice.app.get(f"payeeAlerts/{alert['key']}")
    assert status == 403

    cleared = bankctl(
        "payees",
        "clear",
        alert["key"],
        "--by",
        "Compliance Kari",
        "--note",
        "a Norwegian shop, not the listed one",
        "--seen",
        alert["version"],
    )
    assert cleared.returncode == 0, cleared.stderr
    assert f"{alert['key']}: cleared (Compliance Kari)" in cleared.stdout
    twice = bankctl("payees", "confirm", alert["key"], "--by", "Compliance Kari", "--note", "changed my mind")
    assert twice.returncode != 0 and "refused" in twice.stderr  # decided once

    paid = alice.wait_final(alice.request_payment(payee, 10_000, payeeName=LISTED), timeout=90)
    assert paid["status"] == "completed", paid
    assert alice.balance() == 90_000
    sent = stack.s.state_dir / "clearing" / "sent"
    [file] = [f for f in sent.glob("*.xml") if paid["paymentId"].encode() in f.read_bytes()]
    assert f"<Nm>{LISTED}</Nm>" in file.read_text()  # out to the other bank under the name cleared
    assert payee_alert(payee, LISTED, "cleared")["attempts"] == 3  # a payment that passed adds nothing
    audit()


def test_a_payee_compliance_confirms_is_a_blocked_counterparty_under_any_name(
    stack, auth, as_user, ledger_admin, audit
):
    alice = new_customer(auth, as_user, ledger_admin, 100_000)
    payee = other_bank_account()
    name = "Borislav Drazhenko"  # a person on the sample list, known here by name only
    first = alice.wait_final(alice.request_payment(payee, 1_000, payeeName=name), timeout=90)
    assert rejected_for(first) == rules.IN_REVIEW, first
    key = payee_alert(payee, name, "open")["key"]
    confirmed = bankctl("payees", "confirm", key, "--by", "Compliance Kari", "--note", "the listed person's account")
    assert confirmed.returncode == 0, confirmed.stderr
    blocked = alice.wait_final(alice.request_payment(payee, 1_000, payeeName=name), timeout=90)
    assert rejected_for(blocked) == rules.BLOCKED, blocked
    assert payee_alert(payee, name, "confirmed")["attempts"] == 2
    # the account under a name like no listed one, or none: refused (on every screening
    # instance once it has read the alerted accounts again)
    time.sleep(screening.ACCOUNTS_SECONDS + 1)
    for other in ("Kari Nordmann", None):
        fields = {"payeeName": other} if other else {}
        refused = alice.wait_final(alice.request_payment(payee, 1_000, **fields), timeout=90)
        assert rejected_for(refused) == rules.BLOCKED, refused
    assert alice.balance() == 100_000
    assert payee_alert(payee, name, "confirmed")["attempts"] == 4
    audit()
