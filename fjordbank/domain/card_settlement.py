"""What becomes of a card authorisation after its decision, free of I/O: it is captured,
reversed or expired.

The card service's transaction (fjordbank.service_layer.card_ledger) reads the
authorisation record, which keeps its hold (``hold``, like an external payment's ledger
record; an authorisation approved before 2026-12-02 keeps it in the holds collection), and
with a hold (`Held`) a Book over the hold's account
(and the card scheme's shard, for a capture) and the card's spend of the authorisation's
day; not the customer's category for the merchant, since the feed entry keeps the label
the authorisation gave it (`Settlement.feed` is merged into it). Then:

* `capture`: the processor settles the purchase, all of it or less. The hold is consumed
  whole; what a partial capture leaves is given back to the day's spend. The same capture
  again (its capture reference) is answered as before and changes nothing; another capture
  of a captured authorisation is refused. A capture after the hold expired (hotels, car
  rental) is posted anyway, from the available balance, and flagged ``lateCapture``: the
  scheme settles it whatever our hold did. Either way a capture is at most the authorised
  amount (``invalid_capture``): the expiry gave the hold back, not a blank cheque.
* `refund`: the merchant gives money back for a captured purchase (a returned item, a
  cancelled booking): the processor's refund of the authorisation, under a reference of
  its own. Posted from the card scheme's shard to the purchase's account (whatever the
  account's status: the money is the customer's, as a payment's refund), kept on the
  record by its id (``refunds``, and its posting in ``postings``), at most what was
  captured in all (``refund_exceeds_capture``). The same refund again is answered as
  before; its reference with another amount is refused (``reference_reused``).
* `increment`: the merchant holds more on an authorisation still holding (a hotel's extra
  nights, a car rental's extra days: an incremental authorisation), under a reference of
  its own. Decided like an authorisation on the card (still usable, not expired, within
  its limits, counted in the original authorisation's day) and on the funds (the hold
  grows by the amount, and lasts `HOLD_DAYS` from now if that is longer). Kept on the
  record by its id (``increments``), declines too: the same increment again is answered
  as before, its reference with another amount is declined (``reference_reused``). A
  capture or a late capture may then take up to what is authorised in all
  (`authorized_total`); a release gives all of it back.
* `release`: the processor's reversal, or the hold's expiry (the scheduled job): the hold
  is given back, and the day's spend with it. A reversal that arrives before its
  authorisation (the processor timed out) is recorded, so the late authorisation is
  declined "reversed_before_authorization" and holds nothing
  (`fjordbank.domain.card_authorization.answer_again`). A second reversal or expiry is
  answered as the first; the merchant's reversal after the expiry released the hold moves
  no money but calls the purchase off (``reversedAfterExpiry``): no late capture then.
* `reduce`: the merchant's partial reversal, under a reference of its own (a fuel pump
  that held 1,500 kr and pumped 600, a hotel's reservation less one night, an increment
  taken back): that much of the hold goes back to the account and to the day's spend, and
  the pending feed entry shows what is left. Kept on the record by its id (``reversals``):
  the same one again is answered as before, its reference with another amount is refused
  (``reference_reused``), more than is held is refused (`OVER_HOLD`), and one of all that
  is left reverses the authorisation as `release` does. A capture may then take up to what
  is left (`authorized_total`). Past the expiry: a hold still due is reduced (the job
  releases the rest), and after the job released it the reversal is kept on the record
  alone, bounding a late capture.

Each returns a `Settlement`: the answer and everything its transaction writes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, replace
from typing import Any

from fjordbank.domain.card_authorization import NOT_ANSWERED, feed_fields
from fjordbank.domain.cards import HOLD_DAYS, HOME_COUNTRY, CardState, Spend, decide_increment
from fjordbank.domain.ledger import (
    FROZEN,
    OPEN,
    Book,
    Declined,
    Hold,
    Posting,
    as_utc,
    card_scheme_account,
    carries_hold,
)
from fjordbank.domain.norway import today_in_norway

# The step of a capture's posting (``{authId}:card-capture``, kept on the authorisation's
# record in ``postings``, by step, like a payment's on its ledger record); the ledger audit
# knows captures by it (fjordbank.domain.audit.CARD_CAPTURE, kept equal by a unit test).
CAPTURE_STEP = "card-capture"
# A refund's posting step is this and the refund's id (``card-refund-rf...``): the audit
# knows refunds by it (fjordbank.domain.audit.CARD_REFUND, kept equal by a unit test).
REFUND_STEP = "card-refund"
REFUNDS = "refunds"  # on the record: refund id -> {reference, amount, category, refundedAt}
# on the record: increment id -> {reference, amount, status (approved | declined), reason, incrementedAt}
INCREMENTS = "increments"
# on the record: reversal id -> {reference, amount, heldAmount (what was left held), whole
# (it released all that was left), reversedAt}: the merchant's partial reversals
REVERSALS = "reversals"
REVERSED_BEFORE_AUTHORIZATION = "reversed_before_authorization"
RELEASED = ("reversed", "expired")  # what a release makes of an authorisation
OVER_HOLD = "reversal_over_hold"  # a partial reversal of more than is held
# Refunds, increments and partial reversals one authorisation keeps, each kind at most this
# many: each is kept on the record by its reference (a retry is answered the same), and the
# record is one Firestore document (1 MiB at most). A terminal retrying a declined increment
# under new references grew it past that in 5,000 tries; every later write of the record
# (a capture, the expiry job's release) would then fail, the money held for good (found in
# review, 2026-12-06). Past it, a new one is refused (TOO_MANY).
MAX_ENTRIES = 100
TOO_MANY = "too_many_operations"


def _full(record: dict[str, Any], kind: str) -> bool:
    return len(record.get(kind) or {}) >= MAX_ENTRIES


@dataclass(frozen=True)
class Held:
    """What a capture or release reads beside the authorisation record, when it has a hold."""

    hold: Hold
    book: Book  # over the hold's account (and the card scheme's shard, for a capture)
    spend: dict[str, Any] | None  # the card's spend document of the authorisation's day
    card: dict[str, Any] | None = None  # the card (read for an increment only)


@dataclass(frozen=True)
class Settlement:
    """A capture or release decided: the answer, and everything its transaction writes."""

    status: str  # captured | refunded | incremented | declined (an increment) | reversed | expired | refused
    reason: str | None
    record: dict[str, Any]  # the authorisation record as it is now ({}: there is none)
    replayed: bool = False  # answered from what was done before: nothing is written
    store: bool = False  # write ``record`` (cardAuthorizations/{authId})
    book: Book | None = None  # the accounts, posting and hold changed
    spend: dict[str, Any] | None = None  # cardSpend/{cardId}_{day} as it is now (None: unchanged)
    # accounts/{id}/transactions/{authId}, merged into the entry the authorisation wrote:
    # every field but its category (card_authorization.feed_fields; None: unchanged)
    feed: dict[str, Any] | None = None
    refund_id: str | None = None  # a refund's id (its feed entry's, its posting's step)
    increment_id: str | None = None  # an increment's id (the record's ``increments`` key)
    reversal_id: str | None = None  # a partial reversal's id (the record's ``reversals`` key)
    # the record changes, nothing else does and nothing is announced (a reversal after the
    # hold expired: the money came back, and was told, at the expiry)
    silent: bool = False


def refused(reason: str, record: dict[str, Any] | None = None) -> Settlement:
    """A capture or release that changes nothing."""
    return Settlement("refused", reason, record or {})


# ---- capture -----------------------------------------------------------------------------
def capture(
    auth_id: str,
    record: dict[str, Any] | None,
    held: Held | None,
    *,
    capture_ref: str,
    amount: int | None,
    now: dt.datetime,
) -> Settlement:
    """Post the authorisation ``auth_id`` (``amount``, or all of its hold for None)."""
    if record is None:
        return refused("unknown_authorization")
    if record["status"] == "captured":
        if record.get("captureRef") != capture_ref:
            return refused("already_captured", record)
        if amount is not None and amount != record.get("capturedAmount"):
            # the reference sent again with another amount (as a refund's): answered
            # "captured" with the first amount, the merchant took the other for posted
            return refused("reference_reused", record)
        return Settlement("captured", None, record, replayed=True)
    late = _late(record, held)
    if held is None or not (late or _active(record, held)):
        return refused(f"authorization_{record['status']}", record)
    hold = held.hold
    # all of it by default: of a late capture, all that is still authorised
    captured = amount if amount is not None else min(hold.amount, authorized_total(record)) if late else hold.amount
    try:
        _post(auth_id, held, captured, late=late, bound=authorized_total(record))
    except Declined as exc:
        return refused(exc.code, record)
    done = {**record, "status": "captured", "capturedAmount": captured, "captureRef": capture_ref, "updatedAt": now}
    posting = held.book.postings[-1]  # kept on the record, not as a document of its own
    done["postings"] = {CAPTURE_STEP: {**posting.to_dict(), "postedAt": now.astimezone(dt.UTC).isoformat()}}
    if late:
        done["lateCapture"] = True
    _note_hold(done, held.book, auth_id)
    given_back = 0 if late else hold.amount - captured
    return Settlement(
        "captured",
        None,
        done,
        store=True,
        book=held.book,
        spend=unspent(done, held.spend, given_back) if given_back > 0 else None,
        feed=feed_fields(done, "posted", -captured),
    )


def _note_hold(record: dict[str, Any], book: Book, auth_id: str) -> None:
    """The record's copy of its hold as the Book left it (a record that does not carry its
    hold leaves it in the holds collection)."""
    if carries_hold(record):
        record["hold"] = book.holds[auth_id].to_dict()


def _active(record: dict[str, Any], held: Held) -> bool:
    """An approval whose hold still holds: the capture consumes the hold."""
    return record["status"] == "approved" and held.hold.status == "active"


def _due(hold: Hold, now: dt.datetime) -> bool:
    """A hold at or past its expiry (the job releases it)."""
    return as_utc(hold.expires_at) <= now


def _late(record: dict[str, Any], held: Held | None) -> bool:
    """An authorisation whose hold expired (and was released): a late capture."""
    return held is not None and record["status"] == "expired" and held.hold.status == "released"


def _post(auth_id: str, held: Held, amount: int, *, late: bool, bound: int) -> None:
    """The capture's posting in the Book, account -> the card scheme's shard. Raises
    `Declined` (too little available for a late capture, more than the hold otherwise)."""
    scheme = card_scheme_account(auth_id)
    hold = held.hold
    if late:
        # the hold is gone but not what was authorised: a late capture is bounded by it too,
        # and by the merchant's partial reversals since (`_reduce_released`)
        if not 0 < amount <= min(hold.amount, bound):
            raise Declined("invalid_capture", "a capture must be positive and at most the authorised amount")
        status = held.book.account(hold.account_id).status
        if status == FROZEN:
            # nothing reserved any more: money would leave a frozen account (a capture in time
            # takes what its hold reserved before the freeze)
            raise Declined("account_frozen", "the account is frozen")
        if status != OPEN:
            # an account closes once its hold is released (nothing held), and a closed one's
            # money leaves only by its payout: a late capture took a refund waiting there to
            # be paid out (found in review, 2026-12-07). Refused, it is an open refusal the
            # reconciliation shows, as a late capture short of money is.
            raise Declined("account_closed", "the account is closed")
        held.book.apply(Posting.transfer(auth_id, CAPTURE_STEP, hold.account_id, scheme, amount, hold.currency))
    else:
        held.book.capture(auth_id, step=CAPTURE_STEP, credit=scheme, amount=amount)


# ---- refund ------------------------------------------------------------------------------
def refund_id(auth_id: str, reference: str) -> str:
    """A refund's id: derived from its authorisation and the processor's refund reference,
    so a retried refund finds itself and the feed entry (by this id) is the refund's own."""
    return "rf" + hashlib.sha256(f"{auth_id}:{reference}".encode()).hexdigest()[:32]


