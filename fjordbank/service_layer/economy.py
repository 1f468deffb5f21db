""" "My economy" and subscriptions, kept from what is booked (the insights service's use case).

  users/{uid}/economy/{YYYY-MM}           income, spending per category, savings (the app reads it)
  users/{uid}/economyItems/{txId}         what one booking contributes, so a redelivery
                                          changes nothing and a recategorisation moves it
  users/{uid}/merchantHistory/{key}       the merchant's recent charges (detection input)
  users/{uid}/subscriptions/{key}         a detected subscription (the app reads it)
  users/{uid}/categoryOverrides/{key}     the customer's category for a merchant

Events become bookings (`fjordbank.domain.bookings`: a payment's payer side, an internal
payment's payee side in the payee's partition, a card capture). One unit of work per batch
of bookings (operation ``insights_apply``) reads every item, month, override, history and
subscription the batch needs in one read, books the batch in memory with
`fjordbank.domain.economy_booking`, and writes what changed. Applying a booking twice
changes nothing, so redeliveries and replays are harmless.

The customer's own corrections (recategorise, dismiss) are the callables of
`fjordbank.service_layer.insights`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fjordbank.adapters.firestore import (
    CATEGORY_OVERRIDES,
    ECONOMY,
    ECONOMY_ITEMS,
    MERCHANT_HISTORY,
    SUBSCRIPTIONS,
    USERS,
)
from fjordbank.domain import bookings, economy_booking
from fjordbank.domain.bookings import Booking
from fjordbank.domain.economy_booking import HISTORY, ITEM, MONTH, OVERRIDE, SUBSCRIPTION, Booked, DocKey
from fjordbank.domain.payments import INTERNAL, PaymentEvent
from fjordbank.service_layer.owners import Owners
from fjordbank.service_layer.ports import SERVER_TIME, AsyncDocuments, AsyncUnitOfWork

OPERATION = "insights_apply"  # the unit of work's name in the attempt metrics (spelled out at the call)

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


def path_of(key: DocKey) -> str:
    """``users/{uid}/{collection}/{id}`` of a document the booking reads or writes."""
    kind, uid, doc_id = key
    return f"{USERS}/{uid}/{COLLECTIONS[kind]}/{doc_id}"


async def payment_bookings(owners: Owners, events: list[PaymentEvent]) -> list[Booking]:
    """The bookings of payment events, in this partition: the payer's side, and an internal
    payment's payee's (whose owner is read outside any unit of work, once per process)."""
    internal = {e.payment.to_account for e in events if e.payment.kind == INTERNAL}
    payees = await owners.of(sorted(internal)) if internal else {}
    return [b for e in events for b in bookings.for_partition(e, payee_uid=payees.get(e.payment.to_account))]


def card_bookings(captures: Iterable[dict[str, Any]]) -> list[Booking]:
    """The bookings of card captures (each event as its contract's wire form)."""
    return [b for capture in captures for b in bookings.from_card_capture(capture)]


async def apply_bookings(docs: AsyncDocuments, booked: list[Booking]) -> Applied:
    """Book ``booked`` in order, in one unit of work (see the module docstring)."""

    async def run(uow: AsyncUnitOfWork) -> Applied:
        found = await _read(uow, economy_booking.needed(booked))
        result = economy_booking.book(booked, found)
        _write(uow, result)
        return Applied(len(result.months), len(result.subscriptions))

    return await docs.transact(run, operation="insights_apply")


async def _read(uow: AsyncUnitOfWork, keys: list[DocKey]) -> dict[DocKey, dict[str, Any]]:
    """The documents ``keys`` that exist (no read at all when there are none)."""
    if not keys:
        return {}
    paths = {path_of(key): key for key in keys}
    found = await uow.get_many(list(paths))
    return {key: doc.data for path, key in paths.items() if (doc := found.get(path)) is not None}


def _write(uow: AsyncUnitOfWork, booked: Booked) -> None:
    for (uid, tx_id), item in booked.items.items():
        uow.set(path_of((ITEM, uid, tx_id)), {**item, "updatedAt": SERVER_TIME})
    for (uid, month), figures in booked.months.items():
        uow.set(path_of((MONTH, uid, month)), {**figures, "updatedAt": SERVER_TIME})
    for (uid, key), history in booked.histories.items():
        uow.set(path_of((HISTORY, uid, key)), history)
    for (uid, key), subscription in booked.subscriptions.items():
        uow.set(path_of((SUBSCRIPTION, uid, key)), {**subscription, "updatedAt": SERVER_TIME})
    for uid, key in booked.unlisted:
        uow.delete(path_of((SUBSCRIPTION, uid, key)))  # the pattern is broken: no longer listed
