"""The edge's use cases (called by Firebase functions, thin wrappers around these).

Identity comes from the document path the security rules bound to the signed-in user;
ownership, amounts and account state are checked here on the server, never taken from
the client. A valid request is published to JetStream (message id = payment id, so a
redelivered trigger cannot publish it twice inside the duplicate window, and the ledger's
own verdicts cover the rest). The document says "requested" from the commit that counts
the request against the rate limit, which carries the creation's update time as its
precondition: a redelivered trigger's commit fails as a whole (nothing counted twice) and
the request is then read and found handled. A publish failure puts the document back to
"received" (publish pending) and raises: nothing is dropped silently; the due-payments job
(fjordbank.service_layer.scheduled) publishes it again. So does it for a request that
stays "requested" for long (the function died between its commit and the publish: the
document carries the payment for that), which the ops sweep's open-state age shows too
(fjordbank/runtime/ops_sweep.py).

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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fjordbank import topology
from fjordbank.adapters.firestore import ACCOUNTS, PAYMENT_REQUESTS, USERS, is_transient, request_path
from fjordbank.domain.errors import Busy, DomainError
from fjordbank.domain.ledger import FROZEN, TAKES_CREDITS
from fjordbank.domain.norway import mask_account_number, today_in_norway
from fjordbank.domain.payments import (
    EXTERNAL,
    INTERNAL,
    PaymentEvent,
    PaymentRejected,
    PaymentRequest,
    PaymentRequested,
    body_hash,
    check_app_request_id,
    parse_request,
    payment_id_for,
    projection_update,
    requested_in_app,
)
from fjordbank.domain.sca import DEFAULT_THRESHOLD as DEFAULT_SCA_THRESHOLD
from fjordbank.errors import PublishError
from fjordbank.runtime import tracing
from fjordbank.service_layer import ratelimits, request_status, sca
from fjordbank.service_layer.ports import (
    AlreadyExists,
    Clock,
    Doc,
    Documents,
    NotFound,
    Publisher,
    Stale,
    Where,
    Written,
    system_clock,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seen:
    """The request document as the edge read it (``doc`` None: there was none), so its
    status write can be one write with the read's update time as its precondition."""

    doc: Doc | None
    # the trigger's creation snapshot, not a read: a write on its version that fails means
    # the edge handled this request before (a redelivered trigger), so it is read, never
    # decided again on top of what it shows
    created: bool = False


class _Moved(Exception):
    """The request document moved since the creation the trigger carries (a redelivered
    trigger): the commit changed nothing, and the request is decided on a fresh read."""


