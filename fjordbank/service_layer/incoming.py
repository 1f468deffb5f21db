"""Payments from other banks: clearing's use cases for what the clearing house delivers.

    pacs.008 in the channel's ``incoming/``  ->  one ``arrived`` event per credit, in the
        payee's partition (fjordbank.domain.payments.INCOMING), and the file filed away
    the ledger's ``unapplied``               ->  a pacs.004 return to the clearing house

Each credit is one payment however often the clearing house delivers it: its id comes from
its bank and that bank's transaction id (`fjordbank.domain.pacs.IncomingTransfer.payment_id`),
its event's message id from that (JetStream stores it once within the duplicate window) and
the ledger's record answers a replay after it. A file is filed away only after every one of
its events was published: a crash before that reads the file again, and the replay changes
nothing.

A credit to an account that is not here (no such account, or not opened) is sent back at once
with ``AC01``; one the ledger cannot apply (a closed account, another currency) comes back as
``unapplied`` and is sent back with the ledger's reason. A return is one file, named by the
payment (`return_name`), delivered once: a second delivery of the same name is refused by the
channel, so a return replayed is never sent twice.

A file that cannot be read is moved aside (``.rejected``) for an operator, who asks the
clearing house for it again: nothing in it is credited or returned. Sanctions screening of
incoming payments is not done here yet (the docs say so): a real bank screens the payer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Protocol

from fjordbank.domain import pacs
from fjordbank.domain.errors import DomainError
from fjordbank.domain.norway import today_in_norway
from fjordbank.domain.payments import INCOMING, PAYER_NAME, PaymentEvent, PaymentRequested
from fjordbank.topology import ARRIVED

log = logging.getLogger("clearing.incoming")

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

OwnersOf = Callable[[list[str]], Awaitable[Mapping[str, str | None]]]
Publish = Callable[[list[PaymentEvent]], Awaitable[None]]


class IncomingChannel(Protocol):
    """The channel's side for payments in (fjordbank.adapters.clearing_store.ClearingDirs).
    Each raises ConnectionError while the channel is down."""

    def incoming(self) -> list[Path]:
        """The pacs.008 files waiting, oldest first."""

    def read_incoming(self, path: Path) -> bytes: ...

    def file_away(self, path: Path, suffix: str = "") -> None: ...

    def deliver(self, name: str, data: bytes) -> None:
        """Send a file once: FileExistsError when that name was delivered before."""


def booking_day(transfer: pacs.IncomingTransfer, received: dt.datetime) -> dt.date:
    """The day the money is the payee's: the day it arrived here, or its settlement date if
    that is later. Its due date, so the feed, "my economy" and a recomputation from the
    ledger's record book it on one day."""
    return max(transfer.settlement_date, today_in_norway(received))


def body_hash(transfer: pacs.IncomingTransfer) -> str:
    """What each step checks a redelivered event against (the ledger's ``bodyHash``)."""
    parts = (transfer.key, str(transfer.amount_minor), transfer.currency, transfer.creditor_account)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def arrived_event(
    transfer: pacs.IncomingTransfer, *, message_id: str, payee_uid: str, received: dt.datetime
) -> PaymentEvent:
    """The ``arrived`` event of one credit, for the payee ``payee_uid``."""
    payment_id = transfer.payment_id
    payment = PaymentRequested(
        payment_id=payment_id,
        uid=payee_uid,
        request_id=payment_id,
        kind=INCOMING,
        from_account=transfer.debtor.account,
        to_account=transfer.creditor_account,
        amount=transfer.amount_minor,
        currency=transfer.currency,
        message=transfer.message,
        kid=transfer.kid,
        due_date=booking_day(transfer, received).isoformat(),
        body_hash=body_hash(transfer),
        requested_at=received.astimezone(dt.UTC).isoformat(),
        payee_name=transfer.creditor_name,
    )
    detail = {
        FILE: message_id,
        END_TO_END: transfer.end_to_end_id,
        TRANSACTION: transfer.transaction_id,
        SETTLED_ON: transfer.settlement_date.isoformat(),
        PAYER_NAME: transfer.debtor.name,
    }
    return PaymentEvent(payment, ARRIVED, detail=detail)


def return_name(payment_id: str) -> str:
    return f"{RETURN_PREFIX}{payment_id}.xml"


