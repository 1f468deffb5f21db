"""Booking a batch of bookings into "my economy" and the subscription list, free of I/O.

The insights service books each batch in one transaction (fjordbank.service_layer.economy):
it reads the customer documents the batch needs (`needed`), `book` decides from them what
to write, and the transaction writes it. Per booking:

* its item (what it adds to its month: `fjordbank.domain.economy.item_of`, in the
  customer's own category for the merchant or payee when there is one) replaces the item
  recorded for it before. The same item again changes nothing, so a redelivered or
  replayed booking is counted once (and a booking twice in one batch too: the second finds
  the first's item); a different one (the customer recategorised the merchant) moves its
  amount. Transfers between a customer's own accounts count nowhere.
* a charge out (not to the customer's own account) joins the merchant's history, and the
  history is searched for a subscription (`fjordbank.domain.subscriptions.detect`): one
  found is listed (a customer's "not a subscription" sticks), one no longer found is taken
  off the list.

Where a booking's item is recorded:

* a charge out: on its charge in the merchant's history (its ``category``; the month and
  amount are the charge's), which every charge reads and writes anyway: no document of its
  own. A history keeps its latest `subscriptions.HISTORY_LIMIT` charges; a charge it drops
  takes its item to a document (``kept``), and so does a charge booked before items moved
  onto histories (2026-12-02: such a charge has no ``category``, its item is a document);
* money in, and a card refund: a document per booking (``users/{uid}/economyItems/{txId}``).

Both `needed` and `book` take ``replays``, whether the batch may hold bookings booked before:

* without (the first attempt of every batch) no item and no month is read: a month is what
  the batch adds to each of its figures, all sums (written as increments, so the month is
  not read either). Money in creates its item (one booked before has it, so the create
  fails the commit and nothing of the attempt is written). A charge out is new unless its
  history has it: with the same item it changes nothing; with another (a recategorised
  merchant), or without a category, or when the charge may have been dropped by its
  history (its item a document: it sorts at or before the newest charge the history ever
  dropped, ``DROPPED_THROUGH``), `book` raises `NeedsReplay`, since that takes the item
  document or the month to settle;
* with (the batch again, after such a create failed or `NeedsReplay`) the items and their
  months are read: an item replaces the one recorded, and a month is written as it now is.
  The month is read here because a recategorisation can take a category's last amount
  away, and the month then lists the category no more (an increment would leave it at 0).

Documents are named by ``(kind, uid, id)`` (`DocKey`): the item by the booking's id, the
month by YYYY-MM, the override, history and subscription by the booking's key.

The merchant's history also says whether its subscription is listed and how
(``LISTED``: active, dismissed, or None), kept with the subscription document by every
writer of either (this module, the dismiss callable), and the customer's category for the
merchant (``CHOSEN``), kept with the override document by every writer of either (this
module, the recategorise callable, which writes both in one transaction and makes the
history if there is none yet), so that a charge reads one document per merchant and not
three. A history written before 2026-12-01 lacks ``LISTED``, one written before 2026-12-02
lacks ``CHOSEN``, and a merchant may have no history yet: `also_needed` names the
subscription and override documents to read for those. A history whose ``CHOSEN`` is None
says no more than one without it: the previous recategorise callable, still serving while
a deploy brings up the insights service first, keeps a choice on the override only (a
customer's choice is never taken back: None is never a choice made). Once the migration
that puts every earlier choice on its history is done (``choices_on_histories``:
`fjordbank.service_layer.migrations.ECONOMY_CHOICES`), a history without a category in
``CHOSEN``, or none, means no choice, and no override is read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from fjordbank.domain import economy, subscriptions
from fjordbank.domain.bookings import OUT, Booking

ITEM = "item"  # users/{uid}/economyItems/{txId}
OVERRIDE = "override"  # users/{uid}/categoryOverrides/{key}
MONTH = "month"  # users/{uid}/economy/{YYYY-MM}
HISTORY = "history"  # users/{uid}/merchantHistory/{key}
SUBSCRIPTION = "subscription"  # users/{uid}/subscriptions/{key}
DocKey = tuple[str, str, str]  # (kind, uid, id)
Found = Mapping[DocKey, dict[str, Any]]  # the documents read that exist

ACTIVE = "active"
DISMISSED = "dismissed"
LISTED = "subscriptionStatus"  # the history's copy of its subscription's status (None: not listed)
# The newest charge a history ever dropped, [date, txId] (None: none): a charge that sorts
# after it and is not in the history was never in it. Every history written since
# 2026-12-02 has the field; for one without, everything up to its oldest charge may have
# been dropped once it is full (so a customer paying one merchant more than HISTORY_LIMIT
# times a day no longer books each new charge of that day twice).
DROPPED_THROUGH = "droppedThrough"
# The customer's category for the merchant (its override document's, None: none chosen), as
# of the history's last write. Every history written since 2026-12-02 has the field; until
# the choices are on the histories (`also_needed`), None means none known to the history,
# not none chosen.
CHOSEN = "chosenCategory"
# Refunds booked before the charge they give back, {refund id: {purchase, amount, date}}
# (a map: Firestore takes no array inside an array), noted on the charge when it comes. A
# capture the card service published late (its outbox relay), or one handed back with a
# delay, comes after its refund; the refund was passed over, and two charges made twice by
# mistake and given back in full then counted as charges, which took the subscription off
# the list for years (found in review, 2026-12-06). The EARLY_REFUNDS_KEPT booked on the
# latest days are kept: one whose purchase never comes (it was dropped from the history
# long ago) gives way.
EARLY_REFUNDS = "earlyRefunds"
EARLY_REFUNDS_KEPT = 20


def counts(booking: Booking) -> bool:
    """Whether the booking is income or spending (not a transfer between own accounts)."""
    return not booking.own_transfer


def tracks_subscription(booking: Booking) -> bool:
    """A charge out: not a transfer between own accounts, nor a refund (whose item is a
    document, as money in's)."""
    return chooses_category(booking) and not booking.refund


def _refunds_a_charge(booking: Booking) -> bool:
    """A refund that names its purchase: noted on the purchase's charge in its history."""
    return chooses_category(booking) and booking.refund and booking.refund_of is not None


def chooses_category(booking: Booking) -> bool:
    """Spending, whose category is the customer's choice for its merchant when there is
    one: a charge out, and a refund (taken off the category its merchant is in now, so a
    redelivered refund after a recategorisation stays where the recategorisation moved it)."""
    return booking.direction == OUT and not booking.own_transfer


def needed(bookings: list[Booking], *, replays: bool) -> list[DocKey]:
    """The documents the batch reads first, each once: the merchants' histories of its
    spending, refunds included (each says the customer's category for its merchant) and, with ``replays``,
    the items and their months. Money in has no customer's category
    (fjordbank.domain.categories) and no history."""
    keys: dict[DocKey, None] = {}
    if replays:
        for b in filter(counts, bookings):
            keys.update(dict.fromkeys([(ITEM, b.uid, b.tx_id), (MONTH, b.uid, b.month)]))
    for b in filter(chooses_category, bookings):
        keys[(HISTORY, b.uid, b.key)] = None
    return list(keys)


def also_needed(bookings: list[Booking], found: Found, *, choices_on_histories: bool = False) -> list[DocKey]:
    """What the histories ``found`` do not say, to read as well: the override of a merchant
    whose history does not say the customer's category (``CHOSEN``: none yet, written
    before the field, or None), unless ``choices_on_histories`` (every choice is on its
    history), and the subscription of one written before it said how its subscription is
    listed (``LISTED``).

    A history whose ``CHOSEN`` was None counted as saying "none chosen": a deploy brings up
    this service before the recategorise callable, the previous callable keeps a choice made
    meanwhile on the override only, and this service wrote None on the merchant's history,
    so the choice was never read, before the migration or after (found in review,
    2026-12-07)."""
    keys = {(b.uid, b.key) for b in filter(chooses_category, bookings)}
    overrides = [
        (OVERRIDE, uid, key)
        for uid, key in sorted(keys)
        if not choices_on_histories and _said(found.get((HISTORY, uid, key))) is None
    ]
    # a refund of a purchase in the history rewrites it too (`_subscriptions`)
    tracked = {(b.uid, b.key) for b in bookings if tracks_subscription(b) or _refunds_a_charge(b)}
    listed = [
        (SUBSCRIPTION, uid, key)
        for uid, key in sorted(tracked)
        if LISTED not in found.get((HISTORY, uid, key), {LISTED: None})
    ]
    return overrides + listed


def _said(history: Mapping[str, Any] | None) -> str | None:
    """The category a history says was chosen (``CHOSEN``), None when it says none: the
    field missing or None (see `also_needed`)."""
    chosen = (history or {}).get(CHOSEN)
    return chosen if isinstance(chosen, str) else None


def chosen_category(found: Found, uid: str, key: str) -> str | None:
    """The customer's category for the merchant: the history's ``CHOSEN``, or for a history
    that says none (or none), the override document's when it was read (`also_needed`)."""
    said = _said(found.get((HISTORY, uid, key)))
    if said is not None:
        return said
    override = found.get((OVERRIDE, uid, key))
    return str(override["category"]) if override else None


def listed_status(found: Found, uid: str, key: str) -> str | None:
    """How the merchant's subscription is listed (active, dismissed, None: not listed): the
    history's ``LISTED``, or for a history from before it, its subscription document."""
    history = found.get((HISTORY, uid, key))
    if history is not None and LISTED in history:
        status = history[LISTED]
        return status if isinstance(status, str) else None
    previous = found.get((SUBSCRIPTION, uid, key))
    return str(previous.get("status", ACTIVE)) if previous is not None else None


class NeedsReplay(Exception):
    """A charge out that may have been booked before, which this attempt (no item, no month
    read) cannot settle: book the batch again with ``replays`` (see the module docstring)."""


@dataclass(frozen=True)
class Booked:
    """What a batch writes (timestamps are the writer's).

    With ``replays`` the items and months were read: an item replaces the one recorded and a
    month is the month as it now is. Without, every item is new (created: the commit fails
    if it was there) and a month is what the batch adds to each of its figures (income,
    spending per category, spent, savings, count: all sums, so they add up however many
    batches are written without reading the month)."""

    items: dict[tuple[str, str], dict[str, Any]]  # (uid, txId) -> its item document, new or changed
    months: dict[tuple[str, str], dict[str, Any]]  # (uid, YYYY-MM) -> the month (or its change), where an item changed
    histories: dict[tuple[str, str], dict[str, Any]]  # (uid, key) -> the merchant's charges
    subscriptions: dict[tuple[str, str], dict[str, Any]]  # (uid, key) -> a subscription found
    unlisted: list[tuple[str, str]]  # (uid, key): a listed subscription no longer found
    replays: bool  # the items and months were read (see above)
    kept: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # items a history dropped


def book(bookings: list[Booking], found: Found, *, replays: bool) -> Booked:
    """Apply the batch, in order, to the documents ``found`` (see the module docstring);
    without ``replays`` no item or month is taken from ``found``: the batch is booked as new
    (`NeedsReplay` for a charge out that may not be)."""
    counted = [b for b in bookings if counts(b)]
    economy_found = found if replays else _without_items_and_months(found)
    ledger = _Economy(economy_found, replays=replays)
    for b in counted:
        ledger.book(b)
    histories, listed, unlisted, kept = _subscriptions(
        [b for b in bookings if tracks_subscription(b)],
        found,
        ledger.on_history,
        refunds=[b for b in bookings if _refunds_a_charge(b)],
    )
    months = {m: ledger.months[m].to_dict() for m in ledger.touched}
    kept = {k: item for k, item in kept.items() if k not in ledger.items}
    return Booked(ledger.items, months, histories, listed, unlisted, replays, kept)


def _without_items_and_months(found: Found) -> Found:
    return {key: doc for key, doc in found.items() if key[0] not in (ITEM, MONTH)}


def _override(found: Found) -> Callable[[str, str], dict[str, str]]:
    """(uid, key) -> the customer's own category for the key, as categorise takes it."""

    def override(uid: str, key: str) -> dict[str, str]:
        chosen = chosen_category(found, uid, key)
        return {key: chosen} if chosen else {}

    return override


def _charges(found: Found, uid: str, key: str) -> list[subscriptions.Charge]:
    return [subscriptions.Charge.from_dict(c) for c in (found.get((HISTORY, uid, key)) or {}).get("charges", [])]


def _dropped_through(doc: Mapping[str, Any] | None, history: list[subscriptions.Charge]) -> tuple[str, str] | None:
    """The newest (date, txId) the history ``doc`` (its charges parsed: ``history``) ever
    dropped, or None (`DROPPED_THROUGH`)."""
    if doc is not None and DROPPED_THROUGH in doc:
        through = doc[DROPPED_THROUGH]
        return (str(through[0]), str(through[1])) if isinstance(through, list) and len(through) == 2 else None
    if len(history) < subscriptions.HISTORY_LIMIT:  # written before the field: never full, never dropped
        return None
    oldest = history[0]  # `subscriptions.add_charge` keeps the latest, oldest first
    return oldest.date.isoformat(), oldest.tx_id


def _maybe_dropped(booking: Booking, through: tuple[str, str] | None) -> bool:
    """Whether the history may have dropped the booking's charge (it sorts at or before the
    newest one it dropped)."""
    return through is not None and (booking.date, booking.tx_id) <= through


class _Economy:
    """The batch's items and months, booking by booking (`book` above)."""

    def __init__(self, found: Found, *, replays: bool) -> None:
        self.found = found
        self.replays = replays
        self.override = _override(found)
        self.months: dict[tuple[str, str], economy.Month] = {}
        self.touched: set[tuple[str, str]] = set()
        self.items: dict[tuple[str, str], dict[str, Any]] = {}  # item documents to write
        self.on_history: dict[tuple[str, str], str] = {}  # (uid, txId) -> category, kept on its charge
        self.seen: dict[tuple[str, str], tuple[economy.Item, bool]] = {}  # the batch's: (item, in a document)

    def book(self, b: Booking) -> None:
        mkey = (b.uid, b.month)
        if mkey not in self.months:
            doc = self.found.get((MONTH, *mkey))
            self.months[mkey] = economy.Month.from_dict(doc) if doc else economy.Month(b.month)
        new = economy.item_of(b, self.override(b.uid, b.key))
        if new is None:  # never for a booking that counts
            return
        old, in_document = self.recorded(b)
        if not self.replays and old is not None and old != new:
            raise NeedsReplay(f"{b.tx_id}: booked before as {old}")  # the month must be read to move it
        # A booking's date never changes, so its old item (if any) is in the same month.
        changed = economy.apply({b.month: self.months[mkey]}, old, new)
        if changed:
            self.touched.add(mkey)
        self.seen[(b.uid, b.tx_id)] = (new, in_document)
        if not in_document:
            self.on_history[(b.uid, b.tx_id)] = new.category
        elif changed:
            self.items[(b.uid, b.tx_id)] = {**new.to_dict(), "key": b.key, "accountId": b.account_id, "date": b.date}

    def recorded(self, b: Booking) -> tuple[economy.Item | None, bool]:
        """The item recorded for the booking (None: new) and whether it is (or, new, goes
        into) a document rather than onto the booking's charge in its merchant's history."""
        if (b.uid, b.tx_id) in self.seen:
            return self.seen[(b.uid, b.tx_id)]
        doc = self.found.get((ITEM, b.uid, b.tx_id))  # only ever found with replays
        if not tracks_subscription(b):  # money in: its item is a document
            return (economy.Item.from_dict(doc) if doc else None), True
        history = _charges(self.found, b.uid, b.key)
        through = _dropped_through(self.found.get((HISTORY, b.uid, b.key)), history)
        charge = next((c for c in history if c.tx_id == b.tx_id), None)
        if charge is not None and charge.category is not None:
            return economy.Item(b.month, b.direction, charge.category, charge.amount), False
        if doc is not None:  # booked before items moved onto histories, or dropped by its history
            return economy.Item.from_dict(doc), True
        if not self.replays and (charge is not None or _maybe_dropped(b, through)):
            raise NeedsReplay(f"{b.tx_id}: its item may be a document")
        return None, False


def _subscriptions(
    tracked: list[Booking], found: Found, on_history: dict[tuple[str, str], str], *, refunds: Sequence[Booking] = ()
) -> tuple[
    dict[tuple[str, str], dict[str, Any]],
    dict[tuple[str, str], dict[str, Any]],
    list[tuple[str, str]],
    dict[tuple[str, str], dict[str, Any]],
]:
    """The merchants' histories with the batch's charges (each with its category where the
    history keeps its item: ``on_history``), the subscriptions found in them, the listed
    ones no longer found, and the items of the charges the histories dropped."""
    override = _override(found)
    charged: dict[tuple[str, str], tuple[Booking, list[subscriptions.Charge]]] = {}
    through: dict[tuple[str, str], tuple[str, str] | None] = {}
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    early: dict[tuple[str, str], list[_Early]] = {}  # EARLY_REFUNDS, per history
    for b in tracked:
        hkey = (b.uid, b.key)
        if hkey not in charged:
            history = _charges(found, *hkey)
            through[hkey] = _dropped_through(found.get((HISTORY, *hkey)), history)
        else:
            history = charged[hkey][1]
        category = on_history.get((b.uid, b.tx_id))
        charge = subscriptions.Charge(b.tx_id, dt.date.fromisoformat(b.date), b.amount, category)
        waiting = early.setdefault(hkey, _early_refunds(found, hkey))
        for entry in [e for e in waiting if e.purchase == b.tx_id]:
            charge = charge.with_refund(entry.refund, entry.amount)  # its refund came first
            waiting.remove(entry)
        after = subscriptions.add_charge(history, charge)
        kept |= {(b.uid, tx): item for tx, item in _dropped_items(b.key, [*history, charge], after).items()}
        through[hkey] = _newest_dropped(through[hkey], [*history, charge], after)
        charged[hkey] = (b, after)
    for b in refunds:  # noted on the purchase's charge; kept for it when it has not come
        hkey = (b.uid, b.key)
        history = charged[hkey][1] if hkey in charged else _charges(found, *hkey)
        purchase = next((c for c in history if c.tx_id == b.refund_of), None)
        waiting = early.setdefault(hkey, _early_refunds(found, hkey))
        if purchase is None and b.refund_of is not None:
            entry = _Early(date=b.date, refund=b.tx_id, purchase=b.refund_of, amount=b.amount)
            if entry in waiting:
                continue
            waiting[:] = sorted([*[e for e in waiting if e.refund != b.tx_id], entry])[-EARLY_REFUNDS_KEPT:]
            noted_history = history
        elif purchase is None or (b.tx_id, b.amount) in purchase.refunds:
            continue
        else:
            noted = purchase.with_refund(b.tx_id, b.amount)
            noted_history = [noted if c is purchase else c for c in history]
        if hkey not in charged:
            through[hkey] = _dropped_through(found.get((HISTORY, *hkey)), history)
        charged[hkey] = (charged[hkey][0] if hkey in charged else b, noted_history)
    histories: dict[tuple[str, str], dict[str, Any]] = {}
    listed: dict[tuple[str, str], dict[str, Any]] = {}
    unlisted: list[tuple[str, str]] = []
    for (uid, key), (b, history) in charged.items():
        detected = subscriptions.detect(history)
        status = listed_status(found, uid, key)
        if detected is not None:
            category = economy.category_of(b, override(uid, key))
            listed[(uid, key)] = subscription_doc(b, detected, category, status)
            status = listed[(uid, key)]["status"]
        elif status is not None and status != DISMISSED:
            unlisted.append((uid, key))  # the pattern is broken: no longer listed
            status = None
        histories[(uid, key)] = {
            "key": key,
            "name": b.display_name,
            "charges": [c.to_dict() for c in history],
            LISTED: status,
            DROPPED_THROUGH: list(dropped) if (dropped := through[(uid, key)]) is not None else None,
            CHOSEN: chosen_category(found, uid, key),
            EARLY_REFUNDS: {
                e.refund: {"purchase": e.purchase, "amount": e.amount, "date": e.date}
                for e in early.get((uid, key), _early_refunds(found, (uid, key)))
            },
        }
    return histories, listed, unlisted, kept


class _Early(NamedTuple):
    """A refund waiting on its history for its charge; ordered by the day it was booked."""

    date: str
    refund: str
    purchase: str
    amount: int


def _early_refunds(found: Found, hkey: tuple[str, str]) -> list[_Early]:
    """A history's refunds waiting for their charges (`EARLY_REFUNDS`), as read, oldest first."""
    kept = (found.get((HISTORY, *hkey)) or {}).get(EARLY_REFUNDS)
    if not isinstance(kept, dict):
        return []
    return sorted(
        _Early(date=e["date"], refund=str(refund), purchase=e["purchase"], amount=e["amount"])
        for refund, e in kept.items()
        if isinstance(e, dict)
        and isinstance(e.get("purchase"), str)
        and type(e.get("amount")) is int
        and isinstance(e.get("date"), str)
    )


def _newest_dropped(
    through: tuple[str, str] | None, before: list[subscriptions.Charge], after: list[subscriptions.Charge]
) -> tuple[str, str] | None:
    """``through`` moved on to the newest charge of ``before`` that ``after`` dropped."""
    kept_ids = {c.tx_id for c in after}
    dropped = [(c.date.isoformat(), c.tx_id) for c in before if c.tx_id not in kept_ids]
    return max([*dropped, *([through] if through is not None else [])], default=None)


def _dropped_items(
    key: str, before: list[subscriptions.Charge], after: list[subscriptions.Charge]
) -> dict[str, dict[str, Any]]:
    """txId -> the item document of each charge with an item that the history dropped."""
    kept_ids = {c.tx_id for c in after}
    out: dict[str, dict[str, Any]] = {}
    for c in before:
        if c.tx_id not in kept_ids and c.category is not None:
            item = economy.Item(c.month, OUT, c.category, c.amount)
            out[c.tx_id] = {**item.to_dict(), "key": key, "date": c.date.isoformat()}
    return out


def subscription_doc(
    booking: Booking, found: subscriptions.Subscription, category: str, status: str | None
) -> dict[str, Any]:
    return {
        "key": booking.key,
        "merchantName": booking.display_name,
        "kind": booking.kind,
        "category": category,
        **found.to_dict(),
        # a customer's "not a subscription" sticks however many charges follow
        "status": status or ACTIVE,
    }
