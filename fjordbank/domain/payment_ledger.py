"""What the ledger does at each step of a payment, free of I/O.

    approved, internal   transfer at once             -> completed | failed
    approved, external   hold the funds               -> reserved  | failed
    settled              capture the hold, post it    -> completed
    returned             release the hold             -> failed (with the counterparty's reason)

Each payment has one ledger record: the result of every step it has been through. A step
seen again (redelivery, replay, a crash before the ack) returns the recorded result and
changes nothing, so a payment is posted exactly once however often a message arrives.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fjordbank.domain.ledger import Book, Declined, settlement_account
from fjordbank.domain.payments import EXTERNAL, PaymentEvent

EXTERNAL_HOLD_DAYS = 5  # a returned or unanswered external payment releases before this


class UnexpectedStep(Declined):
    """A step that cannot happen in this payment's state (an operator must look at it)."""

    def __init__(self, message: str) -> None:
        super().__init__("unexpected_step", message)


@dataclass(frozen=True)
class StepResult:
    status: str
    reason: str | None = None
    message: str | None = None

    def to_dict(self) -> dict:
        return {"status": self.status, "reason": self.reason, "message": self.message}


def new_record(event: PaymentEvent) -> dict:
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
        "kid": p.kid,  # with the due date: what "my economy" recomputes a booking from
        "dueDate": p.due_date,
        "bodyHash": p.body_hash,
        "steps": {},
        "postingIds": [],
        "status": None,
    }


def apply_step(
    book: Book, record: dict | None, event: PaymentEvent, *, now: dt.datetime
) -> tuple[dict, StepResult, bool]:
    """Apply ``event`` to ``book``. Returns (record, result, replayed).

    Raises `UnexpectedStep` for a step the payment's record does not allow (e.g. a
    settlement of a payment that holds nothing); the book is then unchanged."""
    record = dict(record) if record is not None else new_record(event)
    step = event.status
    if step in record["steps"]:
        return record, StepResult(**record["steps"][step]), True
    p = event.payment
    try:
        if step == "approved" and p.kind == EXTERNAL:
            book.hold(
                hold_id=p.payment_id,
                payer_uid=p.uid,
                account_id=p.from_account,
                amount=p.amount,
                currency=p.currency,
                expires_at=(now.astimezone(dt.UTC) + dt.timedelta(days=EXTERNAL_HOLD_DAYS)).isoformat(),
            )
            record["holdId"] = p.payment_id
            result = StepResult("reserved")
        elif step == "approved":
            posting = book.transfer(
                payment_id=p.payment_id,
                step="transfer",
                payer_uid=p.uid,
                debit=p.from_account,
                credit=p.to_account,
                amount=p.amount,
                currency=p.currency,
            )
            record["postingIds"] = [*record["postingIds"], posting.posting_id]
            result = StepResult("completed")
        elif step == "settled":
            if record["status"] != "reserved":
                raise UnexpectedStep(f"settlement of a payment in state {record['status']!r}")
            posting = book.capture(p.payment_id, step="settle", credit=settlement_account(p.from_account))
            record["postingIds"] = [*record["postingIds"], posting.posting_id]
            result = StepResult("completed")
        elif step == "returned":
            if record["status"] != "reserved":
                raise UnexpectedStep(f"return of a payment in state {record['status']!r}")
            book.release(p.payment_id)
            result = StepResult("failed", event.reason or "returned", event.message)
        else:
            raise UnexpectedStep(f"the ledger does not handle {step!r}")
    except UnexpectedStep:
        raise
    except Declined as exc:
        if step != "approved":
            raise UnexpectedStep(f"{step}: {exc.message}") from exc
        result = StepResult("failed", exc.code, exc.message)
    record["steps"] = {**record["steps"], step: result.to_dict()}
    record["status"] = result.status
    return record, result, False
