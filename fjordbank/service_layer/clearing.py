"""Clearing: external payments out to other banks in pain.001 files, their pain.002 answers
in, on the document ports (fjordbank.service_layer.ports) and a channel of files.

Documents:
  clearingPayments/{paymentId}  which file carried the payment (a payment goes out once)
  clearingFiles/{fileId}        the file's payments, their trace contexts, their answers and
                                its state: created -> sending -> written -> answered

Each clearing cycle claims the payments not yet in a file into a new one (`claim`; recorded
before the file is written, so a payment is never sent twice): one commit that creates each
payment's record and the file's, reading nothing; a payment in a file already (its message
redelivered) fails that create, and the batch is then claimed in one unit of work
(operation ``clearing``) that reads the records first. Then the file is written as ISO 20022
pain.001.001.03 to the channel and marked written (`send_or_keep`): marked "sending" first,
by this process, in a unit of work that reads the file (`take_delivery`: another process's
delivery under way is left to it), so a file whose delivery went through but whose mark
did not is told apart from one never delivered, and no file is delivered twice at once.
A file recorded but not written (a crash in between) is written again when the service
starts (`resend_unwritten`), unless the channel has it already (a file delivered
twice under one message id is rejected whole by the clearing house, and that answer would
return payments the first copy settles). A claim whose commit went through though it
answered an error leaves its file recorded under the first cycle's id: the cycle that finds
its payments there writes that file (`write_left`).

The channel (`Channel`; fjordbank.adapters.clearing_store.ClearingDirs, the folders a
transfer service exchanges with the clearing house) may be down: it raises ConnectionError
(an OSError). A file it did not take stays "created" and is kept, written again every
RETRY_SECONDS (`deliver_pending`) until the channel is back; the payments wait, none is
lost.

An answer (`handle_answer`) reads the file it answers, one document for all its payments
(until 2026-12-01 it read and then updated each payment's record as well: 2 of an external
payment's documents); each payment's settled or returned step is published (in the
payment's own trace: the traceparent `claim` kept on the file), then the answers are marked
on the file in one write and the answer file moved to processed; an unreadable answer or
one to a file the bank has no record of is moved aside for an operator, so the answers
behind it are still read. Answers sent twice or out of order are handled as they come: a
step has one message id and the ledger answers a replay from its records, so each payment
settles or returns once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from opentelemetry.context import Context

from fjordbank.adapters.firestore import CLEARING_FILES, CLEARING_PAYMENTS, is_transient
from fjordbank.domain import iso20022
from fjordbank.domain.errors import DomainError
from fjordbank.domain.norway import next_banking_day, today_in_norway
from fjordbank.domain.payments import MAX_NAME_LENGTH, PaymentEvent, PaymentRequested
from fjordbank.runtime import tracing
from fjordbank.service_layer.ports import (
    SERVER_TIME,
    AlreadyExists,
    AsyncDocuments,
    AsyncUnitOfWork,
    Clock,
    Data,
    Doc,
    Where,
    Writes,
    system_clock,
)

log = logging.getLogger("clearing")
RETRY_SECONDS = 2.0  # a file the channel did not take is written again this often
INITIATING_PARTY = "Fjordbank ASA"
DEBTOR_NAME = "Fjordbank kunde"  # the app does not send names yet (contract v1)
CREDITOR_NAME = "Mottaker"  # when the customer gave no payee name
# pain.002 reason codes -> the reason the customer sees (fjordbank.domain.notifications)
RETURN_REASONS = {"AC04": "AC04", "AC01": "AC01", "RR09": "invalid_kid"}

# Publishes payment events and waits for their acks; ``parents``: payment id -> the trace
# context each event continues (fjordbank.runtime.events.publish on a JetStream context).
PublishEvents = Callable[[list[PaymentEvent], Mapping[str, Context | None]], Awaitable[None]]
Mark = tuple[str, str, str | None]  # (payment id, status, reason) on the file that carried it


class Channel(Protocol):
    """The bank's side of the file exchange with the clearing house. ``deliver``,
    ``answers`` and ``read_answer`` raise ConnectionError while it is down."""

    def deliver(self, name: str, data: bytes) -> None:
        """Send a pain.001 file, once: FileExistsError when a file of that name was
        delivered before."""

    def delivered(self, name: str) -> bool:
        """Whether the clearing house has the file ``name`` already (sent before: waiting to
        be taken, or taken)."""

    def delivered_copy(self, name: str) -> bytes | None:
        """The file ``name`` as it was delivered (None: it was not)."""

    def answers(self) -> list[Path]:
        """The pain.002 answers waiting, oldest first."""

    def read_answer(self, path: Path) -> bytes: ...

    def file_away(self, path: Path, suffix: str = "") -> None:
        """An answer handled (``suffix``: set aside for an operator, e.g. ``.unknown``),
        never over a file filed away under its name; one another process filed away first
        is not an error. Where the file cannot be linked into place (no hard links, or one of
        another user), it is copied there: one killed between the copy and its removal is
        listed again, and handled again (idempotent)."""


def payment_path(payment_id: str) -> str:
    return f"{CLEARING_PAYMENTS}/{payment_id}"


def file_path(file_id: str) -> str:
    return f"{CLEARING_FILES}/{file_id}"


def file_name(file_id: str) -> str:
    """The pain.001's name on the channel."""
    return f"{file_id}.xml"


