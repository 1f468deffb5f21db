"""Clearing service: sends external payments to other banks and reads their answers.

Each fetched batch of payments.reserved is one clearing cycle: the payments not yet sent
are recorded in a new file (Firestore first, so a payment is never sent twice), the file
is written as ISO 20022 pain.001.001.03 to the outbox, payments.submitted is published,
and the batch is acked. A file recorded but not written (a crash in between) is written
when the service starts again.

A background task reads pain.002 status reports from the inbox and publishes
payments.settled or payments.returned (with the counterparty's reason) per payment.
The outbox and inbox are the channel to the clearing house, the folder FJB_CLEARING_DIR: in
production a transfer service exchanges the files with the clearing house there, and the
service refuses to start without it (Settings.clearing_channel); locally the stack's
``counterparty`` component, a simulated other bank in a process of its own
(simulators.counterparty), answers every outbox file. Nothing here simulates anything.

The channel down (the transfer service unreachable; a chaos run's ``clearing_channel_down``):
a file that cannot be written stays recorded in Firestore and is kept by the service, which
writes it again every few seconds until the channel is back (``deliver_pending``; after a
restart ``on_connect`` finds it). The batch is still acked and its payments published as
submitted: failing the batch instead would have it redelivered until it was dead-lettered
during a long outage. Answers are not read while the channel is down; they wait at the
other side. So payments wait (reserved / submitted) and none is lost or dead-lettered.

The counterparty answering twice or out of order (as the simulated other bank does on a
chaos run's ``counterparty`` fault): each answer is handled as it comes; a payment's settled
or returned step has one message id (JetStream stores it once) and the ledger answers a
replay from its records, so each payment settles or returns once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import secrets
from pathlib import Path

from fjordbank.adapters import faults
from fjordbank.adapters.clearing_store import ClearingDirs, FirestoreClearing
from fjordbank.adapters.firestore import async_client, is_transient
from fjordbank.config import Settings, load_settings
from fjordbank.domain import iso20022
from fjordbank.domain.errors import DomainError
from fjordbank.domain.payments import PaymentEvent, PaymentRequested
from fjordbank.runtime import crash, events, payment_metrics, tracing
from fjordbank.runtime.consumer import Ack, ConsumerService, Delivery, Outcome

log = logging.getLogger("clearing")
POLL_SECONDS = 0.5
RETRY_SECONDS = 2.0  # a file the channel did not take is written again this often
DEBTOR_NAME = "Fjordbank kunde"  # the app does not send names yet (contract v1)
CREDITOR_NAME = "Mottaker"  # when the customer gave no payee name
# pain.002 reason codes -> the reason the customer sees (fjordbank.domain.notifications)
RETURN_REASONS = {"AC04": "AC04", "AC01": "AC01", "RR09": "invalid_kid"}


def new_file_id(now: dt.datetime) -> str:
    return f"FJB{now:%Y%m%d%H%M%S}{secrets.token_hex(4).upper()}"  # 25 characters


def to_transfer(p: PaymentRequested) -> iso20022.CreditTransfer:
    return iso20022.CreditTransfer(
        end_to_end_id=p.payment_id,
        amount_minor=p.amount,
        currency=p.currency,
        debtor=iso20022.Party(DEBTOR_NAME, p.from_account),
        creditor=iso20022.Party(p.payee_name or CREDITOR_NAME, p.to_account),
        kid=p.kid,
        message=p.message,
        requested_execution_date=dt.date.fromisoformat(p.due_date),
    )


class ClearingHandler:
    def __init__(self, store: FirestoreClearing, dirs: ClearingDirs, bic: str) -> None:
        self.store = store
        self.dirs = dirs
        self.bic = bic
        self.js = None
        self.undelivered: dict[str, list[PaymentRequested]] = {}  # file id -> its payments

    async def on_connect(self, js) -> None:
        self.js = faults.jetstream(js, faults.for_service("clearing"))  # chaos runs only
        for file_id, payments in await self.store.unwritten_files():
            log.warning("writing a file recorded before a crash", extra={"file_id": file_id})
            await self.send_or_keep(file_id, payments)

    async def send_or_keep(self, file_id: str, payments: list[PaymentRequested]) -> bool:
        """Write the file; when the channel is down (OSError, as a real outage raises) keep
        it for ``deliver_pending``. Its record in Firestore stays "created" until written."""
        try:
            await self.write_file(file_id, payments)
        except OSError as exc:
            if file_id not in self.undelivered:
                log.warning(
                    "clearing channel down: file kept to send later",
                    extra={"file_id": file_id, "payments": len(payments), "error": str(exc)},
                )
            self.undelivered[file_id] = payments
            return False
        if self.undelivered.pop(file_id, None) is not None:
            log.info("kept file sent", extra={"file_id": file_id})
        return True

    async def deliver_pending(self, stop: asyncio.Event) -> None:
        """The files the channel did not take, again every RETRY_SECONDS, oldest first."""
        while not stop.is_set():
            for file_id in sorted(self.undelivered):
                if not await self.send_or_keep(file_id, self.undelivered[file_id]):
                    break  # still down
            try:
                await asyncio.wait_for(stop.wait(), RETRY_SECONDS)
            except TimeoutError:
                pass

    async def write_file(self, file_id: str, payments: list[PaymentRequested]) -> None:
        batch = iso20022.PaymentBatch(
            message_id=file_id,
            created_at=dt.datetime.now(dt.UTC),
            initiating_party="Fjordbank ASA",
            debtor_agent_bic=self.bic,
            transfers=tuple(to_transfer(p) for p in payments),
        )
        self.dirs.deliver(f"{file_id}.xml", iso20022.build_pain001(batch))
        await self.store.mark_file(file_id, "written")
        log.info(
            "pain.001 written",
            extra={"file_id": file_id, "payments": len(payments), "control_sum": batch.control_sum_minor},
        )

    async def __call__(self, batch: list[Delivery]) -> list[Outcome]:
        decoded, outcomes = events.decode_batch(batch)
        if decoded:
            file_id = new_file_id(dt.datetime.now(dt.UTC))
            # each payment's trace context is kept with it: its answer from the other bank
            # (handle_answer, much later, in another process perhaps) continues the trace
            traces = {e.payment.payment_id: tracing.traceparent_of(batch[i].context) for i, e in decoded}
            with tracing.commit("clearing", [batch[i].context for i, _ in decoded]):
                new, files = await self.store.claim([e.payment for _, e in decoded], file_id, traces=traces)
            crash.point("clearing.after_claim")
            if new:
                await self.send_or_keep(file_id, new)
            submitted = [
                dataclasses.replace(
                    e, status="submitted", reason=None, message=None, detail={"fileId": files[e.payment.payment_id]}
                )
                for _, e in decoded
            ]
            await events.publish(self.js, submitted)
            fresh = {p.payment_id for p in new}  # the rest were in an earlier file: counted then
            for i, e in decoded:
                outcomes[i] = Ack()
                if e.payment.payment_id in fresh:
                    fresh.discard(e.payment.payment_id)
                    payment_metrics.step_result("clearing", "submitted", batch[i])
        return outcomes  # type: ignore[return-value]

    # ---- answers from the other banks ---------------------------------------------------
    async def read_answers(self, stop: asyncio.Event) -> None:
        down = False
        while not stop.is_set():
            try:
                for path in self.dirs.answers():
                    await self.handle_answer(path)
            except ConnectionError as exc:  # the channel is down: the answers wait at the other side
                if not down:
                    log.warning("clearing channel down: answers not read", extra={"error": str(exc)})
                down = True
            except Exception as exc:
                if not is_transient(exc):
                    raise  # a bug: the background task's guard logs it and starts it again
                # Firestore busy or unavailable: the file stays in the inbox, read again next poll
                log.warning("answers not read: the database did not answer; trying again", extra={"error": repr(exc)})
            else:
                if down:
                    log.info("clearing channel back: reading answers")
                down = False
            await asyncio.sleep(POLL_SECONDS)

    async def handle_answer(self, path: Path) -> None:
        try:
            report = iso20022.parse_pain002(self.dirs.read_answer(path))
        except ConnectionError:
            raise  # the channel, not the file: read again when it is back
        except (DomainError, OSError) as exc:
            log.error("unreadable pain.002 moved aside", extra={"file": path.name, "error": str(exc)})
            path.rename(self.dirs.processed / f"{path.name}.rejected")
            return
        # one read for the file and every payment it answers, one commit after publishing
        known_file, records = await self.store.answered_records(
            report.original_message_id, [s.end_to_end_id for s in report.statuses]
        )
        out: list[PaymentEvent] = []
        spans: dict[str, tracing.Span] = {}  # per payment: the answer's span, in the payment's trace
        for status in report.statuses:
            payment, traceparent = records.get(status.end_to_end_id, (None, None))
            if payment is not None and payment.payment_id not in spans:
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
            if payment is None:
                log.error("pain.002 names an unknown payment", extra={"end_to_end_id": status.end_to_end_id})
                continue
            if status.status == "ACSC":
                out.append(PaymentEvent(payment, "settled", detail={"statusReport": report.message_id}))
            else:
                reason = RETURN_REASONS.get(status.reason_code or "", status.reason_code or "returned")
                out.append(
                    PaymentEvent(
                        payment,
                        "returned",
                        reason=reason,
                        message=status.additional_info,
                        detail={"statusReport": report.message_id, "isoReason": status.reason_code},
                    )
                )
        try:
            await events.publish(self.js, out, {pid: tracing.context_of(s) for pid, s in spans.items()})
        except BaseException as exc:
            for s in spans.values():
                tracing.set_attributes(s, {"fjb.outcome": "nak"})
                tracing.fail(s, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            for s in spans.values():
                s.end()
        marks = [(e.payment.payment_id, e.status, e.reason) for e in out]
        await self.store.mark_answered(report.original_message_id if known_file else None, marks)
        for e in out:
            payment_metrics.step_result("clearing", e.status)  # no message started it: no step time
        if not known_file:
            # An answer to a file the bank has no record of (another environment's, or
            # records lost): moved aside for an operator, never retried forever, so the
            # answers behind it are still read.
            log.error(
                "pain.002 answers an unknown file; moved aside",
                extra={"file": path.name, "original_message_id": report.original_message_id},
            )
            path.rename(self.dirs.processed / f"{path.name}.unknown")
            return
        path.rename(self.dirs.processed / path.name)
        log.info(
            "pain.002 handled",
            extra={
                "file": path.name,
                "settled": sum(e.status == "settled" for e in out),
                "returned": sum(e.status == "returned" for e in out),
            },
        )


def build(settings: Settings) -> tuple[ClearingHandler, list]:
    """The handler and its background tasks. Raises ConfigError before anything starts
    when production names no channel to the clearing house (FJB_CLEARING_DIR)."""
    channel = settings.clearing_channel()
    switch = faults.for_service("clearing")  # chaos runs on the emulator only
    dirs = ClearingDirs(channel, switch)
    handler = ClearingHandler(FirestoreClearing(async_client(settings.project_id, faults=switch)), dirs, settings.bic)
    return handler, [handler.read_answers, handler.deliver_pending]


def main() -> None:
    settings = load_settings(identity="clearing")
    handler, background = build(settings)
    ConsumerService(
        durable="clearing",
        settings=settings,
        handler=handler,
        batch_size=500,
        fetch_wait=1.0,
        on_connect=handler.on_connect,
        background=background,
    ).run()


if __name__ == "__main__":
    main()