def _traced(status: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the current span's trace id in ``extra``, and the status on the span."""
    trace_id = tracing.trace_id_of(None)
    if trace_id is not None:
        kwargs = {**kwargs, "extra": {**(kwargs.get("extra") or {}), "traceId": trace_id}}
    tracing.set_attributes(tracing.current_span(), {"fjb.status": status, "fjb.reason": kwargs.get("reason")})
    return kwargs


def advance_sync(
    docs: Documents,
    uid: str,
    request_id: str,
    status: str,
    *,
    known: Seen | None = None,
    exactly: bool = False,
    **kwargs: Any,
) -> bool:
    """Move the request document forward (request_status.advance, one unit of work; with
    ``known``, the document as read before, one write: request_status.advance_from), in
    a span, with the trace id of the current span (and the status on the trigger's span).
    On a creation snapshot, or ``exactly``, only on ``known``'s version: raises `_Moved`
    (nothing written) when the document moved since."""
    kwargs = _traced(status, kwargs)
    with tracing.span("firestore request_doc", kind=tracing.SpanKind.CLIENT, attrs={"fjb.status": status}):
        if known is not None and (known.created or exactly):
            if not request_status.advance_if(docs, known.doc, status, **kwargs):
                raise _Moved()
            return True
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
    created: dt.datetime | None = None,
) -> str:
    """Validate, authorise and publish one payment request. Returns the status it shows.

    ``body`` is the document as the app created it (a trigger's creation snapshot, also on
    redelivery), and ``created`` that snapshot's update time (None: the document is read).
    Fields only the backend writes (status ...) make it invalid: the rules never let a
    client write them. A redelivered trigger publishes the same payment id again, which
    JetStream and the services' records answer without a second effect.

    Two round trips for a valid request: one batched read (both accounts, the payer's known
    payees, the signature's key and use), one commit (the rate-limit count, the signature's
    use and the status, on the condition that the document is as created), then the
    publish. A refusal may take more; nothing in it is on the payment's path."""
    now = clock()
    body = contract_body(body)
    tracing.set_attributes(tracing.current_span(), {"fjb.payment_id": payment_id_for(uid, request_id)})
    path = request_path(uid, request_id)
    if created is not None and now - created > LATE:
        return _answer_late(docs, path, body, uid=uid, request_id=request_id)
    known = None if created is None else Seen(Doc(path, body, created), created=True)
    try:
        # "today" is the day the app made the request (its creation's time, the server's):
        # one made at 23:59 for that day and triggered after midnight is not in the past
        request = parse_request(body, request_id=request_id, today=today_in_norway(created or now))
        check_app_request_id(request_id)
    except PaymentRejected as exc:
        return _refuse_invalid(docs, path, body, exc, uid=uid, request_id=request_id, now=now, known=known)
    call = _Call(uid, request_id, body, bank_regs, sca_threshold, now)
    for _ in range(DECISIONS):
        try:
            return _handle(docs, publisher, call, request, known)
        except _Moved:  # moved since the snapshot or the read (another delivery): decided on a read
            known = None
    return _shown(docs, path)


# Decisions of one trigger on the request document as it was read: another delivery of the
# trigger writing it at the same time makes one fail (`_Moved`) and it is read again.
DECISIONS = 3

# A trigger delivered this long after the request was made (the platform retries one that
# failed, with backoff, for up to a day): a request it had not answered is refused busy (the
# app asks again), not paid minutes or hours after the customer asked.
LATE = dt.timedelta(minutes=10)
# What the app shows on a request the edge could not hand on yet (status "received",
# reason publish_pending): the due-payments job sends it on within 15 minutes.
PUBLISH_PENDING_MESSAGE = "Received by the bank and sent on shortly: do not pay it again"


def _answer_late(docs: Documents, path: str, body: dict[str, Any], *, uid: str, request_id: str) -> str:
    """A late delivery: the status the request shows if it was answered (the usual case: a
    retry of a run that answered and then failed), else busy, written only on a document
    that shows no state."""
    handled = _handled(docs.get(path), body)
    if handled is not None:
        return handled
    busy = Busy()
    log.warning("payment request answered late: refused busy", extra={"uid": uid, "request_id": request_id})
    fields = _traced("rejected", {"reason": busy.code, "message": busy.message})

    def refuse() -> None:
        request_status.advance(docs, path, "rejected", **fields, unshown_only=True)

    _written(refuse, uid=uid, request_id=request_id)
    return _shown(docs, path)


def _shown(docs: Documents, path: str) -> str:
    """The status the request document shows (what a trigger that kept finding it moved
    answers: its other deliveries decided it); "received" when it shows none yet."""
    status = (_data(docs.get(path)) or {}).get("status")
    return status if isinstance(status, str) else "received"


@dataclass(frozen=True)
class _Call:
    """One trigger's request, as handle_payment_request was called."""

    uid: str
    request_id: str
    body: dict[str, Any]
    bank_regs: tuple[str, ...]
    sca_threshold: int
    now: dt.datetime


