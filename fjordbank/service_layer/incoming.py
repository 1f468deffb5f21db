"""Payments from other banks: clearing's use cases for what the clearing house delivers.

    pacs.008 in the channel's ``incoming/``  ->  one ``arrived`` event per credit, in the
        payee's partition (fjordbank.domain.payments.INCOMING), and the file filed away
    the ledger's ``unapplied``               ->  a pacs.004 return to the clearing house

Each credit is one payment however often the clearing house delivers it: its id comes from
its bank, settlement date and that bank's transaction id
(`fjordbank.domain.pacs.IncomingTransfer.payment_id`), its event's message id from that
(JetStream stores it once within the duplicate window), and the ledger's record answers a
replay after it. Everything the event says comes from the file (its dates too), so a file
read again makes the same event, booked on the same day. A file is filed away only after
every one of its events was published: a crash before that reads the file again, and the
replay changes nothing.

A credit to an account that is not here (no such account, or not opened) is sent back at
once with ``AC01``, and one of a file this bank cannot take as it is (no payer's account or
name: ``RR01``, ``RR02``; an account number that is none: ``AC01``) on its own, the file's
other credits taken; one the ledger cannot apply (a closed account, another currency) comes
back as ``unapplied`` and is sent back with the ledger's reason. Every return is recorded
first (``clearingReturns/{paymentId}``: what it says, "pending" until the channel took it,
then "delivered"), so a return is made once and never lost: one the channel does not take
now (an outage) is kept and sent every `RETRY_SECONDS`, dated the day it goes (never
before the credit it returns settles: `return_settles`); one left
pending by another process (stopped in a rollout) or by a commit that answered an error
though it went through is found by `Incoming.resend_pending` at start, every
`ORPHAN_SECONDS`, and when its file is read again. A second delivery of its name is refused
by the channel (two processes sending one return at the same moment on a file system
without hard links is the window left, as for the pain.001 files), but one the channel
marked and never placed (killed between the two) is placed again: a return is one message
(its id) however often it goes. A credit with a return
recorded is never published again: an account number that had no account when the credit
came may belong to a new customer by the time the file is delivered again, and the money
went back already. Nor is a credit the ledger has a record of ever sent back from a file: the
same payment id again, now to an account not here or without its payer, is that credit come
again garbled or forged (said at error level for an operator).

A file that cannot be read, addressed to another bank, or settling more than a week from
now is moved aside (``.rejected``) for an operator, who asks the clearing house for it
again: nothing in it is credited or returned.

Every payer is screened against the sanctions list (persons and enterprises, by name:
`fjordbank.domain.sanctions.SanctionsList.screen_counterparty`) before anything is done with
the credit. One whose name is equal or similar to a listed one is held
(``clearingReturns/{paymentId}``, status ``held``, with the event it would have been and the
list's entries it resembles): neither credited nor sent back, since money of a listed person
must be frozen, not returned, and the payee is not told (no tipping off). Its ``held`` event
has the ledger book it from the payee's partition's settlement shard into its suspense
shard (nothing follows it on NATS), so the bank's books show the money it holds; the event
is published again whenever its file is read again while it is undecided (a crash between
the record and the publish), and for every undecided one when the service starts
(`book_held`: one held before this step existed), and the ledger books it once. A compliance officer decides
(`decide_held`: ``python -m fjordbank.runtime.held``, ``bankctl held``; once the ledger holds
it, `_require_booked`): ``release`` (a false
match: clearing then publishes its ``arrived`` as it would have, marked as the release
(`RELEASED_FROM_HOLD`: an arrived of an instance still on a list that did not name the
payer leaves the hold standing), and marks it ``released``; the ledger credits the payee
from suspense, or, when its account is not here or cannot
take it, moves it back to settlement and leaves it ``unapplied``, and clearing sends it
back from that) or ``frozen`` (a true match: the money stays in suspense, reported by the
officer; nothing more is done here). A held credit's ``arrived`` is never published again
when its file comes again. A credit this bank could not take as it is (no payer's account,
say) is not a payment the ledger can name, so one held is kept off the ledger, its release
sent back directly. The ops sweep counts the held credits (``fjb_incoming_held``) and
FjbIncomingHeld says when one waits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from fjordbank.adapters.firestore import LEDGER_PAYMENTS
from fjordbank.domain import pacs
from fjordbank.domain.errors import DomainError
from fjordbank.domain.norway import next_banking_day, today_in_norway
from fjordbank.domain.payments import (
    INCOMING,
    NO_PAYEE,
    PAYER_NAME,
    RELEASED_FROM_HOLD,
    PaymentEvent,
    PaymentRequested,
)
from fjordbank.domain.sanctions import SanctionsList, ScreeningResult
from fjordbank.service_layer.ports import SERVER_TIME, AlreadyExists, AsyncDocuments, Data, Doc, Stale, Where
from fjordbank.topology import ARRIVED
from fjordbank.topology import HELD as HELD_STEP

log = logging.getLogger("clearing.incoming")

RETURNS = "clearingReturns"  # {paymentId}: a return of a payment from another bank
PENDING, DELIVERED = "pending", "delivered"
# A credit held for sanctions review: held until a compliance officer decides; release (asked)
# -> released (clearing did it), or frozen.
HELD, RELEASE, RELEASED, FROZEN = "held", "release", "released", "frozen"
DECISIONS = (RELEASE, FROZEN)
MATCHED_LATE = "matched_late"  # credited before the list named its payer: for compliance to look at, nothing held
# A return is never sent over these (a release first). A credit released is not one: it goes
# on as it would have, and the ledger's ``unapplied`` for it may come before the release is
# marked (the ledger is quicker than one write, or the mark failed once and waits for the
# next pass): its return is sent then, and the mark, on the version read, gives way to it.
UNDECIDED = frozenset({HELD, FROZEN})
LEDGER_CREDITED = "completed"  # a ledger payment record's status once the payee is credited
HOLD_REASON = "possible_sanctions_match"
_INCOMING_ID = re.compile(rf"{pacs.KEY_PREFIX}[0-9a-f]{{30}}")  # fjordbank.domain.pacs.payment_id_of
HOLD_CHUNK = 400  # held credits recorded per commit (a commit takes at most 500 writes)
RETRY_SECONDS = 5.0  # a return the channel did not take: tried again this often
ORPHAN_SECONDS = 60.0  # a return pending this long with no process sending it is sent again
PUBLISH_CHUNK = 500  # a file's events are published (and their acks awaited) this many at a time
# How long a process remembers the credits it published (`Incoming._not_paid`): their
# ``arrived`` may wait on NATS while the ledger is behind or away, and the ledger has no
# record of them until it posts them.
PUBLISHED_MEMORY_S = 24 * 3600
RETURN_PREFIX = "RET-"  # a return's file name: RET-<payment id>.xml
# The ledger's reasons for not applying a credit (fjordbank.domain.ledger.Book.receive), as
# the ISO return reasons the paying bank reads; any other is "not specified".
RETURN_REASONS = {
    "unknown_account": pacs.RETURN_NO_ACCOUNT,
    "to_account_closed": pacs.RETURN_CLOSED_ACCOUNT,
    "currency_mismatch": pacs.RETURN_CURRENCY,
}
# In an incoming payment's event detail: what its return must name.
FILE = "incomingFile"
END_TO_END = "endToEndId"
TRANSACTION = "transactionId"
SETTLED_ON = "settlementDate"
PAYING_BANK = "debtorAgent"  # the paying bank's BIC: where the return goes

OwnersOf = Callable[[list[str]], Awaitable[Mapping[str, str | None]]]
Sanctions = Callable[[], SanctionsList]  # the list as it is now (fjordbank.adapters.sanctions_file)
Publish = Callable[[list[PaymentEvent]], Awaitable[None]]


class IncomingChannel(Protocol):
    """The channel's side for payments in (fjordbank.adapters.clearing_store.ClearingDirs).
    Each raises ConnectionError while the channel is down."""

    def incoming(self) -> list[Path]:
        """The pacs.008 files waiting, oldest first."""

    def read_incoming(self, path: Path) -> bytes: ...

    def file_away(self, path: Path, suffix: str = "") -> None:
        """A file handled, or set aside (``suffix``), never over a file filed away under its
        name; one filed away already is not an error. Where the file cannot be linked into
        place (no hard links, or one of another user), it is copied there: one killed between
        the copy and its removal is listed again, and handled again (idempotent)."""

    def deliver(self, name: str, data: bytes, *, resend_lost: bool = False) -> None:
        """Send a file once: FileExistsError when that name was delivered before (waiting or
        taken; ``resend_lost``: one marked delivered and never placed, a crash between the
        two, is placed again, as marked when its mark is whole: a mark not flagged whole is
        read and parsed then, once)."""


def request_id_of(payment_id: str) -> str:
    """An incoming payment's request id: no app request can have it (a colon is not in
    `fjordbank.domain.payments.REQUEST_ID_PATTERN`), so no customer's request document is
    ever taken for the payment's record."""
    return f"{INCOMING}:{payment_id}"


