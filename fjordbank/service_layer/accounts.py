"""Open, rename and close accounts (called by the accounts callables; the document ports).

Only an approved customer (``customers/{uid}`` with status "approved") opens accounts, at
most MAX_OPEN_ACCOUNTS open at once. A number is drawn at random and claimed in the same
unit of work only if no account has it (`claim_number`): two openings that drew one number
conflict on that account document alone, and the retried one draws again. Closing happens in a
unit of work that reads the balance and holds, which the ledger's own transactions also
read: a payment cannot land in between. What a closed account is given afterwards (a
merchant's card refund) is paid out to one of the customer's open accounts (`pay_out`).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from typing import Any

from fjordbank import topology
from fjordbank.adapters.firestore import ACCOUNTS, CUSTOMERS, LEDGER_PAYMENTS, TRANSACTIONS
from fjordbank.domain import accounts as rules
from fjordbank.domain.events import AccountChanged
from fjordbank.domain.ledger import Book, Posting
from fjordbank.domain.norway import is_account_id, today_in_norway
from fjordbank.service_layer import cards, outbox, standing_orders
from fjordbank.service_layer.ledger import account_from_doc, write_book
from fjordbank.service_layer.ports import SERVER_TIME, Clock, Doc, Documents, Publisher, UnitOfWork, Where, system_clock

log = logging.getLogger(__name__)
_draw = secrets.SystemRandom()  # account numbers are not guessable in sequence


def account_path(account_id: str) -> str:
    return f"{ACCOUNTS}/{account_id}"


def _owned(uow: UnitOfWork, uid: str, account_id: object) -> Doc:
    """The caller's account; any other is "no such account"."""
    if not is_account_id(account_id):
        raise rules.AccountRefused("unknown_account", "no such account")
    doc = uow.get(account_path(account_id))
    if doc is None or doc.data.get("ownerUid") != uid:
        raise rules.AccountRefused("unknown_account", "no such account")  # the same for others' accounts
    return doc


def account_event(subject: str, uid: str, account_id: str, kind: str | None = None) -> outbox.Event:
    step = subject.rsplit(".", 1)[-1]
    body = AccountChanged(uid=uid, account_id=account_id, type=kind).to_json()
    return outbox.Event(subject, body, f"{account_id}:{step}")


def claim_number(uow: UnitOfWork, bank_reg: str) -> str:
    """A free customer account number, read in the caller's unit of work (so a concurrent
    claim of the same number makes one of the two run again). Raises registry_exhausted when
    ``MAX_DRAWS`` random draws all hit taken numbers."""
    for _ in range(rules.MAX_DRAWS):
        number = rules.number_at(bank_reg, _draw.randrange(rules.POSITIONS))
        if number is not None and uow.get(account_path(number)) is None:
            return number
    raise rules.registry_exhausted(bank_reg)


def create_account(
    uow: UnitOfWork,
    uid: str,
    number: str,
    *,
    kind: str,
    name: str,
    request_id: str | None = None,
    frozen: bool = False,
    clock: Clock = system_clock,
) -> outbox.Event:
    """Write a new account and stage its event (after the unit of work's reads);
    ``request_id``: the app's idempotency key of the opening, kept on the account;
    ``frozen``: the customer is frozen under sanctions (fjordbank.service_layer.rescreening),
    and so is the account from the start."""
    uow.create(
        account_path(number),
        {
            **({"openRequest": request_id} if request_id is not None else {}),
            "accountId": number,
            "ownerUid": uid,
            "name": name,
            "type": kind,
            "kind": "customer",
            "currency": "NOK",
            "balance": 0,
            "held": 0,
            "available": 0,
            "overdraftLimit": 0,
            "status": "frozen" if frozen else "open",
            **({"frozenAt": SERVER_TIME} if frozen else {}),
            "createdAt": SERVER_TIME,
            "updatedAt": SERVER_TIME,
        },
    )
    event = account_event(topology.SUBJECT_ACCOUNT_OPENED, uid, number, kind)
    outbox.stage(uow, event, clock=clock)
    return event


