"""Screening service: approves or rejects each requested payment (fjordbank.domain.screening).

Consumes payments.requested in batches; one Firestore commit per batch, guarded by the
versions it decided on, decides them in order (so limits hold however many payments race)
and records each decision (the use case: fjordbank.service_layer.screening); then it
publishes payments.approved or payments.rejected and acks. A payment to another bank has
its payee's name screened against the sanctions list (FJB_SANCTIONS_LIST, read again when
it changes; production has no default and the service does not start without it).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from pathlib import Path

from fjordbank.adapters import faults
from fjordbank.adapters.documents import AsyncFirestoreDocuments
from fjordbank.adapters.firestore import async_client, count_attempts
from fjordbank.adapters.sanctions_file import SanctionsFile
from fjordbank.config import load_settings
from fjordbank.domain.payments import PaymentEvent, told_owners
from fjordbank.domain.sanctions import EVERYONE
from fjordbank.domain.screening import ScreeningPolicy
from fjordbank.runtime import crash, events, logs, payment_metrics, steps, tracing
from fjordbank.runtime.consumer import ConsumerService, Delivery, Outcome
from fjordbank.service_layer.screening import Screening

log = logging.getLogger("screening")


class ScreeningHandler:
    def __init__(self, store: Screening) -> None:
        self.store = store
        self.js = None
        self._handle = steps.payment_step(self.screen)

    async def on_connect(self, js) -> None:
        self.js = faults.jetstream(js, faults.for_service("screening"))  # chaos runs only

    async def __call__(self, batch: list[Delivery]) -> list[Outcome]:
        return await self._handle(batch)

    async def screen(self, step: steps.Step[PaymentEvent]) -> None:
        with tracing.commit("screening", step.contexts()):
            decisions = await self.store.screen_batch([e.payment for e in step.events], told=told_owners(step.events))
        crash.point("screening.after_commit")
        out = []
        for (i, event), (decision, replayed) in zip(step.items, decisions, strict=True):
            status = "approved" if decision.approved else "rejected"
            out.append(dataclasses.replace(event, status=status, reason=decision.reason, message=decision.message))
            step.ack(i)
            log.debug(
                "payment screened",
                extra={
                    "payment_id": event.payment.payment_id,
                    "status": status,
                    "reason": decision.reason,
                    "replayed": replayed,
                },
            )
        await events.publish(self.js, out)
        for (i, _event), (_decision, replayed), result in zip(step.items, decisions, out, strict=True):
            if not replayed:  # a replayed decision was counted when it was made
                payment_metrics.step_result("screening", result.status, step.batch[i])


def load_policy(path: str | None) -> ScreeningPolicy:
    if not path:
        return ScreeningPolicy()
    return ScreeningPolicy.from_dict(json.loads(Path(path).read_text()))


def main() -> None:
    settings = load_settings(identity="screening")
    logs.setup("screening", settings.log_level)  # what reading the sanctions list says is logged too
    docs = AsyncFirestoreDocuments(async_client(settings.project_id, faults=faults.for_service("screening")))
    handler = ScreeningHandler(
        Screening(
            docs,
            load_policy(settings.screening_policy),
            sanctions=SanctionsFile(settings.screening_list(), subjects=EVERYONE),  # no list, no service
            attempted=functools.partial(count_attempts, "screening"),
        )
    )
    ConsumerService(
        durable="screening",
        settings=settings,
        handler=handler,
        batch_size=200,
        on_connect=handler.on_connect,
        on_partition=handler.store.known.clear,
    ).run()


if __name__ == "__main__":
    main()