def refund_step(refund: str) -> str:
    return f"{REFUND_STEP}-{refund}"


def refund_day(refund: dict[str, Any]) -> str:
    """A refund's booking day: the day in Norway it was refunded (YYYY-MM-DD)."""
    return today_in_norway(refund["refundedAt"]).isoformat()


def refunded_total(record: dict[str, Any]) -> int:
    """What the record's refunds gave back, in all (øre)."""
    return sum(r["amount"] for r in (record.get(REFUNDS) or {}).values())


def refund(
    auth_id: str,
    record: dict[str, Any] | None,
    book: Book | None,
    *,
    reference: str,
    amount: int,
    category: str | None,
    now: dt.datetime,
) -> Settlement:
    """Give ``amount`` of the captured authorisation ``auth_id`` back to its account.
    ``book``: over the account and the card scheme's shard (None: the account is gone);
    ``category``: the purchase's, as its feed entry is labelled now (kept with the refund,
    for its feed entry and its event)."""
    if record is None:
        return refused("unknown_authorization")
    refunds = dict(record.get(REFUNDS) or {})
    rid = refund_id(auth_id, reference)
    if rid in refunds:
        if refunds[rid].get("amount") == amount:
            return Settlement("refunded", None, record, replayed=True, refund_id=rid)
        return refused("reference_reused", record)
    if record["status"] != "captured":
        return refused(f"authorization_{record['status']}", record)
    if _full(record, REFUNDS):
        return refused(TOO_MANY, record)
    if not 0 < amount <= record.get("capturedAmount", 0) - refunded_total(record):
        return refused("refund_exceeds_capture", record)
    account = record.get("accountId")
    if book is None or account not in book.accounts:
        return refused("account_closed", record)  # the account itself is gone: never in production
    step = refund_step(rid)
    posting = Posting.transfer(auth_id, step, card_scheme_account(auth_id), account, amount, record["currency"])
    try:
        book.apply(posting)
    except Declined as exc:  # the account holds another currency
        return refused(exc.code, record)
    refunds[rid] = {"reference": reference, "amount": amount, "category": category, "refundedAt": now}
    postings = {
        **(record.get("postings") or {}),
        step: {**posting.to_dict(), "postedAt": now.astimezone(dt.UTC).isoformat()},
    }
    done = {**record, REFUNDS: refunds, "refundedAmount": refunded_total({REFUNDS: refunds}), "postings": postings}
    done["updatedAt"] = now
    return Settlement("refunded", None, done, store=True, book=book, refund_id=rid)