# ---- the pure parts: file ids, the pain.001 file, the events of an answer ---------------
def new_file_id(now: dt.datetime) -> str:
    return f"FJB{now:%Y%m%d%H%M%S}{secrets.token_hex(4).upper()}"  # 25 characters


FILE_ID = re.compile(r"FJB[0-9]{14}[0-9A-F]{8}")


def is_file_id(value: str) -> bool:
    """Whether ``value`` is a file id this bank makes (`new_file_id`): an answer's
    OrgnlMsgId is the other bank's text, and only such an id may name a document."""
    return FILE_ID.fullmatch(value) is not None


def unsendable(p: PaymentRequested) -> str | None:
    """Why the payment cannot go in a pain.001 (None: it can). The edge refuses such
    payments; one published before it did, or by another route, must not take a whole
    file, and every payment claimed into it, down with it."""
    try:
        to_transfer(p, None)
    except DomainError as exc:
        return str(exc)
    return None


def file_text(text: str | None, limit: int = iso20022.MAX_MESSAGE_LENGTH) -> str | None:
    """A payment's text (message, payee's name) as a file carries it: only what a
    Norwegian bank takes (ISO 8859-15, no control or format character;
    `iso20022.is_payment_text_char`), a character with a Latin form written in it, any
    other read as a space, at most ``limit`` characters (a Latin form may be longer: … is
    ...), None when nothing is left. The edge refuses such text; a payment made before it
    did (a standing order's stored text) would otherwise have another bank refuse the
    transfer, or the whole file with other customers' payments in it, or be kept out of the
    file with its money held until an operator came. A file written before this rule is
    made again the same way for its answers (`_block_of`): its text may differ, its
    grouping (accounts, dates) does not."""
    if text is None:
        return None
    kept = "".join(c if iso20022.is_payment_text_char(c) else " " for c in iso20022.to_payment_text(text))
    return " ".join(kept.split())[:limit].rstrip() or None


def to_transfer(p: PaymentRequested, written_on: dt.date | None) -> iso20022.CreditTransfer:
    """``written_on``: the day the file is written, in Norway (None: a file of before
    2026-12-04, which asked for the payment's own day)."""
    execution = next_banking_day(dt.date.fromisoformat(p.booking_date))
    if written_on is not None:
        execution = max(execution, next_banking_day(written_on))
    return iso20022.CreditTransfer(
        end_to_end_id=p.payment_id,
        amount_minor=p.amount,
        currency=p.currency,
        debtor=iso20022.Party(DEBTOR_NAME, p.from_account),
        creditor=iso20022.Party(file_text(p.payee_name, MAX_NAME_LENGTH) or CREDITOR_NAME, p.to_account),
        kid=p.kid,
        message=file_text(p.message),
        # the day it is made, or the next banking day after a weekend or holiday (the
        # clearing house settles on banking days only), and never a day gone by when the
        # file is written: a file written later (the channel was down, a crash) asks for
        # its own day, which the bank executes; from the payment and the day the file was
        # written (kept on its record, `writtenAt`), so a file made again for its answer
        # (`with_blocks`) groups its payments as it did
        requested_execution_date=execution,
    )


def payment_file(
    file_id: str, payments: list[PaymentRequested], *, bic: str, now: dt.datetime, written: dt.datetime | None
) -> iso20022.PaymentBatch:
    """The pain.001 of a file; ``written``: when it is (or was) written (None: a file
    written before its record kept that)."""
    written_on = None if written is None else today_in_norway(written)
    return iso20022.PaymentBatch(
        message_id=file_id,
        created_at=now,
        initiating_party=INITIATING_PARTY,
        debtor_agent_bic=bic,
        transfers=tuple(to_transfer(p, written_on) for p in payments),
    )


def submitted(decoded: list[PaymentEvent], files: Mapping[str, str]) -> list[PaymentEvent]:
    """Each payment of a cycle as submitted, with the file that carries it (and the detail
    it came with: the times of the states nobody showed, fjordbank.domain.payments.UNSHOWN)."""
    return [
        dataclasses.replace(
            e,
            status="submitted",
            reason=None,
            message=None,
            detail={**(e.detail or {}), "fileId": files[e.payment.payment_id]},
        )
        for e in decoded
    ]


