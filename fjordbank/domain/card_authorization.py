"""The card authorisation decision, free of I/O: from what the card service's transaction
read to everything it writes.

The transaction (fjordbank.service_layer.card_ledger) reads the authorisation record of the
processor's reference, the card and the card's spend of the day; the account only for a
request the card itself allows (`check_card`: a declined card reads no more). Then:

* a reference seen before gets the answer it got (`answer_again`): the same request the
  same decision, whatever happened to it since; a different request with a used reference
  is declined, and nothing is stored;
* a new request is decided (`authorize`): on the card (status, expiry, CVV, limits), then
  on the funds (the hold on the account, `fjordbank.domain.ledger.Book`). The result is the
  record to store, the hold (approved only), the card's spend of the day, and whether the
  card is frozen: guessing an expiry or CVV takes many tries, so they are counted per card
  and day, and at the limit the card is frozen (the customer unfreezes it in the app).

`feed_entry` is the app's feed entry for a card purchase as the authorisation writes it
(pending, labelled with the customer's category for the merchant); `feed_fields` is what a
capture or release (posted, cancelled) merges into it: everything but the category, which
the entry keeps as labelled, or as the customer's recategorisation relabelled it since.
Until 2026-12-02 the capture and the release read the customer's choice again to write the
whole entry: one read of every card payment's 23 documents.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from fjordbank.domain.cards import (
    CHECK_FAILURES,
    FROZEN,
    HOLD_DAYS,
    MAX_FAILED_CHECKS,
    AuthorizationRequest,
    CardState,
    Spend,
    decide,
)
from fjordbank.domain.categories import categorise, override_key
from fjordbank.domain.ledger import Account, Book, Declined

# The states an authorisation's record is in (approved or declined when answered; captured,
# reversed or expired since: fjordbank.domain.card_settlement, which refuses what a state
# does not allow with ``authorization_<state>``, each a catalogued reason)
RECORD_STATUSES = ("approved", "declined", "captured", "reversed", "expired")
NOT_ANSWERED = "not_answered_in_time"  # an approval the card service released: its answer was not taken

# The card's ``frozenReason`` when failed checks froze it (a card's state, not a decline)
FROZEN_FOR_FAILED_CHECKS = "too_many_failed_checks"


@dataclass(frozen=True)
class Attempt:
    """One authorisation request as the card service has it: the processor's request, the
    card its number belongs to (None: no card of ours), and when it came."""

    request: AuthorizationRequest
    auth_id: str  # fjordbank.domain.cards.authorization_id of the request's reference
    card_id: str | None
    day: str  # the purchase's date in Norway: the day its spend counts for, its booking date
    now: dt.datetime
    cvv_ok: bool | None  # None: the request carried no CVV
    hold_days: int = HOLD_DAYS

    @property
    def fingerprint(self) -> str:
        return self.request.fingerprint(self.card_id)


@dataclass(frozen=True)
class Answer:
    """What a request whose reference has a record already is answered."""

    status: str  # approved | declined
    reason: str | None
    record: dict[str, Any]  # the stored record ({}: none of this request's)
    replayed: bool


def answer_again(attempt: Attempt, previous: dict[str, Any]) -> Answer:
    """The answer to a request whose reference has the record ``previous``."""
    if previous.get("fingerprint") is None:  # the processor reversed it before it arrived
        return Answer("declined", "reversed_before_authorization", previous, replayed=True)
    if previous.get("fingerprint") == attempt.fingerprint:
        # the same request again gets the same decision, whatever happened to the
        # authorisation since (captured, reversed, expired); but an approval released
        # because its answer was not taken (card_settlement.NOT_ANSWERED) holds nothing,
        # and answered "approved" now, the merchant would capture what is not held
        released = previous["status"] == "reversed" and previous.get("reason") == NOT_ANSWERED
        decision = "declined" if previous["status"] == "declined" or released else "approved"
        return Answer(decision, previous.get("reason"), previous, replayed=True)
    return Answer("declined", "duplicate_reference", {}, replayed=False)  # not stored: the reference is taken


def check_card(attempt: Attempt, card: dict[str, Any] | None, spend: dict[str, Any]) -> str | None:
    """The decline reason decided on the card alone (unknown, status, expiry, CVV, limits),
    or None: the card may be used, and the funds decide (`authorize`)."""
    if card is None:
        return "unknown_card"
    return decide(
        CardState.from_doc(card),
        attempt.request,
        Spend.from_dict(spend),
        today=dt.date.fromisoformat(attempt.day),  # the purchase's day in Norway, not in UTC
        cvv_ok=attempt.cvv_ok,
    )


@dataclass(frozen=True)
class Authorization:
    """A new request decided: everything its transaction writes."""

    status: str  # approved | declined
    reason: str | None  # why declined
    record: dict[str, Any]  # cardAuthorizations/{authId}, with the status and reason
    book: Book | None = None  # the hold on the account: an approval only
    spend: dict[str, Any] | None = None  # cardSpend/{cardId}_{day} as it is now (None: unchanged)
    card_update: dict[str, Any] | None = None  # the card's fields to change (frozen), or None


def authorize(
    attempt: Attempt, card: dict[str, Any] | None, spend: dict[str, Any], account: Account | None
) -> Authorization:
    """Decide a request whose reference is new. ``spend``: the card's spend document of the
    day ({} for none); ``account``: the card's account, read when `check_card` allowed the
    request (None: the account is gone, or it was not read)."""
    record = new_record(attempt, card)
    reason = check_card(attempt, card, spend)
    book = None
    if reason is None and card is not None:
        reason, book = _hold(attempt, card, account)
    status = "declined" if reason else "approved"
    record.update(status=status, reason=reason)
    if reason in CHECK_FAILURES:
        failed = int(spend.get("failedChecks", 0)) + 1
        counted = {**spend, "cardId": attempt.card_id, "day": attempt.day, "failedChecks": failed}
        frozen = _frozen(attempt) if failed >= MAX_FAILED_CHECKS else None
        return Authorization(status, reason, record, spend=counted, card_update=frozen)
    if book is None:
        return Authorization(status, reason, record)
    record["hold"] = book.holds[attempt.auth_id].to_dict()  # kept on the record, not in a document of its own
    spent = Spend.from_dict(spend)
    spent.add(attempt.request)
    day_spend = {**spend, **spent.to_dict(), "cardId": attempt.card_id, "day": attempt.day}
    return Authorization(status, reason, record, book=book, spend=day_spend)


def new_record(attempt: Attempt, card: dict[str, Any] | None) -> dict[str, Any]:
    """The authorisation record of a new request, before its decision (never a PAN or CVV)."""
    card = card or {}
    return {
        "authId": attempt.auth_id,
        "fingerprint": attempt.fingerprint,
        **attempt.request.public(),
        "cardId": attempt.card_id,
        "ownerUid": card.get("ownerUid"),
        "accountId": card.get("accountId"),
        "last4": card.get("last4"),
        "spendDay": attempt.day,
        "createdAt": attempt.now,
        "updatedAt": attempt.now,
    }


def _hold(attempt: Attempt, card: dict[str, Any], account: Account | None) -> tuple[str | None, Book | None]:
    """(decline reason, None), or (None, the book with the hold placed on the account)."""
    if account is None:
        return "account_closed", None
    book = Book({account.account_id: account}, holds={})
    req = attempt.request
    try:
        book.hold(
            hold_id=attempt.auth_id,
            payer_uid=card["ownerUid"],
            account_id=card["accountId"],
            amount=req.amount,
            currency=req.currency,
            expires_at=(attempt.now + dt.timedelta(days=attempt.hold_days)).isoformat(),
            kind="card",
        )
    except Declined as exc:
        return exc.code, None
    return None, book


def _frozen(attempt: Attempt) -> dict[str, Any]:
    return {"status": FROZEN, "frozenReason": FROZEN_FOR_FAILED_CHECKS, "updatedAt": attempt.now}


def feed_entry(
    record: dict[str, Any], status: str, amount: int, choice: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The account's feed entry (``accounts/{id}/transactions/{authId}``) for the purchase
    in ``status`` (pending, posted, cancelled) with ``amount`` (øre, negative: money out).
    ``choice``: the customer's own category for the merchant (its override document).
    None when the authorisation has no account (an unknown card)."""
    entry = feed_fields(record, status, amount)
    if entry is None:
        return None
    key = entry["merchantKey"]
    overrides = {key: choice["category"]} if choice and choice.get("category") else None
    category = categorise(
        direction="out",
        kind="card",
        mcc=record.get("mcc"),
        merchant_name=record.get("merchantName"),
        overrides=overrides,
    )
    return {**entry, "category": category}


def feed_fields(record: dict[str, Any], status: str, amount: int) -> dict[str, Any] | None:
    """The feed entry without its ``category``: what a capture or release merges into the
    entry the authorisation wrote (its category stays as labelled then, or as the
    customer's recategorisation relabelled it since: fjordbank.service_layer.insights), so
    neither reads the customer's choice again. None when the authorisation has no account."""
    if not record.get("accountId"):
        return None
    key = override_key(kind="card", merchant_name=record.get("merchantName"), counterparty_account=None)
    return {
        "authorizationId": record["authId"],
        "kind": "card",
        "amount": amount,
        "currency": record.get("currency", "NOK"),
        "direction": "out",
        "status": status,
        "merchantName": record.get("merchantName"),
        "mcc": record.get("mcc"),
        "merchantCountry": record.get("merchantCountry"),
        "merchantKey": key,
        "date": record.get("spendDay"),
        "bookedAt": record.get("createdAt"),
        "cardId": record.get("cardId"),
        "cardLast4": record.get("last4"),
        "createdAt": record.get("createdAt"),
    }
