"""Insights: "my economy" and subscriptions, maintained from what is booked.

Consumes payments.completed (the payer's side), payments.credited (an internal payment's
payee's side, in the payee's partition), cards.captured and cards.refunded in batches; each event becomes bookings
(fjordbank.domain.bookings) that one Firestore transaction per batch applies to the
customers' monthly figures and merchant histories (the use case fjordbank.service_layer.economy).
Applying a booking twice changes nothing, so redeliveries and replays are harmless.
"""

from __future__ import annotations

import logging

from fjordbank.adapters import faults
from fjordbank.adapters.documents import AsyncFirestoreDocuments
from fjordbank.adapters.firestore import async_client
from fjordbank.config import load_settings
from fjordbank.domain.bookings import Booking
from fjordbank.domain.events import Contract
from fjordbank.domain.payments import PaymentEvent
from fjordbank.runtime import steps, tracing
from fjordbank.runtime.consumer import ConsumerService
from fjordbank.service_layer import economy, migrations
from fjordbank.service_layer.owners import Owners
from fjordbank.service_layer.ports import AsyncDocuments

log = logging.getLogger("insights")


class InsightsHandler:
    """The insights consumers, wired to the use case (fjordbank.service_layer.economy)."""

    def __init__(self, docs: AsyncDocuments) -> None:
        self.docs = docs
        self.owners = Owners(docs)  # the payees' owners, read once (fjordbank.service_layer.owners)
        # every choice on its history: no override read (fjordbank.service_layer.migrations)
        self.choices_on_histories = migrations.Done(docs, migrations.ECONOMY_CHOICES)
        self.payments = steps.payment_step(self.book_payments)
        self.cards = steps.contract_step(self.book_captures)

    async def book_payments(self, step: steps.Step[PaymentEvent]) -> None:
        await self._apply(await economy.payment_bookings(self.owners, step.events))
        step.ack_all()

    async def book_captures(self, step: steps.Step[Contract]) -> None:
        await self._apply(economy.card_bookings(event.to_json() for event in step.events))
        step.ack_all()

    async def _apply(self, booked: list[Booking]) -> None:
        if booked:
            with tracing.commit(economy.OPERATION, tracing.batch_contexts()):
                applied = await economy.apply_bookings(
                    self.docs, booked, choices_on_histories=await self.choices_on_histories()
                )
            log.debug(
                "bookings applied",
                extra={
                    "bookings": len(booked),
                    "months": applied.changed_months,
                    "subscriptions": applied.subscriptions_written,
                },
            )


def main() -> None:
    settings = load_settings(identity="insights")
    db = async_client(settings.project_id, faults=faults.for_service("insights"))
    handler = InsightsHandler(AsyncFirestoreDocuments(db))
    ConsumerService(
        durable="insights-payments",
        settings=settings,
        handler=handler.payments,
        batch_size=100,
        also=[("insights-cards", handler.cards)],
    ).run()


if __name__ == "__main__":
    main()
