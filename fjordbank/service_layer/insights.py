"""The customer's corrections to the insights: recategorise a merchant, dismiss a subscription.

Recategorising is kept per merchant (a card merchant by its normalised name, a payee by
its account number): `users/{uid}/categoryOverrides/{key}`, and on the merchant's history
in "my economy" (`fjordbank.domain.economy_booking.CHOSEN`), which the insights service
reads for every charge anyway; both are written in one transaction, which makes the
history if there is none yet. Every writer of a category reads it when it writes (the
insights service the history, in its transaction; the feed's writers the override: the
card service in its transaction, the notifier just before its commit, so a
recategorisation committed and relabelled between the two leaves that one new entry with
the old label), so the choice applies to every transaction with that merchant, earlier and
later ones, and a replay of the events gives the same figures as before it. Changing it here moves the merchant's
bookings from their old category to the new one in "my economy": those whose items the
merchant's history keeps in that transaction with their months, then those with item
documents in transactions of at most `CHUNK` bookings (units of work,
fjordbank.service_layer.ports) that each update the bookings and their months together;
then it relabels the feed entries.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import replace
from typing import Any

from fjordbank.adapters.firestore import (
    ACCOUNTS,
    CARD_AUTHORIZATIONS,
    CATEGORY_OVERRIDES,
    ECONOMY,
    ECONOMY_ITEMS,
    LEDGER_PAYMENTS,
    MERCHANT_HISTORY,
    SUBSCRIPTIONS,
    TRANSACTIONS,
    USERS,
)
from fjordbank.domain import bookings, economy
from fjordbank.domain.bookings import OUT, Booking
from fjordbank.domain.card_settlement import refund_day
from fjordbank.domain.categories import CATEGORIES, override_key
from fjordbank.domain.economy_booking import CHOSEN, LISTED
from fjordbank.domain.errors import Refused
from fjordbank.domain.norway import is_account_id
from fjordbank.domain.payments import PaymentEvent, PaymentRequested
from fjordbank.domain.subscriptions import Charge
from fjordbank.service_layer.ports import SERVER_TIME, Clock, Doc, Documents, UnitOfWork, Where, system_clock

log = logging.getLogger(__name__)
CHUNK = 200
RELABEL_BATCH = 400  # feed entries relabelled per commit
TX_ID = re.compile(r"(?!__.*__$)[A-Za-z0-9_:-]{1,100}")  # a payment or card authorisation id (never a path)
CHOOSABLE = tuple(c for c in CATEGORIES if c != "income")  # spending categories


class InsightsRefused(Refused):
    """A correction the bank refuses."""


def user_path(uid: str, collection: str, doc_id: str | None = None) -> str:
    """``users/{uid}/{collection}`` or, with ``doc_id``, one of its documents."""
    return f"{USERS}/{uid}/{collection}" + ("" if doc_id is None else f"/{doc_id}")


def recategorise(
    docs: Documents,
    uid: str,
    account_id: object,
    transaction_id: object,
    category: object,
    *,
    clock: Clock = system_clock,
) -> dict[str, Any]:
    """The customer's category for a transaction's merchant, kept for that merchant: its
    bookings move in "my economy", its feed entries and its subscription are relabelled."""
    if not isinstance(category, str) or category not in CHOOSABLE:
        raise InsightsRefused("invalid_category", f"category must be one of {', '.join(CHOOSABLE)}", "category")
    entry = _spending_entry(docs, uid, account_id, transaction_id)
    key = entry.get("merchantKey") or override_key(
        kind=entry.get("kind", "payment"),
        merchant_name=entry.get("merchantName"),
        counterparty_account=entry.get("counterpartyAccount"),
    )
    moved, relabelled = _choose(docs, uid, key, category, clock()), 0
    # The steps after the choice are commits of their own: a second recategorisation of the
    # merchant between them (another device) left the choice saying one category and the
    # bookings, the feed and the subscription the other (found in review, 2026-12-06). So
    # they are done again while the choice read after them is not what they applied: the
    # call that finishes last applies the choice that stands.
    for _ in range(CHOICE_PASSES):
        moved += _move_items(docs, uid, key, category)
        relabelled += _relabel_feed(docs, uid, key, category)
        subscription = user_path(uid, SUBSCRIPTIONS, key)
        if docs.get(subscription) is not None:
            relabel = docs.batch()
            relabel.update(subscription, {"category": category})
            relabel.commit()
        standing = (_data(docs.get(user_path(uid, CATEGORY_OVERRIDES, key))) or {}).get("category")
        if not isinstance(standing, str) or standing == category or standing not in CHOOSABLE:
            break
        log.info("merchant recategorised again meanwhile", extra={"uid": uid, "key": key, "category": standing})
        category = standing
    log.info("merchant recategorised", extra={"uid": uid, "key": key, "category": category, "moved": moved})
    return {"key": key, "category": category, "bookingsMoved": moved, "entriesRelabelled": relabelled}


# How often the steps after a choice are done again for a choice made meanwhile (each pass
# reads the choice that stands; two devices choosing at once settle within a pass or two).
CHOICE_PASSES = 3


def _data(doc: Doc | None) -> dict[str, Any] | None:
    return None if doc is None else doc.data


def _spending_entry(docs: Documents, uid: str, account_id: object, transaction_id: object) -> dict[str, Any]:
    """The feed entry of a payment out of one of the caller's accounts."""
    if not isinstance(account_id, str) or not isinstance(transaction_id, str) or not TX_ID.fullmatch(transaction_id):
        raise InsightsRefused("invalid_transaction", "accountId and transactionId are required", "transactionId")
    account = docs.get(f"{ACCOUNTS}/{account_id}") if is_account_id(account_id) else None
    if account is None or account.data.get("ownerUid") != uid:
        raise InsightsRefused("unknown_transaction", "no such transaction on your accounts", "transactionId")
    found = docs.get(f"{ACCOUNTS}/{account_id}/{TRANSACTIONS}/{transaction_id}")
    if found is None:
        raise InsightsRefused("unknown_transaction", "no such transaction on your accounts", "transactionId")
    if found.data.get("direction") != "out" or _to_own_account(docs, uid, found.data):
        # money in, and transfers between own accounts, which keep "transfers" whatever is chosen
        raise InsightsRefused("not_spending", "only spending can be recategorised", "transactionId")
    return found.data