def open_account(
    docs: Documents,
    publisher: Publisher,
    uid: str,
    *,
    kind: object,
    name: object,
    bank_reg: str,
    request_id: object = None,
    clock: Clock = system_clock,
) -> str:
    """A new account for an approved customer (the number it got). ``request_id``: the
    app's idempotency key: an opening with a key already used answers the account it
    opened (its first answer may have been lost), and opens nothing."""
    kind = rules.validate_kind(kind)
    name = rules.validate_name(name if name is not None else rules.DEFAULT_NAMES[kind])
    key = rules.validate_request_id(request_id)

    def run(uow: UnitOfWork) -> tuple[str, outbox.Event | None]:
        customer = uow.get(f"{CUSTOMERS}/{uid}")
        if customer is None or customer.data.get("status") != "approved":
            raise rules.AccountRefused("not_a_customer", "only approved customers open accounts")
        if customer.data.get("frozen"):  # under sanctions (fjordbank.service_layer.rescreening)
            raise rules.AccountRefused("customer_frozen", "the customer's accounts are frozen")
        owned = uow.query(ACCOUNTS, where=[Where("ownerUid", "==", uid)])
        opened = next((a for a in owned if key is not None and a.data.get("openRequest") == key), None)
        if opened is not None:
            if opened.data.get("type") not in (None, kind):  # (the name may have changed since)
                raise rules.AccountRefused("request_id_reused", "this requestId opened an account of another kind")
            return opened.id, None
        if sum(1 for a in owned if a.data.get("status") == "open") >= rules.MAX_OPEN_ACCOUNTS:
            raise rules.AccountRefused("too_many_accounts", f"at most {rules.MAX_OPEN_ACCOUNTS} open accounts")
        if len(owned) >= rules.MAX_ACCOUNTS_EVER:
            raise rules.AccountRefused(
                "too_many_accounts",
                f"at most {rules.MAX_ACCOUNTS_EVER} accounts in all, closed ones counted: ask customer service",
            )
        number = claim_number(uow, bank_reg)
        return number, create_account(uow, uid, number, kind=kind, name=name, request_id=key, clock=clock)

    number, event = docs.transact(run, operation="accounts_open")
    if event is not None:
        outbox.deliver(docs, publisher, [event])
    return number


def rename_account(docs: Documents, uid: str, *, account_id: object, name: object) -> None:
    valid_name = rules.validate_name(name)

    def run(uow: UnitOfWork) -> None:
        account = _owned(uow, uid, account_id)
        if account.data.get("status") not in ("open", "frozen"):
            raise rules.AccountRefused("account_closed", "a closed account cannot be renamed")
        uow.update(account.path, {"name": valid_name, "updatedAt": SERVER_TIME})

    docs.transact(run, operation="accounts_rename")


IN_TRANSIT = [topology.CREDIT, topology.REFUND]  # a ledger record's status while its money is in transit


def close_account(
    docs: Documents, publisher: Publisher, uid: str, *, account_id: object, clock: Clock = system_clock
) -> None:
    """Close an empty account of the caller's (no balance, no holds: `rules.check_closable`),
    with no payment from it on its way: an internal payment debited and not yet credited may
    come back (its credit refused), and a refund into a closed account could not be paid out.
    Its cards are blocked and the customer's standing orders and scheduled payments from
    or to it cancelled in the same unit of work (their cards.updated staged with the
    account's event). Closing a closed account again changes nothing and is no error."""

    def run(uow: UnitOfWork) -> list[outbox.Event]:
        account = _owned(uow, uid, account_id)
        if account.data.get("status") == "closed":
            # closed already: a retry after a lost answer (the app shows "busy" when the
            # answer timed out) is answered as the close was, not refused as if it had
            # failed (found in review, 2026-12-06); nothing is written or told again
            return []
        rules.check_closable(account.data)
        # the customer's internal payments between their debit and their end (few, and the
        # ledger records' index on uid and status answers the query)
        moving = uow.query(LEDGER_PAYMENTS, where=[Where("uid", "==", uid), Where("status", "in", IN_TRANSIT)])
        if any(p.data.get("fromAccount") == account.id for p in moving):
            raise rules.AccountRefused("money_in_transit", "a payment from this account is on its way; try again soon")
        # what hangs off the account goes with it (read here, before the writes)
        usable_cards = cards.cards_of_account(uow, uid, account.id)
        orders = standing_orders.orders_of_account(uow, uid, account.id)
        scheduled = standing_orders.scheduled_of_account(uow, uid, account.id)
        uow.update(account.path, {"status": "closed", "closedAt": SERVER_TIME, "updatedAt": SERVER_TIME})
        blocked = cards.block_cards(uow, uid, usable_cards, clock=clock)
        standing_orders.cancel_for_closed_account(uow, orders, clock())
        standing_orders.cancel_scheduled_for_closed_account(uow, scheduled, clock())
        event = account_event(topology.SUBJECT_ACCOUNT_CLOSED, uid, account.id)
        outbox.stage(uow, event, clock=clock)
        return [event, *blocked]

    outbox.deliver(docs, publisher, docs.transact(run, operation="accounts_close"))


