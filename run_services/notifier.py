"""Notifier: projects every payment state onto what the app listens to, and queues pushes.

Consumes payments.> in batches; one Firestore transaction per batch moves each request
document forward (never backward: redeliveries and out-of-order events are harmless),
updates the accounts' transaction lists, and queues a push notification for final states
on Pub/Sub, where the push function sends it through FCM. It also consumes the onboarding
results (customers.*) and card decisions (cards.authorized / declined) and queues their
pushes; each push has a dedupe key, so a redelivered event is pushed once.

In the background it runs the ops sweep (fjordbank/runtime/ops_sweep.py): the oldest open
payment per state, the outbox backlog and the last ledger audit's result, as gauges.
"""

from __future__ import annotations

import asyncio
import logging

from fjordbank.adapters import faults
from fjordbank.adapters.firestore import async_client
from fjordbank.adapters.pubsub import PUSH_TOPIC, TopicPublisher
from fjordbank.adapters.request_docs import RequestProjector
from fjordbank.config import load_settings
from fjordbank.domain.notifications import Push, card_pushes, onboarding_pushes
from fjordbank.runtime import events, ops_sweep, tracing
from fjordbank.runtime.consumer import Ack, ConsumerService, Delivery, Outcome

log = logging.getLogger("notifier")
PUSH_BATCH = 100


class NotifierHandler:
    def __init__(self, db, topic: TopicPublisher) -> None:
        self.topic = topic
        self.projector = RequestProjector(db, self.queue_pushes)

    async def on_connect(self, _js) -> None:
        await asyncio.to_thread(self.topic.ensure_topic)

    async def queue_pushes(self, pushes: list[Push], contexts: list | None = None) -> None:
        """One Pub/Sub message per PUSH_BATCH pushes: one function invocation serves many.
        Each push carries the ``traceparent`` of the message it came from (``contexts``, by
        default its payment's in the batch in hand), the message's attributes the first one,
        so the push function continues each payment's trace."""
        items = []
        for n, p in enumerate(pushes):
            ctx = contexts[n] if contexts is not None else tracing.parent_of((p.data or {}).get("paymentId"))
            traceparent = tracing.traceparent_of(ctx)
            items.append({**p.to_json(), "traceparent": traceparent} if traceparent else p.to_json())
        chunks = [items[i : i + PUSH_BATCH] for i in range(0, len(items), PUSH_BATCH)]
        await asyncio.gather(*(self.topic.publish_json({"pushes": c}, **_first_trace(c)) for c in chunks))

    async def __call__(self, batch: list[Delivery]) -> list[Outcome]:
        decoded, outcomes = events.decode_batch(batch)
        if decoded:
            with tracing.commit("notifier_project", [batch[i].context for i, _ in decoded]):
                projected = await self.projector.project_batch([e for _, e in decoded])
            for (i, _event), result in zip(decoded, projected, strict=True):
                outcomes[i] = Ack()
                if result.changed:
                    log.debug(
                        "request projected",
                        extra={"payment_id": result.event.payment.payment_id, "status": result.event.status},
                    )
        return outcomes  # type: ignore[return-value]

    def pushes_of(self, make_pushes):
        """A batch handler that queues the pushes ``make_pushes(event)`` derives, from each
        event as this code's version of its contract reads it (fields it does not know left out)."""

        async def handle(batch: list[Delivery]) -> list[Outcome]:
            decoded, outcomes = events.decode_contracts(batch)
            pushes: list[Push] = []
            contexts = []
            for i, event in decoded:
                made = make_pushes(event.to_json())
                pushes += made
                contexts += [batch[i].context] * len(made)
                outcomes[i] = Ack()
            if pushes:
                await self.queue_pushes(pushes, contexts)
            return outcomes  # type: ignore[return-value]

        return handle


def _first_trace(items: list[dict]) -> dict[str, str]:
    first = next((item["traceparent"] for item in items if item.get("traceparent")), None)
    return {"traceparent": first} if first else {}


def main() -> None:
    settings = load_settings(identity="notifier")
    topic = TopicPublisher(settings.project_id, PUSH_TOPIC)
    db = async_client(settings.project_id, faults=faults.for_service("notifier"))
    handler = NotifierHandler(db, topic)
    # a background task: it never holds up message handling, and a failed sweep is logged
    sweep = [ops_sweep.sweeper(db, settings.ops_sweep_seconds)] if settings.ops_sweep_seconds > 0 else []
    ConsumerService(
        durable="notifier",
        settings=settings,
        handler=handler,
        batch_size=200,
        on_connect=handler.on_connect,
        also=[
            ("notifier-customers", handler.pushes_of(onboarding_pushes)),
            ("notifier-cards", handler.pushes_of(card_pushes)),
        ],
        background=sweep,
    ).run()


if __name__ == "__main__":
    main()