def _to_own_account(docs: Documents, uid: str, entry: dict[str, Any]) -> bool:
    """Whether a payment's entry went to another of the customer's own accounts."""
    to = entry.get("counterpartyAccount")
    if not is_account_id(to):
        return False  # a card purchase, or a payment out of the bank
    account = docs.get(f"{ACCOUNTS}/{to}")
    return account is not None and account.data.get("ownerUid") == uid


def _choose(docs: Documents, uid: str, key: str, category: str, now: dt.datetime) -> int:
    """Keep ``category`` as the customer's for the merchant (its override document, and its
    history's ``CHOSEN``, on a history made now if there is none) and move the bookings
    whose items the history keeps (its charges' categories) to it, with their months'
    figures: all in one unit of work."""
    path = user_path(uid, MERCHANT_HISTORY, key)

    def run(uow: UnitOfWork) -> int:
        history = uow.get_many([path]).get(path)
        charges = [Charge.from_dict(c) for c in (history.data if history is not None else {}).get("charges", [])]
        moving = [c for c in charges if c.category is not None and c.category != category]
        read = uow.get_many(sorted({user_path(uid, ECONOMY, c.month) for c in moving})) if moving else {}
        months = {d.id: economy.Month.from_dict(d.data) for d in read.values() if d is not None}
        for c in moving:
            economy.apply(
                months,
                economy.Item(c.month, OUT, c.category or "", c.amount),
                economy.Item(c.month, OUT, category, c.amount),
            )
        # writes only from here on (a unit of work reads first)
        uow.set(user_path(uid, CATEGORY_OVERRIDES, key), {"category": category, "key": key, "updatedAt": now})
        if history is None:  # its charges are still to come: they find the choice on it
            # (no LISTED: how a subscription of the merchant is listed is its document's to say)
            uow.set(path, {"key": key, "charges": [], CHOSEN: category})
        else:
            moved = [replace(c, category=category) if c in moving else c for c in charges]
            uow.update(path, {"charges": [c.to_dict() for c in moved], CHOSEN: category})
        for month in sorted({c.month for c in moving}):
            uow.set(user_path(uid, ECONOMY, month), {**months[month].to_dict(), "updatedAt": SERVER_TIME})
        return len(moving)

    return docs.transact(run, operation="insights_recategorise_history")