def refund_entry(record: dict[str, Any], refund: str) -> dict[str, Any] | None:
    """The account's feed entry of a refund (``accounts/{id}/transactions/{refundId}``):
    money in from the merchant, in the purchase's category as the refund keeps it (its
    entry's label when refunded, the customer's choice included). None for a record
    without an account, or a refund it does not list."""
    given = (record.get(REFUNDS) or {}).get(refund)
    entry = feed_fields(record, "posted", given["amount"]) if given is not None else None
    if entry is None or given is None:
        return None
    return {
        **entry,
        "kind": "card_refund",
        "direction": "in",
        "refundOf": record["authId"],
        "refundId": refund,
        "date": refund_day(given),
        "bookedAt": given["refundedAt"],
        "createdAt": given["refundedAt"],
        **({"category": given["category"]} if given.get("category") else {}),
    }


# ---- incremental authorisation -----------------------------------------------------------
def increment_id(auth_id: str, reference: str) -> str:
    """An increment's id: derived from its authorisation and the processor's reference of
    the increment, so a retried increment finds its decision."""
    return "in" + hashlib.sha256(f"{auth_id}:increment:{reference}".encode()).hexdigest()[:32]


def authorized_total(record: dict[str, Any]) -> int:
    """What an authorisation authorises in all (øre): its request's amount and the
    increments approved on it, less what partial reversals gave back (one that released all
    that was left is not taken off: the authorisation was then reversed with that amount)."""
    more = (int(i["amount"]) for i in (record.get(INCREMENTS) or {}).values() if i.get("status") == "approved")
    less = (int(r["amount"]) for r in (record.get(REVERSALS) or {}).values() if not r.get("whole"))
    return int(record.get("amount", 0)) + sum(more) - sum(less)


