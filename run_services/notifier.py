"""Notifier: projects every payment state onto what the app listens to, and queues pushes.

Consumes payments.> in batches; one Firestore transaction per batch moves each request
document forward (never backward: redeliveries and out-of-order events are harmless),
updates the accounts' transaction lists, and queues a push notification for final states
on Pub/Sub, where the push function sends it through FCM. It also consumes the onboarding
results (customers.*) and card decisions (cards.authorized / declined) and queues their
pushes; each push has a dedupe key, so a redelivered event is pushed once.
"""

from __future__ import annotations

import asyncio
import logging

from fjordbank.adapters.firestore import async_client
from fjordbank.adapters.pubsub import PUSH_TOPIC, TopicPublisher
from fjordbank.adapters.request_docs import RequestProjector
from fjordbank.config import load_settings
from fjordbank.domain.notifications import Push, card_pushes, onboarding_pushes
from fjordbank.runtime import events
from fjordbank.runtime.consumer import Ack, ConsumerService, Delivery, Outcome

log = logging.getLogger("notifier")
PUSH_BATCH = 100


class NotifierHandler:
    def __init__(self, db, topic: TopicPublisher) -> None:
        self.topic = topic
        self.projector = RequestProjector(db, self.queue_pushes)

    async def on_connect(self, _js) -> None:
        await asyncio.to_thread(self.topic.ensure_topic)

    async def queue_pushes(self, pushes: list[Push]) -> None:
        """One Pub/Sub message per PUSH_BATCH pushes: one function invocation serves many."""
        chunks = [pushes[i : i + PUSH_BATCH] for i in range(0, len(pushes), PUSH_BATCH)]
        await asyncio.gather(*(self.topic.publish_json({"pushes": [p.to_json() for p in c]}) for c in chunks))

    async def __call__(self, batch: list[Delivery]) -> list[Outcome]:
        decoded, outcomes = events.decode_batch(batch)
        if decoded:
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
        """A batch handler that queues the pushes ``make_pushes(event)`` derives."""

        async def handle(batch: list[Delivery]) -> list[Outcome]:
            bodies, outcomes = events.decode_objects(batch)
            pushes: list[Push] = []
            for i, body in bodies:
                pushes += make_pushes(body)
                outcomes[i] = Ack()
            if pushes:
                await self.queue_pushes(pushes)
            return outcomes  # type: ignore[return-value]

        return handle


def main() -> None:
    settings = load_settings(identity="notifier")
    topic = TopicPublisher(settings.project_id, PUSH_TOPIC)
    handler = NotifierHandler(async_client(settings.project_id), topic)
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
    ).run()


if __name__ == "__main__":
    main()
