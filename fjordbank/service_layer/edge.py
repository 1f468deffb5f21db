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
from dataclasses import dataclass
from typing import Any

from fjordbank import topology
from fjordbank.adapters.firestore import ACCOUNTS, is_transient, request_path
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
    requested_in_app,
)
from fjordbank.domain.sca import DEFAULT_THRESHOLD as DEFAULT_SCA_THRESHOLD
from fjordbank.errors import PublishError
from fjordbank.runtime import tracing
from fjordbank.service_layer import ratelimits, request_status, sca
from fjordbank.service_layer.ports import AlreadyExists, Clock, Doc, Documents, Publisher, system_clock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seen:
    """The request document as the edge read it (``doc`` None: there was none), so its
    status write can be one write with the read's update time as its precondition."""

    doc: Doc | None


def advance_sync(
    docs: Documents,
    uid: str,
    request_id: str,
    status: str,
    *,
    known: Seen | None = None,
    **kwargs: Any,
) -> bool:
    """Move the request document forward (request_status.advance, one unit of work; with
    ``known``, the document as read before, one write: request_status.advance_from), in
    a span, with the trace id of the current span (and the status on the trigger's span)."""
    trace_id = tracing.trace_id_of(None)
    if trace_id is not None:
        kwargs["extra"] = {**(kwargs.get("extra") or {}), "traceId": trace_id}
    tracing.set_attributes(tracing.current_span(), {"fjb.status": status, "fjb.reason": kwargs.get("reason")})
    with tracing.span("firestore request_doc", kind=tracing.SpanKind.CLIENT, attrs={"fjb.status": status}):
        if known is not None:
            return request_status.advance_from(docs, known.doc, status, **kwargs)
        return request_status.advance(docs, request_path(uid, request_id), status, **kwargs)


def contract_body(body: dict[str, Any]) -> dict[str, Any]:
    """The request's fields without the app's ``traceparent`` (transport metadata: the
    trigger's span already used it; see the module docstring)."""
    return {k: v for k, v in body.items() if k != tracing.TRACEPARENT}


def _data(doc: Doc | None) -> dict[str, Any] | None:
    return None if doc is None else doc.data


def _handled(known: Doc | None, body: dict[str, Any]) -> str | None:
    """The status the edge gave this request already (a redelivered trigger), else None."""
    handled: str | None = (_data(known) or {}).get("status")
    if handled is not None and handled != body.get("status"):  # the edge moved it since its creation
        return handled
    return None


def handle_payment_request(
    docs: Documents,
    publisher: Publisher,
    *,
    uid: str,
    request_id: str,
    body: dict[str, Any],
    bank_regs: tuple[str, ...],
    sca_threshold: int = DEFAULT_SCA_THRESHOLD,
    clock: Clock = system_clock,
) -> str:
    """Validate, authorise and publish one payment request. Returns the status it shows.

    ``body`` is the document as the app created it (a trigger's creation snapshot, also on
    redelivery). Fields only the backend writes (status ...) make it invalid: the rules
    never let a client write them. A redelivered trigger publishes the same payment id
    again, which JetStream and the services' records answer without a second effect.

    Three round trips for a valid request: one batched read (the request document, both
    accounts, the payer's known payees, the signature's key and use), one commit (the
    rate-limit count and the signature's use), and the status write after JetStream's ack
    (with the first read's update time as its precondition). A refusal may take more;
    nothing in it is on the payment's path."""
    now = clock()
    today = today_in_norway(now)
    body = contract_body(body)
    tracing.set_attributes(tracing.current_span(), {"fjb.payment_id": payment_id_for(uid, request_id)})
    path = request_path(uid, request_id)
    try:
        request = parse_request(body, request_id=request_id, today=today)
    except PaymentRejected as exc:
        return _refuse_invalid(docs, path, body, exc, uid=uid, request_id=request_id, now=now)
    known: Seen | None = None
    try:
        reads = _read(docs, path, uid, request, bank_regs)
        known = Seen(reads["request"])
        handled = _handled(known.doc, body)
        if handled is not None:
            # A redelivered trigger: this request was handled. Nothing is checked or counted
            # again, so a rate limit or a used signature can never reject a request in flight.
            return handled
        kind, own_payee = account_verdict(
            uid, _data(reads["from"]), request.to_account, _data(reads.get("to")), bank_regs
        )
        _count_and_claim(docs, uid, request_id, request, reads, own_payee=own_payee, threshold=sca_threshold, now=now)
    except (PaymentRejected, ratelimits.RateLimited) as exc:
        # A refusal counts against the rate limit too (else unknown_to_account would answer
        # "is this a Fjordbank account?" as often as anyone asked). A RateLimited was counted
        # by the commit that raised it; a PaymentRejected comes before that commit.
        reason = _counted(docs, uid, exc, now) if isinstance(exc, PaymentRejected) else exc
        log.info("payment request rejected", extra={"uid": uid, "request_id": request_id, "reason": reason.code})
        advance_sync(docs, uid, request_id, "rejected", reason=reason.code, message=reason.message, known=known)
        return "rejected"
    except Exception as exc:
        if not is_transient(exc):
            raise
        # Nothing is published yet: the app is told to send the payment again (a new request).
        busy = Busy()
        log.warning("payment request busy", extra={"uid": uid, "request_id": request_id, "error": type(exc).__name__})
        advance_sync(docs, uid, request_id, "rejected", reason=busy.code, message=busy.message)
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
        advance_sync(docs, uid, request_id, "scheduled", extra={**extra, "payment": payment.to_json()}, known=known)
        return "scheduled"
    payee = _data(reads.get("to")) if kind == INTERNAL else None
    submit(docs, publisher, payment, known=known, payee_uid=(payee or {}).get("ownerUid"))
    return "requested"


