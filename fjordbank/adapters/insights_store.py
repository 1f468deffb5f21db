""" "My economy" and subscriptions in Firestore (the insights service's read model).

  users/{uid}/economy/{YYYY-MM}           income, spending per category, savings (the app reads it)
  users/{uid}/economyItems/{txId}         what one booking contributes, so a redelivery
                                          changes nothing and a recategorisation moves it
  users/{uid}/merchantHistory/{key}       the merchant's recent charges (detection input)
  users/{uid}/subscriptions/{key}         a detected subscription (the app reads it)
  users/{uid}/categoryOverrides/{key}     the customer's category for a merchant

One Firestore transaction per batch of bookings: it reads every item, month, override,
history and subscription the batch needs, applies the batch in memory with
`fjordbank.domain.economy` and `fjordbank.domain.subscriptions`, and writes what changed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from google.cloud import firestore

from fjordbank.adapters.firestore import (
    CATEGORY_OVERRIDES,
    ECONOMY,
    ECONOMY_ITEMS,
    MERCHANT_HISTORY,
    SUBSCRIPTIONS,
    async_transactional,
    user_doc,
)
from fjordbank.domain import economy, subscriptions
from fjordbank.domain.bookings import OUT, Booking

ACTIVE = "active"
DISMISSED = "dismissed"


def tracks_subscription(booking: Booking) -> bool:
    return booking.direction == OUT and not booking.own_transfer


def subscription_doc(booking: Booking, found: subscriptions.Subscription, category: str, previous: dict | None) -> dict:
    return {
        "key": booking.key,
        "merchantName": booking.display_name,
        "kind": booking.kind,
        "category": category,
        **found.to_dict(),
        # a customer's "not a subscription" sticks however many charges follow
        "status": (previous or {}).get("status", ACTIVE),
        "updatedAt": firestore.SERVER_TIMESTAMP,
    }


@dataclass(frozen=True)
class Applied:
    changed_months: int
    subscriptions_written: int


class InsightsStore:
    def __init__(self, db: firestore.AsyncClient) -> None:
        self.db = db

    async def apply(self, bookings: list[Booking]) -> Applied:
        db = self.db

        @async_transactional(operation="insights_apply")
        async def run(tx) -> Applied:
            counted = [b for b in bookings if not b.own_transfer]
            tracked = [b for b in bookings if tracks_subscription(b)]
            refs = {}
            for b in counted:
                refs[("item", b.uid, b.tx_id)] = user_doc(db, b.uid, ECONOMY_ITEMS, b.tx_id)
                refs[("override", b.uid, b.key)] = user_doc(db, b.uid, CATEGORY_OVERRIDES, b.key)
                refs[("month", b.uid, b.month)] = user_doc(db, b.uid, ECONOMY, b.month)
            for b in tracked:
                refs[("history", b.uid, b.key)] = user_doc(db, b.uid, MERCHANT_HISTORY, b.key)
                refs[("subscription", b.uid, b.key)] = user_doc(db, b.uid, SUBSCRIPTIONS, b.key)
            by_path = {ref.path: key for key, ref in refs.items()}
            found: dict[tuple, dict] = {}
            if refs:
                async for snap in db.get_all(list(refs.values()), transaction=tx):
                    if snap.exists:
                        found[by_path[snap.reference.path]] = snap.to_dict()

            def override(uid: str, key: str) -> dict[str, str]:
                doc = found.get(("override", uid, key))
                return {key: doc["category"]} if doc else {}

            # A booking's date never changes, so its old item (if any) is in the same month.
            months: dict[tuple[str, str], economy.Month] = {}
            items: dict[tuple[str, str], dict] = {}
            for b in counted:
                mkey = (b.uid, b.month)
                if mkey not in months:
                    doc = found.get(("month", *mkey))
                    months[mkey] = economy.Month.from_dict(doc) if doc else economy.Month(b.month)
                old_doc = items.get((b.uid, b.tx_id)) or found.get(("item", b.uid, b.tx_id))
                old = economy.Item.from_dict(old_doc) if old_doc else None
                new = economy.item_of(b, override(b.uid, b.key))
                if economy.apply({b.month: months[mkey]}, old, new):
                    items[(b.uid, b.tx_id)] = {**new.to_dict(), "key": b.key, "accountId": b.account_id, "date": b.date}
            changed_months = {(uid, items[(uid, t)]["month"]) for uid, t in items}

            histories: dict[tuple[str, str], tuple[Booking, list[subscriptions.Charge]]] = {}
            for b in tracked:
                hkey = (b.uid, b.key)
                history = (
                    histories[hkey][1]
                    if hkey in histories
                    else [
                        subscriptions.Charge.from_dict(c)
                        for c in (found.get(("history", *hkey)) or {}).get("charges", [])
                    ]
                )
                charge = subscriptions.Charge(b.tx_id, dt.date.fromisoformat(b.date), b.amount)
                histories[hkey] = (b, subscriptions.add_charge(history, charge))

            for (uid, tx_id), item in items.items():
                tx.set(user_doc(db, uid, ECONOMY_ITEMS, tx_id), {**item, "updatedAt": firestore.SERVER_TIMESTAMP})
            for uid, month in changed_months:
                tx.set(
                    user_doc(db, uid, ECONOMY, month),
                    {**months[(uid, month)].to_dict(), "updatedAt": firestore.SERVER_TIMESTAMP},
                )
            written = 0
            for (uid, key), (b, history) in histories.items():
                tx.set(
                    user_doc(db, uid, MERCHANT_HISTORY, key),
                    {"key": key, "name": b.display_name, "charges": [c.to_dict() for c in history]},
                )
                detected = subscriptions.detect(history)
                previous = found.get(("subscription", uid, key))
                if detected is not None:
                    category = economy.category_of(b, override(uid, key))
                    tx.set(user_doc(db, uid, SUBSCRIPTIONS, key), subscription_doc(b, detected, category, previous))
                    written += 1
                elif previous is not None and previous.get("status") != DISMISSED:
                    tx.delete(user_doc(db, uid, SUBSCRIPTIONS, key))  # the pattern is broken: no longer listed
            return Applied(len(changed_months), written)

        return await run(db.transaction())