def _handle(docs: Documents, publisher: Publisher, call: _Call, request: PaymentRequest, known: Seen | None) -> str:
    """The checks, the commit and the publish of a parsed request; ``known``: the document
    as created (None: it is read with the accounts, and a redelivered trigger is answered
    with the status it shows). Raises `_Moved` when ``known`` is out of date."""
    uid, request_id, body, bank_regs, now = call.uid, call.request_id, call.body, call.bank_regs, call.now
    path = request_path(uid, request_id)
    try:
        reads = _read(docs, path, uid, request, bank_regs, with_request=known is None)
        if known is None:
            known = Seen(reads["request"])
            handled = _handled(known.doc, body)
            if handled == "requested":
                return _resend(docs, publisher, call, request, reads, known)
            if handled is not None:
                # A redelivered trigger: this request was handled. Nothing is checked or counted
                # again, so a rate limit or a used signature can never reject a request in flight.
                return handled
        kind, own_payee = account_verdict(
            uid, _data(reads["from"]), request.to_account, _data(reads.get("to")), bank_regs
        )
        payment = _payment(uid, request_id, request, kind, body, now)
        shown = _first_status(docs, uid, request, now)
        show = _Show(known, shown, payment)
        known, limited = _count_and_claim(docs, uid, request_id, request, reads, show, own_payee=own_payee, call=call)
        if limited is not None:
            raise limited
    except (PaymentRejected, ratelimits.RateLimited) as exc:
        # A refusal counts against the rate limit too (else unknown_to_account would answer
        # "is this a Fjordbank account?" as often as anyone asked). A RateLimited was counted
        # by the commit that raised it, which showed the request "requested" (`_refuse`
        # writes it on the version that commit left); a PaymentRejected comes before that
        # commit.
        return _refuse(docs, uid, request_id, exc, known, now=now)
    except Exception as exc:
        if isinstance(exc, _Moved) or not is_transient(exc):
            raise
        # Nothing is published yet: the app is told to send the payment again (a new request).
        # The refusal is written on the creation's version, or on a document that shows no
        # state: never over what a first run of a redelivered trigger showed.
        busy = Busy()
        log.warning("payment request busy", extra={"uid": uid, "request_id": request_id, "error": type(exc).__name__})
        created, cause = (known if known is not None and known.created else None), exc

        def refuse_busy() -> None:
            if created is not None:
                advance_sync(docs, uid, request_id, "rejected", reason=busy.code, message=busy.message, known=created)
                return
            fields = _traced("rejected", {"reason": busy.code, "message": busy.message})
            if not request_status.advance(docs, path, "rejected", **fields, unshown_only=True):
                # it shows a state: this run's commit landed though its answer was lost (or
                # another delivery decided it), so the request is answered from what it shows
                # ("requested" is published again), not refused over it
                raise _Moved() from cause

        # tried again as every refusal is: the store that did not answer the read may not take
        # the first write either, and a trigger is not run again
        _written(refuse_busy, uid=uid, request_id=request_id)
        return "rejected"
    if shown == "scheduled":  # the scheduler submits it on its due date (the same path as below, then)
        return "scheduled"
    payee = _data(reads.get("to")) if kind == INTERNAL else None
    submit(docs, publisher, payment, known=known, payee_uid=(payee or {}).get("ownerUid"), shown=True)
    return "requested"


def _resend(
    docs: Documents,
    publisher: Publisher,
    call: _Call,
    request: PaymentRequest,
    reads: dict[str, Doc | None],
    known: Seen,
) -> str:
    """A request the edge showed "requested" before: published, or its run ended between
    the commit and the publish (it died, or the commit's answer was lost and the run read
    the document again), or that run is about to refuse it (the commit found the count
    over the rate limit). It is published again, unchecked and uncounted, once a note that
    it is (request_status.mark_republished) has landed on the version read: the refusal
    lands only on that version too, so whichever comes first decides (the note: the
    payment goes on, the rate limit let one more through; the refusal: `_Moved`, and the
    document read again shows it rejected). Before, a second delivery of the trigger
    published a payment its first then showed rejected for good. The same payment, as the
    first run kept it on the document (``payment``; its time too: one rebuilt with this
    run's time moved the payment's booking date, across a month end counting the payee's
    income in two months of "my economy": found in review, 2026-12-06): JetStream and the
    services' records answer it without a second effect."""
    marked = None if known.doc is None else request_status.mark_republished(docs, known.doc, call.now)
    if marked is None:
        raise _Moved()
    kind = INTERNAL if request.to_account[:4] in call.bank_regs else EXTERNAL
    payment = _payment(call.uid, call.request_id, request, kind, call.body, call.now)
    kept = _kept_payment(known.doc)
    if kept is not None and (kept.payment_id, kept.body_hash) == (payment.payment_id, payment.body_hash):
        payment = kept
    payee = _data(reads.get("to")) if kind == INTERNAL else None
    submit(docs, publisher, payment, known=Seen(marked), payee_uid=(payee or {}).get("ownerUid"), shown=True)
    return "requested"


