"""Events on NATS: decode a fetched batch, publish the next payment steps.

Each next step is published in the trace of the message it came from: decode_batch
remembers each payment's message context (fjordbank.runtime.tracing) and publish puts that
context's ``traceparent`` in the new message's headers, and the step's subject on the
message's span (``fjb.published``), so a timeline shows what each step led to.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Mapping

from nats.js import JetStreamContext
from opentelemetry.context import Context

from fjordbank import topology
from fjordbank.adapters import jetstream_publish
from fjordbank.domain import events as contract_events
from fjordbank.domain.errors import DomainError, OtherVersion
from fjordbank.domain.events import Contract
from fjordbank.domain.payments import UNSHOWN, PaymentEvent, passed_at, passing
from fjordbank.runtime import tracing
from fjordbank.runtime.consumer import Delivery, Outcome, Reject, Retry
from fjordbank.runtime.redact import redact


def encode(event: PaymentEvent) -> bytes:
    return json.dumps(event.to_json(), separators=(",", ":")).encode()


def decode_batch(batch: list[Delivery]) -> tuple[list[tuple[int, PaymentEvent]], list[Outcome | None]]:
    """The batch's valid events with their positions, and a Reject for every malformed
    message (a message that can never be processed goes to the dead-letter stream)."""
    outcomes: list[Outcome | None] = [None] * len(batch)
    events: list[tuple[int, PaymentEvent]] = []
    tracing.begin_batch()
    for i, d in enumerate(batch):
        try:
            event = PaymentEvent.from_json(d.json())
        except OtherVersion as exc:
            outcomes[i] = _other_release(d, exc)
            continue
        except (ValueError, TypeError, DomainError, RecursionError) as exc:  # nested past the parser's depth too
            outcomes[i] = Reject(f"malformed {d.subject}: {redact(str(exc))[:200]}")
            continue
        if event.subject != d.subject:
            outcomes[i] = Reject(f"event status {event.status!r} does not match subject {d.subject}")
            continue
        events.append((i, event))
        tracing.set_attributes(
            d.span, {"fjb.payment_id": event.payment.payment_id, "fjb.payment_kind": event.payment.kind}
        )
        tracing.remember(event.payment.payment_id, d.context)
    return events, outcomes


# How long a message of another version waits between its tries: with the consumers'
# max_deliver (6) about twelve minutes, the time a rollout's two releases run side by side.
OTHER_VERSION_DELAY_SECONDS = 120.0


def _other_release(d: Delivery, exc: OtherVersion) -> Retry:
    """A message of another version than this code reads (another release's producer wrote
    it), given back after OTHER_VERSION_DELAY_SECONDS for an instance of that release's
    consumer (both run during a rollout), and dead-lettered after its tries as any failure
    of its own (replay it once the right release runs). Rejected at once, a producer of the
    next version deployed before its consumers dead-lettered every message it wrote, and a
    consumer of the next version every message of the last one still in the stream (found
    in review, 2026-12-07). Not a transient failure: taken for the database failing for
    all, it held every message after it in its batch for the hour such a failure is given
    (found in the review of that fix)."""
    return Retry(f"{d.subject}: {exc}", delay=OTHER_VERSION_DELAY_SECONDS)


def decode_contracts(batch: list[Delivery]) -> tuple[list[tuple[int, Contract]], list[Outcome | None]]:
    """For the customer and card streams (events and commands): each message as the
    contract its subject carries (fjordbank.domain.events), with its position, and a
    Reject for every message that is none (malformed), so it goes to the dead-letter
    stream; one of another version of its contract is given back (`_other_release`)."""
    outcomes: list[Outcome | None] = [None] * len(batch)
    decoded: list[tuple[int, Contract]] = []
    for i, d in enumerate(batch):
        try:
            decoded.append((i, contract_events.decode(d.subject, d.json())))
        except OtherVersion as exc:
            outcomes[i] = _other_release(d, exc)
        except (ValueError, TypeError, DomainError, RecursionError) as exc:
            outcomes[i] = Reject(f"malformed {d.subject}: {redact(str(exc))[:200]}")
    return decoded, outcomes


def stamped(event: PaymentEvent, now: dt.datetime) -> PaymentEvent:
    """A state nobody shows as it happens (`fjordbank.domain.payments.UNSHOWN`) with the
    time it is published, the time the app's timeline shows for it (a stamp it carries
    already stays)."""
    if event.status in UNSHOWN and event.status not in passed_at(event):
        return passing(event, now)
    return event


async def publish(
    js: JetStreamContext, events: list[PaymentEvent], parents: Mapping[str, Context | None] | None = None
) -> None:
    """Publish and wait for every JetStream ack (concurrently), each state nobody shows
    `stamped` with the time. Message id = payment:status,
    so publishing a step again (after a crash before the ack) is stored once; an event
    twice in ``events`` is published once. Each event carries the trace context of
    ``parents[payment id]``, by default that of the message decode_batch read for its
    payment. When a publish fails, the first error is raised once every publish has
    settled, so a batch retried after it never races its own publishes (whose ids would be
    "in process": fjordbank.adapters.jetstream_publish)."""
    messages: list[tuple[PaymentEvent, dict[str, str]]] = []
    now = dt.datetime.now(dt.UTC)
    for e in {e.msg_id: stamped(e, now) for e in events}.values():
        pid = e.payment.payment_id
        ctx = parents.get(pid) if parents is not None else tracing.parent_of(pid)
        if ctx is not None:
            tracing.add_to_list(tracing.span_in(ctx), "fjb.published", topology.base_subject(e.subject))
        messages.append((e, {"Nats-Msg-Id": e.msg_id, **(tracing.inject(ctx) if ctx is not None else {})}))
    settled = await asyncio.gather(
        *(jetstream_publish.publish(js, e.subject, encode(e), headers=headers) for e, headers in messages),
        return_exceptions=True,
    )
    failed = next((r for r in settled if isinstance(r, BaseException)), None)
    if failed is not None:
        raise failed