def answer_event(payment: PaymentRequested, status: iso20022.TransactionStatus, report_id: str) -> PaymentEvent:
    """A payment's next step from its status in a pain.002: settled (ACSC) or returned with
    the counterparty's reason."""
    if status.status == "ACSC":
        return PaymentEvent(payment, "settled", detail={"statusReport": report_id})
    reason = RETURN_REASONS.get(status.reason_code or "", status.reason_code or "returned")
    return PaymentEvent(
        payment,
        "returned",
        reason=reason,
        message=status.additional_info,
        detail={"statusReport": report_id, "isoReason": status.reason_code},
    )


def claim_record(file_id: str) -> Data:
    """A payment's record: the file that carries it (the file holds the payment, its trace
    context and its answer). Records from before 2026-12-01 hold more, read by nothing."""
    return {"fileId": file_id, "claimedAt": SERVER_TIME}


def file_record(new: list[PaymentRequested], traces: Mapping[str, str | None]) -> Data:
    return {
        "status": "created",
        "paymentIds": [p.payment_id for p in new],
        "payments": [p.to_json() for p in new],
        # payment id -> the W3C traceparent its answer continues
        "traces": {p.payment_id: tp for p in new if (tp := traces.get(p.payment_id))},
        "count": len(new),
        "controlSum": sum(p.amount for p in new),
        "createdAt": SERVER_TIME,
    }


@dataclass(frozen=True)
class Answered:
    """What an answer file needs, from one read: whether the bank has a record of the file
    it answers, and each payment sent out with the traceparent `claim` kept with it."""

    known_file: bool
    payments: dict[str, tuple[PaymentRequested, str | None]]
    before: frozenset[str] = frozenset()  # the payments an earlier answer to the file settled or returned
    written: dt.datetime | None = None  # when the file was last written (None: before 2026-12-04)
    status: str | None = None  # the file's record: created, sending, written or answered
    count: int = 0  # the payments the file carried
    total: int = 0  # their sum, in øre
    # what an earlier answer to the file said of each payment in `before` (settled or returned)
    earlier: Mapping[str, str] = dataclasses.field(default_factory=dict)


# ---- the records --------------------------------------------------------------------------
async def claim(
    docs: AsyncDocuments,
    payments: list[PaymentRequested],
    file_id: str,
    *,
    traces: Mapping[str, str | None] | None = None,
) -> tuple[list[PaymentRequested], dict[str, str]]:
    """Put the payments not yet in a file into ``file_id`` (recorded before the file is
    written). Returns (the new payments, payment id -> file id of every payment).
    ``traces``: payment id -> the W3C traceparent its answer continues (kept on the file)."""
    traces = traces or {}
    payments = list({p.payment_id: p for p in payments}.values())  # a message twice in one batch
    if not payments:
        return [], {}
    batch = docs.batch()
    _record_claims(batch, payments, file_id, traces)
    try:
        await batch.commit()
        return payments, {p.payment_id: file_id for p in payments}
    except AlreadyExists:  # one of them is in a file already: read which
        pass

    async def run(uow: AsyncUnitOfWork) -> tuple[list[PaymentRequested], dict[str, str]]:
        found = await uow.get_many([payment_path(p.payment_id) for p in payments])
        existing = {d.id: d.data["fileId"] for d in found.values() if d is not None}
        ours = [p for p in payments if existing.get(p.payment_id) == file_id]
        if ours:
            # the commit above went through although it answered with an error (a retried
            # commit finds its own creates): the file is recorded with these, and still to
            # be written
            return ours, existing
        new = [p for p in payments if p.payment_id not in existing]
        if new:
            _record_claims(uow, new, file_id, traces)
        return new, {**existing, **{p.payment_id: file_id for p in new}}

    return await docs.transact(run, operation="clearing")


def _record_claims(writes: Writes, new: list[PaymentRequested], file_id: str, traces: Mapping[str, str | None]) -> None:
    """Each payment's record and the file's, all created (a record there already fails it)."""
    for p in new:
        writes.create(payment_path(p.payment_id), claim_record(file_id))
    writes.create(file_path(file_id), file_record(new, traces))


async def mark_file(docs: AsyncDocuments, file_id: str, status: str, *, written: dt.datetime) -> bool:
    """Record the file written at ``written`` (its execution dates follow that day: kept
    for `with_blocks`), in a unit of work that reads the record: the clearing house's
    answer can come back between the delivery and this mark, and a plain update turned an
    "answered" record back into "written" (found in review, 2026-12-06). False when the
    bank has no record of the file."""

    async def run(uow: AsyncUnitOfWork) -> bool:
        doc = await uow.get(file_path(file_id))
        if doc is None:
            return False
        if doc.data.get("status") in UNWRITTEN:
            uow.update(file_path(file_id), {"status": status, "writtenAt": written, "updatedAt": SERVER_TIME})
        return True

    return await docs.transact(run, operation="clearing_mark_file")


UNWRITTEN = ("created", "sending")  # a file's states before it is known to be written