def _kept_payment(doc: Doc | None) -> PaymentRequested | None:
    """The payment a run that showed the request kept on its document (None: none, or one
    that cannot be read: a document from before 2026-12-02)."""
    try:
        return PaymentRequested.from_json((doc.data if doc is not None else {})["payment"])
    except (KeyError, TypeError, ValueError, DomainError):
        return None


def _payment(
    uid: str, request_id: str, request: PaymentRequest, kind: str, body: dict[str, Any], now: dt.datetime
) -> PaymentRequested:
    return PaymentRequested(
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


@dataclass(frozen=True)
class _Show:
    """The status a valid request shows (requested, or scheduled: due later), written in
    the commit that counts it, on the condition that the document is as ``known``."""

    known: Seen
    status: str
    payment: PaymentRequested

    def update(self) -> dict[str, Any] | None:
        """The stamped fields to write (None: the document shows this state or a later one)."""
        # the payment: what the scheduler publishes on the due date, and what the due-payments
        # job publishes again if this run ends between the commit and the publish
        extra = {
            "paymentId": self.payment.payment_id,
            "bodyHash": self.payment.body_hash,
            "payment": self.payment.to_json(),
        }
        update = projection_update(_data(self.known.doc), self.status, **_traced(self.status, {"extra": extra}))
        return None if update is None else request_status.stamped(update)


def _refuse_invalid(
    docs: Documents,
    path: str,
    body: dict[str, Any],
    exc: PaymentRejected,
    *,
    uid: str,
    request_id: str,
    now: dt.datetime,
    known: Seen | None,
) -> str:
    """An invalid request: refused, and counted against the rate limit, on the version of
    the document the trigger created (``known``) or, if it moved since, a read of it
    unless that finds it handled already (another delivery of the trigger)."""
    for _ in range(DECISIONS):
        if known is None:
            known = Seen(docs.get(path))
            handled = _handled(known.doc, body)
            if handled is not None:
                return handled
        try:
            return _refuse(docs, uid, request_id, exc, known, now=now)
        except _Moved:
            known = None
    return _shown(docs, path)


# A refusal's write is tried this often, the waits between the tries in seconds: a trigger is
# not run again, and a refusal that does not land leaves the request without an answer (or,
# refused by the rate limit after the commit that showed it "requested", to be published).
REFUSAL_WAITS = (0.2, 0.5, 1.0)


def _refuse(
    docs: Documents,
    uid: str,
    request_id: str,
    exc: PaymentRejected | ratelimits.RateLimited,
    known: Seen | None,
    *,
    now: dt.datetime,
) -> str:
    """Show the request rejected with the reason of ``exc``, the write tried again when the
    store is busy (`REFUSAL_WAITS`). A PaymentRejected is counted against the rate limit in
    the same commit, on the condition that the document is still ``known`` (else `_Moved`:
    nothing counted, nothing written; another delivery of the trigger wrote it, so it is
    read again), and shown as rate_limited once over the limit. A RateLimited was counted
    by the commit that showed the request "requested" (``known``: as that commit left it):
    its refusal is written only on that version. Moved since, the request was noted as
    published again by another delivery of the trigger (`_resend`): the payment is on its
    way, so the refusal gives way and the status it shows is returned (a refusal that
    landed though its answer was lost shows "rejected"). Not written at all, the request
    stays "requested", and the due-payments job publishes it once it has been for STUCK."""
    log.info("payment request rejected", extra={"uid": uid, "request_id": request_id, "reason": exc.code})

    def refuse() -> None:
        if isinstance(exc, PaymentRejected):
            _reject_counted(docs, uid, request_id, exc, known, now=now)
        else:
            advance_sync(
                docs, uid, request_id, "rejected", known=known, exactly=True, reason=exc.code, message=exc.message
            )

    try:
        _written(refuse, uid=uid, request_id=request_id)
    except _Moved:
        if isinstance(exc, PaymentRejected):
            raise
        shown = _shown(docs, request_path(uid, request_id))
        if shown != "rejected":
            log.warning(
                "payment request over the rate limit published by another delivery of its trigger: it stands",
                extra={"uid": uid, "request_id": request_id, "status": shown},
            )
        return shown
    return "rejected"


def _written(write: Callable[[], None], *, uid: str, request_id: str) -> None:
    """A refusal's ``write``, tried again while the store is busy (`REFUSAL_WAITS`); the last
    try's error, `_Moved`, or one not transient is raised."""
    for wait in (*REFUSAL_WAITS, None):
        try:
            write()
            return
        except Exception as err:
            if isinstance(err, _Moved) or not is_transient(err) or wait is None:
                raise
            log.warning("refusal not written yet", extra={"uid": uid, "request_id": request_id, "retry_in": wait})
            time.sleep(wait)


def _reject_counted(
    docs: Documents, uid: str, request_id: str, exc: PaymentRejected, known: Seen | None, *, now: dt.datetime
) -> None:
    """One commit: the refusal counted against the rate limit and the request shown rejected
    with ``exc``'s reason, on the condition that the document is still ``known`` (raises
    `_Moved` if not: nothing is counted then). Over the limit, the reason is then replaced
    by rate_limited on the version that commit left (a flood of refusals is told to wait
    like a flood of payments). A document that is not there (None) is not written."""
    doc = known.doc if known is not None else None
    fields = _traced("rejected", {"reason": exc.code, "message": exc.message})
    update = projection_update(doc.data, "rejected", **fields) if doc is not None else None
    batch = docs.batch()
    counted = ratelimits.count_in(batch, uid, "payments", now=now.timestamp())
    if doc is not None and update is not None:
        batch.update(doc.path, request_status.stamped(update), if_updated=doc.updated)
    try:
        results = batch.commit()
    except (Stale, NotFound):
        raise _Moved() from None
    try:
        counted.check(results)
    except ratelimits.RateLimited as limited:
        written = next((w for w in results if doc is not None and w.path == doc.path), None)
        if doc is not None and written is not None and written.updated is not None:
            limits = _traced("rejected", {"reason": limited.code, "message": limited.message})
            request_status.put_back(docs, Doc(doc.path, doc.data, written.updated), "rejected", **limits)


def _read(
    docs: Documents,
    path: str,
    uid: str,
    request: PaymentRequest,
    bank_regs: tuple[str, ...],
    *,
    with_request: bool = True,
) -> dict[str, Doc | None]:
    """Every document the checks need, in one batched read (name -> document, None when
    there is none); the request document too ``with_request``."""
    paths = {"request": path} if with_request else {}
    paths["from"] = f"{ACCOUNTS}/{request.from_account}"
    if request.to_account[:4] in bank_regs:
        paths["to"] = f"{ACCOUNTS}/{request.to_account}"
    if request.sca is None:
        paths["payees"] = sca.payee_record_path(uid)
    else:
        paths["key"] = sca.key_path(uid, request.sca)
        paths.update({f"used:{n}": used for n, used in enumerate(sca.used_paths(request.sca))})
    attrs = {"db.system": "firestore", "fjb.documents": len(set(paths.values()))}
    with tracing.span("firestore edge_read", kind=tracing.SpanKind.CLIENT, attrs=attrs):
        found = docs.get_many(list(dict.fromkeys(paths.values())))
    return {name: found[p] for name, p in paths.items()}


def _count_and_claim(
    docs: Documents,
    uid: str,
    request_id: str,
    request: PaymentRequest,
    reads: dict[str, Doc | None],
    show: _Show,
    *,
    own_payee: bool,
    call: _Call,
) -> tuple[Seen, ratelimits.RateLimited | None]:
    """The SCA decision, then one commit: the rate-limit count, (for a signed payment) the
    record that its signature is used, and the status ``show`` says. Returns the request
    document as that commit left it, and the rate limit's refusal if the count is over it
    (the status is written then; the refusal moves it on). Raises `PaymentRejected`, or
    `_Moved` if the document is not as ``show`` knew it (nothing is written then)."""
    path = request_path(uid, request_id)
    claim = _signature_to_claim(path, request_id, request, reads, own_payee=own_payee, threshold=call.sca_threshold)
    update = show.update()
    try:
        counted, results = _commit(docs, uid, call.now, path, claim, show.known.doc, update)
    except AlreadyExists:  # the signature was used since the read: by this request (a race) or another
        if claim is None:  # only the signature's record is created here
            raise
        if (_data(docs.get(claim)) or {}).get("request") != path:
            raise sca.signature_reused() from None
        counted, results = _commit(docs, uid, call.now, path, None, show.known.doc, update)
    written = next((w for w in results if w.path == path), None)
    seen = show.known
    if written is not None and written.updated is not None and update is not None and show.known.doc is not None:
        seen = Seen(Doc(path, {**show.known.doc.data, **update}, written.updated))
    try:
        counted.check(results)
    except ratelimits.RateLimited as limited:
        return seen, limited
    return seen, None


def _commit(
    docs: Documents,
    uid: str,
    now: dt.datetime,
    path: str,
    claim: str | None,
    request: Doc | None,
    update: dict[str, Any] | None,
) -> tuple[ratelimits.Counted, list[Written]]:
    """One commit: the count, the signature's use record (``claim``) for the request at
    ``path``, and the status update on the condition that the request document is as
    ``request`` (raises `_Moved` if not)."""
    batch = docs.batch()
    counted = ratelimits.count_in(batch, uid, "payments", now=now.timestamp())
    if claim is not None:
        batch.create(claim, sca.used_record(uid, path))
    if request is not None and update is not None:
        batch.update(request.path, update, if_updated=request.updated)
    try:
        with tracing.span("firestore edge_commit", kind=tracing.SpanKind.CLIENT, attrs={"db.system": "firestore"}):
            return counted, batch.commit()
    except (Stale, NotFound):
        raise _Moved() from None


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
        used=sca.used_of({p: reads[f"used:{n}"] for n, p in enumerate(sca.used_paths(request.sca))}, request.sca),
    )
    return sca.used_path(request.sca) if unused else None