def body_hash(transfer: pacs.IncomingTransfer) -> str:
    """What each step checks a redelivered event against (the ledger's ``bodyHash``)."""
    parts = (transfer.key, str(transfer.amount_minor), transfer.currency, transfer.creditor_account)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def arrived_event(
    transfer: pacs.IncomingTransfer, *, message_id: str, payee_uid: str, created: dt.datetime
) -> PaymentEvent:
    """The ``arrived`` event of one credit of a file made at ``created``, for the payee
    ``payee_uid``. Due on its settlement date (the day "my economy" and the feed book it);
    from the file alone, so a file read again makes the same event."""
    payment_id = transfer.payment_id
    payment = PaymentRequested(
        payment_id=payment_id,
        uid=payee_uid,
        request_id=request_id_of(payment_id),
        kind=INCOMING,
        from_account=transfer.debtor.account,
        to_account=transfer.creditor_account,
        amount=transfer.amount_minor,
        currency=transfer.currency,
        message=transfer.message,
        kid=transfer.kid,
        due_date=transfer.settlement_date.isoformat(),
        body_hash=body_hash(transfer),
        requested_at=created.astimezone(dt.UTC).isoformat(),
        payee_name=transfer.creditor_name,
    )
    detail = {
        FILE: message_id,
        END_TO_END: transfer.end_to_end_id,
        TRANSACTION: transfer.transaction_id,
        SETTLED_ON: transfer.settlement_date.isoformat(),
        PAYING_BANK: transfer.debtor_agent_bic,
        PAYER_NAME: transfer.debtor.name,
    }
    return PaymentEvent(payment, ARRIVED, detail=detail)


def return_name(payment_id: str) -> str:
    return f"{RETURN_PREFIX}{payment_id}.xml"


def return_path(payment_id: str) -> str:
    return f"{RETURNS}/{payment_id}"