def increment(
    auth_id: str,
    record: dict[str, Any] | None,
    held: Held | None,
    *,
    reference: str,
    amount: int,
    now: dt.datetime,
    hold_days: int = HOLD_DAYS,
) -> Settlement:
    """Hold ``amount`` more on the authorisation ``auth_id`` (``held.card``: its card).
    "incremented" or "declined" (with the reason, both kept on the record), or "refused"
    (no authorisation holding: nothing is written)."""
    if record is None:
        return refused("unknown_authorization")
    increments = dict(record.get(INCREMENTS) or {})
    iid = increment_id(auth_id, reference)
    if iid in increments:
        given = increments[iid]
        if given.get("amount") != amount:
            return Settlement("declined", "reference_reused", record, replayed=True, increment_id=iid)
        status = "incremented" if given.get("status") == "approved" else "declined"
        return Settlement(status, given.get("reason"), record, replayed=True, increment_id=iid)
    if held is None or not _active(record, held):
        return refused(f"authorization_{record['status']}", record)
    if _due(held.hold, now):
        # past its expiry, not yet released by the job: the job may be releasing it now
        # (it checks it is still due, `release`), so it is not extended
        return refused("authorization_expired", record)
    if _full(record, INCREMENTS):
        return refused(TOO_MANY, record)
    reason = _increment_declined(record, held, amount, now)
    if reason is None:
        expires = (now + dt.timedelta(days=hold_days)).isoformat()
        try:
            held.book.extend(auth_id, amount=amount, expires_at=expires)
        except Declined as exc:
            reason = exc.code
    increments[iid] = {
        "reference": reference,
        "amount": amount,
        "status": "declined" if reason else "approved",
        "reason": reason,
        "incrementedAt": now,
    }
    done = {**record, INCREMENTS: increments, "updatedAt": now}
    # what the processor is answered, kept with the decision: a retry is answered the same
    increments[iid]["authorizedAmount"] = total = authorized_total(done)
    if reason is not None:
        return Settlement("declined", reason, done, store=True, increment_id=iid)
    done["authorizedAmount"] = total
    _note_hold(done, held.book, auth_id)
    spent = Spend.from_dict(held.spend)
    spent.count(
        amount, channel=record.get("channel", "pos"), merchant_country=record.get("merchantCountry", HOME_COUNTRY)
    )
    return Settlement(
        "incremented",
        None,
        done,
        store=True,
        book=held.book,
        spend={**(held.spend or {}), **spent.to_dict(), "cardId": record.get("cardId"), "day": record.get("spendDay")},
        feed=feed_fields(done, "pending", -held.hold.amount),
        increment_id=iid,
    )


