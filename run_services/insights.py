"""Insights: "my economy" and subscriptions, maintained from what is booked.

Consumes payments.completed (the payer's side), payments.credited (an internal payment's
payee's side, in the payee's partition) and cards.captured in batches; each event becomes bookings
(fjordbank.domain.bookings) that one Firestore transaction per batch applies to the
customers' monthly figures and merchant histories (fjordbank.adapters.insights_store).
Applying a booking twice changes nothing, so redeliveries and replays are harmless.
"""

from __future__ import annotations

import logging

from fjordbank.adapters import faults
from fjordbank.adapters.firestore import async_client
from fjordbank.adapters.insights_store import InsightsStore
from fjordbank.adapters.owners import Owners
from fjordbank.config import load_settings
from fjordbank.domain import bookings
from fjordbank.runtime import events, tracing
from fjordbank.runtime.consumer import Ack, ConsumerService, Delivery, Outcome

log = logging.getLogger("insights")


class InsightsHandler:
    def __init__(self, db) -> None:
        self.db = db
        self.store = InsightsStore(db)
        self.owners = Owners(db)  # the payees' owners, read once (fjordbank.adapters.owners)

    async def payments(self, batch: list[Delivery]) -> list[Outcome]:
        decoded, outcomes = events.decode_batch(batch)
        internal = {e.payment.to_account for _, e in decoded if e.payment.kind == "internal"}
        owners = await self.owners.of(sorted(internal)) if internal else {}
        booked = [b for _, e in decoded for b in bookings.for_partition(e, payee_uid=owners.get(e.payment.to_account))]
        return await self._apply(booked, decoded, outcomes)

    async def cards(self, batch: list[Delivery]) -> list[Outcome]:
        decoded, outcomes = events.decode_contracts(batch)
        booked = [b for _, event in decoded for b in bookings.from_card_capture(event.to_json())]
        return await self._apply(booked, decoded, outcomes)

    async def _apply(self, booked, decoded, outcomes) -> list[Outcome]:
        if booked:
            with tracing.commit("insights_apply", tracing.batch_contexts()):
                applied = await self.store.apply(booked)
            log.debug(
                "bookings applied",
                extra={
                    "bookings": len(booked),
                    "months": applied.changed_months,
                    "subscriptions": applied.subscriptions_written,
                },
            )
        for i, _ in decoded:
            outcomes[i] = Ack()
        return outcomes  # type: ignore[return-value]


def main() -> None:
    settings = load_settings(identity="insights")
    handler = InsightsHandler(async_client(settings.project_id, faults=faults.for_service("insights")))
    ConsumerService(
        durable="insights-payments",
        settings=settings,
        handler=handler.payments,
        batch_size=100,
        also=[("insights-cards", handler.cards)],
    ).run()


if __name__ == "__main__":
    main()