# A return to make: what the pacs.004 says, less its date and this bank's BIC (filled in
# when it is delivered, so one sent after an outage is dated the day it goes).
ReturnOrder = dict[str, Any]


def return_order(event: PaymentEvent, reason_code: str) -> ReturnOrder:
    """The return of ``event``'s payment (an arrived or unapplied event, whose detail names
    the original transfer and its bank)."""
    detail, p = event.detail or {}, event.payment
    return {
        "paymentId": p.payment_id,
        "originalMessageId": str(detail.get(FILE) or ""),
        "originalEndToEndId": str(detail.get(END_TO_END) or ""),
        "originalTransactionId": str(detail.get(TRANSACTION) or ""),
        "amount": p.amount,
        "currency": p.currency,
        "originalSettlementDate": str(detail.get(SETTLED_ON) or ""),
        "payingBank": str(detail.get(PAYING_BANK) or ""),
        "reason": reason_code,
    }


def refused_order(refused: pacs.RefusedCredit, message_id: str) -> ReturnOrder:
    """The return of a credit of a file that could not be taken as it is."""
    return {
        "paymentId": refused.payment_id,
        "originalMessageId": message_id,
        "originalEndToEndId": refused.end_to_end_id,
        "originalTransactionId": refused.transaction_id,
        "amount": refused.amount_minor,
        "currency": refused.currency,
        "originalSettlementDate": refused.settlement_date.isoformat(),
        "payingBank": refused.debtor_agent_bic,
        "reason": refused.reason_code,
    }


def held_record(event: PaymentEvent, screened: ScreeningResult, *, file: str) -> Data:
    """A credit held for sanctions review: the event it would have been (what a release
    publishes), what the payer's name resembles on the list, and where it came from."""
    p = event.payment
    return {
        "paymentId": p.payment_id,
        "status": HELD,
        "reason": HOLD_REASON,
        "event": event.to_json(),
        "amount": p.amount,
        "toAccount": p.to_account,
        "payerName": str((event.detail or {}).get(PAYER_NAME) or ""),
        "matches": _matches(screened),
        "file": file,
        "createdAt": SERVER_TIME,
    }


def held_return_record(
    refused: pacs.RefusedCredit, order: ReturnOrder, screened: ScreeningResult, *, file: str
) -> Data:
    """A credit this bank could not take as it is, whose payer's name is like a listed one:
    held instead of sent back (``order``: the return a release sends)."""
    return {
        "paymentId": refused.payment_id,
        "status": HELD,
        "reason": HOLD_REASON,
        "order": order,
        "amount": refused.amount_minor,
        "payerName": refused.debtor_name or "",
        "matches": _matches(screened),
        "file": file,
        "createdAt": SERVER_TIME,
    }


def _matches(screened: ScreeningResult) -> list[Data]:
    return [{"entityId": m.entity_id, "alias": m.alias, "score": m.score} for m in screened.matches]


class HeldDecisionRefused(DomainError):
    """A decision on a held credit that cannot be taken (the message says why)."""

    code = "held_decision_refused"


async def decide_held(docs: AsyncDocuments, payment_id: str, decision: str, *, by: str, note: str) -> Data:
    """A compliance officer's decision on a held credit: ``release`` (clearing then credits
    it, or sends it back when its account is not here) or ``frozen``. Only a credit still
    held can be decided, once: a second decision, or one on a credit that is not held, is
    refused (`HeldDecisionRefused`). ``by`` and ``note`` are kept with it (who, and why).
    Returns the record as decided."""
    if decision not in DECISIONS:
        raise HeldDecisionRefused(f"a decision is one of {', '.join(DECISIONS)}, not {decision!r}")
    by, note = " ".join(by.split()) if isinstance(by, str) else "", note.strip() if isinstance(note, str) else ""
    if not by or not note:
        raise HeldDecisionRefused("a decision names who took it (by) and why (note)")
    # printable only, as every other officer's decision (rescreening.checked_note): a control
    # character, a direction override or a lone surrogate (what argv gives for a byte that is
    # not UTF-8; it failed the commit with a traceback) was kept in the compliance record
    # (found in review, 2026-12-07)
    if not by.isprintable() or not note.isprintable():
        raise HeldDecisionRefused("by and note are printable text (no control characters)")
    if not isinstance(payment_id, str) or _INCOMING_ID.fullmatch(payment_id) is None:
        raise HeldDecisionRefused(f"{str(payment_id)[:40]!r} is no payment id from another bank (in + 30 hex digits)")
    doc = await docs.get(return_path(payment_id))
    if doc is None or doc.data.get("status") not in (HELD, RELEASE, RELEASED, FROZEN):
        raise HeldDecisionRefused(f"{payment_id} is not a payment held for review")
    if doc.data.get("status") != HELD:
        raise HeldDecisionRefused(f"{payment_id} was decided already: {doc.data.get('status')}")
    if isinstance(doc.data.get("event"), dict):
        await _require_booked(docs, doc)
    decided = {"status": decision, "decidedBy": by[:200], "note": note[:1000], "decidedAt": SERVER_TIME}
    batch = docs.batch()
    batch.update(return_path(payment_id), decided, if_updated=doc.updated)
    try:
        await batch.commit()
    except Stale:  # decided by someone else in the meantime
        raise HeldDecisionRefused(f"{payment_id} was decided by someone else just now") from None
    log.warning(
        "payment held for sanctions review decided",
        extra={"payment_id": payment_id, "decision": decision, "decided_by": by[:200]},
    )
    return {**doc.data, **decided}


