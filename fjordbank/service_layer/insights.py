"""The customer's corrections to the insights: recategorise a merchant, dismiss a subscription.

Recategorising is kept per merchant (a card merchant by its normalised name, a payee by
its account number): `users/{uid}/categoryOverrides/{key}`. Every writer of a category
reads it in its own transaction (the feed's writers, the insights service), so the choice
applies to every transaction with that merchant, earlier and later ones, and a replay of
the events gives the same figures as before it. Changing it here moves the merchant's
bookings from their old category to the new one in "my economy", in transactions of at
most `CHUNK` bookings that each update the bookings and their months together, and then
relabels the feed entries.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1 import Transaction
from google.cloud.firestore_v1.base_query import FieldFilter

from fjordbank.adapters.firestore import (
    ACCOUNTS,
    CARD_AUTHORIZATIONS,
    CATEGORY_OVERRIDES,
    ECONOMY,
    ECONOMY_ITEMS,
    LEDGER_PAYMENTS,
    SUBSCRIPTIONS,
    TRANSACTIONS,
    USERS,
    user_doc,
)
from fjordbank.domain import bookings, economy
from fjordbank.domain.bookings import Booking
from fjordbank.domain.categories import CATEGORIES, override_key
from fjordbank.domain.errors import Refused
from fjordbank.domain.payments import PaymentEvent, PaymentRequested

log = logging.getLogger(__name__)
CHUNK = 200
TX_ID = re.compile(r"[A-Za-z0-9_:-]{1,100}")  # a payment or card authorisation id (never a path)
CHOOSABLE = tuple(c for c in CATEGORIES if c != "income")  # spending categories


class InsightsRefused(Refused):
    """A correction the bank refuses."""


def recategorise(
    db: firestore.Client, uid: str, account_id: object, transaction_id: object, category: object
) -> dict[str, Any]:
    if category not in CHOOSABLE:
        raise InsightsRefused("invalid_category", f"category must be one of {', '.join(CHOOSABLE)}", "category")
    if not isinstance(account_id, str) or not isinstance(transaction_id, str) or not TX_ID.fullmatch(transaction_id):
        raise InsightsRefused("invalid_transaction", "accountId and transactionId are required", "transactionId")
    account = db.collection(ACCOUNTS).document(account_id).get() if account_id.isdigit() else None
    if account is None or not account.exists or account.get("ownerUid") != uid:
        raise InsightsRefused("unknown_transaction", "no such transaction on your accounts", "transactionId")
    entry_snap = db.collection(ACCOUNTS).document(account_id).collection(TRANSACTIONS).document(transaction_id).get()
    if not entry_snap.exists:
        raise InsightsRefused("unknown_transaction", "no such transaction on your accounts", "transactionId")
    entry = entry_snap.to_dict() or {}
    if entry.get("direction") != "out":  # (transfers between own accounts keep "transfers" whatever is chosen)
        raise InsightsRefused("not_spending", "only spending can be recategorised", "transactionId")
    key = entry.get("merchantKey") or override_key(
        kind=entry.get("kind", "payment"),
        merchant_name=entry.get("merchantName"),
        counterparty_account=entry.get("counterpartyAccount"),
    )
    now = dt.datetime.now(dt.UTC)
    user_doc(db, uid, CATEGORY_OVERRIDES, key).set({"category": category, "key": key, "updatedAt": now})
    moved = _move_items(db, uid, key, category)
    relabelled = _relabel_feed(db, uid, key, category)
    subscription = user_doc(db, uid, SUBSCRIPTIONS, key)
    if subscription.get().exists:
        subscription.update({"category": category})
    log.info("merchant recategorised", extra={"uid": uid, "key": key, "category": category, "moved": moved})
    return {"key": key, "category": category, "bookingsMoved": moved, "entriesRelabelled": relabelled}


def _move_items(db: firestore.Client, uid: str, key: str, category: str) -> int:
    items = db.document(f"users/{uid}").collection(ECONOMY_ITEMS).where(filter=FieldFilter("key", "==", key))
    ids = [s.id for s in items.stream() if s.get("category") != category and s.get("direction") == "out"]
    for start in range(0, len(ids), CHUNK):
        _move_chunk(db, uid, ids[start : start + CHUNK], category)
    return len(ids)


def _move_chunk(db: firestore.Client, uid: str, item_ids: list[str], category: str) -> None:
    @firestore.transactional
    def run(tx: Transaction) -> None:
        refs = [user_doc(db, uid, ECONOMY_ITEMS, i) for i in item_ids]
        items = {s.id: s.to_dict() or {} for s in db.get_all(refs, transaction=tx) if s.exists}
        month_ids = sorted({item["month"] for item in items.values()})
        month_refs = [user_doc(db, uid, ECONOMY, m) for m in month_ids]
        months = {
            s.id: economy.Month.from_dict(s.to_dict() or {}) for s in db.get_all(month_refs, transaction=tx) if s.exists
        }
        changed: dict[str, dict[str, Any]] = {}
        for item_id, doc in items.items():
            old = economy.Item.from_dict(doc)
            new = economy.Item(old.month, old.direction, category, old.amount)
            if economy.apply(months, old, new):
                changed[item_id] = {**doc, **new.to_dict()}
        for item_id, doc in changed.items():
            tx.set(user_doc(db, uid, ECONOMY_ITEMS, item_id), {**doc, "updatedAt": firestore.SERVER_TIMESTAMP})
        for month in {changed[i]["month"] for i in changed}:
            tx.set(
                user_doc(db, uid, ECONOMY, month), {**months[month].to_dict(), "updatedAt": firestore.SERVER_TIMESTAMP}
            )

    run(db.transaction())


def _relabel_feed(db: firestore.Client, uid: str, key: str, category: str) -> int:
    accounts = db.collection(ACCOUNTS).where(filter=FieldFilter("ownerUid", "==", uid)).stream()
    relabelled = 0
    batch = db.batch()
    for account in accounts:
        entries = account.reference.collection(TRANSACTIONS).where(filter=FieldFilter("merchantKey", "==", key))
        for entry in entries.stream():
            if entry.get("category") != category and entry.get("direction") == "out":
                batch.update(entry.reference, {"category": category})
                relabelled += 1
                if relabelled % 400 == 0:
                    batch.commit()
                    batch = db.batch()
    batch.commit()
    return relabelled


def set_subscription_status(db: firestore.Client, uid: str, key: object, status: str) -> dict[str, Any]:
    """Dismiss a subscription that is none (or list it again): the choice sticks."""
    if not isinstance(key, str) or not key or "/" in key or len(key) > 120:
        raise InsightsRefused("invalid_merchant_key", "merchantKey is required", "merchantKey")
    ref = user_doc(db, uid, SUBSCRIPTIONS, key)

    @firestore.transactional
    def run(tx: Transaction) -> dict[str, Any]:
        snap = ref.get(transaction=tx)
        if not snap.exists:
            raise InsightsRefused("unknown_subscription", "no such subscription", "merchantKey")
        tx.update(ref, {"status": status, "updatedAt": firestore.SERVER_TIMESTAMP})
        return {"merchantKey": key, "status": status}

    result: dict[str, Any] = run(db.transaction())
    return result


# ---- recomputation from the ledger ----------------------------------------------------------
def ledger_bookings(db: firestore.Client, uid: str) -> list[Booking]:
    """Every booking of ``uid`` from the ledger's own records (not from any event): the
    completed payments it made or received (ledgerPayments) and its captured card
    purchases (cardAuthorizations)."""
    accounts = {s.id for s in db.collection(ACCOUNTS).where(filter=FieldFilter("ownerUid", "==", uid)).stream()}
    found: list[Booking] = []
    payments = db.collection(LEDGER_PAYMENTS)
    made = payments.where(filter=FieldFilter("uid", "==", uid)).where(filter=FieldFilter("status", "==", "completed"))
    received = [
        s
        for account in sorted(accounts)
        for s in payments.where(filter=FieldFilter("toAccount", "==", account)).stream()
        if s.get("status") == "completed" and s.get("kind") == "internal"
    ]
    for snap in [*made.stream(), *received]:
        record = snap.to_dict() or {}
        payee_uid = uid if record["toAccount"] in accounts else None
        if payee_uid is None and record["kind"] == "internal":
            target = db.collection(ACCOUNTS).document(record["toAccount"]).get()
            payee_uid = target.get("ownerUid") if target.exists else None
        event = PaymentEvent(payment_of(record), "completed")
        found += [b for b in bookings.from_payment(event, payee_uid=payee_uid) if b.uid == uid]
    cards = db.collection(CARD_AUTHORIZATIONS).where(filter=FieldFilter("ownerUid", "==", uid))
    for snap in cards.stream():
        r = snap.to_dict() or {}
        found += bookings.from_card_capture(
            {
                "status": r.get("status"),
                "uid": uid,
                "auth_id": snap.id,
                "account_id": r.get("accountId"),
                "amount": r.get("capturedAmount"),
                "merchant_name": r.get("merchantName"),
                "mcc": r.get("mcc"),
                "day": r.get("spendDay"),
            }
        )
    return found


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
        requested_at="",
    )


def recompute_economy(db: firestore.Client, uid: str) -> dict[str, economy.Month]:
    """My economy from scratch, from the ledger and the customer's categories."""
    overrides = {s.id: s.get("category") for s in db.document(f"{USERS}/{uid}").collection(CATEGORY_OVERRIDES).stream()}
    return economy.recompute(ledger_bookings(db, uid), overrides)


def stored_economy(db: firestore.Client, uid: str) -> dict[str, economy.Month]:
    """My economy as the insights service maintains it."""
    return {
        s.id: economy.Month.from_dict(s.to_dict()) for s in db.document(f"{USERS}/{uid}").collection(ECONOMY).stream()
    }


def economy_differences(db: firestore.Client, uid: str) -> list[str]:
    """Where the maintained figures differ from a recomputation (empty: they agree)."""
    stored, fresh = stored_economy(db, uid), recompute_economy(db, uid)
    problems = []
    for month in sorted(set(stored) | set(fresh)):
        have = stored.get(month, economy.Month(month)).figures()
        want = fresh.get(month, economy.Month(month)).figures()
        if have != want:
            problems.append(f"{uid} {month}: stored {have} != recomputed {want}")
    return problems
