"""What the ledger does at each step of a payment, free of I/O.

    approved, internal   debit the payer into transit -> credit    | failed
    credit               (the payee's partition) credit the payee from transit
                                                      -> completed | refund (with the reason)
    refund               (the payer's partition) the money back to the payer
                                                      -> failed (with the credit's reason)
    approved, external   hold the funds               -> reserved  | failed
    settled              capture the hold, post it    -> completed
    returned             release the hold             -> failed (with the counterparty's reason)
    arrived, incoming    credit the payee from the settlement shard (from the suspense
                         shard when it was held)      -> completed | unapplied (with the reason)
    held, incoming       (held for sanctions review) from the settlement shard into the
                         suspense shard               -> held (nothing published)

An internal payment's two legs run in two partitions (fjordbank/topology.py: ``credit`` is
routed by the payee's account), so each account is written by its own partition's ledger
only: no two ledger instances ever contend for one account, and a payee many pay at once
(a merchant) takes its credits in its own partition's batches, one write per batch.

Each payment has one ledger record: the result of every step it has been through. A step
seen again (redelivery, replay, a crash before the ack) returns the recorded result and
changes nothing, so a payment is posted exactly once however often a message arrives.

An external payment's hold is kept on its record (``hold``, `record_holds`), not in a
document of its own: the hold is made, captured and released only by the steps of that one
payment, which write the record anyway, so one document carries both (two writes fewer per
payment). A record from before this (``holdId`` and no ``hold``) keeps its hold in the
holds collection, and its later step is applied to it there (`carries_hold`).

A step's posting is kept on the record too (``postings``, by step; `record_postings`): the
record is the payment's journal. Its ``steps`` already make each step happen once, and the
record is written on the condition of the version decided on, so the posting needs no
document of its own to be posted exactly once (one write fewer per posting: two per
internal payment, one per external). Records from before this list ``postingIds`` whose
postings are documents in the postings collection; the audit reads both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from fjordbank.domain.ledger import (
    Book,
    Declined,
    Posting,
    carries_hold,
    readable_hold,
    settlement_account,
    suspense_account,
    transit_in_account,
    transit_out_account,
)
from fjordbank.domain.payments import EXTERNAL, INCOMING, NO_PAYEE, RELEASED_FROM_HOLD, PaymentEvent
from fjordbank.topology import ARRIVED, CREDIT, CREDITED, HELD, REFUND, UNAPPLIED

# An external payment's hold is released by its answer (settled or returned), whenever it
# comes: this expiry only says how long it was meant to take (FjbPaymentNotFinal alerts on a
# payment submitted for 4 days; the audit does not count the hold's expiry as a fault).
EXTERNAL_HOLD_DAYS = 5


class UnexpectedStep(Declined):
    """A step that cannot happen in this payment's state (an operator must look at it)."""

    def __init__(self, message: str) -> None:
        super().__init__("unexpected_step", message)


@dataclass(frozen=True)
class StepResult:
    status: str
    reason: str | None = None
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "message": self.message}


def new_record(event: PaymentEvent) -> dict[str, Any]:
    p = event.payment
    return {
        "paymentId": p.payment_id,
        "uid": p.uid,
        "requestId": p.request_id,
        "kind": p.kind,
        "fromAccount": p.from_account,
        "toAccount": p.to_account,
        "amount": p.amount,
        "currency": p.currency,
        "kid": p.kid,  # with the due date and the request's time: what "my economy" recomputes a booking from
        "dueDate": p.due_date,
        # a payment due on a day it could not be made (a weekend, no funds until the next
        # month) is booked on the day it was requested (PaymentRequested.booking_date)
        "requestedAt": p.requested_at,
        "bodyHash": p.body_hash,
        "steps": {},
        "postingIds": [],
        "postings": {},
        "status": None,
    }


def published(event: PaymentEvent, result: StepResult) -> list[PaymentEvent]:
    """What the ledger publishes after applying ``event`` with ``result``: the next step, and
    for a credited internal payment also ``credited`` to the payee's partition (its read
    models) beside ``completed`` to the payer's. Nothing after a credit held for sanctions
    review is booked (nobody is told of it; its release is clearing's ``arrived``)."""
    if HELD in (event.status, result.status):
        return []
    after = replace(event, status=result.status, reason=result.reason, message=result.message)
    if event.status == CREDIT and result.status == "completed":
        return [after, replace(event, status=CREDITED, reason=None, message=None)]
    return [after]


