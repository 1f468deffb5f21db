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
from typing import Any, Protocol

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore
from google.cloud.firestore_v1 import DocumentReference, DocumentSnapshot

from fjordbank import topology
from fjordbank.adapters.firestore import ACCOUNTS, is_transient, request_path
from fjordbank.adapters.request_docs import advance_from_sync
from fjordbank.adapters.request_docs import advance_sync as _advance_doc
from fjordbank.domain.errors import Busy
from fjordbank.domain.norway import mask_account_number, today_in_norway
from fjordbank.domain.payments import (
    EXTERNAL,
    INTERNAL,
    PaymentEvent,
    PaymentRejected,
    PaymentRequest,
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
Snapshot = DocumentSnapshot[DocumentReference]  # a document as the sync client read it


def advance_sync(
    db: firestore.Client,
    uid: str,
    request_id: str,
    status: str,
    *,
    known: Snapshot | None = None,
    **kwargs: Any,
) -> bool:
    """Move the request document forward (request_docs.advance_sync, one transaction; with
    ``known``, the document as read before, one write: request_docs.advance_from_sync), in
    a span, with the trace id of the current span (and the status on the trigger's span)."""
    trace_id = tracing.trace_id_of(None)
    if trace_id is not None:
        kwargs["extra"] = {**(kwargs.get("extra") or {}), "traceId": trace_id}
    tracing.set_attributes(tracing.current_span(), {"fjb.status": status, "fjb.reason": kwargs.get("reason")})
    with tracing.span("firestore request_doc", kind=tracing.SpanKind.CLIENT, attrs={"fjb.status": status}):
        if known is not None:
            return advance_from_sync(db, known, status, **kwargs)
        return _advance_doc(db, uid, request_id, status, **kwargs)


def contract_body(body: dict[str, Any]) -> dict[str, Any]:
    """The request's fields without the app's ``traceparent`` (transport metadata: the
    trigger's span already used it; see the module docstring)."""
    return {k: v for k, v in body.items() if k != tracing.TRACEPARENT}


class Publisher(Protocol):
    def publish_json(self, subject: str, body: dict[str, Any], *, msg_id: str, stream: str | None = None) -> object: ...


def handle_payment_request(
    db: firestore.Client,
    publisher: Publisher,
    *,
    uid: str,
    request_id: str,
    body: dict[str, Any],
    bank_regs: tuple[str, ...],
    sca_threshold: int = DEFAULT_SCA_THRESHOLD,
    now: dt.datetime | None = None,
) -> str:
    """Validate, authorise and publish one payment request. Returns the status it shows.

    ``body`` is the document as the app created it (a trigger's creation snapshot, also on
    redelivery). Fields only the backend writes (status ...) make it invalid: the rules
    never let a client write them. A redelivered trigger publishes the same payment id
    again, which JetStream and the services' records answer without a second effect.

    Three Firestore round trips for a valid request: one batched read (the request
    document, both accounts, the payer's known payees, the signature's key and use), one
    commit (the rate-limit count and the signature's use), and the status write after
    JetStream's ack (with the first read's update time as its precondition). A refusal
    may take more; nothing in it is on the payment's path."""
    now = now or dt.datetime.now(dt.UTC)
    today = today_in_norway(now)
    body = contract_body(body)
    tracing.set_attributes(tracing.current_span(), {"fjb.payment_id": payment_id_for(uid, request_id)})
    ref = db.document(request_path(uid, request_id))
    try:
        request = parse_request(body, request_id=request_id, today=today)
    except PaymentRejected as exc:
        return _refuse_invalid(db, ref, body, exc, uid=uid, request_id=request_id, now=now)
    known: Snapshot | None = None
    try:
        reads = _read(db, ref, uid, request, bank_regs)
        known = reads["request"]
        handled: str | None = (known.to_dict() or {}).get("status")
        if handled is not None and handled != body.get("status"):  # the edge moved it since its creation
            # A redelivered trigger: this request was handled. Nothing is checked or counted
            # again, so a rate limit or a used signature can never reject a request in flight.
            return handled
        kind, own_payee = account_verdict(
            uid,
            reads["from"].to_dict(),
            request.to_account,
            reads["to"].to_dict() if "to" in reads else None,
            bank_regs,
        )
        _count_and_claim(db, uid, request_id, request, reads, own_payee=own_payee, threshold=sca_threshold, now=now)
    except (PaymentRejected, ratelimits.RateLimited) as exc:
        # A refusal counts against the rate limit too (else unknown_to_account would answer
        # "is this a Fjordbank account?" as often as anyone asked). A RateLimited was counted
        # by the commit that raised it; a PaymentRejected comes before that commit.
        reason = _counted(db, uid, exc, now) if isinstance(exc, PaymentRejected) else exc
        log.info("payment request rejected", extra={"uid": uid, "request_id": request_id, "reason": reason.code})
        advance_sync(db, uid, request_id, "rejected", reason=reason.code, message=reason.message, known=known)
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
        advance_sync(db, uid, request_id, "scheduled", extra={**extra, "payment": payment.to_json()}, known=known)
        return "scheduled"
    submit(db, publisher, payment, known=known)
    return "requested"


def _refuse_invalid(
    db: firestore.Client,
    ref: DocumentReference,
    body: dict[str, Any],
    exc: PaymentRejected,
    *,
    uid: str,
    request_id: str,
    now: dt.datetime,
) -> str:
    """An invalid request: refused, and counted against the rate limit unless a redelivered
    trigger finds it handled already."""
    known = ref.get()
    handled: str | None = (known.to_dict() or {}).get("status")
    if handled is not None and handled != body.get("status"):
        return handled
    reason = _counted(db, uid, exc, now)
    log.info("payment request rejected", extra={"uid": uid, "request_id": request_id, "reason": reason.code})
    advance_sync(db, uid, request_id, "rejected", reason=reason.code, message=reason.message, known=known)
    return "rejected"


def _counted(
    db: firestore.Client, uid: str, exc: PaymentRejected, now: dt.datetime
) -> PaymentRejected | ratelimits.RateLimited:
    """Count a refused request against the rate limit; the reason to show (rate_limited once
    over the limit, so a flood of refusals is told to wait like a flood of payments)."""
    try:
        ratelimits.check(db, uid, "payments", now=now.timestamp())
    except ratelimits.RateLimited as limited:
        return limited
    return exc


def _read(
    db: firestore.Client, ref: DocumentReference, uid: str, request: PaymentRequest, bank_regs: tuple[str, ...]
) -> dict[str, Snapshot]:
    """Every document the checks need, in one batched read (name -> snapshot)."""
    refs = {"request": ref, "from": db.collection(ACCOUNTS).document(request.from_account)}
    if request.to_account[:4] in bank_regs:
        refs["to"] = db.collection(ACCOUNTS).document(request.to_account)
    if request.sca is None:
        refs["payees"] = sca.payee_record_ref(db, uid)
    else:
        refs["key"] = sca.key_ref(db, uid, request.sca)
        refs["used"] = sca.used_ref(db, request.sca)
    by_path = {snap.reference.path: snap for snap in db.get_all(list(refs.values()))}
    return {name: by_path[r.path] for name, r in refs.items()}


def _count_and_claim(
    db: firestore.Client,
    uid: str,
    request_id: str,
    request: PaymentRequest,
    reads: dict[str, Snapshot],
    *,
    own_payee: bool,
    threshold: int,
    now: dt.datetime,
) -> None:
    """The SCA decision, then one commit: the rate-limit count and (for a signed payment)
    the record that its signature is used. Raises `PaymentRejected` or `RateLimited`."""
    path = reads["request"].reference.path
    claim: DocumentReference | None = None
    if request.sca is None:
        new = sca.new_payee(reads["payees"].to_dict(), request.to_account)
        if sca.needs_signature(request.amount, own_payee=own_payee, new_payee=new, threshold=threshold):
            raise sca.signature_required()
    elif sca.verify_signature(
        request_path=path,
        request_id=request_id,
        amount=request.amount,
        currency=request.currency,
        to_account=request.to_account,
        sca=request.sca,
        key=reads["key"].to_dict(),
        used=reads["used"].to_dict(),
    ):
        claim = reads["used"].reference
    batch = db.batch()
    counted = ratelimits.count_in(db, batch, uid, "payments", now=now.timestamp())
    if claim is not None:
        batch.create(claim, sca.used_record(uid, path))
    try:
        results = batch.commit()
    except AlreadyExists:  # the signature was used since the read: by this request (a race) or another
        if claim is None:  # only the signature's record is created here
            raise
        if (claim.get().to_dict() or {}).get("request") != path:
            raise sca.signature_reused() from None
        batch = db.batch()
        counted = ratelimits.count_in(db, batch, uid, "payments", now=now.timestamp())
        results = batch.commit()
    counted.check(results[0])


def submit(
    db: firestore.Client, publisher: Publisher, payment: PaymentRequested, *, known: Snapshot | None = None
) -> None:
    """Publish a validated payment and show it as requested; a publish failure is never
    dropped. ``known``: the request document as the caller read it (one write then)."""
    event = PaymentEvent(payment, "requested")
    with tracing.span("edge submit", attrs={"fjb.payment_id": payment.payment_id}):
        _submit(db, publisher, payment, event, known)


def _submit(
    db: firestore.Client,
    publisher: Publisher,
    payment: PaymentRequested,
    event: PaymentEvent,
    known: Snapshot | None,
) -> None:
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
            known=known,
        )
        raise
    advance_sync(
        db,
        payment.uid,
        payment.request_id,
        "requested",
        extra={"paymentId": payment.payment_id, "bodyHash": payment.body_hash},
        known=known,
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


def check_accounts(
    db: firestore.Client, uid: str, from_account: str, to_account: str, bank_regs: tuple[str, ...]
) -> tuple[str, bool]:
    """Ownership and state, checked on the server. Returns the payment kind and whether
    the payee is the payer's own account."""
    source = db.collection(ACCOUNTS).document(from_account).get().to_dict()
    if source is None or source.get("ownerUid") != uid:
        return account_verdict(uid, source, to_account, None, bank_regs)
    target = None
    if to_account[:4] in bank_regs:
        target = db.collection(ACCOUNTS).document(to_account).get().to_dict()
    return account_verdict(uid, source, to_account, target, bank_regs)


def account_verdict(
    uid: str, source: dict[str, Any] | None, to_account: str, target: dict[str, Any] | None, bank_regs: tuple[str, ...]
) -> tuple[str, bool]:
    """The payment kind and whether the payee is the payer's own account, from the two
    accounts' documents (None: no such document). Raises `PaymentRejected`."""
    if source is None or source.get("ownerUid") != uid:
        raise PaymentRejected("unknown_account", "no such account of yours")  # the same for others' accounts
    if source.get("status") != "open":
        raise PaymentRejected("account_closed", "the from-account is not open")
    if to_account[:4] not in bank_regs:
        return EXTERNAL, False
    if target is None:
        raise PaymentRejected("unknown_to_account", "no account with this number in Fjordbank")
    if target.get("status") != "open":
        raise PaymentRejected("to_account_closed", "the to-account is closed")
    return INTERNAL, target.get("ownerUid") == uid
