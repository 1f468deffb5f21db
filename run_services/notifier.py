"""Notifier: projects payment verdicts onto the app's request documents.

The app listens to users/{uid}/paymentRequests/{requestId}; every state change lands there.
Projections only move forward (fjordbank.domain.payments.may_advance), so redeliveries and
out-of-order events are harmless.
"""

from __future__ import annotations

import asyncio
import logging

from fjordbank.adapters.firestore import async_client
from fjordbank.adapters.request_docs import RequestProjector
from fjordbank.config import load_settings
from fjordbank.domain.payments import PaymentOutcome
from fjordbank.runtime.consumer import Ack, ConsumerService, Delivery, Outcome, Reject

log = logging.getLogger("notifier")


class NotifierHandler:
    def __init__(self, projector: RequestProjector) -> None:
        self.projector = projector

    async def one(self, d: Delivery) -> Outcome:
        try:
            out = PaymentOutcome.from_json(d.json())
        except (ValueError, TypeError) as exc:
            return Reject(f"malformed verdict: {exc}")
        changed = await self.projector.advance(
            out.uid, out.request_id, out.status, reason=out.reason, message=out.message
        )
        log.info("request projected", extra={"payment_id": out.payment_id, "status": out.status, "changed": changed})
        return Ack()

    async def __call__(self, batch: list[Delivery]) -> list[Outcome]:
        return list(await asyncio.gather(*(self.one(d) for d in batch)))


def main() -> None:
    settings = load_settings(identity="notifier")
    handler = NotifierHandler(RequestProjector(async_client(settings.project_id)))
    ConsumerService(durable="notifier", settings=settings, handler=handler, batch_size=100).run()


if __name__ == "__main__":
    main()