def _increment_declined(record: dict[str, Any], held: Held, amount: int, now: dt.datetime) -> str | None:
    """The card's reason to decline ``amount`` more (the funds are the Book's to decide)."""
    if held.card is None:
        return "unknown_card"
    return decide_increment(
        CardState.from_doc(held.card),
        Spend.from_dict(held.spend),
        amount,
        channel=record.get("channel", "pos"),
        merchant_country=record.get("merchantCountry", HOME_COUNTRY),
        today=today_in_norway(now),
    )


# ---- reversal and expiry -----------------------------------------------------------------
def release(
    auth_id: str,
    record: dict[str, Any] | None,
    held: Held | None,
    *,
    reference: str | None,
    status: str,
    now: dt.datetime,
    unanswered: bool = False,
) -> Settlement:
    """Give back the hold of the authorisation ``auth_id``: ``status`` "reversed" (the
    processor's reversal of ``reference``, or with ``unanswered`` the card service's own
    for an approval the processor may not have had: the record keeps `NOT_ANSWERED`, and
    the same request sent again is declined, never answered "approved" with nothing
    held) or "expired" (the hold's time is up)."""
    if record is None:
        return _reversed_before_authorization(auth_id, reference, status, now)
    if record["status"] == "expired" and status == "reversed" and not unanswered:
        # the merchant's reversal after the job released the hold: nothing is held to give
        # back, but the purchase is called off, so no late capture may take it any more
        done = {**record, "status": "reversed", "reversedAfterExpiry": True, "updatedAt": now}
        return Settlement("reversed", None, done, store=True, silent=True)
    if record["status"] in RELEASED:
        return Settlement(record["status"], record.get("reason"), record, replayed=True)
    if held is None or not _active(record, held):
        return refused(f"authorization_{record['status']}", record)
    if status == "expired" and not _due(held.hold, now):
        # extended since the job found it due (an incremental authorisation): not expired
        return refused("not_due", record)
    held.book.release(auth_id)
    done = {**record, "status": status, "updatedAt": now}
    if unanswered:
        done["reason"] = NOT_ANSWERED
    _note_hold(done, held.book, auth_id)
    return Settlement(
        status,
        None,
        done,
        store=True,
        book=held.book,
        spend=unspent(done, held.spend, held.hold.amount),
        feed=feed_fields(done, "cancelled", -held.hold.amount),
    )


def reversal_id(auth_id: str, reference: str) -> str:
    """A partial reversal's id: derived from its authorisation and the processor's
    reference of the reversal, so a retried one finds its answer."""
    return "rv" + hashlib.sha256(f"{auth_id}:reversal:{reference}".encode()).hexdigest()[:32]