async def _require_booked(docs: AsyncDocuments, doc: Doc) -> None:
    """A held credit the ledger books is decided only once the ledger holds it: only then
    does what the officer decides hold for its money. Not booked yet (its ``held`` is on its
    way), it is refused for now. Credited to the payee instead (two instances read its file
    at once while a new list rolled out: the one still on the old list published its
    ``arrived``, which the ledger took first, and its hold came after), the money is the
    payee's: it is turned into ``matched_late`` (as one found credited when its file was
    read again, `Incoming._not_credited`), said at error level, and refused. Before, the
    officer froze money the payee had. One the ledger left unapplied (no account here) is
    at the bank, and decided as any other."""
    booked = await docs.get(f"{LEDGER_PAYMENTS}/{doc.id}")
    status = None if booked is None else booked.data.get("status")
    if status is None:
        raise HeldDecisionRefused(
            f"{doc.id} is not on the books yet (the ledger books a hold within seconds): try again"
        )
    if status != LEDGER_CREDITED:
        return
    batch = docs.batch()
    batch.update(return_path(doc.id), {"status": MATCHED_LATE, "matchedLateAt": SERVER_TIME}, if_updated=doc.updated)
    try:
        await batch.commit()
    except Stale:  # decided or changed by someone else in the meantime
        raise HeldDecisionRefused(f"{doc.id} was changed by someone else just now") from None
    log.error(
        "a payment from another bank credited before its hold reached the ledger; compliance must look",
        extra={"payment_id": doc.id, "entities": [m.get("entityId") for m in doc.data.get("matches") or []]},
    )
    raise HeldDecisionRefused(
        f"{doc.id} was credited to the payee before its hold reached the ledger: the money is the payee's, "
        f"so it is not held; it is now {MATCHED_LATE}, for compliance to take up"
    )


def _release_of(doc: Doc) -> tuple[PaymentEvent | None, ReturnOrder | None]:
    """What releasing a held credit does: (its event to publish, None), or (None, the
    return to send) for a credit not taken as it is. One to an account not here is
    published too: the ledger moves it out of suspense and leaves it unapplied (it credits
    no one with a credit whose account was not here when it came), and its return is sent
    from that, as any other."""
    if isinstance(order := doc.data.get("order"), dict):
        if order.get("paymentId") != doc.id:
            raise ValueError("the record's return names another payment")
        return None, dict(order)
    event = PaymentEvent.from_json(doc.data.get("event"))
    if event.payment.payment_id != doc.id:
        raise ValueError("the record's event names another payment")
    return replace(event, detail={**(event.detail or {}), RELEASED_FROM_HOLD: True}), None


def held_event(record: Data) -> PaymentEvent | None:
    """A held credit's ``held`` event (for the ledger's suspense), None for one that has no
    event (a credit not taken as it is)."""
    if not isinstance(record.get("event"), dict):
        return None
    event = PaymentEvent.from_json(record["event"])
    if event.payment.payment_id != record.get("paymentId"):
        raise ValueError("the record's event names another payment")
    return replace(event, status=HELD_STEP)


async def held_payments(docs: AsyncDocuments, *, status: str = HELD) -> list[Doc]:
    """The credits held for review (or in another of the hold's states), oldest first."""
    found = await docs.query(RETURNS, where=[Where("status", "==", status)])
    return sorted(found, key=lambda d: (str(d.data.get("createdAt") or ""), d.id))


def payment_return(order: ReturnOrder, *, bic: str, now: dt.datetime) -> bytes:
    """The pacs.004 of ``order`` from this bank (``bic``), sent on the banking day of ``now``
    (`return_settles`). Raises `fjordbank.domain.pacs.InvalidPaymentFile` for an order that
    names no transfer (an event this code did not make)."""
    try:
        settled = dt.date.fromisoformat(str(order.get("originalSettlementDate")))
    except ValueError:
        raise pacs.InvalidPaymentFile("the return names no settlement date") from None
    pid = str(order.get("paymentId") or "")
    returned = pacs.PaymentReturn(
        return_id=f"RT{pid[len(pacs.KEY_PREFIX) :]}",
        original_message_id=str(order.get("originalMessageId") or ""),
        original_end_to_end_id=str(order.get("originalEndToEndId") or ""),
        original_transaction_id=str(order.get("originalTransactionId") or ""),
        amount_minor=order.get("amount"),  # type: ignore[arg-type]  # checked by PaymentReturn
        currency=str(order.get("currency") or ""),
        original_settlement_date=settled,
        settlement_date=return_settles(settled, now),
        instructing_agent_bic=bic,
        instructed_agent_bic=str(order.get("payingBank") or ""),
        reason_code=str(order.get("reason") or ""),
    )
    return pacs.build_pacs004(pacs.ReturnBatch(returned.return_id, now, (returned,)))


def _another_credit(returned: dict[str, Doc], batch: pacs.IncomingBatch, file: str) -> int:
    """How many of the file's credits are under the key (paying bank, day, TxId) of one sent
    back or held before (``returned``: their records) but are not that credit: another
    amount or end-to-end id. Each is neither credited nor sent back, as the credit of its key
    was, and is said at error level, for an operator to take up with the clearing house: it
    was dropped with nothing but a count in the file's info line, the money settled with the
    bank and the payee never told (found in review, 2026-12-07). (The other order, a credit
    under the key of one credited before, is refused by the ledger and dead-lettered.)"""
    differing = 0
    credits = [(t.payment_id, t.amount_minor, t.end_to_end_id) for t in batch.transfers]
    credits += [(r.payment_id, r.amount_minor, r.end_to_end_id) for r in batch.refused]
    for pid, amount, end_to_end_id in credits:
        if (doc := returned.get(pid)) is None:
            continue
        order = doc.data.get("order") or doc.data.get("orderInFile") or {}
        recorded_amount = order.get("amount", doc.data.get("amount"))
        recorded_id = order.get("originalEndToEndId")
        if (recorded_amount is not None and recorded_amount != amount) or (
            recorded_id is not None and recorded_id != end_to_end_id
        ):
            differing += 1
            log.error(
                "a credit under the key of one sent back or held before is another credit; "
                "neither credited nor sent back, for an operator",
                extra={"file": file, "payment_id": pid, "amount": amount, "recorded_amount": recorded_amount},
            )
    return differing


