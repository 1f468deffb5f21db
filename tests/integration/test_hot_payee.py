"""A hot payee (a merchant every customer pays at once) under load, with two ledgers.

An internal payment's credit is posted in the payee's partition (fjordbank/domain/
payment_ledger.py): the payers' partitions only debit their payers, and the merchant's
credits all go through its own partition's group commit. So no two ledger workers ever write
the merchant's account, and not one ledger transaction is retried for contention (before
the credit moved to the payee's partition, this load made the two ledgers abort each other's
commits: "Failed to commit transaction in 5 attempts").
"""

from __future__ import annotations

import concurrent.futures
import re

import pytest
import requests

from tests.support.app import new_customer
from tests.support.clients import wait_for

pytestmark = pytest.mark.stack

PAYERS = 16
EACH = 4  # payments per payer, all to the merchant
AMOUNT = 1_250
WATCHED = (("ledger", "ledger_post_batch"), ("insights", "insights_apply"))  # (service, transaction)
ATTEMPTS = re.compile(
    r"^fjb_firestore_transaction_attempts_total"
    r'\{operation="(?P<op>[^"]+)",result="(?P<result>[^"]+)"\} (?P<n>[0-9.e+]+)$',
    re.M,
)


def contention(stack, service: str, operation: str) -> dict[str, int]:
    """Transaction attempts retried or aborted, per instance of ``service``."""
    out = {}
    for instance, port in stack.s.service_ports.items():
        if instance != service and not instance.startswith(f"{service}-"):
            continue
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except requests.RequestException:
            continue  # an instance the stack does not run (K=1)
        out[instance] = sum(
            int(float(m["n"]))
            for m in ATTEMPTS.finditer(text)
            if m["op"] == operation and m["result"] in ("retried", "aborted")
        )
    return out


def test_a_merchant_paid_by_many_at_once_is_credited_once_each_with_no_contended_commit(
    stack, auth, as_user, ledger_admin, admin_db, audit
):
    merchant = new_customer(auth, as_user, ledger_admin, 0)
    payers = [new_customer(auth, as_user, ledger_admin, EACH * AMOUNT) for _ in range(PAYERS)]
    before = {
        s: contention(stack, s, op) for s, op in (("ledger", "ledger_post_batch"), ("insights", "insights_apply"))
    }
    assert before["ledger"], "no ledger instance answered"

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        sent = list(
            pool.map(
                lambda n: (payers[n % PAYERS], payers[n % PAYERS].request_payment(merchant.accounts[0], AMOUNT)),
                range(PAYERS * EACH),
            )
        )
    docs = [payer.wait_final(request_id, timeout=120) for payer, request_id in sent]

    assert [d["status"] for d in docs] == ["completed"] * len(sent), [d.get("reason") for d in docs]
    assert merchant.balance() == PAYERS * EACH * AMOUNT
    assert all(payer.balance() == 0 for payer in payers)
    feed = admin_db.collection(f"accounts/{merchant.accounts[0]}/transactions")
    entries = wait_for(
        lambda: (n := sum(1 for _ in feed.stream())) >= PAYERS * EACH and n,
        timeout=60,
        what="the merchant's feed entries",
    )
    assert entries == PAYERS * EACH  # one entry per payment (keyed by it), none missing
    assert {e.id for e in feed.stream()} == {d["paymentId"] for d in docs}
    after = {s: contention(stack, s, op) for s, op in WATCHED}
    assert after == before, "a ledger or insights transaction was retried for contention"
    audit()
