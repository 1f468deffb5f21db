"""Clearing service: sends external payments to other banks and reads their answers.

Each fetched batch of payments.reserved is one clearing cycle: the payments not yet sent
are recorded in a new file (Firestore first, so a payment is never sent twice), the file
is written as ISO 20022 pain.001.001.03 to the outbox, payments.submitted is published,
and the batch is acked. A file recorded but not written (a crash in between) is written
when the service starts again. The use cases are fjordbank.service_layer.clearing; this is
the wiring: the messages in and out, the answers' polling, the metrics.

A background task reads pain.002 status reports from the inbox and publishes
payments.settled or payments.returned (with the counterparty's reason) per payment.
The outbox and inbox are the channel to the clearing house, the folder FJB_CLEARING_DIR: in
production a transfer service exchanges the files with the clearing house there, and the
service refuses to start without it (Settings.clearing_channel); locally the stack's
``counterparty`` component, a simulated other bank in a process of its own
(simulators.counterparty), answers every outbox file. Nothing here simulates anything.

The channel down (the transfer service unreachable; a chaos run's ``clearing_channel_down``):
a file that cannot be written stays recorded in Firestore and is kept by the service, which
writes it again every few seconds until the channel is back (``Clearing.deliver_pending``;
after a restart ``on_connect`` finds it). The batch is still acked and its payments published as
submitted: failing the batch instead would have it redelivered until it was dead-lettered
during a long outage. Answers are not read while the channel is down; they wait at the
other side. So payments wait (reserved / submitted) and none is lost or dead-lettered.

Payments from other banks: the same background task reads the clearing house's pacs.008
files from ``incoming/`` and publishes payments.arrived per credit for the ledger; a credit
the ledger could not apply comes back as payments.unapplied, and is sent back in a pacs.004
(fjordbank.service_layer.incoming). A return is recorded in Firestore before it is
delivered; one the channel cannot take now (down) is acked all the same and kept, sent
again every few seconds until the channel is back (and after a restart by ``on_connect``),
as the pain.001 files are. Every payer is screened against the sanctions list
(FJB_SANCTIONS_LIST, read again when it changes; production has no default and the service
refuses to start without it): a credit whose payer is like a listed person or enterprise is
held for a compliance officer, and one they release is published by ``release_held``.

The counterparty answering twice or out of order (as the simulated other bank does on a
chaos run's ``counterparty`` fault): each answer is handled as it comes; a payment's settled
or returned step has one message id (JetStream stores it once) and the ledger answers a
replay from its records, so each payment settles or returns once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path

import nats.errors
from opentelemetry.context import Context

from fjordbank.adapters import faults
from fjordbank.adapters.clearing_store import ClearingDirs
from fjordbank.adapters.documents import AsyncFirestoreDocuments
from fjordbank.adapters.firestore import async_client, is_transient
from fjordbank.adapters.sanctions_file import SanctionsFile
from fjordbank.config import Settings, load_settings
from fjordbank.domain.errors import DomainError
from fjordbank.domain.payments import PaymentEvent
from fjordbank.domain.sanctions import EVERYONE
from fjordbank.runtime import crash, events, logs, payment_metrics, steps, tracing
from fjordbank.runtime.consumer import ConsumerService, Delivery, Outcome
from fjordbank.service_layer.clearing import Clearing, submitted, unsendable
from fjordbank.service_layer.incoming import Incoming
from fjordbank.service_layer.owners import Owners
from fjordbank.topology import UNAPPLIED

log = logging.getLogger("clearing")
POLL_SECONDS = 0.5
RELEASE_SECONDS = 5.0  # how often the held credits a compliance officer released are looked for


class ClearingHandler:
    def __init__(self, clearing: Clearing, dirs: ClearingDirs, incoming: Incoming) -> None:
        self.clearing = clearing
        self.dirs = dirs
        self.incoming = incoming
        self.js = None
        self._handle = steps.payment_step(self.submit)

    async def on_connect(self, js) -> None:
        self.js = faults.jetstream(js, faults.for_service("clearing"))  # chaos runs only
        await self.clearing.resend_unwritten()
        await self.incoming.resend_pending()
        try:
            await self.incoming.book_held(self.publish)
        except Exception as exc:
            if not (is_transient(exc) or isinstance(exc, ConnectionError | nats.errors.Error)):
                raise
            # each is booked when its file is read again, or at the next start
            log.warning("held payments not published for the ledger now", extra={"error": repr(exc)})

    async def publish(self, out: list[PaymentEvent], parents: Mapping[str, Context | None] | None = None) -> None:
        await events.publish(self.js, out, parents)

    async def __call__(self, batch: list[Delivery]) -> list[Outcome]:
        return await self._handle(batch)

    async def submit(self, step: steps.Step[PaymentEvent]) -> None:
        items = []
        for i, e in step.items:
            if e.status == UNAPPLIED:
                await self.send_back(step, i, e)
                continue
            problem = unsendable(e.payment)
            if problem is None:
                items.append((i, e))
            else:  # dead-lettered for an operator (its hold stays): never the whole file's fault
                log.error(
                    "payment cannot go in a pain.001; dead-lettered",
                    extra={"payment_id": e.payment.payment_id, "error": problem},
                )
                step.reject(i, f"cannot be put in a pain.001: {problem}")
        if not items:
            return
        file_id = self.clearing.new_file_id()
        # each payment's trace context is kept with it: its answer from the other bank
        # (handle_answer, much later, in another process perhaps) continues the trace
        traces = {e.payment.payment_id: tracing.traceparent_of(step.batch[i].context) for i, e in items}
        with tracing.commit("clearing", [step.batch[i].context for i, _ in items]):
            new, files = await self.clearing.claim([e.payment for _, e in items], file_id, traces=traces)
        crash.point("clearing.after_claim")
        if new:
            await self.clearing.send_or_keep(file_id, new)
        if any(f != file_id for f in files.values()):  # in a file before: is it written?
            await self.clearing.write_left(files, file_id)
        await self.publish(submitted([e for _, e in items], files))
        fresh = {p.payment_id for p in new}  # the rest were in an earlier file: counted then
        for i, e in items:
            step.ack(i)
            if e.payment.payment_id in fresh:
                fresh.discard(e.payment.payment_id)
                payment_metrics.step_result("clearing", "submitted", step.batch[i])

    async def send_back(self, step: steps.Step[PaymentEvent], i: int, e: PaymentEvent) -> None:
        """A payment from another bank the ledger could not credit: its return, recorded and
        delivered once (kept while the channel is down). A database error fails the step
        (redelivered); an event this code did not make is an operator's (dead-lettered)."""
        try:
            sent = await self.incoming.unapplied(e)
        except DomainError as exc:
            step.reject(i, f"cannot be sent back: {exc}")
            return
        step.ack(i)
        if sent:
            payment_metrics.step_result("clearing", "sent_back", step.batch[i])

    async def release_held(self, stop: asyncio.Event) -> None:
        """Every `RELEASE_SECONDS`: the held credits a compliance officer released,
        published (or sent back). A pass that fails is logged; the next one runs on time."""
        while not stop.is_set():
            if self.js is not None:
                try:
                    await self.incoming.release_decided(self.publish)
                except Exception as exc:
                    if not (is_transient(exc) or isinstance(exc, ConnectionError | nats.errors.Error)):
                        raise  # a bug: the background task's guard logs it and starts it again
                    log.warning("released payments not published now; trying again", extra={"error": repr(exc)})
            try:
                await asyncio.wait_for(stop.wait(), timeout=RELEASE_SECONDS)
            except TimeoutError:
                continue

    # ---- answers from the other banks ---------------------------------------------------
    async def read_answers(self, stop: asyncio.Event) -> None:
        down = False
        while not stop.is_set():
            try:
                for path in self.dirs.answers():
                    await self.handle_answer(path)
                for path in self.dirs.incoming():
                    await self.handle_incoming(path)
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

    async def handle_incoming(self, path: Path) -> None:
        for _ in await self.incoming.receive_file(path, self.publish):
            payment_metrics.step_result("clearing", "arrived")  # no message started it: no step time

    async def handle_answer(self, path: Path) -> None:
        for e in await self.clearing.handle_answer(path, self.publish):
            payment_metrics.step_result("clearing", e.status)  # no message started it: no step time


def build(settings: Settings) -> tuple[ClearingHandler, list]:
    """The handler and its background tasks. Raises ConfigError before anything starts
    when production names no channel to the clearing house (FJB_CLEARING_DIR) or no
    sanctions list (FJB_SANCTIONS_LIST), and OSError or InvalidSanctionsList when the list
    cannot be read."""
    channel = settings.clearing_channel()
    sanctions = SanctionsFile(settings.screening_list(), subjects=EVERYONE)  # no list, no service
    switch = faults.for_service("clearing")  # chaos runs on the emulator only
    dirs = ClearingDirs(channel, switch)
    docs = AsyncFirestoreDocuments(async_client(settings.project_id, faults=switch))
    incoming = Incoming(docs, dirs, Owners(docs).of, bic=settings.bic, sanctions=sanctions)
    handler = ClearingHandler(Clearing(docs, dirs, bic=settings.bic), dirs, incoming)
    background = [
        handler.read_answers,
        handler.release_held,
        handler.clearing.deliver_pending,
        incoming.deliver_pending,
    ]
    return handler, background


def main() -> None:
    settings = load_settings(identity="clearing")
    logs.setup("clearing", settings.log_level)  # what build says (the sanctions list read) is logged too
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