def submit(
    docs: Documents,
    publisher: Publisher,
    payment: PaymentRequested,
    *,
    known: Seen | None = None,
    payee_uid: str | None = None,
    shown: bool = False,
) -> None:
    """Publish a validated payment and show it as requested; a publish failure is never
    dropped. ``known``: the request document as the caller read it (one write then);
    ``payee_uid``: an internal payment's payee, as the caller read it (told in the event);
    ``shown``: the document shows "requested" already (``known`` is as that write left it),
    so only a failure writes."""
    event = requested_in_app(PaymentEvent(payment, "requested"), payee_uid=payee_uid)
    with tracing.span("edge submit", attrs={"fjb.payment_id": payment.payment_id}):
        _submit(docs, publisher, payment, event, known, shown)


def _submit(
    docs: Documents,
    publisher: Publisher,
    payment: PaymentRequested,
    event: PaymentEvent,
    known: Seen | None,
    shown: bool,
) -> None:
    try:
        with tracing.span(
            f"publish {topology.base_subject(event.subject)}",
            kind=tracing.SpanKind.PRODUCER,
            attrs={"messaging.system": "nats", "messaging.destination.name": event.subject},
        ):
            publisher.publish_json(event.subject, event.to_json(), msg_id=event.msg_id, stream=topology.STREAM_PAYMENTS)
    except PublishError as exc:
        # The document itself records that the request still has to be published (the
        # due-payments job publishes it), and the error propagates to the function's error
        # log; the platform's retry of the trigger then finds it answered ("received").
        # The message is the customer's (the app shows it on the payment): the publisher's
        # error named subjects and ids and read as a failure, and a customer who paid again
        # had both paid once the job ran (found in review, 2026-12-06). The error itself
        # goes to the function's log with the exception raised below.
        log.warning("payment request not yet handed on: %s", exc, extra={"paymentId": payment.payment_id})
        pending: dict[str, Any] = {
            "reason": "publish_pending",
            "message": PUBLISH_PENDING_MESSAGE,
            "extra": {"payment": payment.to_json()},  # what the due-payments job publishes again
        }
        if not shown:
            advance_sync(docs, payment.uid, payment.request_id, "received", known=known, **pending)
        elif known is not None and known.doc is not None:
            # "requested" was written before the publish: back to received, unless something
            # moved it since (then the payment was published after all: the notifier showed it).
            # Also when a retried run's publish again (`_resend`) fails, though the first run
            # may have published it: the edge cannot tell, and a request left "requested"
            # unpublished once the trigger's retries end is never published; shown received
            # for a while, the job's publish again is answered as a duplicate and the
            # notifier moves it on (decided in review, 2026-12-07).
            request_status.put_back(docs, known.doc, "received", **_traced("received", pending))
        raise
    if not shown:
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
    if source.get("status") == FROZEN:
        raise PaymentRejected("account_frozen", "the from-account is frozen")
    if source.get("status") != "open":
        raise PaymentRejected("account_closed", "the from-account is not open")
    if to_account[:4] not in bank_regs:
        return EXTERNAL, False
    return INTERNAL, _check_payee(target).get("ownerUid") == uid