def _move_items(docs: Documents, uid: str, key: str, category: str) -> int:
    items = docs.query(user_path(uid, ECONOMY_ITEMS), where=[Where("key", "==", key)])
    ids = [i.id for i in items if i.data.get("category") != category and i.data.get("direction") == "out"]
    for start in range(0, len(ids), CHUNK):
        _move_chunk(docs, uid, ids[start : start + CHUNK], category)
    return len(ids)


def _move_chunk(docs: Documents, uid: str, item_ids: list[str], category: str) -> None:
    """Move these bookings to ``category`` and their months' figures with them, together."""

    def run(uow: UnitOfWork) -> None:
        found = uow.get_many([user_path(uid, ECONOMY_ITEMS, i) for i in item_ids])
        items = {d.id: d.data for d in found.values() if d is not None}
        month_ids = sorted({item["month"] for item in items.values()})
        read = uow.get_many([user_path(uid, ECONOMY, m) for m in month_ids])
        months = {d.id: economy.Month.from_dict(d.data) for d in read.values() if d is not None}
        changed: dict[str, dict[str, Any]] = {}
        for item_id, doc in items.items():
            old = economy.Item.from_dict(doc)
            new = economy.Item(old.month, old.direction, category, old.amount)
            if economy.apply(months, old, new):
                changed[item_id] = {**doc, **new.to_dict()}
        for item_id, doc in changed.items():
            uow.set(user_path(uid, ECONOMY_ITEMS, item_id), {**doc, "updatedAt": SERVER_TIME})
        for month in {changed[i]["month"] for i in changed}:
            uow.set(user_path(uid, ECONOMY, month), {**months[month].to_dict(), "updatedAt": SERVER_TIME})

    docs.transact(run, operation="insights_recategorise")


def _relabel_feed(docs: Documents, uid: str, key: str, category: str) -> int:
    """The merchant's spending entries in the feeds of the caller's accounts, relabelled in
    batches of `RELABEL_BATCH` (the last one committed even when empty, as ever)."""
    relabelled = 0
    batch = docs.batch()
    for account in docs.query(ACCOUNTS, where=[Where("ownerUid", "==", uid)]):
        entries = docs.query(f"{account.path}/{TRANSACTIONS}", where=[Where("merchantKey", "==", key)])
        for entry in entries:
            spending = entry.data.get("direction") == "out" or entry.data.get("kind") == "card_refund"
            if entry.data.get("category") != category and spending:
                batch.update(entry.path, {"category": category})
                relabelled += 1
                if relabelled % RELABEL_BATCH == 0:
                    batch.commit()
                    batch = docs.batch()
    batch.commit()
    return relabelled


def set_subscription_status(docs: Documents, uid: str, key: object, status: str) -> dict[str, Any]:
    """Dismiss a subscription that is none (or list it again): the choice sticks."""
    if (
        not isinstance(key, str)
        or not key.isprintable()  # no control characters or lone surrogates
        or "/" in key
        or not 0 < len(key) <= 120
        or key in (".", "..")
        or (key.startswith("__") and key.endswith("__"))  # ids Firestore reserves
    ):
        raise InsightsRefused("invalid_merchant_key", "merchantKey is required", "merchantKey")
    path, history = user_path(uid, SUBSCRIPTIONS, key), user_path(uid, MERCHANT_HISTORY, key)

    def run(uow: UnitOfWork) -> dict[str, Any]:
        found = uow.get_many([path, history])
        if found.get(path) is None:
            raise InsightsRefused("unknown_subscription", "no such subscription", "merchantKey")
        uow.update(path, {"status": status, "updatedAt": SERVER_TIME})
        if found.get(history) is not None:  # its copy, which the insights service reads (economy_booking.LISTED)
            uow.update(history, {LISTED: status})
        return {"merchantKey": key, "status": status}

    return docs.transact(run, operation="subscriptions_status")