async def mark_delivered(docs: AsyncDocuments, file_id: str, *, written: dt.datetime | None = None) -> None:
    """Record written a file the channel has, delivered by whichever process took it, in a
    unit of work that reads the record: one marked written or answered since is left as it
    is. ``written``: when the copy the channel has was made (its CreDtTm), kept as
    ``writtenAt`` (`with_blocks` regroups the file's payments by it); a later attempt that
    took the file and found it delivered had set its own time there. None: the record's
    is kept."""

    async def run(uow: AsyncUnitOfWork) -> None:
        doc = await uow.get(file_path(file_id))
        if doc is not None and doc.data.get("status") in UNWRITTEN:
            fields = {"status": "written", "updatedAt": SERVER_TIME}
            uow.update(file_path(file_id), fields if written is None else {**fields, "writtenAt": written})

    await docs.transact(run, operation="clearing_delivered")


@dataclass(frozen=True)
class Unwritten:
    """A file recorded and not marked written: never delivered ("created"), or delivered
    perhaps ("sending")."""

    file_id: str
    payments: list[PaymentRequested]
    status: str
    updated: dt.datetime | None = None  # when its record last changed (None: not known)


# How often the files recorded and not written that no process is sending are looked for
# (`Clearing.deliver_pending`): one a process kept for a channel that was down, and stopped
# with, waited for this one's restart (found in review, 2026-12-06).
ORPHAN_FILE_SECONDS = 60.0

# A file "sending" by another process for less than this is being delivered by it: left to
# it (a process that died while sending is taken over after it, once the channel says the
# file did not arrive)
SENDING_GRACE = dt.timedelta(minutes=2)


async def take_delivery(docs: AsyncDocuments, file_id: str, sender: str, now: dt.datetime) -> str:
    """Take a file's delivery for ``sender`` in one unit of work: "mine" (marked "sending"
    by it, ``writtenAt`` now: its execution dates follow that day), "done" (written
    before, or no record) or "busy" (another sender marked it within `SENDING_GRACE`)."""

    async def run(uow: AsyncUnitOfWork) -> str:
        doc = await uow.get(file_path(file_id))
        if doc is None or doc.data.get("status") not in UNWRITTEN:
            return "done"
        at = doc.data.get("sendingAt")
        if (
            doc.data.get("status") == "sending"
            and doc.data.get("sendingBy") not in (None, sender)
            and isinstance(at, dt.datetime)
            and now - at < SENDING_GRACE
        ):
            return "busy"
        fields = {"status": "sending", "sendingBy": sender, "sendingAt": now, "writtenAt": now}
        uow.update(file_path(file_id), {**fields, "updatedAt": SERVER_TIME})
        return "mine"

    return await docs.transact(run, operation="clearing_deliver")


async def unwritten_files(docs: AsyncDocuments) -> list[Unwritten]:
    """Files recorded but not marked written (a crash, or a database that did not answer,
    between the two)."""
    found = await docs.query(CLEARING_FILES, where=[Where("status", "in", list(UNWRITTEN))])
    return [_unwritten(d) for d in found]


def _unwritten(doc: Doc) -> Unwritten:
    updated = doc.data.get("updatedAt")
    return Unwritten(
        doc.id,
        [PaymentRequested.from_json(p) for p in doc.data["payments"]],
        doc.data["status"],
        updated if isinstance(updated, dt.datetime) else None,
    )


async def answered_records(
    docs: AsyncDocuments, file_id: str, payment_ids: list[str], *, every: bool = False
) -> Answered:
    """The file an answer names and the payments it answers, from the file's one document
    (payments it did not carry are left out; ``every``: all it carried, in file order, for
    an answer to whole blocks). A file recorded before 2026-12-01 kept no trace contexts:
    its answers start traces of their own."""
    doc = await docs.get(file_path(file_id))
    if doc is None:
        return Answered(False, {})
    named = set(payment_ids)
    traces = doc.data.get("traces") or {}
    carried = (PaymentRequested.from_json(p) for p in doc.data["payments"])
    payments = {p.payment_id: (p, traces.get(p.payment_id)) for p in carried if every or p.payment_id in named}
    written = doc.data.get("writtenAt")
    answers = doc.data.get("answers") or {}
    return Answered(
        True,
        payments,
        frozenset(answers),
        written if isinstance(written, dt.datetime) else None,
        doc.data.get("status"),
        len(doc.data["payments"]),
        sum(int(p["amount"]) for p in doc.data["payments"]),
        {pid: a["status"] for pid, a in answers.items() if isinstance(a, dict) and isinstance(a.get("status"), str)},
    )