# The payments a customer may have waiting for their due dates. The due-payments job decides
# each due one in every run until it is paid or has failed: without a bound, one customer's
# thousands of 1-øre payments the account could not cover (each without SCA, within the rate
# limit) took the run's time from every other customer's due payments and standing orders
# (found in review, 2026-12-06). A household's bills are a few dozen a month.
MAX_SCHEDULED = 200


def _first_status(docs: Documents, uid: str, request: PaymentRequest, now: dt.datetime) -> str:
    """ "requested", or "scheduled" for a later due date (if the customer has room for it)."""
    if request.due_date <= today_in_norway(now):
        return "requested"
    _check_room_to_schedule(docs, uid)
    return "scheduled"


def _check_room_to_schedule(docs: Documents, uid: str) -> None:
    """Refused when the customer has `MAX_SCHEDULED` payments waiting for their due dates:
    one count, on a payment with a later due date only (the trigger's round trips for a
    payment made now stay three). A few made at the same instant may pass it together."""
    waiting = docs.count(
        f"{USERS}/{uid}/{PAYMENT_REQUESTS}", where=[Where("status", "==", "scheduled")], up_to=MAX_SCHEDULED
    )
    if waiting >= MAX_SCHEDULED:
        raise PaymentRejected(
            "too_many_scheduled", f"at most {MAX_SCHEDULED} payments waiting for their due dates; pay or cancel one"
        )


def check_payee(docs: Documents, to_account: str, bank_regs: tuple[str, ...]) -> None:
    """The payee's account as a payment to it would find it now, whatever the payer's
    account's state: raises `PaymentRejected` (unknown_to_account, to_account_closed) for
    one here that is gone or closed; another bank's is not checked."""
    if to_account[:4] in bank_regs:
        _check_payee(_data(docs.get(f"{ACCOUNTS}/{to_account}")))


def _check_payee(target: dict[str, Any] | None) -> dict[str, Any]:
    """The payee's account document, if a payment may be made to it."""
    if target is None:
        raise PaymentRejected("unknown_to_account", "no account with this number in Fjordbank")
    if target.get("status") not in TAKES_CREDITS:  # a frozen account takes money in
        raise PaymentRejected("to_account_closed", "the to-account is closed")
    return target