# One step of the ledger: applies ``event`` to ``book``, notes its postings on the record
# (mutated in place) and returns the step's result. Declined and UnexpectedStep propagate.
StepFn = Callable[[Book, dict[str, Any], PaymentEvent, dt.datetime], StepResult]


def _require_status(record: dict[str, Any], status: str, what: str) -> None:
    """A step that follows another runs only in the state that one left the payment in."""
    if record["status"] != status:
        raise UnexpectedStep(f"{what} of a payment in state {record['status']!r}")


def _add_posting(record: dict[str, Any], posting: Posting, now: dt.datetime) -> None:
    """The step's posting, listed (``postingIds``) and kept on the record (``postings``)."""
    record["postingIds"] = [*record["postingIds"], posting.posting_id]
    kept = {**posting.to_dict(), "postedAt": now.astimezone(dt.UTC).isoformat()}
    record["postings"] = {**record.get("postings", {}), posting.step: kept}


def _note_hold(book: Book, record: dict[str, Any]) -> None:
    """The record's copy of its hold after a step changed it (a record that does not
    carry its hold leaves it in the holds collection)."""
    if carries_hold(record):
        record["hold"] = book.holds[record["holdId"]].to_dict()


def _hold_external(book: Book, record: dict[str, Any], event: PaymentEvent, now: dt.datetime) -> StepResult:
    """approved, external: reserve the funds until the clearing answers."""
    p = event.payment
    hold = book.hold(
        hold_id=p.payment_id,
        payer_uid=p.uid,
        account_id=p.from_account,
        amount=p.amount,
        currency=p.currency,
        expires_at=(now.astimezone(dt.UTC) + dt.timedelta(days=EXTERNAL_HOLD_DAYS)).isoformat(),
    )
    record["holdId"] = p.payment_id
    record["hold"] = hold.to_dict()
    return StepResult("reserved")


def _debit_internal(book: Book, record: dict[str, Any], event: PaymentEvent, now: dt.datetime) -> StepResult:
    """approved, internal: debit the payer into transit; the payee's partition credits it."""
    p = event.payment
    # the bank's transit shard missing is the bank's fault: read as the payer's account, it
    # failed the payment as "unknown_account" of the payer's own (found in review, 2026-12-07)
    _internal_accounts(book, transit_out_account(p.from_account))
    book.payer_account(p.from_account, p.uid, p.currency)
    if p.to_account == p.from_account:  # the payee's side cannot see it: refused here
        raise Declined("same_account", "from- and to-account are the same")
    posting = book.transfer(
        payment_id=p.payment_id,
        step="debit",
        payer_uid=p.uid,
        debit=p.from_account,
        credit=transit_out_account(p.from_account),
        amount=p.amount,
        currency=p.currency,
    )
    _add_posting(record, posting, now)
    return StepResult(CREDIT)


def _credit_payee(book: Book, record: dict[str, Any], event: PaymentEvent, now: dt.datetime) -> StepResult:
    """credit (the payee's partition): credit the payee from transit, or send it back."""
    _require_status(record, CREDIT, "credit")
    p = event.payment
    _internal_accounts(book, transit_in_account(p.to_account))  # (not the payee's: not sent back)
    try:
        posting = book.receive(
            payment_id=p.payment_id,
            step="credit",
            source=transit_in_account(p.to_account),
            credit=p.to_account,
            amount=p.amount,
            currency=p.currency,
        )
    except Declined as exc:  # the payee's account cannot take it: the money goes back
        return StepResult(REFUND, exc.code, exc.message)
    _add_posting(record, posting, now)
    return StepResult("completed")