def disagreements(report: iso20022.StatusReport, answered: Answered) -> list[str]:
    """What an answer says of the file it answers that the file does not: its count or sum
    (OrgnlNbOfTxs, OrgnlCtrlSum), a payment's amount or currency. Such an answer is about
    another file, or garbled; applied, a status for 0.01 EUR settled a payment of 10 NOK.
    And a payment an earlier answer settled that this one returns, or the other way round:
    the ledger refuses either (it settles or returns a reserved payment only) and the step
    was dead-lettered while the file went to processed/ with the new status on its record,
    so a return after settlement never reached the customer, and a settlement after a
    return (the payee paid, the payer's hold released) was the bank's loss with nobody
    told (found in review, 2026-12-07). Set aside, an operator reads it (the runbook of
    FjbClearingFileSetAside); the same answer again is applied as before."""
    found = []
    for status in report.statuses:
        was = answered.earlier.get(status.end_to_end_id)
        now = "settled" if status.status == "ACSC" else "returned"
        if was is not None and was != now and status.end_to_end_id in answered.payments:
            found.append(f"{status.end_to_end_id[:35]}: {was} by an earlier answer, now {status.status}")
    if report.original_count is not None and report.original_count != answered.count:
        found.append(f"OrgnlNbOfTxs {report.original_count}, the file carried {answered.count}")
    if report.original_sum_minor is not None and report.original_sum_minor != answered.total:
        found.append(f"OrgnlCtrlSum {report.original_sum_minor} øre, the file's sum {answered.total}")
    for status in report.statuses:
        payment, _trace = answered.payments.get(status.end_to_end_id, (None, None))
        if payment is None or status.amount_minor is None:
            continue
        if (status.amount_minor, status.currency) != (payment.amount, payment.currency):
            found.append(f"{status.end_to_end_id[:35]}: {status.amount_minor} {status.currency}")
    return found


def with_blocks(report: iso20022.StatusReport, answered: Answered, *, bic: str) -> iso20022.StatusReport:
    """The report with every payment of a block (or of the file) it answers as a whole
    given that block's status, where no status of its own names it. The blocks are the
    ones the file was written with (its payments in file order, `payment_file`)."""
    if not report.blocks or not answered.payments:
        return report
    carried = [p for p, _trace in answered.payments.values()]
    block_of = _block_of(report, answered, bic=bic)
    named = {s.end_to_end_id for s in report.statuses}
    given = {b.payment_information_id: b for b in report.blocks}
    added = [
        iso20022.TransactionStatus(p.payment_id, b.status, b.reason_code, b.additional_info, block_of[p.payment_id])
        for p in carried
        if p.payment_id not in named
        and p.payment_id not in answered.before  # a block's answer is for those still unanswered
        and (b := given.get(block_of[p.payment_id]) or given.get(None)) is not None
    ]
    return dataclasses.replace(report, statuses=(*report.statuses, *added), blocks=())


def _block_of(report: iso20022.StatusReport, answered: Answered, *, bic: str) -> dict[str, str]:
    """The block (payment information id) each payment the file carried was written in."""
    carried = [p for p, _trace in answered.payments.values()]
    return {
        t.end_to_end_id: group.payment_information_id
        for group in iso20022.payment_groups(
            payment_file(report.original_message_id, carried, bic=bic, now=report.created_at, written=answered.written)
        )
        for t in group.transfers
    }


def unmatched_blocks(
    report: iso20022.StatusReport, expanded: iso20022.StatusReport, answered: Answered, *, bic: str
) -> list[str]:
    """The blocks a report answers as a whole that the file does not have (``NOTPROVIDED``,
    or another file's id), while a payment of the file is left unanswered (neither named
    in the report, ``expanded`` by its blocks (`with_blocks`), nor answered before): their
    final answer may have been that payment's, so the file is set aside for an operator
    rather than filed as handled. A report that names every payment (a bank that does not
    echo block ids) has nothing left to match."""
    named = [b.payment_information_id for b in report.blocks if b.payment_information_id is not None]
    answered_now = {s.end_to_end_id for s in expanded.statuses}
    if not named or not set(answered.payments) - answered_now - answered.before:
        return []
    blocks = set(_block_of(report, answered, bic=bic).values())
    return [b for b in named if b not in blocks]


async def mark_answered(docs: AsyncDocuments, file_id: str, marks: list[Mark]) -> None:
    """One write: the file answered, with each (payment id, status, reason) it answered
    (``answers.<payment id>``; an answer sent again writes the same)."""
    answers = {f"answers.{payment_id}": {"status": status, "reason": reason} for payment_id, status, reason in marks}
    batch = docs.batch()
    batch.update(file_path(file_id), {**answers, "status": "answered", "updatedAt": SERVER_TIME})
    await batch.commit()


