"""The transactional outbox: an event is committed with the change it announces.

A use case stages its events in ``outbox/{msgId}`` inside the Firestore transaction that
makes the change, then publishes them after the commit and deletes the outbox documents.
If NATS is away the change still stands and its events wait in the outbox, where the
``relay-outbox`` scheduled job publishes them. The message id is the JetStream dedupe key
and consumers are idempotent, so publishing one twice (a crash between publish and
delete) is harmless.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from fjordbank.errors import PublishError
from fjordbank.service_layer.ports import Clock, Documents, Publisher, Where, Writes, system_clock

log = logging.getLogger(__name__)
OUTBOX = "outbox"
# Publishes that fail one after the other before the rest are left for the relay (one event
# that can never be published does not hold up the others; NATS away costs three timeouts).
MAX_FAILED_IN_A_ROW = 3


@dataclass(frozen=True)
class Event:
    subject: str
    body: dict[str, Any]
    msg_id: str


def kind_of(subject: str) -> str:
    """An outbox document's kind: its subject's first token (customers, cards, payments),
    which the ops sweep counts the backlog by (fjb_outbox_pending{kind})."""
    return subject.split(".", 1)[0]


def path_of(msg_id: str) -> str:
    return f"{OUTBOX}/{msg_id}"


def stage(uow: Writes, event: Event, *, clock: Clock = system_clock) -> None:
    """Write the event in the caller's unit of work (after its reads)."""
    uow.set(
        path_of(event.msg_id),
        {
            "subject": event.subject,
            "kind": kind_of(event.subject),
            "body": event.body,
            "stagedAt": clock(),
        },
    )


def deliver(docs: Documents, publisher: Publisher, events: list[Event]) -> int:
    """Publish committed events; each one published is removed from the outbox. Returns
    how many were published (the rest wait for the relay). Neither a failed publish nor a
    failed removal is raised: the change they announce is committed, and a caller told
    otherwise would make it again (an event whose
    outbox document could not be removed is published once more by the relay, under the
    same message id, which the consumers answer as a repeat)."""
    published = failed_in_a_row = 0
    for n, event in enumerate(events):
        try:
            publisher.publish_json(event.subject, event.body, msg_id=event.msg_id)
        except PublishError:
            log.warning("event left in the outbox", extra={"subject": event.subject, "msg_id": event.msg_id})
            failed_in_a_row += 1
            if failed_in_a_row >= MAX_FAILED_IN_A_ROW:  # NATS is away: each try waits for its timeout
                log.warning(
                    "NATS does not take events: the rest wait in the outbox", extra={"left": len(events) - n - 1}
                )
                break
            continue
        published += 1
        failed_in_a_row = 0
        try:
            done = docs.batch()
            done.delete(path_of(event.msg_id))
            done.commit()
        except Exception:
            log.exception("published event left in the outbox", extra={"msg_id": event.msg_id})
    return published


def relay(
    docs: Documents,
    publisher: Publisher,
    *,
    min_age_seconds: float = 10,
    limit: int = 500,
    clock: Clock = system_clock,
) -> dict[str, int]:
    """Publish events whose first publish failed (older than ``min_age_seconds``, so the
    job does not race a use case that is about to publish its own)."""
    cutoff = clock() - dt.timedelta(seconds=min_age_seconds)
    staged = docs.query(OUTBOX, where=[Where("stagedAt", "<=", cutoff)], limit=limit)
    events = [Event(d.data["subject"], d.data["body"], d.id) for d in staged]
    published = deliver(docs, publisher, events)
    counts = {"pending": len(events), "published": published}
    log.info("outbox relayed", extra=counts)
    return counts