def _refund_payer(book: Book, record: dict[str, Any], event: PaymentEvent, now: dt.datetime) -> StepResult:
    """refund (the payer's partition): the money back to the payer, failed with the credit's reason."""
    _require_status(record, REFUND, "refund")
    p = event.payment
    _internal_accounts(book, transit_out_account(p.from_account))
    posting = book.receive(
        payment_id=p.payment_id,
        step="refund",
        source=transit_out_account(p.from_account),
        credit=p.from_account,
        amount=p.amount,
        currency=p.currency,
        refund=True,
    )
    _add_posting(record, posting, now)
    return StepResult("failed", event.reason or "returned", event.message)


def _settle(book: Book, record: dict[str, Any], event: PaymentEvent, now: dt.datetime) -> StepResult:
    """settled: capture the hold and post it to the settlement account."""
    _require_status(record, "reserved", "settlement")
    p = event.payment
    posting = book.capture(p.payment_id, step="settle", credit=settlement_account(p.from_account))
    _add_posting(record, posting, now)
    _note_hold(book, record)
    return StepResult("completed")


def _release_returned(book: Book, record: dict[str, Any], event: PaymentEvent, now: dt.datetime) -> StepResult:
    """returned: release the hold, failed with the counterparty's reason."""
    _require_status(record, "reserved", "return")
    book.release(event.payment.payment_id)
    _note_hold(book, record)
    return StepResult("failed", event.reason or "returned", event.message)


def _internal_accounts(book: Book, *accounts: str) -> None:
    """The bank's fault, never the payee's, when one is missing: not sent back."""
    for account in accounts:
        if account not in book.accounts:
            raise UnexpectedStep(f"the internal account {account} is not in the ledger")


def _credit_incoming(book: Book, record: dict[str, Any], event: PaymentEvent, now: dt.datetime) -> StepResult:
    """arrived (a payment from another bank, in the payee's partition): the clearing house
    has settled it with the bank, so the payee's partition's settlement shard pays it to the
    payee (its suspense shard, when the credit was held for review and is now released:
    only an arrived marked as the release, `apply_step`); a
    payee's account that cannot take it (closed, another currency, none) leaves it
    unapplied, and clearing sends it back (a released one's money first goes from suspense
    back to settlement). A credit to an account that was not here when it came (``NO_PAYEE``)
    is never credited: an account opened under that number since is someone else's. Only a
    payment from another bank arrives."""
    p = event.payment
    if p.kind != INCOMING:
        raise UnexpectedStep(f"a {p.kind} payment does not arrive from another bank")
    held = record["status"] == HELD
    if record["status"] is not None and not held:
        raise UnexpectedStep(f"arrived for a payment in state {record['status']!r}")
    settlement, suspense = settlement_account(p.to_account), suspense_account(p.to_account)
    _internal_accounts(book, settlement, *([suspense] if held else []))
    try:
        if p.uid == NO_PAYEE:
            raise Declined("unknown_account", "the to-account was not here when the credit came")
        posting = book.receive(
            payment_id=p.payment_id,
            step="credit",
            source=suspense if held else settlement,
            credit=p.to_account,
            amount=p.amount,
            currency=p.currency,
        )
    except Declined as exc:
        if held:  # goes back: out of suspense, as the clearing house will take it from the bank
            back = Posting.transfer(p.payment_id, "unheld", suspense, settlement, p.amount, p.currency)
            book.apply(back)
            _add_posting(record, back, now)
        return StepResult(UNAPPLIED, exc.code, exc.message)
    _add_posting(record, posting, now)
    return StepResult("completed")


def _hold_incoming(book: Book, record: dict[str, Any], event: PaymentEvent, now: dt.datetime) -> StepResult:
    """held (a payment from another bank held for sanctions review, in the payee's
    partition): from the settlement shard into the suspense shard, until a compliance officer
    decides (its release is its ``arrived``; one booked already is answered by `apply_step`)."""
    p = event.payment
    if p.kind != INCOMING:
        raise UnexpectedStep(f"a {p.kind} payment is not held as one from another bank")
    settlement, suspense = settlement_account(p.to_account), suspense_account(p.to_account)
    _internal_accounts(book, settlement, suspense)
    posting = Posting.transfer(p.payment_id, "suspense", settlement, suspense, p.amount, p.currency)
    book.apply(posting)
    _add_posting(record, posting, now)
    return StepResult(HELD)