# ---- an answer's spans: each payment's answer in the payment's own trace ---------------
def answer_spans(report: iso20022.StatusReport, answered: Answered) -> dict[str, tracing.Span]:
    """Per payment answered: a span in the payment's trace (the traceparent `claim` kept)."""
    spans: dict[str, tracing.Span] = {}
    for status in report.statuses:
        payment, traceparent = answered.payments.get(status.end_to_end_id, (None, None))
        if payment is None or payment.payment_id in spans:
            continue
        spans[payment.payment_id] = tracing.start_span(
            "clearing pain.002",
            tracing.extract({"traceparent": traceparent} if traceparent else None),
            kind=tracing.SpanKind.CONSUMER,
            attrs={
                "fjb.consumer": "clearing",
                "fjb.payment_id": payment.payment_id,
                "fjb.status_report": report.message_id,
                "fjb.iso_status": status.status,
                "fjb.reason": status.reason_code,
                "fjb.outcome": "ack",
            },
        )
    return spans


def answer_events(report: iso20022.StatusReport, answered: Answered) -> list[PaymentEvent]:
    """The next step of every payment the answer names that the bank sent out (an unknown
    one is logged and left out)."""
    out: list[PaymentEvent] = []
    for status in report.statuses:
        payment, _traceparent = answered.payments.get(status.end_to_end_id, (None, None))
        if payment is None:
            log.error("pain.002 names an unknown payment", extra={"end_to_end_id": status.end_to_end_id})
            continue
        out.append(answer_event(payment, status, report.message_id))
    return out


