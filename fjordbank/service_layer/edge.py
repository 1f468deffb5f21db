"""The edge's use cases (called by Firebase functions, thin wrappers around these).

Identity comes from the document path the security rules bound to the signed-in user;
ownership, amounts and account state are checked here on the server, never taken from
the client. A valid request is published to JetStream (message id = payment id, so a
redelivered trigger cannot publish it twice inside the duplicate window, and the ledger's
own verdicts cover the rest); only after JetStream's ack does the document say
"requested". A publish failure marks the document "received" (publish pending) and
raises: nothing is dropped silently; the due-payments job (fjordbank.service_layer.
scheduled) publishes it again.

Tracing (fjordbank.runtime.tracing): the trigger's span is current here (functions/main.py
starts it, from the app's ``traceparent`` when valid). The app's ``traceparent`` field is
transport metadata, not part of the payment: it is taken out before the contract check
(and is not in the body hash). Every status the edge writes carries ``traceId``, a field
only the backend writes (firestore.rules), which ``bankctl trace`` and Cloud Trace find the
payment's trace by; each write of the request document and the publish get a span of
their own, and the publish carries the trace in its NATS headers. ``submit`` outside any
span (the due-payments job) starts a new trace per payment.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Protocol

from fjordbank import topology
from fjordbank.adapters.firestore import ACCOUNTS, is_transient, request_path
from fjordbank.adapters.request_docs import advance_sync as _advance_doc
from fjordbank.domain.errors import Busy
from fjordbank.domain.norway import mask_account_number, today_in_norway
from fjordbank.domain.payments import (
    EXTERNAL,
    INTERNAL,
    PaymentEvent,
    PaymentRejected,
    PaymentRequested,
    body_hash,
    parse_request,
    payment_id_for,
)
from fjordbank.domain.sca import DEFAULT_THRESHOLD as DEFAULT_SCA_THRESHOLD
from fjordbank.errors import PublishError
from fjordbank.runtime import tracing
from fjordbank.service_layer import ratelimits, sca

log = logging.getLogger(__name__)


def advance_sync(db, uid: str, request_id: str, status: str, **kwargs) -> bool:
    """Move the request document forward (request_docs.advance_sync, one transaction), in a
    span, with the trace id of the current span (and the status on the trigger's span)."""
    trace_id = tracing.trace_id_of(None)
    if trace_id is not None:
        kwargs["extra"] = {**(kwargs.get("extra") or {}), "traceId": trace_id}
    tracing.set_attributes(tracing.current_span(), {"fjb.status": status, "fjb.reason": kwargs.get("reason")})
    with tracing.span("firestore request_doc", kind=tracing.SpanKind.CLIENT, attrs={"fjb.status": status}):
        return _advance_doc(db, uid, request_id, status, **kwargs)


def contract_body(body: dict) -> dict:
    """The request's fields without the app's ``traceparent`` (transport metadata: the
    trigger's span already used it; see the module docstring)."""
    return {k: v for k, v in body.items() if k != tracing.TRACEPARENT}


class Publisher(Protocol):
    def publish_json(self, subject: str, body: dict, *, msg_id: str, stream: str | None = None): ...


def handle_payment_request(
    db,
    publisher: Publisher,
    *,
    uid: str,
    request_id: str,
    body: dict,
    bank_regs: tuple[str, ...],
    sca_threshold: int = DEFAULT_SCA_THRESHOLD,
    now: dt.datetime | None = None,
) -> str:
    """Validate, authorise and publish one payment request. Returns the status it shows.

    ``body`` is the document as the app created it (a trigger's creation snapshot, also on
    redelivery). Fields only the backend writes (status ...) make it invalid: the rules
    never let a client write them. A redelivered trigger publishes the same payment id
    again, which JetStream and the services' records answer without a second effect."""
    now = now or dt.datetime.now(dt.UTC)
    today = today_in_norway(now)
    body = contract_body(body)
    tracing.set_attributes(tracing.current_span(), {"fjb.payment_id": payment_id_for(uid, request_id)})
    handled = (db.document(request_path(uid, request_id)).get().to_dict() or {}).get("status")
    if handled is not None and handled != body.get("status"):  # the edge moved it since its creation
        # A redelivered trigger: this request was handled. Nothing is checked or counted
        # again, so a rate limit or a used signature can never reject a request in flight.
        return handled
    try:
        ratelimits.check(db, uid, "payments", now=now.timestamp())
        request = parse_request(body, request_id=request_id, today=today)
        kind, own_payee = check_accounts(db, uid, request.from_account, request.to_account, bank_regs)
        sca.check_payment(
            db,
            uid,
            request_path=request_path(uid, request_id),
            request_id=request_id,
            amount=request.amount,
            currency=request.currency,
            to_account=request.to_account,
            own_payee=own_payee,
            sca=request.sca,
            threshold=sca_threshold,
        )
    except (PaymentRejected, ratelimits.RateLimited) as exc:
        log.info("payment request rejected", extra={"uid": uid, "request_id": request_id, "reason": exc.code})
        advance_sync(db, uid, request_id, "rejected", reason=exc.code, message=exc.message)
        return "rejected"
    except Exception as exc:
        if not is_transient(exc):
            raise
        # Nothing is published yet: the app is told to send the payment again (a new request).
        busy = Busy()
        log.warning("payment request busy", extra={"uid": uid, "request_id": request_id, "error": type(exc).__name__})
        advance_sync(db, uid, request_id, "rejected", reason=busy.code, message=busy.message)
        return "rejected"
    payment = PaymentRequested(
        payment_id=payment_id_for(uid, request_id),
        uid=uid,
        request_id=request_id,
        kind=kind,
        from_account=request.from_account,
        to_account=request.to_account,
        amount=request.amount,
        currency=request.currency,
        message=request.message,
        kid=request.kid,
        due_date=request.due_date.isoformat(),
        body_hash=body_hash(body),
        requested_at=now.isoformat(),
        payee_name=request.payee_name,
    )
    extra = {"paymentId": payment.payment_id, "bodyHash": payment.body_hash}
    if request.due_date > today:
        # The scheduler submits it on its due date (the same path as below, then).
        advance_sync(db, uid, request_id, "scheduled", extra={**extra, "payment": payment.to_json()})
        return "scheduled"
    submit(db, publisher, payment)
    return "requested"


def submit(db, publisher: Publisher, payment: PaymentRequested) -> None:
    """Publish a validated payment and show it as requested; a publish failure is never dropped."""
    event = PaymentEvent(payment, "requested")
    with tracing.span("edge submit", attrs={"fjb.payment_id": payment.payment_id}):
        _submit(db, publisher, payment, event)


def _submit(db, publisher: Publisher, payment: PaymentRequested, event: PaymentEvent) -> None:
    try:
        with tracing.span(
            f"publish {topology.base_subject(event.subject)}",
            kind=tracing.SpanKind.PRODUCER,
            attrs={"messaging.system": "nats", "messaging.destination.name": event.subject},
        ):
            publisher.publish_json(event.subject, event.to_json(), msg_id=event.msg_id, stream=topology.STREAM_PAYMENTS)
    except PublishError as exc:
        # Python Firestore triggers are never retried by the platform (the SDK deploys them
        # with retry off), so the document itself records that the request still has to
        # be published, and the error propagates to the function's error log.
        advance_sync(
            db,
            payment.uid,
            payment.request_id,
            "received",
            reason="publish_pending",
            message=str(exc),
            extra={"payment": payment.to_json()},  # what the due-payments job publishes again
        )
        raise
    advance_sync(
        db,
        payment.uid,
        payment.request_id,
        "requested",
        extra={"paymentId": payment.payment_id, "bodyHash": payment.body_hash},
    )
    log.info(
        "payment requested",
        extra={
            "payment_id": payment.payment_id,
            "amount": payment.amount,
            "kind": payment.kind,
            "to": mask_account_number(payment.to_account),
        },
    )


def check_accounts(db, uid: str, from_account: str, to_account: str, bank_regs: tuple[str, ...]) -> tuple[str, bool]:
    """Ownership and state, checked on the server. Returns the payment kind and whether
    the payee is the payer's own account."""
    source = db.collection(ACCOUNTS).document(from_account).get()
    data = source.to_dict() if source.exists else None
    if data is None or data.get("ownerUid") != uid:
        raise PaymentRejected("unknown_account", "no such account of yours")  # the same for others' accounts
    if data.get("status") != "open":
        raise PaymentRejected("account_closed", "the from-account is not open")
    if to_account[:4] not in bank_regs:
        return EXTERNAL, False
    target = db.collection(ACCOUNTS).document(to_account).get()
    if not target.exists:
        raise PaymentRejected("unknown_to_account", "no account with this number in Fjordbank")
    if (target.to_dict() or {}).get("status") != "open":
        raise PaymentRejected("to_account_closed", "the to-account is closed")
    return INTERNAL, (target.to_dict() or {}).get("ownerUid") == uid
