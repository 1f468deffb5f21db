"""What hangs off an account goes with it when it closes (found by review, 2026-12-04):
its cards are blocked and the customer's standing orders from or to it cancelled in the
close's own unit of work; another customer's order paying into it ends at its next due
date, told once; a card cannot be replaced onto it, and a card ordered as it closed is
never issued."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from fjordbank import topology
from fjordbank.domain import cards as card_rules
from fjordbank.domain.events import IssueCard
from fjordbank.runtime.consumer import Ack
from fjordbank.service_layer import accounts, cards, standing_orders
from tests.support.memory import MemoryDocuments
from tests.support.use_cases import RecordingPublisher, account_numbers, customer_account, data, fixed_clock, seed
from tests.unit.test_card_ledger_use_case import ACCOUNT, make_bank

UID = "alice"
SPENDING, SAVINGS, RENT, OTHER = itertools.islice(account_numbers(), 4)
BANK_REGS = (SPENDING[:4],)


def bank_with_orders() -> tuple[MemoryDocuments, RecordingPublisher]:
    docs, pub = MemoryDocuments(fixed_clock()), RecordingPublisher()
    seed(
        docs,
        {
            f"customers/{UID}": {"status": "approved"},
            f"accounts/{SPENDING}": customer_account(UID, SPENDING),  # emptied: to be closed
            f"accounts/{SAVINGS}": customer_account(UID, SAVINGS, balance=10_000_000),
            f"accounts/{OTHER}": customer_account(UID, OTHER, balance=10_000_000),
            f"accounts/{RENT}": customer_account("landlord", RENT, balance=10_000_000),
        },
    )
    for order_id, source, target in (
        ("rent-order", SPENDING, RENT),  # from the account
        ("save-order", SAVINGS, SPENDING),  # to it
        ("keep-order", SAVINGS, OTHER),  # neither
    ):
        order = {
            "orderId": order_id,
            "fromAccount": source,
            "toAccount": target,
            "amount": 100_000,
            "frequency": "monthly",
            "startDate": "2027-04-12",
        }
        standing_orders.create(
            docs, UID, order, bank_regs=BANK_REGS, check_sca=lambda *a, **k: None, clock=fixed_clock()
        )
    return docs, pub


def run_month(docs: MemoryDocuments, pub: RecordingPublisher, month: int) -> None:
    now = dt.datetime(2027, month, 12, 9, 0, tzinfo=dt.UTC)
    while not standing_orders.is_banking_day(now.date()):
        now += dt.timedelta(days=1)
    standing_orders.run_due(docs, pub, bank_regs=BANK_REGS, clock=fixed_clock(now))


def test_closing_cancels_the_customers_standing_orders_from_or_to_the_account_and_no_other() -> None:
    docs, pub = bank_with_orders()
    accounts.close_account(docs, pub, UID, account_id=SPENDING, clock=fixed_clock())
    orders = {
        o: data(docs, f"users/{UID}/standingOrders/{o}") or {} for o in ("rent-order", "save-order", "keep-order")
    }
    assert {o: d["status"] for o, d in orders.items()} == {
        "rent-order": "cancelled",
        "save-order": "cancelled",
        "keep-order": "active",
    }
    assert orders["rent-order"]["cancelledReason"] == "account_closed" and orders["rent-order"]["nextDue"] is None
    run_month(docs, pub, 4)
    failed = [p for p in pub.stored if p.subject.startswith(topology.SUBJECT_PAYMENT_FAILED)]
    assert failed == []  # before, each due date failed and was told, month after month
    assert (data(docs, f"users/{UID}/standingOrders/keep-order") or {})["lastRun"]["status"] == "submitted"


def test_closing_cancels_the_customers_scheduled_payments_from_or_to_the_account_and_no_other() -> None:
    """Before, they stayed scheduled: one into the account was paid on its due date (debited,
    refused by the closed account, paid back) and one from it failed then (found in review,
    2026-12-06)."""
    docs, pub = bank_with_orders()
    for request_id, source, target in (("from-it-0001", SPENDING, RENT), ("into-it-0001", SAVINGS, SPENDING)):
        payment = {"uid": UID, "request_id": request_id, "from_account": source, "to_account": target}
        seed(docs, {f"users/{UID}/paymentRequests/{request_id}": {"status": "scheduled", "payment": payment}})
    other = {"uid": UID, "request_id": "neither-0001", "from_account": SAVINGS, "to_account": OTHER}
    seed(docs, {f"users/{UID}/paymentRequests/neither-0001": {"status": "scheduled", "payment": other}})
    accounts.close_account(docs, pub, UID, account_id=SPENDING, clock=fixed_clock())
    shown = {
        r: data(docs, f"users/{UID}/paymentRequests/{r}") for r in ("from-it-0001", "into-it-0001", "neither-0001")
    }
    assert {r: d["status"] for r, d in shown.items()} == {
        "from-it-0001": "cancelled",
        "into-it-0001": "cancelled",
        "neither-0001": "scheduled",
    }
    assert shown["into-it-0001"]["reason"]["code"] == "account_closed"


def test_an_order_into_an_account_its_owner_closed_ends_at_its_next_due_date_told_once() -> None:
    """The landlord closes the account the customer's rent goes to: the customer's order
    cannot be paid on any later date either, so it ends instead of failing every month."""
    docs, pub = bank_with_orders()
    batch = docs.batch()
    batch.update(f"accounts/{RENT}", {"status": "closed"})
    batch.commit()
    seed(docs, {f"accounts/{SPENDING}": customer_account(UID, SPENDING, balance=10_000_000)})
    for month in (4, 5, 6):
        run_month(docs, pub, month)
    order = data(docs, f"users/{UID}/standingOrders/rent-order") or {}
    assert (order["status"], order["endedReason"], order["nextDue"]) == ("ended", "to_account_closed", None)
    assert [(r["status"], r["reason"]) for r in order["runs"]] == [("failed", "to_account_closed")]
    failed = [p for p in pub.stored if p.subject.startswith(topology.SUBJECT_PAYMENT_FAILED)]
    assert len(failed) == 1 and failed[0].body["message"] == "the standing order has ended"


def closer(bank):
    docs = MemoryDocuments(store=bank.docs.store)
    pub = RecordingPublisher()

    def close() -> None:
        accounts.close_account(docs, pub, UID, account_id=ACCOUNT, clock=lambda: bank.clock.now)

    return docs, pub, close


async def test_closing_blocks_the_accounts_cards_and_announces_it() -> None:
    bank = make_bank(balance=0)
    bank.docs.put(f"customers/{UID}", {"status": "approved"})
    active, frozen, ordered, lost = ("card_" + c * 20 for c in "abcd")
    bank.add_card(active)
    bank.add_card(frozen, status=card_rules.FROZEN)
    bank.docs.put(f"cards/{ordered}", {"cardId": ordered, "status": "issuing", "ownerUid": UID, "accountId": ACCOUNT})
    bank.add_card(lost, status=card_rules.BLOCKED, blockedReason="lost")
    docs, pub, close = closer(bank)
    close()
    got = {c: bank.docs.data(f"cards/{c}") or {} for c in (active, frozen, ordered, lost)}
    assert {c: (d["status"], d["blockedReason"]) for c, d in got.items()} == {
        active: ("blocked", "account_closed"),
        frozen: ("blocked", "account_closed"),
        ordered: ("blocked", "account_closed"),
        lost: ("blocked", "lost"),
    }
    updated = sorted(p.body["card_id"] for p in pub.stored if p.subject == topology.SUBJECT_CARD_UPDATED)
    assert updated == sorted([active, frozen, ordered])
    # the card ordered as it closed is never issued: no number for a dead account
    assert isinstance(await bank.cards.issue(IssueCard(uid=UID, card_id=ordered, account_id=ACCOUNT)), Ack)
    assert bank.vault.reveal(ordered) is None
    # nor can a card be changed or replaced onto it
    with pytest.raises(card_rules.CardRefused) as frozen_again:
        cards.set_frozen(docs, pub, UID, card_id=active, frozen=True)
    assert frozen_again.value.code == "card_not_active"


async def test_a_card_cannot_be_replaced_onto_a_closed_account_and_one_ordered_as_it_closed_is_not_issued() -> None:
    bank = make_bank(balance=0)
    bank.docs.put(f"customers/{UID}", {"status": "approved"})
    old = "card_" + "e" * 20
    bank.add_card(old)
    docs = MemoryDocuments(store=bank.docs.store)
    pub = RecordingPublisher()
    # closed by a path that did not block its cards (an account closed before 2026-12-04)
    bank.docs.put(f"accounts/{ACCOUNT}", {**bank.account(), "status": "closed"})
    with pytest.raises(card_rules.CardRefused) as replaced:
        cards.replace_card(docs, pub, UID, card_id=old, reason="lost")
    assert replaced.value.code == "account_closed"
    assert (bank.docs.data(f"cards/{old}") or {})["status"] == "active"  # nothing written
    ordered = "card_" + "f" * 20
    bank.docs.put(f"cards/{ordered}", {"cardId": ordered, "status": "issuing", "ownerUid": UID, "accountId": ACCOUNT})
    assert isinstance(await bank.cards.issue(IssueCard(uid=UID, card_id=ordered, account_id=ACCOUNT)), Ack)
    card = bank.docs.data(f"cards/{ordered}") or {}
    assert (card["status"], card["blockedReason"]) == ("blocked", "account_closed")
    assert bank.vault.reveal(ordered) is None


# ---- a closed account's money paid out ----------------------------------------------------------
def test_the_audit_knows_payouts_by_the_accounts_services_step() -> None:
    from fjordbank.domain import audit

    assert audit.PAYOUT == accounts.PAYOUT_STEP


async def test_a_refund_to_a_closed_account_is_paid_out_to_an_open_one_once_and_the_audit_holds() -> None:
    """A merchant's refund lands on an account closed since the purchase: the money was
    the customer's, with no way out (no payment from a closed account, no reopening)."""
    from fjordbank.domain import audit
    from fjordbank.domain.accounts import AccountRefused

    bank = make_bank(balance=25_000)
    bank.docs.put(f"customers/{UID}", {"status": "approved"})
    savings, other = "12345678911", "12345678929"
    for number, balance in ((savings, 1_000), (other, 0)):
        bank.docs.put(
            f"accounts/{number}", {**bank.account(), "accountId": number, "balance": balance, "available": balance}
        )
    pan = bank.add_card()
    await bank.buy(pan, amount=25_000)
    await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=None)
    docs, _pub, close = closer(bank)
    close()
    assert (await bank.ledger.refund("ref-1", refund_ref="rfd-1", amount=25_000)).status == "refunded"
    assert (bank.account()["status"], bank.account()["balance"]) == ("closed", 25_000)
    with pytest.raises(AccountRefused) as same:
        accounts.pay_out(docs, UID, account_id=ACCOUNT, to_account_id=ACCOUNT)
    assert same.value.code == "same_account"
    with pytest.raises(AccountRefused) as open_one:
        accounts.pay_out(docs, UID, account_id=savings, to_account_id=ACCOUNT)
    assert open_one.value.code == "account_not_closed"
    with pytest.raises(AccountRefused) as others:
        accounts.pay_out(docs, "mallory", account_id=ACCOUNT, to_account_id=savings)
    assert others.value.code == "unknown_account"

    paid = accounts.pay_out(docs, UID, account_id=ACCOUNT, to_account_id=savings)
    assert (paid["amount"], paid["toAccountId"]) == (25_000, savings)
    closed, target = bank.account(), bank.docs.data(f"accounts/{savings}") or {}
    assert (closed["status"], closed["balance"], closed["available"]) == ("closed", 0, 0)
    assert (target["balance"], target["available"]) == (26_000, 26_000)
    entries = [bank.docs.data(f"accounts/{a}/transactions/{paid['payoutId']}") or {} for a in (ACCOUNT, savings)]
    assert [(e["kind"], e["direction"], e["amount"], e["counterpartyAccount"]) for e in entries] == [
        ("payout", "out", -25_000, savings),
        ("payout", "in", 25_000, ACCOUNT),
    ]
    posting = bank.docs.data(f"postings/{paid['payoutId']}:payout") or {}
    assert posting["entries"] == [{"account": ACCOUNT, "amount": -25_000}, {"account": savings, "amount": 25_000}]
    # a retry after a lost answer: answered with the payout made, nothing moved again
    assert accounts.pay_out(docs, UID, account_id=ACCOUNT, to_account_id=savings) == {**paid, "repeated": True}
    assert (bank.docs.data(f"accounts/{savings}") or {})["balance"] == 26_000
    with pytest.raises(AccountRefused) as again:  # to another account: nothing left to pay out
        accounts.pay_out(docs, UID, account_id=ACCOUNT, to_account_id=other)
    assert again.value.code == "nothing_to_pay_out"
    # the payout belongs to no payment: the ledger's audit counts it with no verdict, and
    # finds it between the accounts a payout moves money between
    assert audit.payment_posting_counts([audit.Posting.from_dict(posting)]) == {}
    stored = {a: bank.docs.data(f"accounts/{a}") or {} for a in (ACCOUNT, savings, other)}
    assert audit.check_deposits_and_payouts(stored, [audit.Posting.from_dict(posting)]) == []


