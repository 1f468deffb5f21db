""" "My economy" and subscriptions in Firestore (the insights service's read model).

  users/{uid}/economy/{YYYY-MM}           income, spending per category, savings (the app reads it)
  users/{uid}/economyItems/{txId}         what one booking contributes, so a redelivery
                                          changes nothing and a recategorisation moves it
  users/{uid}/merchantHistory/{key}       the merchant's recent charges (detection input)
  users/{uid}/subscriptions/{key}         a detected subscription (the app reads it)
  users/{uid}/categoryOverrides/{key}     the customer's category for a merchant

One Firestore transaction per batch of bookings: it reads every item, month, override,
history and subscription the batch needs, books the batch in memory with
`fjordbank.domain.economy_booking`, and writes what changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1 import AsyncTransaction
from google.cloud.firestore_v1.async_document import AsyncDocumentReference

from fjordbank.adapters.firestore import (
    CATEGORY_OVERRIDES,
    ECONOMY,
    ECONOMY_ITEMS,
    MERCHANT_HISTORY,
    SUBSCRIPTIONS,
    async_transactional,
    fields_of,
    user_doc,
)
from fjordbank.domain import economy_booking
from fjordbank.domain.bookings import Booking
from fjordbank.domain.economy_booking import HISTORY, ITEM, MONTH, OVERRIDE, SUBSCRIPTION, Booked, DocKey

COLLECTIONS = {
    ITEM: ECONOMY_ITEMS,
    OVERRIDE: CATEGORY_OVERRIDES,
    MONTH: ECONOMY,
    HISTORY: MERCHANT_HISTORY,
    SUBSCRIPTION: SUBSCRIPTIONS,
}


@dataclass(frozen=True)
class Applied:
    changed_months: int
    subscriptions_written: int


class InsightsStore:
    def __init__(self, db: firestore.AsyncClient) -> None:
        self.db = db

    async def apply(self, bookings: list[Booking]) -> Applied:
        @async_transactional(operation="insights_apply")
        async def run(tx: AsyncTransaction) -> Applied:
            found = await self._read(tx, economy_booking.needed(bookings))
            booked = economy_booking.book(bookings, found)
            self._write(tx, booked)
            return Applied(len(booked.months), len(booked.subscriptions))

        return await run(self.db.transaction())

    def _ref(self, key: DocKey) -> AsyncDocumentReference:
        kind, uid, doc_id = key
        return user_doc(self.db, uid, COLLECTIONS[kind], doc_id)

    async def _read(self, tx: AsyncTransaction, keys: list[DocKey]) -> dict[DocKey, dict[str, Any]]:
        """The documents ``keys`` that exist."""
        refs = {key: self._ref(key) for key in keys}
        by_path = {ref.path: key for key, ref in refs.items()}
        found: dict[DocKey, dict[str, Any]] = {}
        if refs:
            async for snap in self.db.get_all(list(refs.values()), transaction=tx):
                if snap.exists:
                    found[by_path[snap.reference.path]] = fields_of(snap)
        return found

    def _write(self, tx: AsyncTransaction, booked: Booked) -> None:
        now = firestore.SERVER_TIMESTAMP
        for (uid, tx_id), item in booked.items.items():
            tx.set(self._ref((ITEM, uid, tx_id)), {**item, "updatedAt": now})
        for (uid, month), figures in booked.months.items():
            tx.set(self._ref((MONTH, uid, month)), {**figures, "updatedAt": now})
        for (uid, key), history in booked.histories.items():
            tx.set(self._ref((HISTORY, uid, key)), history)
        for (uid, key), subscription in booked.subscriptions.items():
            tx.set(self._ref((SUBSCRIPTION, uid, key)), {**subscription, "updatedAt": now})
        for uid, key in booked.unlisted:
            tx.delete(self._ref((SUBSCRIPTION, uid, key)))  # the pattern is broken: no longer listed