def return_settles(original: dt.date, now: dt.datetime) -> dt.date:
    """The day a return sent at ``now`` settles: the banking day of ``now``, and never before
    the credit it returns settles (on its banking day: one dated a Saturday settles on the
    Monday). A credit settling on the next banking day is taken today (`Incoming.read`), and
    one to no account here is sent back at once: dated today, its return settled before the
    money it returns (found in review, 2026-12-06)."""
    return max(next_banking_day(today_in_norway(now)), next_banking_day(original))


class Incoming:
    """Reads the clearing house's pacs.008 files and sends back what cannot be credited.
    Keeps the returns the channel did not take (``pending``: payment id -> what the return
    says) until it does."""

    def __init__(
        self,
        docs: AsyncDocuments,
        channel: IncomingChannel,
        owners_of: OwnersOf,
        *,
        bic: str,
        sanctions: Sanctions,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.docs = docs
        self.channel = channel
        self.owners_of = owners_of
        self.sanctions = sanctions  # every payer is screened against it
        self.bic = bic  # this bank's: what the files are addressed to, what the returns are from
        self.clock = clock
        self.retry_seconds = retry_seconds
        self.pending: dict[str, ReturnOrder] = {}
        self._unreadable: set[str] = set()  # released records that cannot be read (said once)
        # payment id -> when (monotonic) this process published its ``arrived`` (`_not_paid`)
        self._published: dict[str, float] = {}

    # ---- files in -------------------------------------------------------------------------
    def read(self, path: Path) -> pacs.IncomingBatch | None:
        """The file's credits; None when it cannot be taken (then moved aside)."""
        try:
            data = self.channel.read_incoming(path)
        except ConnectionError:
            raise  # the channel, not the file: read again when it is back
        except OSError as exc:
            self._set_aside(path, exc)
            return None
        try:
            batch = pacs.parse_pacs008(data, bic=self.bic)
        except DomainError as exc:
            self._set_aside(path, exc)
        except Exception as exc:  # a defect in the parser: the files behind it are still read
            log.exception("the pacs.008 parser failed", extra={"file": path.name})
            self._set_aside(path, exc)
        else:
            # money the clearing house has not settled with the bank yet is not paid out:
            # a file settling after the next banking day is not one of today's. Its refused
            # credits too: a file of refused ones alone, settling on 9999-12-31, passed, its
            # return's date overflowed (return_settles), the file was neither taken nor set
            # aside, and every file behind it waited for ever (found in review, 2026-12-07)
            latest = next_banking_day(today_in_norway(self.clock()) + dt.timedelta(days=1))
            dates = [t.settlement_date for t in batch.transfers] + [r.settlement_date for r in batch.refused]
            if all(day <= latest for day in dates):
                return batch
            self._set_aside(path, pacs.InvalidPaymentFile("a credit settles after the next banking day"))
        return None

    def _set_aside(self, path: Path, exc: Exception) -> None:
        log.error("pacs.008 not taken; moved aside", extra={"file": path.name, "error": str(exc)})
        self.channel.file_away(path, ".rejected")

    async def receive_file(self, path: Path, publish: Publish) -> list[PaymentEvent]:
        """One pacs.008: publish each credit's ``arrived``, send back those to no account
        here, then file it away. A credit sent back before is neither. Returns the events
        published."""
        batch = await asyncio.to_thread(self.read, path)
        if batch is None:
            return []
        ids = [t.payment_id for t in batch.transfers] + [r.payment_id for r in batch.refused]
        found = await self.docs.get_many([return_path(pid) for pid in ids])
        returned = {doc.id: doc for doc in found.values() if doc is not None}
        for pid, doc in returned.items():  # recorded, not delivered: a commit that answered an error
            if doc.data.get("status") == PENDING and pid not in self.pending:
                await self._try(pid, dict(doc.data.get("order") or {}))
        differing = _another_credit(returned, batch, path.name)
        fresh = [t for t in batch.transfers if t.payment_id not in returned]
        refused = [r for r in batch.refused if r.payment_id not in returned]
        names = {t.debtor.name for t in fresh} | {r.debtor_name for r in refused if r.debtor_name}
        screened = await asyncio.to_thread(self.screen, names)
        payees = await self.owners_of(sorted({t.creditor_account for t in fresh}))
        arrived: list[PaymentEvent] = []
        nowhere: list[PaymentEvent] = []
        held: list[Data] = []  # neither credited nor sent back
        for transfer in fresh:
            payee = payees.get(transfer.creditor_account)
            # one to no account here is never published: its event only carries its return
            event = arrived_event(
                transfer, message_id=batch.message_id, payee_uid=payee or NO_PAYEE, created=batch.created_at
            )
            if (result := screened.get(transfer.debtor.name)) is not None:
                held.append(held_record(event, result, file=path.name))
            else:
                (arrived if payee else nowhere).append(event)
        back: list[pacs.RefusedCredit] = []
        for r in refused:
            if r.debtor_name and (result := screened.get(r.debtor_name)) is not None:
                held.append(held_return_record(r, refused_order(r, batch.message_id), result, file=path.name))
            else:
                back.append(r)
        held = await self._not_credited(held)
        made = await self.hold(held, path.name)  # recorded before anything else is done with the file
        undecided = [doc.data for doc in returned.values() if doc.data.get("status") in UNDECIDED]
        undecided += await self._held_by_another(held, made)
        suspended = [e for record in [*made, *undecided] if (e := self._held_event(record)) is not None]
        nowhere, back = await self._not_paid(nowhere, back, path.name)
        for chunk in (suspended, arrived):
            for start in range(0, len(chunk), PUBLISH_CHUNK):  # a payroll file: thousands of credits
                await publish(chunk[start : start + PUBLISH_CHUNK])
        self._remember([e.payment.payment_id for e in arrived])
        for event in nowhere:
            await self.send_back(event, pacs.RETURN_NO_ACCOUNT)
        for r in back:
            log.warning(
                "a credit not taken as it is; sent back",
                extra={"file": path.name, "payment_id": r.payment_id, "reason": r.reason_code, "error": r.why},
            )
            await self.send_order(refused_order(r, batch.message_id))
        self.channel.file_away(path)
        log.info(
            "pacs.008 handled",
            extra={
                "file": path.name,
                "message_id": batch.message_id,
                "arrived": len(arrived),
                "returned": len(nowhere) + len(back),
                "returned_before": len(returned),
                "differing": differing,
                "held": len(held),
                "held_booked": len(suspended),
                "amount": sum(e.payment.amount for e in arrived),
            },
        )
        return arrived

    async def _not_credited(self, held: list[Data]) -> list[Data]:
        """The credits to hold, less those the ledger has a record of: read and credited
        (or sent back) before the list named their payer (a file read again after a new
        list). Such a one is not held (its money is the payee's already: a hold would say
        otherwise) but recorded as ``matched_late`` and said at error level, for compliance
        to look at. So is one the file would send back (its return ``order``: no payer's
        account, say), which a release would have sent back though the payee was paid; its
        order is kept aside (``orderInFile``), never as the record's ``order``, which a
        return of the ledger's own (unapplied) would otherwise send instead of its own."""
        if not held:
            return held
        late = await self._in_ledger([r["paymentId"] for r in held])
        if not late:
            return held
        for record in (r for r in held if r["paymentId"] in late):
            kept = {k: v for k, v in record.items() if k != "order"}
            if "order" in record:
                kept["orderInFile"] = record["order"]
            batch = self.docs.batch()
            batch.create(return_path(record["paymentId"]), {**kept, "status": MATCHED_LATE})
            try:
                await batch.commit()
            except AlreadyExists:
                continue
            log.error(
                "a payment from another bank credited before its payer was like a listed one; compliance must look",
                extra={"payment_id": record["paymentId"], "entities": [m["entityId"] for m in record["matches"]]},
            )
        return [r for r in held if r["paymentId"] not in late]

    async def _in_ledger(self, payment_ids: list[str]) -> set[str]:
        """Those of ``payment_ids`` the ledger has a record of (credited, or left unapplied)."""
        if not payment_ids:
            return set()
        found = await self.docs.get_many([f"{LEDGER_PAYMENTS}/{pid}" for pid in payment_ids])
        return {d.id for d in found.values() if d is not None}

    async def _not_paid(
        self, nowhere: list[PaymentEvent], back: list[pacs.RefusedCredit], file: str
    ) -> tuple[list[PaymentEvent], list[pacs.RefusedCredit]]:
        """The credits to send back, less those the ledger has a record of. A payment id is
        the paying bank's, day's and transaction's: a file naming one the ledger credited
        before, now to an account not here or without its payer, is that credit come again
        in another form (a garbled or forged file). Sent back, it would return money the
        payee was paid already, for whatever amount the new copy names; one the ledger left
        unapplied is sent back from its ``unapplied``. Said at error level, for an operator
        to take up with the clearing house; nothing is done with it here.

        So is one this process published an ``arrived`` for lately (`_remember`): the
        ledger has no record of it until it posts it, a second or, while it is away, hours
        later, and a garbled copy read meanwhile was sent back, the original credited too:
        the bank paid it twice (found in review, 2026-12-07). A process started since does
        not know it; the ledger's record closes that window once it posts."""
        ids = [e.payment.payment_id for e in nowhere] + [r.payment_id for r in back]
        paid = await self._in_ledger(ids) | {pid for pid in ids if pid in self._published}
        if not paid:
            return nowhere, back
        for pid in sorted(paid):
            log.error(
                "a credit the ledger has came again in a file in a form that would send it back; not sent back",
                extra={"file": file, "payment_id": pid},
            )
        return (
            [e for e in nowhere if e.payment.payment_id not in paid],
            [r for r in back if r.payment_id not in paid],
        )

    def _remember(self, payment_ids: list[str]) -> None:
        """Note the credits just published (`_not_paid`), forgetting those published more
        than `PUBLISHED_MEMORY_S` ago (a day's credits: a few hundred thousand ids at most)."""
        now = time.monotonic()
        for pid in payment_ids:
            self._published.pop(pid, None)  # kept in the order published: the oldest first
            self._published[pid] = now
        for pid, when in list(self._published.items()):
            if now - when < PUBLISHED_MEMORY_S:
                break
            del self._published[pid]

    def _held_event(self, record: Data) -> PaymentEvent | None:
        """`held_event`; a record that cannot be read is said (an operator's) and skipped:
        the file's other credits go on."""
        try:
            return held_event(record)
        except (DomainError, ValueError, TypeError, KeyError) as exc:
            log.error(
                "a held payment's record cannot be read; not booked into suspense",
                extra={"payment_id": record.get("paymentId"), "error": str(exc)},
            )
            return None

    def screen(self, names: set[str]) -> dict[str, ScreeningResult]:
        """The payers' names like a listed one: name -> what it is like (the others pass).
        Each name once per file (a payroll's one payer)."""
        sanctions = self.sanctions()
        return {name: r for name in names if (r := sanctions.screen_counterparty(name)).outcome != "clear"}

    async def _held_by_another(self, held: list[Data], made: list[Data]) -> list[Data]:
        """The credits to hold whose record another process made meanwhile (two instances
        reading one file): as recorded, if that is a hold of the same credit. One recorded
        as a return (the other instance's list did not name the payer yet) went back: its
        hold is never booked (suspense would show money the bank sent back)."""
        made_ids = {r["paymentId"] for r in made}
        others = [r for r in held if r["paymentId"] not in made_ids]
        if not others:
            return []
        found = await self.docs.get_many([return_path(r["paymentId"]) for r in others])
        return [
            doc.data
            for r in others
            if (doc := found.get(return_path(r["paymentId"]))) is not None
            and doc.data.get("status") in UNDECIDED
            and doc.data.get("event") == r.get("event")
        ]

    async def hold(self, held: list[Data], file: str) -> list[Data]:
        """Record each credit held for review (once: one held before stays as it was).
        Returns the records made here."""
        made: list[Data] = []
        for start in range(0, len(held), HOLD_CHUNK):
            chunk = held[start : start + HOLD_CHUNK]
            batch = self.docs.batch()
            for record in chunk:
                batch.create(return_path(record["paymentId"]), record)
            try:
                await batch.commit()
                made += chunk
            except AlreadyExists:  # one of them held before (a file read again): the rest one by one
                for record in chunk:
                    one = self.docs.batch()
                    one.create(return_path(record["paymentId"]), record)
                    try:
                        await one.commit()
                    except AlreadyExists:
                        continue
                    made.append(record)
        for record in made:
            log.warning(
                "payment from another bank held for sanctions review",
                extra={
                    "payment_id": record["paymentId"],
                    "file": file,
                    "amount": record["amount"],
                    "entities": [m["entityId"] for m in record["matches"]],
                },
            )
        return made

    async def book_held(self, publish: Publish) -> int:
        """Publish the ``held`` of every credit held or frozen (at start): one held before
        the ledger kept held credits in suspense, or whose publish a crash lost (its file
        not read again), is put on the books; the ledger books each once. Returns how many."""
        found = [doc for status in UNDECIDED for doc in await held_payments(self.docs, status=status)]
        events = [e for doc in found if (e := self._held_event({**doc.data, "paymentId": doc.id})) is not None]
        for start in range(0, len(events), PUBLISH_CHUNK):
            await publish(events[start : start + PUBLISH_CHUNK])
        if events:
            log.info("held payments published for the ledger's suspense", extra={"count": len(events)})
        return len(events)

    async def release_decided(self, publish: Publish) -> int:
        """The held credits a compliance officer released: each published as it would have
        been, or sent back (its account not here, or a credit not taken as it is), then
        marked. Returns how many. A publish that fails leaves it to the next pass; one
        published twice is one payment (its message id, then the ledger's record)."""
        released = 0
        for doc in await held_payments(self.docs, status=RELEASE):
            try:
                event, order = _release_of(doc)
            except (DomainError, ValueError, TypeError, KeyError) as exc:
                if doc.id not in self._unreadable:  # said once per process, not every pass
                    self._unreadable.add(doc.id)
                    log.error(
                        "a released payment's record cannot be read; left for an operator",
                        extra={"payment_id": doc.id, "error": str(exc)},
                    )
                continue
            marked: Data = {"releasedAt": SERVER_TIME}
            if event is not None:
                await publish([event])
                marked |= {"status": RELEASED}
            else:  # sent back, as it would have been: a return from now (the outbox gauge's age)
                marked |= {
                    "status": PENDING,
                    "order": order,
                    "heldAt": doc.data.get("createdAt"),
                    "createdAt": SERVER_TIME,
                }
            batch = self.docs.batch()
            batch.update(return_path(doc.id), marked, if_updated=doc.updated)
            try:
                await batch.commit()
            except Stale:  # another process took it
                continue
            if order is not None:
                await self._try(doc.id, order)
            log.info("payment held for review released", extra={"payment_id": doc.id, "amount": doc.data.get("amount")})
            released += 1
        return released

    # ---- returns out ----------------------------------------------------------------------
    async def unapplied(self, event: PaymentEvent) -> bool:
        """The ledger could not credit ``event``'s payment: send it back with its reason."""
        return await self.send_back(event, RETURN_REASONS.get(event.reason or "", pacs.RETURN_OTHER))

    async def send_back(self, event: PaymentEvent, reason_code: str) -> bool:
        return await self.send_order(return_order(event, reason_code))

    async def send_order(self, order: ReturnOrder) -> bool:
        """Record ``order`` (once: the first one recorded is the one sent) and deliver it.
        True when this call delivered it; False when it was delivered before, or the channel
        is down (then it is kept and sent later). Raises
        `fjordbank.domain.pacs.InvalidPaymentFile` for an order that names no transfer."""
        payment_return(order, bic=self.bic, now=self.clock())  # it can be made: checked before it is kept
        pid = str(order["paymentId"])
        batch = self.docs.batch()
        batch.create(
            return_path(pid),
            {"paymentId": pid, "reason": order["reason"], "status": PENDING, "order": order, "createdAt": SERVER_TIME},
        )
        try:
            await batch.commit()
        except AlreadyExists:
            doc = await self.docs.get(return_path(pid))
            if doc is None or doc.data.get("status") == DELIVERED:
                return False
            if doc.data.get("status") in UNDECIDED:  # held for review: only a release sends it back
                log.error(
                    "a return of a payment held for sanctions review not sent; left for the decision",
                    extra={"payment_id": pid, "status": doc.data.get("status"), "reason": order.get("reason")},
                )
                return False
            if doc.data.get("status") in (RELEASE, RELEASED):
                # a released credit the ledger left unapplied: its return is recorded on the
                # decision's record before the ledger's message is acked, as any other is
                return await self._record_released_return(doc, order)
            order = dict(doc.data.get("order") or order)
        return await self._try(pid, order)

    async def _record_released_return(self, doc: Doc, order: ReturnOrder) -> bool:
        """Turn a released credit's record into its pending return (the decision kept, dated
        from now, as `release_decided` does for one it sends back itself), then deliver it.
        When the record changed since it was read (`release_decided` marked it just then,
        or another process recorded the return), it is read again once and taken as it is
        then; a second change raises `Stale` (the ledger's message is delivered again)."""
        for attempt in range(2):
            batch = self.docs.batch()
            pending = {"status": PENDING, "order": order, "heldAt": doc.data.get("createdAt"), "createdAt": SERVER_TIME}
            batch.update(return_path(doc.id), pending, if_updated=doc.updated)
            try:
                await batch.commit()
            except Stale:
                again = await self.docs.get(return_path(doc.id))
                if attempt or again is None:
                    raise
                if again.data.get("status") not in (RELEASE, RELEASED):  # recorded by another: as it is now
                    return await self.send_order(order)
                doc = again
                continue
            break
        return await self._try(doc.id, order)

    async def _deliver(self, pid: str, order: ReturnOrder) -> bool:
        xml = payment_return(order, bic=self.bic, now=self.clock())
        try:
            # a return is one message (its id) on every try: one the channel marked and never
            # placed (killed between the two) is placed again, not taken for delivered
            await asyncio.to_thread(self.channel.deliver, return_name(pid), xml, resend_lost=True)
            delivered = True
        except FileExistsError:  # delivered before (a crash before it was recorded)
            delivered = False
        except OSError as exc:  # the channel is down: kept, and sent when it is back
            if pid not in self.pending:
                log.warning(
                    "clearing channel down: return kept to send later", extra={"payment_id": pid, "error": str(exc)}
                )
            self.pending[pid] = order
            raise ReturnKept(str(exc)) from exc
        batch = self.docs.batch()
        batch.update(return_path(pid), {"status": DELIVERED, "deliveredAt": SERVER_TIME})
        await batch.commit()
        self.pending.pop(pid, None)
        if delivered:
            log.info("payment from another bank sent back", extra={"payment_id": pid, "reason": order.get("reason")})
        return delivered

    async def _try(self, pid: str, order: ReturnOrder) -> bool:
        """`_deliver`, False when the channel kept it (it is in ``pending``) or a recorded
        return cannot be made (not this code's: left pending for an operator, said)."""
        try:
            return await self._deliver(pid, order)
        except ReturnKept:
            return False
        except DomainError:
            log.exception("a recorded return cannot be made; left for an operator", extra={"payment_id": pid})
            self.pending.pop(pid, None)
            return False

    async def resend_pending(self, *, older_than: float = 0.0) -> None:
        """The returns recorded and not delivered (``older_than`` seconds ago at least: a
        crash, an outage, a commit that answered an error though it went through, another
        process that stopped): sent now, or kept for `deliver_pending`. One that fails is
        kept and said; the service starts all the same."""
        since = self.clock() - dt.timedelta(seconds=older_than)
        for doc in await self.docs.query(RETURNS, where=[Where("status", "==", PENDING)]):
            if older_than and doc.updated is not None and doc.updated > since:
                continue  # being delivered by whoever recorded it
            order = dict(doc.data.get("order") or {})
            try:
                await self._deliver(doc.id, order)
            except ReturnKept:
                break  # the channel is down: the rest wait in the same place
            except DomainError:
                log.exception("a recorded return cannot be made; left for an operator", extra={"payment_id": doc.id})
            except Exception:
                log.exception("a recorded return could not be sent; kept", extra={"payment_id": doc.id})
                self.pending[doc.id] = order

    async def deliver_pending(self, stop: asyncio.Event) -> None:
        """Send the kept returns every ``retry_seconds`` until ``stop`` (a pass, then a
        wait), and every `ORPHAN_SECONDS` the pending ones no process is sending."""
        looked = self.clock()
        while True:
            for pid, order in list(self.pending.items()):
                if not await self._try(pid, order):
                    break  # still down
            if (self.clock() - looked).total_seconds() >= ORPHAN_SECONDS:
                looked = self.clock()
                await self.resend_pending(older_than=ORPHAN_SECONDS)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.retry_seconds)
                return
            except TimeoutError:
                continue


class ReturnKept(Exception):
    """The channel did not take a return now: it is kept (``Incoming.pending``)."""
