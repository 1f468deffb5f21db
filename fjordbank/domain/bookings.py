"""Bookings: what a customer sees as one transaction on one account, free of I/O.

"My economy" and subscription detection read the same thing from three kinds of event, a
completed payment (``payments.completed``), a captured card purchase (``cards.captured``)
and a merchant's refund of one (``cards.refunded``), and from the ledger's own records when they are recomputed. This
module turns each of those into `Booking`s, so the incremental path and the
recomputation can never disagree on what a transaction is.

A booking's date is the day it belongs to in Norway: a payment's due date (the day the
customer asked for; today for an immediate payment) and a card purchase's day of
authorisation, both in Europe/Oslo; a refund's day is the day it was refunded.

A refund is spending given back, not income: a booking out with ``refund`` set, whose item
takes its amount off its merchant's category in the refund's month: the customer's choice
for the merchant, else ``category`` (the purchase's feed entry's label when refunded). It is
no charge: subscriptions never see it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from fjordbank.domain.categories import override_key
from fjordbank.domain.norway import mask_account_number
from fjordbank.domain.payments import INCOMING, PaymentEvent
from fjordbank.topology import CREDITED

CARD = "card"
PAYMENT = "payment"
IN = "in"
OUT = "out"


@dataclass(frozen=True)
class Booking:
    uid: str
    tx_id: str  # the feed entry's id: payment id or card authorisation id
    account_id: str
    date: str  # YYYY-MM-DD, Europe/Oslo
    amount: int  # øre, positive; ``direction`` says which way
    direction: str  # in | out
    kind: str  # card | payment
    merchant_name: str | None = None
    mcc: str | None = None
    counterparty_account: str | None = None
    kid: str | None = None
    own_transfer: bool = False  # between the customer's own accounts: neither income nor spending
    refund: bool = False  # a card refund: spending given back (its item's amount is negative)
    category: str | None = None  # a refund's: the purchase's label when it was refunded
    refund_of: str | None = None  # a refund's: the purchase's id (its charge in the merchant's history)

    @property
    def month(self) -> str:
        return self.date[:7]

    @property
    def key(self) -> str:
        """The merchant (card) or payee (payment) this booking is with: where a customer's
        choice of category is kept, and what subscriptions are detected per."""
        return override_key(
            kind=self.kind, merchant_name=self.merchant_name, counterparty_account=self.counterparty_account
        )

    @property
    def display_name(self) -> str:
        if self.kind == CARD:
            return (self.merchant_name or "Card purchase").strip()[:80]
        return f"Payment to {mask_account_number(self.counterparty_account or '')}"


def from_payment(event: PaymentEvent, *, payee_uid: str | None) -> list[Booking]:
    """The bookings of a completed payment: the payer's, and the payee's when the payee is
    a Fjordbank customer (``payee_uid``, from the to-account's owner)."""
    if event.status != "completed":
        return []
    p = event.payment
    payer = Booking(
        uid=p.uid,
        tx_id=p.payment_id,
        account_id=p.from_account,
        date=p.booking_date,
        amount=p.amount,
        direction=OUT,
        kind=PAYMENT,
        counterparty_account=p.to_account,
        kid=p.kid,
        own_transfer=payee_uid == p.uid,
    )
    # the same transaction seen from the payee's side: everything else is shared
    payee = replace(payer, account_id=p.to_account, direction=IN, counterparty_account=p.from_account)
    if p.kind == INCOMING:  # from another bank: money in for the payee (``p.uid``) only
        return [replace(payee, own_transfer=False)]
    bookings = [payer]
    if p.kind == "internal" and payee_uid:
        bookings.append(replace(payee, uid=payee_uid))
    return bookings


def for_partition(event: PaymentEvent, *, payee_uid: str | None) -> list[Booking]:
    """The bookings the partition ``event`` was routed to applies: a completed payment's
    payer's side (the payer's partition), a credited internal payment's payee's side (the
    payee's partition, topology.CREDITED). So each customer's economy is written from its
    own account's partition only."""
    if event.status == CREDITED:
        completed = replace(event, status="completed")
        return [b for b in from_payment(completed, payee_uid=payee_uid) if b.direction == IN]
    if event.payment.kind == INCOMING:  # routed by the payee's account: its side is this partition's
        return from_payment(event, payee_uid=None)
    return [b for b in from_payment(event, payee_uid=payee_uid) if b.direction == OUT]


def from_card_capture(event: dict[str, Any]) -> list[Booking]:
    """The booking of a captured card purchase (the card service's ``cards.captured``, the
    wire form of a `fjordbank.domain.events.CardAuthorization`), by the authorisation's id."""
    return _card_booking(event, "captured", "auth_id")


def from_card_refund(event: dict[str, Any]) -> list[Booking]:
    """The booking of a merchant's refund (the card service's ``cards.refunded``, the wire
    form of a `fjordbank.domain.events.CardRefunded`), by the refund's id."""
    return _card_booking(
        event,
        "refunded",
        "refund_id",
        refund=True,
        category=event.get("category") or None,
        refund_of=str(event["auth_id"]) if event.get("auth_id") else None,
    )


def _card_booking(event: dict[str, Any], status: str, id_field: str, **more: Any) -> list[Booking]:
    """A card event's booking out (none for an event of another status, or without its
    customer, account, day, id or a positive whole amount)."""
    amount = event.get("amount")
    if (
        event.get("status") != status
        or not event.get("uid")
        or not event.get(id_field)
        or not event.get("account_id")
        or not event.get("day")
        or type(amount) is not int
        or amount <= 0
    ):
        return []
    return [
        Booking(
            uid=event["uid"],
            tx_id=str(event[id_field]),
            account_id=event["account_id"],
            date=event["day"],
            amount=amount,
            direction=OUT,
            kind=CARD,
            merchant_name=event.get("merchant_name"),
            mcc=event.get("mcc"),
            **more,
        )
    ]
