"""Ledger service: posts payments as double entry in Firestore, exactly once.

Consumes payments.requested in batches; one Firestore transaction per batch decides and
posts every payment in it (see fjordbank.adapters.ledger_store), then publishes each
verdict on payments.completed / payments.failed and acks. A crash anywhere replays the
batch: the ledger answers replays from its recorded verdicts, so nothing posts twice.
"""

from __future__ import annotations

import asyncio
import json
import logging

from fjordbank import topology
from fjordbank.adapters.firestore import async_client
from fjordbank.adapters.ledger_store import FirestoreLedger
from fjordbank.config import load_settings
from fjordbank.domain.errors import DomainError
from fjordbank.domain.payments import PaymentRequested
from fjordbank.runtime import crash
from fjordbank.runtime.consumer import Ack, ConsumerService, Delivery, Outcome, Reject

log = logging.getLogger("ledger")


class LedgerHandler:
    def __init__(self, ledger: FirestoreLedger) -> None:
        self.ledger = ledger
        self.js = None

    async def on_connect(self, js) -> None:
        self.js = js
        await self.ledger.ensure_internal_accounts()

    async def __call__(self, batch: list[Delivery]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(batch)
        events: list[tuple[int, PaymentRequested]] = []
        for i, d in enumerate(batch):
            try:
                events.append((i, PaymentRequested.from_json(d.json())))
            except (ValueError, TypeError, DomainError) as exc:
                outcomes[i] = Reject(f"malformed payments.requested: {exc}")
        if events:
            verdicts = await self.ledger.post_transfers([e for _, e in events])
            crash.point("ledger.after_commit")
            acks = []
            for (i, _event), verdict in zip(events, verdicts, strict=True):
                out = verdict.outcome
                subject = (
                    topology.SUBJECT_PAYMENT_COMPLETED if out.status == "completed" else topology.SUBJECT_PAYMENT_FAILED
                )
                acks.append(
                    self.js.publish(
                        subject,
                        json.dumps(out.to_json()).encode(),
                        headers={"Nats-Msg-Id": f"{out.payment_id}:{out.status}"},
                    )
                )
                log.info(
                    "payment decided",
                    extra={
                        "payment_id": out.payment_id,
                        "status": out.status,
                        "reason": out.reason,
                        "replayed": verdict.replayed,
                    },
                )
                outcomes[i] = Ack()
            await asyncio.gather(*acks)
        return outcomes  # type: ignore[return-value]


def main() -> None:
    settings = load_settings(identity="ledger")
    handler = LedgerHandler(FirestoreLedger(async_client(settings.project_id)))
    ConsumerService(
        durable="ledger", settings=settings, handler=handler, batch_size=200, on_connect=handler.on_connect
    ).run()


if __name__ == "__main__":
    main()