async def publish_in_spans(publish: PublishEvents, out: list[PaymentEvent], spans: dict[str, tracing.Span]) -> None:
    """Publish the answer's events, each in its payment's span; a failed publish marks
    the spans (nak), and every span ends."""
    try:
        await publish(out, {pid: tracing.context_of(s) for pid, s in spans.items()})
    except BaseException as exc:
        for s in spans.values():
            tracing.set_attributes(s, {"fjb.outcome": "nak"})
            tracing.fail(s, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        for s in spans.values():
            s.end()


# ---- the use case ------------------------------------------------------------------------
class Clearing:
    """Clearing's use cases on a document database, the channel and a clock. It keeps the
    files the channel did not take (``undelivered``: file id -> its payments) until they
    are sent."""

    def __init__(
        self,
        docs: AsyncDocuments,
        channel: Channel,
        *,
        bic: str,
        clock: Clock = system_clock,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.docs = docs
        self.channel = channel
        self.bic = bic
        self.clock = clock
        self.retry_seconds = retry_seconds
        self.undelivered: dict[str, list[PaymentRequested]] = {}
        # files left "sending" whose delivery is not known yet (the channel was down, or
        # another process was delivering them): asked about again every retry
        self.unsure: dict[str, Unwritten] = {}
        self.writing: set[str] = set()  # files this process is writing now
        self.sender = secrets.token_hex(8)  # this process, as the file records name it

    # ---- files out ------------------------------------------------------------------------
    def new_file_id(self) -> str:
        return new_file_id(self.clock())

    async def claim(
        self, payments: list[PaymentRequested], file_id: str, *, traces: Mapping[str, str | None] | None = None
    ) -> tuple[list[PaymentRequested], dict[str, str]]:
        return await claim(self.docs, payments, file_id, traces=traces)

    async def write_file(self, file_id: str, payments: list[PaymentRequested]) -> str:
        """Send the file and record it written, if its delivery is this process's to make
        (`take_delivery`: "sending" by this process before the delivery, so a delivery
        whose "written" mark then fails is known by it, `resend_unwritten`, and no other
        process delivers it meanwhile). Returns "written", "done" (written before) or
        "busy" (another process is delivering it)."""
        now = self.clock()
        batch = payment_file(file_id, payments, bic=self.bic, now=now, written=now)
        taken = await take_delivery(self.docs, file_id, self.sender, now)
        if taken != "mine":
            return taken
        try:
            # the channel delivers a name once: a process that took the file over after
            # the grace while this one stalled finds it there, and so does this one
            self.channel.deliver(file_name(file_id), iso20022.build_pain001(batch))
        except FileExistsError:
            await mark_delivered(self.docs, file_id, written=await self._written_at(file_id))
            log.warning("a file delivered already (by another process): not again", extra={"file_id": file_id})
            return "done"
        await mark_file(self.docs, file_id, "written", written=now)
        log.info(
            "pain.001 written",
            extra={"file_id": file_id, "payments": len(payments), "control_sum": batch.control_sum_minor},
        )
        return "written"

    async def send_or_keep(self, file_id: str, payments: list[PaymentRequested]) -> bool:
        """Write the file; when the channel is down (OSError, as a real outage raises) keep
        it for `deliver_pending`. Its record stays "created" (or "sending") until written.
        One this process is writing already, or another process is delivering, is asked
        about again later (``unsure``): never delivered twice at once."""
        if file_id in self.writing:
            return False
        self.writing.add(file_id)
        try:
            outcome = await self.write_file(file_id, payments)
        except OSError as exc:
            if file_id not in self.undelivered:
                log.warning(
                    "clearing channel down: file kept to send later",
                    extra={"file_id": file_id, "payments": len(payments), "error": str(exc)},
                )
            self.undelivered[file_id] = payments
            return False
        finally:
            self.writing.discard(file_id)
        if outcome == "busy":  # another process is delivering it: is it delivered, later?
            self.undelivered.pop(file_id, None)
            self.unsure[file_id] = Unwritten(file_id, payments, "sending")
            return False
        if self.undelivered.pop(file_id, None) is not None:
            log.info("kept file sent", extra={"file_id": file_id})
        return True

    async def resend_unwritten(self) -> None:
        """The files recorded before a crash and not marked written (when the service
        starts): one the channel has already is marked written, never sent twice; the
        others are written. One that cannot be written (a payment in it the file cannot
        carry, recorded before such payments were kept out) is left for an operator: the
        service still starts."""
        for left in await unwritten_files(self.docs):
            await self._write_left(left, why="recorded before a crash")

    async def write_left(self, files: Mapping[str, str], file_id: str) -> None:
        """The other files a cycle found its payments in (``files``: payment id -> file id;
        ``file_id``: the cycle's own): one recorded and not written is written now. A claim
        whose commit went through though it answered an error (a deadline) left its file
        recorded under that cycle's id, and the cycle that then found its payments there
        wrote nothing: the file waited, the payments shown submitted with their money held,
        until the service happened to restart."""
        for other in sorted(set(files.values()) - {file_id} - set(self.undelivered) - set(self.unsure) - self.writing):
            doc = await self.docs.get(file_path(other))
            if doc is not None and doc.data.get("status") in UNWRITTEN:
                await self._write_left(_unwritten(doc), why="claimed by a cycle whose commit answered an error")

    async def _write_left(self, left: Unwritten, *, why: str) -> None:
        if left.file_id in self.writing:
            return  # this process is writing it now
        if left.status == "sending":
            try:
                delivered = self.channel.delivered(file_name(left.file_id))
            except OSError as exc:  # the channel cannot tell now: asked again when it is back
                if left.file_id not in self.unsure:
                    log.warning("clearing channel down: a file's delivery not known yet", extra={"error": str(exc)})
                self.unsure[left.file_id] = left
                return
            self.unsure.pop(left.file_id, None)
            if delivered:
                # delivered, and its mark lost (or delivered by another process): sent
                # again, the clearing house would reject the copy whole under the same
                # message id, returning what the first settles
                await mark_delivered(self.docs, left.file_id, written=await self._written_at(left.file_id))
                log.warning("a file the channel has: marked written", extra={"file_id": left.file_id})
                return
        log.warning("writing a recorded file", extra={"file_id": left.file_id, "why": why, "status": left.status})
        try:
            await self.send_or_keep(left.file_id, left.payments)
        except DomainError as exc:
            log.error(
                "a recorded file cannot be written; left for an operator",
                extra={"file_id": left.file_id, "payments": len(left.payments), "error": str(exc)},
            )

    async def deliver_pending(self, stop: asyncio.Event) -> None:
        """The files the channel did not take, again every ``retry_seconds``, oldest first;
        and every `ORPHAN_FILE_SECONDS` the recorded ones no process is sending (`orphans`)."""
        looked = self.clock()  # the start looked (resend_unwritten)
        while not stop.is_set():
            for left in [self.unsure[f] for f in sorted(self.unsure)]:
                await self._write_left(left, why="its delivery was not known")
            for file_id in sorted(self.undelivered):
                if not await self.send_or_keep(file_id, self.undelivered[file_id]) and file_id in self.undelivered:
                    break  # still down (one another process is delivering waits in ``unsure``)
            if (self.clock() - looked).total_seconds() >= ORPHAN_FILE_SECONDS:
                looked = self.clock()
                try:
                    await self.orphans()
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    log.warning("files left by other processes not looked for now", extra={"error": repr(exc)})
            try:
                await asyncio.wait_for(stop.wait(), self.retry_seconds)
            except TimeoutError:
                pass

    async def orphans(self) -> None:
        """The files recorded and not written that no process is at (this one holds none of
        them, and no record changed for `SENDING_GRACE`): a process that kept one for a
        channel that was down and then stopped left it, with its payments shown submitted
        and their money held, until this one restarted. Each is taken over as at a start."""
        now = self.clock()
        mine = set(self.undelivered) | set(self.unsure) | self.writing
        for left in await unwritten_files(self.docs):
            if left.file_id in mine or (left.updated is not None and now - left.updated < SENDING_GRACE):
                continue
            await self._write_left(left, why="left by a process that stopped")

    async def _written_at(self, file_id: str) -> dt.datetime | None:
        """When the copy of the file the channel has was made (its CreDtTm), None when the
        copy cannot be read (the channel's record is then left as it is). Read beside the
        event loop: a large file takes seconds to parse."""
        try:
            copy = self.channel.delivered_copy(file_name(file_id))
            return None if copy is None else (await asyncio.to_thread(iso20022.parse_pain001, copy)).created_at
        except (OSError, DomainError) as exc:
            log.warning("the delivered copy of a file cannot be read", extra={"file_id": file_id, "error": str(exc)})
            return None

    def _sent(self, answered: Answered, file_id: str) -> bool:
        """Whether the file an answer names went to the clearing house: marked written (or
        answered before), or, recorded and not marked (the channel down, a mark lost), the
        channel has it. A channel that cannot tell raises ConnectionError: the answer is
        read again when it is back."""
        if answered.status not in UNWRITTEN:
            return True
        return self.channel.delivered(file_name(file_id))

    # ---- answers in -----------------------------------------------------------------------
    def read_report(self, path: Path) -> iso20022.StatusReport | None:
        """The answer in ``path``; None when it is unreadable (then moved aside)."""
        try:
            data = self.channel.read_answer(path)
        except ConnectionError:
            raise  # the channel, not the file: read again when it is back
        except OSError as exc:
            return self._set_aside(path, exc)
        try:
            return iso20022.parse_pain002(data)
        except DomainError as exc:
            return self._set_aside(path, exc)
        except Exception as exc:  # a defect in the parser, not the channel
            # set aside too: raised, it would restart the loop on this same oldest file and
            # stall every later answer (and hold every submitted payment's money) behind it
            log.exception("the pain.002 parser failed", extra={"file": path.name})
            return self._set_aside(path, exc)

    def _set_aside(self, path: Path, exc: Exception) -> iso20022.StatusReport | None:
        """An answer that cannot be read, moved aside for an operator: there is no report."""
        log.error("unreadable pain.002 moved aside", extra={"file": path.name, "error": str(exc)})
        self.channel.file_away(path, ".rejected")
        return None

    async def handle_answer(self, path: Path, publish: PublishEvents) -> list[PaymentEvent]:
        """Read one answer, publish its payments' steps, mark them, move the file on.
        Returns the steps published (none for an unreadable file)."""
        # parsed beside the event loop: a large file takes seconds, and the service's
        # other work (new payments, the undelivered files) goes on meanwhile
        report = await asyncio.to_thread(self.read_report, path)
        if report is None:
            return []
        if is_file_id(report.original_message_id):
            answered = await answered_records(
                self.docs,
                report.original_message_id,
                [s.end_to_end_id for s in report.statuses],
                every=bool(report.blocks),
            )
            expanded = with_blocks(report, answered, bic=self.bic)
            unmatched = unmatched_blocks(report, expanded, answered, bic=self.bic)
            report = expanded
        else:  # not an id of ours (and not to be put in a document's path): an unknown file
            answered, unmatched = Answered(False, {}), []
        if answered.known_file and not self._sent(answered, report.original_message_id):
            # The file is recorded and kept to be written, and the channel does not have
            # it: an answer to a file the clearing house never had (misrouted, or forged)
            # applied would mark the file answered, and it would then never be sent, its
            # other payments held for good.
            log.error(
                "pain.002 answers a file the bank has not delivered; moved aside",
                extra={"file": path.name, "original_message_id": report.original_message_id},
            )
            self.channel.file_away(path, ".undelivered")
            return []
        if answered.known_file and (different := disagreements(report, answered)):
            log.error(
                "pain.002 disagrees with the file it answers; moved aside",
                extra={"file": path.name, "original_message_id": report.original_message_id, "found": different[:10]},
            )
            self.channel.file_away(path, ".mismatch")
            return []
        unmatched += [s.end_to_end_id[:35] for s in report.statuses if s.end_to_end_id not in answered.payments]
        out = answer_events(report, answered)
        await publish_in_spans(publish, out, answer_spans(report, answered))
        if not answered.known_file:
            # An answer to a file the bank has no record of (another environment's, or
            # records lost): moved aside for an operator, never retried forever, so the
            # answers behind it are still read.
            log.error(
                "pain.002 answers an unknown file; moved aside",
                extra={"file": path.name, "original_message_id": report.original_message_id},
            )
            self.channel.file_away(path, ".unknown")
            return out
        if out:
            marks = [(e.payment.payment_id, e.status, e.reason) for e in out]
            await mark_answered(self.docs, report.original_message_id, marks)
        elif not unmatched:
            # only statuses on the way (accepted, pending): the final answer comes later
            log.info("pain.002 with no final status read", extra={"file": path.name})
        if unmatched:
            # what it answered of the file's payments is applied above; the rest is an
            # operator's to read (a final answer that reaches no payment is not "handled")
            log.error(
                "pain.002 answers blocks or payments the file does not have; moved aside",
                extra={"file": path.name, "blocks": unmatched[:10], "original_message_id": report.original_message_id},
            )
            self.channel.file_away(path, ".unmatched")
            return out
        self.channel.file_away(path)
        log.info(
            "pain.002 handled",
            extra={
                "file": path.name,
                "settled": sum(e.status == "settled" for e in out),
                "returned": sum(e.status == "returned" for e in out),
            },
        )
        return out