PAYOUT_STEP = "payout"  # a payout's posting step (fjordbank.domain.audit.PAYOUT, kept equal by a unit test)
LAST_PAYOUT = "lastPayout"  # on a closed account: its last payout, the answer to a retry of it


def pay_out(
    docs: Documents, uid: str, *, account_id: object, to_account_id: object, clock: Clock = system_clock
) -> dict[str, Any]:
    """Move all that a closed account of the caller's holds to one of their open accounts,
    in one unit of work: the posting (step "payout"), both balances and a feed entry on
    each. A closed account is given money only by what the bank cannot refuse (a
    merchant's card refund, posted whatever the account's status); before, that money
    had no way out. A second call to the same account with nothing come in since (a retry
    after a lost answer) is answered with the payout made (``repeated``); to another
    account, or with nothing ever paid out, it finds nothing left (``nothing_to_pay_out``)."""
    if to_account_id == account_id:
        raise rules.AccountRefused("same_account", "pay out to another account", "toAccountId")

    def run(uow: UnitOfWork) -> dict[str, Any]:
        source = _owned(uow, uid, account_id)
        target = _owned(uow, uid, to_account_id)
        last = source.data.get(LAST_PAYOUT)
        if rules.paid_out_already(source.data) and isinstance(last, dict) and last.get("toAccountId") == target.id:
            # the payout again, as a retry after a lost answer sends it: answered with the
            # one made, not refused as if it had failed (found in review, 2026-12-06)
            return {**last, "repeated": True}
        amount = rules.payout_amount(source.data, target.data)
        # one id per version of the closed account: a payout takes all of it, so a retried
        # unit of work reads the account again and finds it paid out (or pays once)
        payout_id = f"po{source.id}{int(source.updated.timestamp() * 1_000_000)}"
        posting = Posting.transfer(payout_id, PAYOUT_STEP, source.id, target.id, amount, source.data["currency"])
        book = Book({a.id: account_from_doc(a.data) for a in (source, target)})
        book.apply(posting)
        write_book(uow, book)
        now = clock()
        for doc, other, sign in ((source, target, -1), (target, source, 1)):
            entry = _payout_entry(payout_id, other.id, sign * amount, source.data["currency"], now)
            uow.set(f"{doc.path}/{TRANSACTIONS}/{payout_id}", entry)
        paid = {"payoutId": payout_id, "amount": amount, "toAccountId": target.id}
        uow.update(source.path, {LAST_PAYOUT: paid})  # (its balance written just before, in the same commit)
        return paid

    paid = docs.transact(run, operation="accounts_payout")
    log.info("closed account paid out", extra={"uid": uid, "amount": paid["amount"], "payout_id": paid["payoutId"]})
    return paid


def _payout_entry(payout_id: str, counterparty: str, amount: int, currency: str, now: dt.datetime) -> dict[str, Any]:
    """A payout's feed entry: a transfer between the customer's own accounts."""
    return {
        "payoutId": payout_id,
        "kind": "payout",
        "amount": amount,
        "currency": currency,
        "direction": "in" if amount > 0 else "out",
        "counterpartyAccount": counterparty,
        "status": "posted",
        "category": "transfers",
        "date": today_in_norway(now).isoformat(),
        "bookedAt": SERVER_TIME,
        "createdAt": SERVER_TIME,
        "updatedAt": SERVER_TIME,
    }
