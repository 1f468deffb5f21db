"""Scheduled jobs, run by the `on_scheduled_job` function (Cloud Scheduler -> Pub/Sub).

submit-due-payments: every payment request that is due (scheduled for today or earlier,
Europe/Oslo) or whose first publish failed (status "received") is submitted through the
same path as an immediate payment. Exactly once per due date however often the job runs,
even twice at the same time: the request moves from "scheduled" to "requested" only
forward, the message id (payment id + "requested") lets JetStream store it once, and the
services answer a replay from their records.

release-expired-holds: asks the card service to release card holds past their expiry.

relay-outbox: publishes customer and card events whose first publish failed.
"""

from __future__ import annotations

import datetime as dt
import logging
from itertools import chain

from google.cloud.firestore_v1.base_query import FieldFilter

from fjordbank import topology
from fjordbank.adapters.firestore import PAYMENT_REQUESTS
from fjordbank.domain.errors import DomainError
from fjordbank.domain.norway import today_in_norway
from fjordbank.domain.payments import PaymentRequested
from fjordbank.errors import PublishError
from fjordbank.service_layer import outbox
from fjordbank.service_layer.edge import Publisher, submit

log = logging.getLogger(__name__)
SUBMIT_DUE_PAYMENTS = "submit-due-payments"
RELEASE_EXPIRED_HOLDS = "release-expired-holds"
RELAY_OUTBOX = "relay-outbox"
JOBS = (SUBMIT_DUE_PAYMENTS, RELEASE_EXPIRED_HOLDS, RELAY_OUTBOX)


def due_requests(db, today: dt.date, limit: int):
    requests = db.collection_group(PAYMENT_REQUESTS)
    scheduled = (
        requests.where(filter=FieldFilter("status", "==", "scheduled"))
        .where(filter=FieldFilter("payment.due_date", "<=", today.isoformat()))
        .limit(limit)
    )
    unpublished = requests.where(filter=FieldFilter("status", "==", "received")).limit(limit)
    return chain(scheduled.stream(), unpublished.stream())


def submit_due_payments(db, publisher: Publisher, *, now: dt.datetime | None = None, limit: int = 500) -> dict:
    today = today_in_norway(now)
    counts = {"submitted": 0, "unpublished": 0, "malformed": 0}
    for snap in due_requests(db, today, limit):
        try:
            payment = PaymentRequested.from_json(snap.get("payment"))
        except (KeyError, TypeError, DomainError):
            counts["malformed"] += 1
            log.error("due request without a valid payment", extra={"path": snap.reference.path})
            continue
        try:
            submit(db, publisher, payment)
        except PublishError:
            counts["unpublished"] += 1  # still "received"/"scheduled": the next run tries again
            continue
        counts["submitted"] += 1
    log.info("due payments submitted", extra=counts)
    return counts


def release_expired_holds(publisher: Publisher, *, now: dt.datetime | None = None) -> dict:
    """Card holds are the card service's: the job hands it the command. Releasing is
    idempotent, so two runs (or two deliveries) release each hold once."""
    now = now or dt.datetime.now(dt.UTC)
    publisher.publish_json(
        topology.SUBJECT_CARD_EXPIRE_HOLDS, {"v": 1, "asOf": now.isoformat()}, msg_id=f"expire-holds:{now.isoformat()}"
    )
    return {"requested": 1}


def run_job(db, publisher: Publisher, job: str) -> dict:
    if job == SUBMIT_DUE_PAYMENTS:
        return submit_due_payments(db, publisher)
    if job == RELEASE_EXPIRED_HOLDS:
        return release_expired_holds(publisher)
    if job == RELAY_OUTBOX:
        return outbox.relay(db, publisher)
    raise ValueError(f"unknown job {job!r}; known: {', '.join(JOBS)}")
