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

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from fjordbank.adapters.firestore import (
    ACCOUNTS,
    CATEGORY_OVERRIDES,
    ECONOMY,
    ECONOMY_ITEMS,
    SUBSCRIPTIONS,
    TRANSACTIONS,
    user_doc,
)
from fjordbank.domain import economy
from fjordbank.domain.categories import CATEGORIES, override_key
from fjordbank.domain.errors import Refused

log = logging.getLogger(__name__)
CHUNK = 200
CHOOSABLE = tuple(c for c in CATEGORIES if c != "income")  # spending categories


class InsightsRefused(Refused):
    """A correction the bank refuses."""


def recategorise(db, uid: str, account_id: object, transaction_id: object, category: object) -> dict:
    if category not in CHOOSABLE:
        raise InsightsRefused("invalid_category", f"category must be one of {', '.join(CHOOSABLE)}", "category")
    if not isinstance(account_id, str) or not isinstance(transaction_id, str) or not transaction_id:
        raise InsightsRefused("invalid_transaction", "accountId and transactionId are required", "transactionId")
    account = db.collection(ACCOUNTS).document(account_id).get() if account_id.isdigit() else None
    if account is None or not account.exists or account.get("ownerUid") != uid:
        raise InsightsRefused("unknown_transaction", "no such transaction on your accounts", "transactionId")
    entry_snap = db.collection(ACCOUNTS).document(account_id).collection(TRANSACTIONS).document(transaction_id).get()
    if not entry_snap.exists:
        raise InsightsRefused("unknown_transaction", "no such transaction on your accounts", "transactionId")
    entry = entry_snap.to_dict()
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


def _move_items(db, uid: str, key: str, category: str) -> int:
    items = db.document(f"users/{uid}").collection(ECONOMY_ITEMS).where(filter=FieldFilter("key", "==", key))
    ids = [s.id for s in items.stream() if s.get("category") != category and s.get("direction") == "out"]
    for start in range(0, len(ids), CHUNK):
        _move_chunk(db, uid, ids[start : start + CHUNK], category)
    return len(ids)


def _move_chunk(db, uid: str, item_ids: list[str], category: str) -> None:
    @firestore.transactional
    def run(tx) -> None:
        refs = [user_doc(db, uid, ECONOMY_ITEMS, i) for i in item_ids]
        items = {s.id: s.to_dict() for s in db.get_all(refs, transaction=tx) if s.exists}
        month_ids = sorted({item["month"] for item in items.values()})
        month_refs = [user_doc(db, uid, ECONOMY, m) for m in month_ids]
        months = {
            s.id: economy.Month.from_dict(s.to_dict()) for s in db.get_all(month_refs, transaction=tx) if s.exists
        }
        changed: dict[str, dict] = {}
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


def _relabel_feed(db, uid: str, key: str, category: str) -> int:
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


def set_subscription_status(db, uid: str, key: object, status: str) -> dict:
    """Dismiss a subscription that is none (or list it again): the choice sticks."""
    if not isinstance(key, str) or not key or "/" in key or len(key) > 120:
        raise InsightsRefused("invalid_merchant_key", "merchantKey is required", "merchantKey")
    ref = user_doc(db, uid, SUBSCRIPTIONS, key)

    @firestore.transactional
    def run(tx) -> dict:
        snap = ref.get(transaction=tx)
        if not snap.exists:
            raise InsightsRefused("unknown_subscription", "no such subscription", "merchantKey")
        tx.update(ref, {"status": status, "updatedAt": firestore.SERVER_TIMESTAMP})
        return {"merchantKey": key, "status": status}

    return run(db.transaction())
