"""One shape for every consumer's batch handler: decode, hand the events to the step, answer
every message.

A consumer service (run_services/) gets a fetched batch and must answer each message: ack,
retry later, or reject to the dead-letter stream (fjordbank.runtime.consumer). The six
consumers did the same three things by hand: decode (payment events, or the typed
contracts of cards and customers), reject what cannot be read, and fill in one outcome per
message after their use case ran. Here that is done once::

    handler = steps.payment_step(self.post)        # or steps.contract_step(...)

    async def post(self, step: steps.Step[PaymentEvent]) -> None:
        verdicts = await use_case(step.events)
        for (i, _event), verdict in zip(step.items, verdicts, strict=True):
            step.ack(i) if verdict.ok else step.reject(i, verdict.error)

The step is called only when at least one message could be read. A message the step left
without an outcome is retried (redelivered after the consumer's back-off) and logged: a
handler's bug must never drop or dead-letter a payment silently.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from opentelemetry.context import Context

from fjordbank.domain.events import Contract
from fjordbank.domain.payments import PaymentEvent
from fjordbank.runtime import events
from fjordbank.runtime.consumer import Ack, BatchHandler, Delivery, Outcome, Reject, Retry

log = logging.getLogger(__name__)
E = TypeVar("E")
UNDECIDED = "no outcome decided for the message (a handler bug): redelivered"


@dataclass
class Step(Generic[E]):
    """A fetched batch, decoded: the events that could be read, each with its position in
    the batch (``items``), and one outcome per message (the malformed ones already rejected)."""

    batch: list[Delivery]
    items: list[tuple[int, E]]
    decided: list[Outcome | None]

    @property
    def events(self) -> list[E]:
        return [event for _, event in self.items]

    def contexts(self) -> list[Context | None]:
        """The trace context of each readable message (tracing.commit links them)."""
        return [self.batch[i].context for i, _ in self.items]

    def ack(self, i: int) -> None:
        self.decided[i] = Ack()

    def ack_all(self) -> None:
        for i, _ in self.items:
            self.decided[i] = Ack()

    def reject(self, i: int, reason: str) -> None:
        self.decided[i] = Reject(reason)

    def decide(self, i: int, outcome: Outcome) -> None:
        self.decided[i] = outcome

    def outcomes(self) -> list[Outcome]:
        """Every message's outcome; one left undecided is retried, and said so in the log."""
        out: list[Outcome] = []
        for delivery, outcome in zip(self.batch, self.decided, strict=True):
            if outcome is None:
                log.error(UNDECIDED, extra={"subject": delivery.subject})
                outcome = Retry(UNDECIDED)
            out.append(outcome)
        return out


def _handler(
    decode: Callable[[list[Delivery]], tuple[list[tuple[int, E]], list[Outcome | None]]],
    step: Callable[[Step[E]], Awaitable[None]],
) -> BatchHandler:
    async def handle(batch: list[Delivery]) -> list[Outcome]:
        items, decided = decode(batch)
        decoded = Step(batch, items, decided)
        if items:
            await step(decoded)
        return decoded.outcomes()

    return handle


def payment_step(step: Callable[[Step[PaymentEvent]], Awaitable[None]]) -> BatchHandler:
    """A batch handler of payment events (fjordbank.domain.payments.PaymentEvent): a message
    that is not one, or whose status is not its subject's, is rejected before ``step``."""
    return _handler(events.decode_batch, step)


def contract_step(step: Callable[[Step[Contract]], Awaitable[None]]) -> BatchHandler:
    """A batch handler of the typed contracts (fjordbank.domain.events: card and customer
    events, commands): a message that is none of them is rejected before ``step``."""
    return _handler(events.decode_contracts, step)
