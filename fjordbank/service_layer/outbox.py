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
from typing import Any, Protocol

from google.cloud import firestore
from google.cloud.firestore_v1 import Transaction
from google.cloud.firestore_v1.base_query import FieldFilter

from fjordbank.errors import PublishError

log = logging.getLogger(__name__)
OUTBOX = "outbox"


class Publisher(Protocol):
    def publish_json(self, subject: str, body: dict[str, Any], *, msg_id: str, stream: str | None = None) -> object: ...


@dataclass(frozen=True)
class Event:
    subject: str
    body: dict[str, Any]
    msg_id: str


def kind_of(subject: str) -> str:
    """An outbox document's kind: its subject's first token (customers, cards, payments),
    which the ops sweep counts the backlog by (fjb_outbox_pending{kind})."""
    return subject.split(".", 1)[0]


def stage(tx: Transaction, db: firestore.Client, event: Event) -> None:
    """Write the event in the caller's transaction (after its reads)."""
    tx.set(
        db.collection(OUTBOX).document(event.msg_id),
        {
            "subject": event.subject,
            "kind": kind_of(event.subject),
            "body": event.body,
            "stagedAt": dt.datetime.now(dt.UTC),
        },
    )


def deliver(db: firestore.Client, publisher: Publisher, events: list[Event]) -> int:
    """Publish committed events; each one published is removed from the outbox. Returns
    how many were published (the rest wait for the relay)."""
    published = 0
    for event in events:
        try:
            publisher.publish_json(event.subject, event.body, msg_id=event.msg_id)
        except PublishError:
            log.warning("event left in the outbox", extra={"subject": event.subject, "msg_id": event.msg_id})
            continue
        db.collection(OUTBOX).document(event.msg_id).delete()
        published += 1
    return published


def relay(
    db: firestore.Client, publisher: Publisher, *, min_age_seconds: float = 10, limit: int = 500
) -> dict[str, int]:
    """Publish events whose first publish failed (older than ``min_age_seconds``, so the
    job does not race a use case that is about to publish its own)."""
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=min_age_seconds)
    query = db.collection(OUTBOX).where(filter=FieldFilter("stagedAt", "<=", cutoff)).limit(limit)
    events = [Event(s.get("subject"), s.get("body"), s.id) for s in query.stream()]
    published = deliver(db, publisher, events)
    counts = {"pending": len(events), "published": published}
    log.info("outbox relayed", extra=counts)
    return counts