def _refuse_invalid(
    docs: Documents,
    path: str,
    body: dict[str, Any],
    exc: PaymentRejected,
    *,
    uid: str,
    request_id: str,
    now: dt.datetime,
) -> str:
    """An invalid request: refused, and counted against the rate limit unless a redelivered
    trigger finds it handled already."""
    known = Seen(docs.get(path))
    handled = _handled(known.doc, body)
    if handled is not None:
        return handled
    reason = _counted(docs, uid, exc, now)
    log.info("payment request rejected", extra={"uid": uid, "request_id": request_id, "reason": reason.code})
    advance_sync(docs, uid, request_id, "rejected", reason=reason.code, message=reason.message, known=known)
    return "rejected"


def _counted(
    docs: Documents, uid: str, exc: PaymentRejected, now: dt.datetime
) -> PaymentRejected | ratelimits.RateLimited:
    """Count a refused request against the rate limit; the reason to show (rate_limited once
    over the limit, so a flood of refusals is told to wait like a flood of payments)."""
    try:
        ratelimits.check(docs, uid, "payments", clock=lambda: now)
    except ratelimits.RateLimited as limited:
        return limited
    return exc


def _read(
    docs: Documents, path: str, uid: str, request: PaymentRequest, bank_regs: tuple[str, ...]
) -> dict[str, Doc | None]:
    """Every document the checks need, in one batched read (name -> document, None when
    there is none)."""
    paths = {"request": path, "from": f"{ACCOUNTS}/{request.from_account}"}
    if request.to_account[:4] in bank_regs:
        paths["to"] = f"{ACCOUNTS}/{request.to_account}"
    if request.sca is None:
        paths["payees"] = sca.payee_record_path(uid)
    else:
        paths["key"] = sca.key_path(uid, request.sca)
        paths["used"] = sca.used_path(request.sca)
    found = docs.get_many(list(dict.fromkeys(paths.values())))
    return {name: found[p] for name, p in paths.items()}


def _count_and_claim(
    docs: Documents,
    uid: str,
    request_id: str,
    request: PaymentRequest,
    reads: dict[str, Doc | None],
    *,
    own_payee: bool,
    threshold: int,
    now: dt.datetime,
) -> None:
    """The SCA decision, then one commit: the rate-limit count and (for a signed payment)
    the record that its signature is used. Raises `PaymentRejected` or `RateLimited`."""
    path = request_path(uid, request_id)
    claim = _signature_to_claim(path, request_id, request, reads, own_payee=own_payee, threshold=threshold)
    batch = docs.batch()
    counted = ratelimits.count_in(batch, uid, "payments", now=now.timestamp())
    if claim is not None:
        batch.create(claim, sca.used_record(uid, path))
    try:
        results = batch.commit()
    except AlreadyExists:  # the signature was used since the read: by this request (a race) or another
        if claim is None:  # only the signature's record is created here
            raise
        if (_data(docs.get(claim)) or {}).get("request") != path:
            raise sca.signature_reused() from None
        batch = docs.batch()
        counted = ratelimits.count_in(batch, uid, "payments", now=now.timestamp())
        results = batch.commit()
    counted.check(results)


def _signature_to_claim(
    path: str,
    request_id: str,
    request: PaymentRequest,
    reads: dict[str, Doc | None],
    *,
    own_payee: bool,
    threshold: int,
) -> str | None:
    """The SCA decision on the documents read: raises `PaymentRejected` when a signature is
    needed and missing, or invalid, or used for another request. Returns the path of the
    signature's use record to create (None: no signature, or its use is recorded)."""
    if request.sca is None:
        new = sca.new_payee(_data(reads["payees"]), request.to_account)
        if sca.needs_signature(request.amount, own_payee=own_payee, new_payee=new, threshold=threshold):
            raise sca.signature_required()
        return None
    unused = sca.verify_signature(
        request_path=path,
        request_id=request_id,
        amount=request.amount,
        currency=request.currency,
        to_account=request.to_account,
        sca=request.sca,
        key=_data(reads["key"]),
        used=_data(reads["used"]),
    )
    return sca.used_path(request.sca) if unused else None


def submit(
    docs: Documents,
    publisher: Publisher,
    payment: PaymentRequested,
    *,
    known: Seen | None = None,
    payee_uid: str | None = None,
) -> None:
    """Publish a validated payment and show it as requested; a publish failure is never
    dropped. ``known``: the request document as the caller read it (one write then);
    ``payee_uid``: an internal payment's payee, as the caller read it (told in the event)."""
    event = requested_in_app(PaymentEvent(payment, "requested"), payee_uid=payee_uid)
    with tracing.span("edge submit", attrs={"fjb.payment_id": payment.payment_id}):
        _submit(docs, publisher, payment, event, known)


def _submit(
    docs: Documents,
    publisher: Publisher,
    payment: PaymentRequested,
    event: PaymentEvent,
    known: Seen | None,
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
            docs,
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
        docs,
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
    docs: Documents, uid: str, from_account: str, to_account: str, bank_regs: tuple[str, ...]
) -> tuple[str, bool]:
    """Ownership and state, checked on the server. Returns the payment kind and whether
    the payee is the payer's own account."""
    source = _data(docs.get(f"{ACCOUNTS}/{from_account}"))
    if source is None or source.get("ownerUid") != uid:
        return account_verdict(uid, source, to_account, None, bank_regs)
    target = None
    if to_account[:4] in bank_regs:
        target = _data(docs.get(f"{ACCOUNTS}/{to_account}"))
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
