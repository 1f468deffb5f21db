"""Notifier: projects every payment state onto what the app listens to, and queues pushes.

Consumes payments.> in batches; one Firestore commit per batch, guarded by preconditions
(the use case fjordbank.service_layer.notifier), moves each request document forward (never backward:
redeliveries and out-of-order events are harmless), updates the accounts' transaction
lists, and queues a push notification for final states on Pub/Sub (PushQueue in
fjordbank.adapters.pubsub), where the push function sends it through FCM. It also consumes
the onboarding results and changes to a customer's devices (customers.*) and card
decisions (cards.authorized / declined) and queues their pushes; each push carries a
collapse id from its dedupe key, so a push queued again for a redelivered event shows once
on the phone (fjordbank.service_layer.push).

In the background it runs the ops sweep (fjordbank/runtime/ops_sweep.py): the oldest open
payment per state, the outbox backlog and the last ledger audit's result, as gauges.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Callable
from typing import Any

from fjordbank.adapters import faults
from fjordbank.adapters.documents import AsyncFirestoreDocuments
from fjordbank.adapters.firestore import async_client, count_attempts
from fjordbank.adapters.pubsub import PUSH_TOPIC, PushQueue, TopicPublisher
from fjordbank.config import load_settings
from fjordbank.domain.events import Contract
from fjordbank.domain.notifications import Push, card_pushes, customer_pushes
from fjordbank.domain.payments import PaymentEvent
from fjordbank.runtime import ops_sweep, steps, tracing
from fjordbank.runtime.consumer import BatchHandler, ConsumerService, Delivery, Outcome
from fjordbank.service_layer import notifier
from fjordbank.service_layer.owners import Owners
from fjordbank.service_layer.ports import AsyncDocuments

log = logging.getLogger("notifier")


class NotifierHandler:
    """The notifier's consumers, wired to the use case (fjordbank.service_layer.notifier)."""

    def __init__(self, docs: AsyncDocuments, topic: TopicPublisher) -> None:
        self.docs = docs
        self.topic = topic
        self.queue_pushes = PushQueue(topic)
        self.owners = Owners(docs)  # the payees' owners, read once (fjordbank.service_layer.owners)
        self.known = notifier.Known()  # the versions of the payments' records (no read when known)
        self.names = notifier.Names()  # the payers' names (read once)
        self.commits = functools.partial(count_attempts, notifier.OPERATION)  # counted as a transaction's
        self._handle = steps.payment_step(self.project)

    async def on_connect(self, _js) -> None:
        await asyncio.to_thread(self.topic.ensure_topic)

    async def __call__(self, batch: list[Delivery]) -> list[Outcome]:
        return await self._handle(batch)

    def queue_for(self, step: steps.Step[PaymentEvent]) -> notifier.QueuePushes:
        """The queue of a batch of payment events: each push stamped with the time its
        payment's event entered the stream (the latest of the batch's for that payment; a
        replayed dead letter's first time: Delivery.entered),
        found by the push's ``paymentId`` (the use case hands over pushes, not messages)."""
        entered: dict[str, dt.datetime] = {}
        for i, event in step.items:
            at = step.batch[i].entered
            pid = event.payment.payment_id
            if at is not None and (pid not in entered or at > entered[pid]):
                entered[pid] = at

        async def queue(pushes: list[Push]) -> None:
            await self.queue_pushes(pushes, entered=[entered.get((p.data or {}).get("paymentId", "")) for p in pushes])

        return queue

    async def project(self, step: steps.Step[PaymentEvent]) -> None:
        with tracing.commit(notifier.OPERATION, step.contexts()):
            projected = await notifier.project_batch(
                self.docs,
                self.owners,
                self.queue_for(step),
                step.events,
                known=self.known,
                names=self.names,
                attempted=functools.partial(count_attempts, notifier.OPERATION),
            )
        for (i, _event), result in zip(step.items, projected, strict=True):
            step.ack(i)
            if result.changed:
                log.debug(
                    "request projected",
                    extra={"payment_id": result.event.payment.payment_id, "status": result.event.status},
                )

    def pushes_of(self, make_pushes: Callable[[dict[str, Any]], list[Push]]) -> BatchHandler:
        """A batch handler that queues the pushes ``make_pushes(event)`` derives, from each
        event as this code's version of its contract reads it (fields it does not know left out)."""

        async def queue(step: steps.Step[Contract]) -> None:
            pushes: list[Push] = []
            contexts = []
            entered = []  # when each push's event entered the stream (the push function's clock for news)
            for i, event in step.items:
                made = make_pushes(event.to_json())
                pushes += made
                contexts += [step.batch[i].context] * len(made)
                entered += [step.batch[i].entered] * len(made)
                step.ack(i)
            keep = await notifier.still_current(self.docs, pushes) if pushes else []
            if dropped := [p for p, k in zip(pushes, keep, strict=True) if not k]:
                log.info("push out of date not queued", extra={"keys": [p.dedupe_key for p in dropped]})
            pushes = [p for p, k in zip(pushes, keep, strict=True) if k]
            contexts = [c for c, k in zip(contexts, keep, strict=True) if k]
            entered = [e for e, k in zip(entered, keep, strict=True) if k]
            if pushes:
                await self.queue_pushes(pushes, contexts, entered)

        return steps.contract_step(queue)


def main() -> None:
    settings = load_settings(identity="notifier")
    topic = TopicPublisher(settings.project_id, PUSH_TOPIC)
    db = async_client(settings.project_id, faults=faults.for_service("notifier"))
    handler = NotifierHandler(AsyncFirestoreDocuments(db), topic)
    # a background task: it never holds up message handling, and a failed sweep is logged
    sweep = [ops_sweep.sweeper(db, settings.ops_sweep_seconds)] if settings.ops_sweep_seconds > 0 else []
    ConsumerService(
        durable="notifier",
        settings=settings,
        handler=handler,
        batch_size=200,
        on_connect=handler.on_connect,
        on_partition=handler.known.clear,
        also=[
            ("notifier-customers", handler.pushes_of(customer_pushes)),
            ("notifier-cards", handler.pushes_of(card_pushes)),
        ],
        background=sweep,
    ).run()


if __name__ == "__main__":
    main()