# ---- recomputation from the ledger ----------------------------------------------------------
def ledger_bookings(docs: Documents, uid: str) -> list[Booking]:
    """Every booking of ``uid`` from the ledger's own records (not from any event): the
    completed payments it made or received (ledgerPayments) and its captured card
    purchases (cardAuthorizations)."""
    accounts = {a.id for a in docs.query(ACCOUNTS, where=[Where("ownerUid", "==", uid)])}
    found: list[Booking] = []
    for record in _completed_payments(docs, uid, accounts):
        payee_uid = uid if record["toAccount"] in accounts else None
        if payee_uid is None and record["kind"] == "internal":
            target = docs.get(f"{ACCOUNTS}/{record['toAccount']}")
            payee_uid = target.data.get("ownerUid") if target is not None else None
        event = PaymentEvent(payment_of(record), "completed")
        found += [b for b in bookings.from_payment(event, payee_uid=payee_uid) if b.uid == uid]
    for auth in docs.query(CARD_AUTHORIZATIONS, where=[Where("ownerUid", "==", uid)]):
        found += bookings.from_card_capture(_card_capture(uid, auth))
        found += [b for refund in _card_refunds(uid, auth) for b in bookings.from_card_refund(refund)]
    return found


def _completed_payments(docs: Documents, uid: str, accounts: set[str]) -> list[dict[str, Any]]:
    """The completed payments ``uid`` made, then the internal ones its accounts received."""
    received = [
        p.data
        for account in sorted(accounts)
        for p in docs.query(LEDGER_PAYMENTS, where=[Where("toAccount", "==", account)])
        if p.data.get("status") == "completed" and p.data.get("kind") == "internal"
    ]
    made = docs.query(LEDGER_PAYMENTS, where=[Where("uid", "==", uid), Where("status", "==", "completed")])
    return [*(p.data for p in made), *received]


def _card_capture(uid: str, auth: Doc) -> dict[str, Any]:
    """A card authorisation's record as bookings.from_card_capture reads it."""
    r = auth.data
    return {
        "status": r.get("status"),
        "uid": uid,
        "auth_id": auth.id,
        "account_id": r.get("accountId"),
        "amount": r.get("capturedAmount"),
        "merchant_name": r.get("merchantName"),
        "mcc": r.get("mcc"),
        "day": r.get("spendDay"),
    }


def _card_refunds(uid: str, auth: Doc) -> list[dict[str, Any]]:
    """A card authorisation's refunds as bookings.from_card_refund reads them."""
    r = auth.data
    return [
        {
            "status": "refunded",
            "uid": uid,
            "refund_id": refund_id,
            "auth_id": auth.id,
            "account_id": r.get("accountId"),
            "amount": refund.get("amount"),
            "merchant_name": r.get("merchantName"),
            "mcc": r.get("mcc"),
            "category": refund.get("category"),
            "day": refund_day(refund) if refund.get("refundedAt") else None,
        }
        for refund_id, refund in sorted((r.get("refunds") or {}).items())
        if isinstance(refund, dict)
    ]


def payment_of(record: dict[str, Any]) -> PaymentRequested:
    """The payment a ledger record was made from (what its events carried)."""
    return PaymentRequested(
        payment_id=record["paymentId"],
        uid=record["uid"],
        request_id=record["requestId"],
        kind=record["kind"],
        from_account=record["fromAccount"],
        to_account=record["toAccount"],
        amount=record["amount"],
        currency=record["currency"],
        message=None,
        kid=record.get("kid"),
        due_date=record["dueDate"],
        body_hash=record["bodyHash"],
        # a record from before it was kept: booked on its due date, as before
        requested_at=str(record.get("requestedAt") or ""),
    )


def recompute_economy(docs: Documents, uid: str) -> dict[str, economy.Month]:
    """My economy from scratch, from the ledger and the customer's categories."""
    overrides = {o.id: o.data["category"] for o in docs.query(user_path(uid, CATEGORY_OVERRIDES))}
    return economy.recompute(ledger_bookings(docs, uid), overrides)


def stored_economy(docs: Documents, uid: str) -> dict[str, economy.Month]:
    """My economy as the insights service maintains it."""
    return {m.id: economy.Month.from_dict(m.data) for m in docs.query(user_path(uid, ECONOMY))}


def economy_differences(docs: Documents, uid: str) -> list[str]:
    """Where the maintained figures differ from a recomputation (empty: they agree)."""
    stored, fresh = stored_economy(docs, uid), recompute_economy(docs, uid)
    problems = []
    for month in sorted(set(stored) | set(fresh)):
        have = stored.get(month, economy.Month(month)).figures()
        want = fresh.get(month, economy.Month(month)).figures()
        if have != want:
            problems.append(f"{uid} {month}: stored {have} != recomputed {want}")
    return problems