def reduce(
    auth_id: str,
    record: dict[str, Any] | None,
    held: Held | None,
    *,
    reference: str,
    amount: int,
    now: dt.datetime,
) -> Settlement:
    """The merchant's partial reversal of ``amount`` øre of the authorisation ``auth_id``
    (a fuel pump's or a hotel's final amount below what it held): so much of the hold is
    given back to the account and to the card's day, and the pending feed entry shows what
    is left. One that gives back all that is left reverses the authorisation, as a full
    reversal does. "reversed" (with ``reversal_id``), or "refused": more than is held
    (`OVER_HOLD`), the reference sent again with another amount, no authorisation holding."""
    if record is None:
        return refused("unknown_authorization")
    rid = reversal_id(auth_id, reference)
    given = (record.get(REVERSALS) or {}).get(rid)
    if given is not None:
        if given.get("amount") != amount:
            return refused("reference_reused", record)
        return Settlement("reversed", None, record, replayed=True, reversal_id=rid)
    if _full(record, REVERSALS):
        return refused(TOO_MANY, record)
    if _late(record, held):
        return _reduce_released(auth_id, record, rid, reference=reference, amount=amount, now=now)
    if held is None or not _active(record, held):
        return refused(f"authorization_{record['status']}", record)
    # A hold past its expiry is reduced all the same: the job's release, in a transaction
    # of its own, then gives back what is left (it is still due).
    left = held.hold.amount
    if amount > left:
        return refused(OVER_HOLD, record)
    entry = {"reference": reference, "amount": amount, "heldAmount": left - amount, "whole": amount == left}
    reversals = {**(record.get(REVERSALS) or {}), rid: {**entry, "reversedAt": now}}
    if amount == left:
        released = release(
            auth_id, {**record, REVERSALS: reversals}, held, reference=reference, status="reversed", now=now
        )
        return replace(released, reversal_id=rid)
    held.book.reduce(auth_id, amount=amount)
    done = {**record, REVERSALS: reversals, "updatedAt": now}
    done["authorizedAmount"] = authorized_total(done)
    _note_hold(done, held.book, auth_id)
    return Settlement(
        "reversed",
        None,
        done,
        store=True,
        book=held.book,
        spend=unspent(done, held.spend, amount),
        feed=feed_fields(done, "pending", -held.hold.amount),
        reversal_id=rid,
    )


def _reduce_released(
    auth_id: str, record: dict[str, Any], rid: str, *, reference: str, amount: int, now: dt.datetime
) -> Settlement:
    """A partial reversal after the job released the hold: nothing is held to give back,
    but the merchant's final amount is kept (``reversals``), so a late capture may take at
    most what is left authorised (`authorized_total`); one of all of it calls the purchase
    off, as the merchant's whole reversal after the expiry does (`release`)."""
    left = authorized_total(record)
    if amount > left:
        return refused(OVER_HOLD, record)
    entry = {"reference": reference, "amount": amount, "heldAmount": 0, "whole": amount == left, "reversedAt": now}
    done = {**record, REVERSALS: {**(record.get(REVERSALS) or {}), rid: entry}, "updatedAt": now}
    if amount == left:  # all that was left: the purchase is called off, as by a whole reversal
        return replace(release(auth_id, done, None, reference=reference, status="reversed", now=now), reversal_id=rid)
    done["authorizedAmount"] = authorized_total(done)
    return Settlement("reversed", None, done, store=True, reversal_id=rid, silent=True)


def _reversed_before_authorization(auth_id: str, reference: str | None, status: str, now: dt.datetime) -> Settlement:
    """The record of a reversal whose authorisation has not arrived (it has no fingerprint:
    the authorisation, when it comes, is declined and holds nothing)."""
    record = {
        "authId": auth_id,
        "reference": reference,
        "fingerprint": None,
        "status": status,
        "reason": REVERSED_BEFORE_AUTHORIZATION,
        "createdAt": now,
        "updatedAt": now,
    }
    return Settlement(status, REVERSED_BEFORE_AUTHORIZATION, record, store=True)


# ---- the day's spend ---------------------------------------------------------------------
def unspent(record: dict[str, Any], spend: dict[str, Any] | None, amount: int) -> dict[str, Any] | None:
    """The card's spend document of the authorisation's day with ``amount`` given back (a
    reversal, an expiry or a smaller capture), or None when the day has none."""
    if spend is None:
        return None
    counted = Spend.from_dict(spend)
    counted.count(
        amount,
        channel=record.get("channel", "pos"),
        merchant_country=record.get("merchantCountry", HOME_COUNTRY),
        sign=-1,
    )
    return {**spend, **counted.to_dict()}
