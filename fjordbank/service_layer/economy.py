""" "My economy" and subscriptions, kept from what is booked (the insights service's use case).

  users/{uid}/economy/{YYYY-MM}           income, spending per category, savings (the app reads it)
  users/{uid}/economyItems/{txId}         what one booking of money in contributes, so a
                                          redelivery changes nothing (and a charge out's,
                                          once its history dropped it, or booked before
                                          2026-12-02), so a recategorisation moves it
  users/{uid}/merchantHistory/{key}       the merchant's recent charges (detection input),
                                          each with its category: a charge's item; and
                                          the customer's category for the merchant
  users/{uid}/subscriptions/{key}         a detected subscription (the app reads it)
  users/{uid}/categoryOverrides/{key}     the customer's category for a merchant

Events become bookings (`fjordbank.domain.bookings`: a payment's payer side, an internal
payment's payee side in the payee's partition, a card capture). One unit of work per batch
of bookings (operation ``insights_apply``) reads what the batch needs in one read, books
the batch in memory with `fjordbank.domain.economy_booking`, and writes what changed in
one commit. Applying a booking twice changes nothing, so redeliveries and replays are
harmless:

* first it reads only the merchants' histories of the charges out (each says the
  customer's category for its merchant, `fjordbank.domain.economy_booking.CHOSEN`, and how
  its subscription is listed, `LISTED`, and keeps its charges' items): no override, no
  item, no month and no subscription. Only for a merchant without a history yet, or with
  one written before those fields, is its override (or subscription) read as well, in a
  second read of the same unit of work. Every booking is taken as
  new, and its month gets the batch's sums as increments (``set`` with ``merge``, so the
  month is written without being read; a month the batch starts has all its figures, and
  its ``spending`` once a category has some). Money in creates its item: one booked before
  has it, so its create fails the commit (AlreadyExists): nothing of that attempt is
  written, and no month counts it twice. A charge out booked before is in its history
  (the same item: nothing to do), or may have an item document
  (`fjordbank.domain.economy_booking.NeedsReplay`: nothing is written);
* then, only after such a failure (a redelivery, a replay), the batch is booked again in
  a new unit of work reading the items and their months too: an item that is there and the
  same changes nothing, a different one (a recategorised merchant) is replaced and its
  amount moved, and each changed month is written whole.

So a fresh batch of known merchants costs one read (the histories) and one commit; a
batch with a booking booked before costs that attempt's read and failed commit more, then
one read of all the batch needs (items and months too) and one commit.

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
from fjordbank.domain.economy_booking import (
    HISTORY,
    ITEM,
    MONTH,
    OVERRIDE,
    SUBSCRIPTION,
    Booked,
    DocKey,
    NeedsReplay,
)
from fjordbank.domain.payments import INTERNAL, PaymentEvent, told_owners
from fjordbank.service_layer.owners import Owners
from fjordbank.service_layer.ports import SERVER_TIME, AlreadyExists, AsyncDocuments, AsyncUnitOfWork, Increment

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
    payees = await owners.of(sorted(internal), told=told_owners(events)) if internal else {}
    return [b for e in events for b in bookings.for_partition(e, payee_uid=payees.get(e.payment.to_account))]


def card_bookings(events: Iterable[dict[str, Any]]) -> list[Booking]:
    """The bookings of card captures and refunds (each event as its contract's wire form)."""
    return [
        b
        for event in events
        for b in (
            bookings.from_card_refund(event) if event.get("status") == "refunded" else bookings.from_card_capture(event)
        )
    ]


async def apply_bookings(docs: AsyncDocuments, booked: list[Booking], *, choices_on_histories: bool = False) -> Applied:
    """Book ``booked`` in order: as new bookings, reading no item nor month, and only if one
    was booked before (its item's create failed the commit) again reading them (see the
    module docstring). ``choices_on_histories``: every customer's category choice is on its
    merchant's history (fjordbank.service_layer.migrations.ECONOMY_CHOICES is done), so no
    override is read."""
    try:
        return await _apply(docs, booked, replays=False, choices_on_histories=choices_on_histories)
    except (AlreadyExists, NeedsReplay):
        return await _apply(docs, booked, replays=True, choices_on_histories=choices_on_histories)


async def _apply(
    docs: AsyncDocuments, booked: list[Booking], *, replays: bool, choices_on_histories: bool = False
) -> Applied:
    """One unit of work: read, book, write (``replays``: read the items and months)."""

    async def run(uow: AsyncUnitOfWork) -> Applied:
        found = await _read(uow, economy_booking.needed(booked, replays=replays))
        # none once every history says its choice and its listing
        found |= await _read(uow, economy_booking.also_needed(booked, found, choices_on_histories=choices_on_histories))
        result = economy_booking.book(booked, found, replays=replays)
        _write(uow, result)
        return Applied(len(result.months), len(result.subscriptions))

    return await docs.transact(run, operation="insights_apply")


def added(change: dict[str, Any]) -> dict[str, Any]:
    """A month's change (`economy.Month.to_dict` of what a batch adds) as increments of its
    figures, merged into the month. A category the batch adds nothing to is left out, and so
    is an empty ``spending``: an empty map merged would replace the month's categories on
    Firestore (the in-memory fake would keep them)."""
    spending = {category: Increment(amount) for category, amount in change["spending"].items() if amount}
    return {
        "month": change["month"],
        **{name: Increment(change[name]) for name in ("income", "spent", "savings", "count")},
        **({"spending": spending} if spending else {}),
    }


async def _read(uow: AsyncUnitOfWork, keys: list[DocKey]) -> dict[DocKey, dict[str, Any]]:
    """The documents ``keys`` that exist (no read at all when there are none)."""
    if not keys:
        return {}
    paths = {path_of(key): key for key in keys}
    found = await uow.get_many(list(paths))
    return {key: doc.data for path, key in paths.items() if (doc := found.get(path)) is not None}


def _write(uow: AsyncUnitOfWork, booked: Booked) -> None:
    write_item = uow.set if booked.replays else uow.create  # new: the commit fails if it is there
    for (uid, tx_id), item in booked.items.items():
        write_item(path_of((ITEM, uid, tx_id)), {**item, "updatedAt": SERVER_TIME})
    for (uid, month), figures in booked.months.items():
        if booked.replays:  # the month as it now is
            uow.set(path_of((MONTH, uid, month)), {**figures, "updatedAt": SERVER_TIME})
        else:  # what the batch adds to it
            uow.set(path_of((MONTH, uid, month)), {**added(figures), "updatedAt": SERVER_TIME}, merge=True)
    for (uid, tx_id), item in booked.kept.items():  # a charge its history dropped: its item
        uow.set(path_of((ITEM, uid, tx_id)), {**item, "updatedAt": SERVER_TIME})
    for (uid, key), history in booked.histories.items():
        uow.set(path_of((HISTORY, uid, key)), history)
    for (uid, key), subscription in booked.subscriptions.items():
        uow.set(path_of((SUBSCRIPTION, uid, key)), {**subscription, "updatedAt": SERVER_TIME})
    for uid, key in booked.unlisted:
        uow.delete(path_of((SUBSCRIPTION, uid, key)))  # the pattern is broken: no longer listed