# ---- found in review (2026-12-05): an order into a closed account ends whatever the payer's state
def _run_days(docs, pub, start: dt.date, days: int) -> None:
    day = start
    for _ in range(days):
        if standing_orders.is_banking_day(day):
            now = dt.datetime(day.year, day.month, day.day, 9, 0, tzinfo=dt.UTC)
            standing_orders.run_due(docs, pub, bank_regs=BANK_REGS, clock=fixed_clock(now))
        day += dt.timedelta(days=1)


def _close_rent(docs) -> None:
    batch = docs.batch()
    batch.update(f"accounts/{RENT}", {"status": "closed"})
    batch.commit()


@pytest.mark.parametrize("payer", ["short of money", "frozen"])
def test_an_order_into_an_account_closed_since_ends_even_when_the_payer_cannot_pay(payer) -> None:
    """The payee's account was checked only when the payer had the money: from an account
    short of money (or frozen) the order failed insufficient_funds (account_frozen) every
    month for ever, the payer told each time, instead of ending once, to_account_closed."""
    docs, pub = bank_with_orders()  # the payer holds 0; the rent is 1 000 kr
    if payer == "frozen":
        seed(docs, {f"accounts/{SPENDING}": customer_account(UID, SPENDING, balance=10_000_000, status="frozen")})
    _close_rent(docs)
    _run_days(docs, pub, dt.date(2027, 4, 12), 70)  # April, May and June due dates
    order = data(docs, f"users/{UID}/standingOrders/rent-order") or {}
    assert (order["status"], order.get("endedReason")) == ("ended", "to_account_closed")
    failed = [p.body["reason"] for p in pub.stored if p.subject.startswith(topology.SUBJECT_PAYMENT_FAILED)]
    assert failed == ["to_account_closed"]