def payment_return(event: PaymentEvent, reason_code: str, *, now: dt.datetime) -> bytes:
    """The pacs.004 sending back ``event``'s payment (an arrived or unapplied event, whose
    detail names the original transfer). Raises `fjordbank.domain.pacs.InvalidPaymentFile`
    when the detail does not (the event did not come from this code)."""
    detail, p = event.detail or {}, event.payment
    try:
        settled = dt.date.fromisoformat(str(detail.get(SETTLED_ON)))
    except ValueError:
        raise pacs.InvalidPaymentFile("the event names no settlement date") from None
    returned = pacs.PaymentReturn(
        return_id=f"RT{p.payment_id[len(pacs.KEY_PREFIX) :]}",
        original_message_id=str(detail.get(FILE) or ""),
        original_end_to_end_id=str(detail.get(END_TO_END) or ""),
        original_transaction_id=str(detail.get(TRANSACTION) or ""),
        amount_minor=p.amount,
        currency=p.currency,
        settlement_date=settled,
        reason_code=reason_code,
    )
    return pacs.build_pacs004(pacs.ReturnBatch(returned.return_id, now, (returned,)))


class Incoming:
    """Reads the clearing house's pacs.008 files and sends back what cannot be credited."""

    def __init__(
        self,
        channel: IncomingChannel,
        owners_of: OwnersOf,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.channel = channel
        self.owners_of = owners_of
        self.clock = clock

    def read(self, path: Path) -> pacs.IncomingBatch | None:
        """The file's credits; None when it cannot be read (then moved aside)."""
        try:
            data = self.channel.read_incoming(path)
        except ConnectionError:
            raise  # the channel, not the file: read again when it is back
        except OSError as exc:
            self._set_aside(path, exc)
            return None
        try:
            return pacs.parse_pacs008(data)
        except DomainError as exc:
            self._set_aside(path, exc)
        except Exception as exc:  # a defect in the parser: the files behind it are still read
            log.exception("the pacs.008 parser failed", extra={"file": path.name})
            self._set_aside(path, exc)
        return None

    def _set_aside(self, path: Path, exc: Exception) -> None:
        log.error("unreadable pacs.008 moved aside", extra={"file": path.name, "error": str(exc)})
        self.channel.file_away(path, ".rejected")

    async def receive_file(self, path: Path, publish: Publish) -> list[PaymentEvent]:
        """One pacs.008: publish each credit's ``arrived``, send back those to no account
        here, then file it away. Returns the events published."""
        batch = await asyncio.to_thread(self.read, path)
        if batch is None:
            return []
        now = self.clock()
        payees = await self.owners_of(sorted({t.creditor_account for t in batch.transfers}))
        arrived: list[PaymentEvent] = []
        nowhere: list[PaymentEvent] = []
        for transfer in batch.transfers:
            payee = payees.get(transfer.creditor_account)
            # one to no account here is never published: its event only carries its return
            event = arrived_event(transfer, message_id=batch.message_id, payee_uid=payee or "-", received=now)
            (arrived if payee else nowhere).append(event)
        if arrived:
            await publish(arrived)
        for event in nowhere:
            self.send_back(event, pacs.RETURN_NO_ACCOUNT)
        self.channel.file_away(path)
        log.info(
            "pacs.008 handled",
            extra={
                "file": path.name,
                "message_id": batch.message_id,
                "arrived": len(arrived),
                "returned": len(nowhere),
                "amount": sum(e.payment.amount for e in arrived),
            },
        )
        return arrived

    def send_back(self, event: PaymentEvent, reason_code: str) -> bool:
        """Deliver ``event``'s return, once. Returns False when it was delivered before.
        Raises ConnectionError (OSError) while the channel is down."""
        data = payment_return(event, reason_code, now=self.clock())
        try:
            self.channel.deliver(return_name(event.payment.payment_id), data)
        except FileExistsError:
            return False
        log.info(
            "payment from another bank sent back",
            extra={"payment_id": event.payment.payment_id, "reason": reason_code, "amount": event.payment.amount},
        )
        return True

    def unapplied(self, event: PaymentEvent) -> bool:
        """The ledger could not credit ``event``'s payment: send it back with its reason."""
        return self.send_back(event, RETURN_REASONS.get(event.reason or "", pacs.RETURN_OTHER))