_LATER_STEPS: dict[str, StepFn] = {
    CREDIT: _credit_payee,
    REFUND: _refund_payer,
    "settled": _settle,
    "returned": _release_returned,
    ARRIVED: _credit_incoming,
    HELD: _hold_incoming,
}


def _step_fn(step: str, kind: str) -> StepFn:
    if step == "approved":
        if kind == INCOMING:
            raise UnexpectedStep("a payment from another bank is not approved here: it arrives")
        return _hold_external if kind == EXTERNAL else _debit_internal
    fn = _LATER_STEPS.get(step)
    if fn is None:
        raise UnexpectedStep(f"the ledger does not handle {step!r}")
    return fn


# What a payment's record keeps of it that each later step moves money by (its record's
# field, the event's attribute).
SAME_PAYMENT = (
    ("fromAccount", "from_account"),
    ("toAccount", "to_account"),
    ("amount", "amount"),
    ("currency", "currency"),
    ("bodyHash", "body_hash"),
)


def _require_same_payment(record: dict[str, Any], event: PaymentEvent) -> None:
    """A later step's event must carry the payment its record was made from: each step
    moves the event's amount between the event's accounts, and an event under a payment id
    already used with another amount (a bug upstream, a forged message) credited 9 000 for
    a debit of 1 000, and a replay published the next step from it. Raises `UnexpectedStep`."""
    differs = [
        field for field, attr in SAME_PAYMENT if field in record and record[field] != getattr(event.payment, attr)
    ]
    if differs:
        raise UnexpectedStep(f"{event.status}: the event's payment differs from its record ({', '.join(differs)})")


def _require_readable(record: dict[str, Any], event: PaymentEvent) -> None:
    """A stored record has the fields every step reads and writes: one without them (an
    older or hand-edited one) raised a bare KeyError, which failed its whole batch, every
    other payment in it too, until the message was dead-lettered at its delivery limit; and
    one raised after the step had moved the book's money (``postingIds``, read as the
    posting is listed) must never be caught later (found in review, 2026-12-07). Raises
    `UnexpectedStep` before anything moves."""
    status = record.get("status")
    if not (
        isinstance(record.get("steps"), dict)
        and "status" in record
        and (status is None or isinstance(status, str))
        and isinstance(record.get("postingIds"), list)
        and isinstance(record.get("postings", {}), dict)
        and (not carries_hold(record) or readable_hold(record))
    ):
        raise UnexpectedStep(
            f"{event.status}: the payment's ledger record cannot be read (steps, status, postings, hold)"
        )


def apply_step(
    book: Book, record: dict[str, Any] | None, event: PaymentEvent, *, now: dt.datetime
) -> tuple[dict[str, Any], StepResult, bool]:
    """Apply ``event`` to ``book``. Returns (record, result, replayed).

    Raises `UnexpectedStep` for a step the payment's record does not allow (e.g. a
    settlement of a payment that holds nothing); the book is then unchanged."""
    if record is not None:
        _require_readable(record, event)
        _require_same_payment(record, event)
    record = dict(record) if record is not None else new_record(event)
    step = event.status
    if step in record["steps"]:
        return record, StepResult(**record["steps"][step]), True
    if step == HELD and record["status"] is not None:
        # released and credited (or sent back) before its hold reached the ledger: clearing
        # publishes a hold again when its file is read again. Nothing to hold, nothing changed.
        return record, StepResult(record["status"]), True
    if step == ARRIVED and record["status"] == HELD and not (event.detail or {}).get(RELEASED_FROM_HOLD):
        # held for review, and this arrived is no officer's release (another instance read
        # the file with a list that did not name the payer yet): the hold stands
        return record, StepResult(HELD), True
    apply = _step_fn(step, event.payment.kind)
    try:
        result = apply(book, record, event, now)
    except UnexpectedStep:
        raise
    except Declined as exc:
        if step != "approved":
            raise UnexpectedStep(f"{step}: {exc.message}") from exc
        result = StepResult("failed", exc.code, exc.message)
    record["steps"] = {**record["steps"], step: result.to_dict()}
    record["status"] = result.status
    return record, result, False
