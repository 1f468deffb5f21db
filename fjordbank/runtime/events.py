"""Payment events on NATS: decode a fetched batch, publish the next steps."""

from __future__ import annotations

import asyncio
import json

from fjordbank.domain.errors import DomainError
from fjordbank.domain.payments import PaymentEvent
from fjordbank.runtime.consumer import Delivery, Outcome, Reject


def encode(event: PaymentEvent) -> bytes:
    return json.dumps(event.to_json(), separators=(",", ":")).encode()


def decode_batch(batch: list[Delivery]) -> tuple[list[tuple[int, PaymentEvent]], list[Outcome | None]]:
    """The batch's valid events with their positions, and a Reject for every malformed
    message (a message that can never be processed goes to the dead-letter stream)."""
    outcomes: list[Outcome | None] = [None] * len(batch)
    events: list[tuple[int, PaymentEvent]] = []
    for i, d in enumerate(batch):
        try:
            event = PaymentEvent.from_json(d.json())
        except (ValueError, TypeError, DomainError) as exc:
            outcomes[i] = Reject(f"malformed {d.subject}: {exc}")
            continue
        if event.subject != d.subject:
            outcomes[i] = Reject(f"event status {event.status!r} does not match subject {d.subject}")
            continue
        events.append((i, event))
    return events, outcomes


def decode_objects(batch: list[Delivery]) -> tuple[list[tuple[int, dict]], list[Outcome | None]]:
    """For streams of plain JSON objects (customer and card events, commands): the objects
    with their positions, and a Reject for every message that is not one."""
    outcomes: list[Outcome | None] = [None] * len(batch)
    bodies: list[tuple[int, dict]] = []
    for i, d in enumerate(batch):
        try:
            body = d.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            bodies.append((i, body))
        else:
            outcomes[i] = Reject(f"malformed {d.subject}: not a JSON object")
    return bodies, outcomes


async def publish(js, events: list[PaymentEvent]) -> None:
    """Publish and wait for every JetStream ack (concurrently). Message id = payment:status,
    so publishing a step again (after a crash before the ack) is stored once."""
    await asyncio.gather(*(js.publish(e.subject, encode(e), headers={"Nats-Msg-Id": e.msg_id}) for e in events))
