"""The edge's use cases (called by Firebase functions, thin wrappers around these).

Identity comes from the document path the security rules bound to the signed-in user;
ownership, amounts and account state are checked here on the server, never taken from
the client. A valid request is published to JetStream (message id = payment id, so a
redelivered trigger cannot publish it twice inside the duplicate window, and the ledger's
own verdicts cover the rest); only after JetStream's ack does the document say
"requested". A publish failure marks the document "received" (publish pending) and
raises: nothing is dropped silently.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Protocol
from zoneinfo import ZoneInfo

from fjordbank import topology
from fjordbank.adapters.firestore import ACCOUNTS
from fjordbank.adapters.request_docs import advance_sync
from fjordbank.domain.norway import mask_account_number
from fjordbank.domain.payments import (
    PaymentRejected,
    PaymentRequested,
    body_hash,
    parse_request,
    payment_id_for,
)
from fjordbank.errors import PublishError

log = logging.getLogger(__name__)
OSLO = ZoneInfo("Europe/Oslo")
BACKEND_FIELDS = frozenset({"status", "statusRank", "reason", "paymentId", "updatedAt", "timeline", "bodyHash"})


class Publisher(Protocol):
    def publish_json(self, subject: str, body: dict, *, msg_id: str, stream: str | None = None): ...


def today_in_norway(now: dt.datetime | None = None) -> dt.date:
    return (now or dt.datetime.now(dt.UTC)).astimezone(OSLO).date()


def handle_payment_request(
    db, publisher: Publisher, *, uid: str, request_id: str, body: dict, now: dt.datetime | None = None
) -> str:
    """Validate, authorise and publish one payment request. Returns the status it shows."""
    if body.get("status") not in (None, "received"):
        return body["status"]  # already handled (a redelivered trigger)
    try:
        request = parse_request(body, request_id=request_id, today=today_in_norway(now), backend_fields=BACKEND_FIELDS)
        source = db.collection(ACCOUNTS).document(request.from_account).get()
        source_data = source.to_dict() if source.exists else None
        if source_data is None or source_data.get("ownerUid") != uid:
            raise PaymentRejected("not_account_owner", "the from-account is not yours")
        if source_data.get("status") != "open":
            raise PaymentRejected("account_closed", "the from-account is not open")
        if not db.collection(ACCOUNTS).document(request.to_account).get().exists:
            raise PaymentRejected("external_payments_unavailable", "payments to other banks are not enabled yet")
        if request.due_date > today_in_norway(now):
            raise PaymentRejected("scheduled_payments_unavailable", "scheduled payments are not enabled yet")
    except PaymentRejected as exc:
        log.info("payment request rejected", extra={"uid": uid, "request_id": request_id, "reason": exc.code})
        advance_sync(db, uid, request_id, "rejected", reason=exc.code, message=exc.message)
        return "rejected"
    payment_id = payment_id_for(uid, request_id)
    event = PaymentRequested(
        payment_id=payment_id,
        uid=uid,
        request_id=request_id,
        from_account=request.from_account,
        to_account=request.to_account,
        amount=request.amount,
        currency=request.currency,
        message=request.message,
        kid=request.kid,
        due_date=request.due_date.isoformat(),
        body_hash=body_hash(body),
        requested_at=(now or dt.datetime.now(dt.UTC)).isoformat(),
    )
    try:
        publisher.publish_json(
            topology.SUBJECT_PAYMENT_REQUESTED, event.to_json(), msg_id=payment_id, stream=topology.STREAM_PAYMENTS
        )
    except PublishError as exc:
        # Python Firestore triggers are never retried by the platform (the SDK deploys them
        # with retry off), so the document itself records that the request still has to
        # be published, and the error propagates to the function's error log.
        advance_sync(db, uid, request_id, "received", reason="publish_pending", message=str(exc))
        raise
    advance_sync(db, uid, request_id, "requested", extra={"paymentId": payment_id, "bodyHash": event.body_hash})
    log.info(
        "payment requested",
        extra={"payment_id": payment_id, "amount": request.amount, "to": mask_account_number(request.to_account)},
    )
    return "requested"
