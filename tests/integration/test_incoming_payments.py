"""Payments from other banks on the real stack: the clearing house's pacs.008 dropped into the
clearing channel (as the simulated other banks deliver it, simulators/counterparty/send.py),
read by the clearing service, credited by the ledger (K=2 in the tests), shown by the notifier
and booked by insights; a credit that cannot be applied sent back in a pacs.004, which the
simulated other banks take. After each scenario the ledger's invariants hold (the audit).

The promises: a salary from another bank is on the payee's balance, in the payee's feed with
the payer's name and in "my economy" as income; the same credit delivered twice is credited
once; a credit to a closed account or to no account here moves no money and goes back once,
with the reason the paying bank reads; a payer whose name is like a listed one is held
until a compliance officer releases or freezes the credit."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import sys

import pytest

from fjordbank.domain import pacs
from fjordbank.domain.ledger import suspense_account
from fjordbank.service_layer.incoming import return_name
from simulators.counterparty import send
from tests.support.app import new_customer
from tests.support.clients import new_account_number, wait_for

pytestmark = pytest.mark.stack
SALARY = 4_250_000  # 42 500,00 kr


def deliver(stack, *credits: send.Credit) -> pacs.IncomingBatch:
    batch = send.batch_of(list(credits), now=dt.datetime.now(dt.UTC))
    send.deliver(stack.s.clearing_dir, batch)
    return batch


def record(admin_db, payment_id: str) -> dict:
    snap = admin_db.document(f"ledgerPayments/{payment_id}").get()
    return snap.to_dict() or {} if snap.exists else {}


def paid_on(admin_db, payment_id: str) -> str:
    """The day the payment is booked (its due date: the day it arrived, in Norway)."""
    return wait_for(lambda: record(admin_db, payment_id).get("dueDate"), timeout=30, what="the ledger's record")


def test_a_salary_from_another_bank_is_credited_once_shown_with_its_payer_and_booked_as_income(
    stack, auth, as_user, ledger_admin, admin_db, audit
):
    kari = new_customer(auth, as_user, ledger_admin, 0)
    account = kari.accounts[0]
    salary = send.Credit(account, SALARY, payer_name="Fjordkraft Bygg AS", message="Lønn desember")
    first = deliver(stack, salary, send.Credit(account, 1_500))
    [paid, small] = first.transfers
    # the clearing house delivers the salary again in a later file: one payment, credited once
    again = dataclasses.replace(salary, transaction_id=paid.transaction_id)  # the same credit, in another file
    deliver(stack, again)
    wait_for(lambda: kari.balance() == SALARY + 1_500, timeout=30, what="the credits on the balance")
    entry = wait_for(
        lambda: kari.app.get(f"accounts/{account}/transactions/{paid.payment_id}")[1],
        timeout=30,
        what="the feed entry",
    )
    assert (entry["direction"], entry["amount"], entry["status"]) == ("in", SALARY, "posted")
    assert (entry["counterpartyName"], entry["message"], entry["category"]) == (
        "Fjordkraft Bygg AS",
        "Lønn desember",
        "income",
    )
    month = paid_on(admin_db, paid.payment_id)[:7]
    wait_for(
        lambda: (kari.app.get(f"users/{kari.uid}/economy/{month}")[1] or {}).get("income") == SALARY + 1_500,
        timeout=30,
        what="the month's income",
    )
    assert record(admin_db, paid.payment_id)["status"] == "completed"
    assert record(admin_db, small.payment_id)["status"] == "completed"
    assert kari.balance() == SALARY + 1_500  # the second delivery changed nothing
    audit()


def test_a_credit_to_a_closed_account_or_to_no_account_here_is_sent_back_once_and_moves_nothing(
    stack, auth, as_user, ledger_admin, admin_db, audit
):
    ola = new_customer(auth, as_user, ledger_admin, 0, 0)
    closed, nowhere = ola.accounts[1], new_account_number()
    admin_db.document(f"accounts/{closed}").update({"status": "closed"})  # as accounts_close leaves it
    batch = deliver(stack, send.Credit(closed, 20_000), send.Credit(nowhere, 30_000))
    [to_closed, to_nowhere] = batch.transfers
    channel = stack.s.clearing_dir
    taken = {t.payment_id: channel / "sent" / return_name(t.payment_id) for t in batch.transfers}
    wait_for(lambda: all(p.exists() for p in taken.values()), timeout=30, what="both returns taken by the other bank")
    reasons = {
        r.original_transaction_id: r.reason_code
        for path in taken.values()
        for r in pacs.parse_pacs004(path.read_bytes()).returns
    }
    assert reasons == {to_closed.transaction_id: "AC04", to_nowhere.transaction_id: "AC01"}
    for t in batch.transfers:  # each return recorded, then marked delivered
        wait_for(
            lambda t=t: (
                (admin_db.document(f"clearingReturns/{t.payment_id}").get().to_dict() or {}).get("status")
                == "delivered"
            ),
            timeout=30,
            what="the return marked delivered",
        )
    assert record(admin_db, to_closed.payment_id)["status"] == "unapplied"
    assert record(admin_db, to_nowhere.payment_id) == {}  # never reached the ledger
    assert ola.balance(closed) == 0
    deliver(stack, send.Credit(closed, 20_000, transaction_id=to_closed.transaction_id))  # delivered again
    wait_for(lambda: not list((channel / "incoming").glob("*.xml")), timeout=30, what="the file read")
    assert sorted(p.name for p in (channel / "sent").glob(f"RET-{to_closed.payment_id}*")) == [
        return_name(to_closed.payment_id)
    ]
    audit()


def test_bankctl_receive_credits_an_account_and_says_so(stack, auth, as_user, ledger_admin, audit):
    nora = new_customer(auth, as_user, ledger_admin, 0)
    done = subprocess.run(
        [sys.executable, "-m", "bankctl", "receive", nora.accounts[0], "1250,50", "--json", "--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["status"], result["amount"]) == ("credited", 125_050)
    assert nora.balance() == 125_050
    audit()


def bankctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bankctl", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_a_payer_like_a_listed_one_is_held_until_compliance_releases_or_freezes_it(
    stack, auth, as_user, ledger_admin, admin_db, audit
):
    """The sample list's enterprise pays twice and a clear payer once: the clear credit is
    credited, the two held (no money for the payee, no feed entry, nothing sent back; on the
    books in the payee's partition's suspense shard); released, one is credited out of
    suspense as it would have been; frozen, the other stays with the bank, in suspense. Each
    decided once."""
    siri = new_customer(auth, as_user, ledger_admin, 0)
    account = siri.accounts[0]
    listed = "NORDKAPP PHANTOM TRADING AS"
    batch = deliver(
        stack,
        send.Credit(account, 70_000, payer_name=listed),
        send.Credit(account, 1_000, payer_name="Fjordkraft Bygg AS"),
        send.Credit(account, 90_000, payer_name="Nordkapp Phantom Trading"),
    )
    [released, clear, frozen] = batch.transfers

    def held_status(pid: str) -> str | None:
        return (admin_db.document(f"clearingReturns/{pid}").get().to_dict() or {}).get("status")

    for t in (released, frozen):
        wait_for(lambda t=t: held_status(t.payment_id) == "held", timeout=30, what="the credit held")
    wait_for(lambda: siri.balance() == 1_000, timeout=30, what="the clear credit")
    shown = bankctl("held", "list", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = {r["paymentId"]: r for r in json.loads(shown.stdout)}
    assert {released.payment_id, frozen.payment_id} <= set(rows)
    assert rows[released.payment_id]["toAccount"] == account and rows[released.payment_id]["amount"] == 70_000
    assert [m["entityId"] for m in rows[released.payment_id]["matches"]] == ["990108"]
    assert siri.app.get(f"accounts/{account}/transactions/{released.payment_id}")[1] is None  # the payee is not told
    for t in (released, frozen):  # on the books: settlement -> suspense, nothing else
        booked = wait_for(lambda t=t: record(admin_db, t.payment_id).get("status") == "held", timeout=30, what="booked")
        assert booked and set(record(admin_db, t.payment_id)["postings"]) == {"suspense"}
    suspense = suspense_account(account)
    in_suspense = _balance(admin_db, suspense)
    assert in_suspense >= 70_000 + 90_000
    assert not list((stack.s.clearing_dir / "outbox").glob(f"RET-{released.payment_id}*"))  # nor went back

    out = bankctl(
        "held", "release", released.payment_id, "--by", "Kari Compliance", "--note", "not the listed company", "--json"
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "credited"
    assert siri.balance() == 71_000
    entry = wait_for(
        lambda: siri.app.get(f"accounts/{account}/transactions/{released.payment_id}")[1],
        timeout=30,
        what="the feed entry",
    )
    assert (entry["amount"], entry["counterpartyName"]) == (70_000, listed)

    frozen_out = bankctl("held", "freeze", frozen.payment_id, "--by", "Kari Compliance", "--note", "the listed company")
    assert frozen_out.returncode == 0, frozen_out.stderr
    again = bankctl("held", "release", frozen.payment_id, "--by", "Ola", "--note", "changed my mind")
    assert again.returncode == 1 and "decided already: frozen" in again.stderr
    assert held_status(frozen.payment_id) == "frozen" and held_status(released.payment_id) == "released"
    assert siri.balance() == 71_000 and record(admin_db, frozen.payment_id)["status"] == "held"
    assert set(record(admin_db, released.payment_id)["postings"]) == {"suspense", "credit"}
    assert _balance(admin_db, suspense) == in_suspense - 70_000  # the frozen one stays on the books
    assert record(admin_db, clear.payment_id)["status"] == "completed"
    audit()


def _balance(admin_db, account_id: str) -> int:
    return (admin_db.document(f"accounts/{account_id}").get().to_dict() or {})["balance"]
