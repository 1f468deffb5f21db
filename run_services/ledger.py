"""Ledger service: holds and posts payments as double entry in Firestore, exactly once.

Consumes payments.approved, payments.settled and payments.returned, and an internal
payment's credit and refund legs, in batches; one Firestore commit per batch, guarded by
the versions it decided on, applies every step in it (the use case:
fjordbank.service_layer.ledger), then it publishes each
result (reserved, credit, refund, completed, failed; credited beside a credit's completed;
a credit or refund carrying the payment's record, so the next leg's owner need not read it)
and acks. A crash anywhere replays the batch: the ledger answers replayed steps from its
records, so nothing is held or posted twice.
"""

from __future__ import annotations

import functools
import logging

from fjordbank.adapters import faults
from fjordbank.adapters.documents import AsyncFirestoreDocuments
from fjordbank.adapters.firestore import async_client, count_attempts
from fjordbank.config import load_settings
from fjordbank.domain.payment_ledger import published
from fjordbank.domain.payments import PaymentEvent
from fjordbank.runtime import crash, events, payment_metrics, steps, tracing
from fjordbank.runtime.consumer import ConsumerService, Delivery, Outcome
from fjordbank.service_layer.ledger import Ledger, carry
from fjordbank.topology import ARRIVED, HELD

log = logging.getLogger("ledger")


class LedgerHandler:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.js = None
        self._handle = steps.payment_step(self.post)

    async def on_connect(self, js) -> None:
        self.js = faults.jetstream(js, faults.for_service("ledger"))  # chaos runs only
        await self.ledger.ensure_internal_accounts()

    async def __call__(self, batch: list[Delivery]) -> list[Outcome]:
        return await self._handle(batch)

    async def post(self, step: steps.Step[PaymentEvent]) -> None:
        with tracing.commit("ledger_post_batch", step.contexts()):
            verdicts = await self.ledger.post_batch(step.events)
        crash.point("ledger.after_commit")
        out = []
        for (i, _event), verdict in zip(step.items, verdicts, strict=True):
            if verdict.result is None:
                step.reject(i, verdict.error or "refused by the ledger")
                continue
            r = verdict.result
            out += carry(published(verdict.event, r), verdict.record)
            step.ack(i)
            if verdict.event.status == ARRIVED and r.status == HELD:
                log.warning(
                    "a credit held for sanctions review arrived without a release; it stays held",
                    extra={"payment_id": verdict.event.payment.payment_id},
                )
            log.debug(
                "payment step posted",
                extra={
                    "payment_id": verdict.event.payment.payment_id,
                    "step": verdict.event.status,
                    "status": r.status,
                    "reason": r.reason,
                    "replayed": verdict.replayed,
                },
            )
        await events.publish(self.js, out)
        for (i, _event), verdict in zip(step.items, verdicts, strict=True):
            if verdict.result is None or verdict.replayed:  # refused, or counted when first posted
                continue
            payment_metrics.step_result("ledger", verdict.result.status, step.batch[i])
            if verdict.result.status in payment_metrics.FINAL:
                payment_metrics.payment_final(verdict.event.payment, verdict.result.status)


def main() -> None:
    settings = load_settings(identity="ledger")
    docs = AsyncFirestoreDocuments(async_client(settings.project_id, faults=faults.for_service("ledger")))
    ledger = Ledger(docs, attempted=functools.partial(count_attempts, "ledger_post_batch"))
    handler = LedgerHandler(ledger)
    ConsumerService(
        durable="ledger",
        settings=settings,
        handler=handler,
        batch_size=200,
        on_connect=handler.on_connect,
        on_partition=ledger.known.clear,
    ).run()


if __name__ == "__main__":
    main()
