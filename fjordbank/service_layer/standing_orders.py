"""Standing orders and scheduled payments: the app's callables and the due-payments job.

  users/{uid}/standingOrders/{orderId}   the order: terms, next due date, status, runs

The callables create, change and cancel orders; the checks are those of any payment
(ownership, account state, SCA for a new payee or a large amount: the customer confirms
the order once, its payments then run without the phone, as PSD2 allows for recurring
payments of a fixed amount to the same payee).

The job (`run_due`) takes each active order whose next due date has come. It decides with
`fjordbank.domain.standing_orders.decide` and claims the due date in one Firestore
transaction that moves the order to its next date and stages the payment's event in the
outbox (fjordbank.service_layer.outbox); only then is the event published. So a due date
is paid at most once however often the job runs, even concurrently, and a crash after the
claim leaves the event in the outbox for the relay instead of losing it.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from google.api_core.exceptions import Aborted, AlreadyExists
from google.cloud import firestore
from google.cloud.firestore_v1 import DocumentReference, Transaction
from google.cloud.firestore_v1.base_query import FieldFilter

from fjordbank.adapters.documents import FirestoreDocuments, FirestoreUnitOfWork
from fjordbank.adapters.firestore import ACCOUNTS, STANDING_ORDERS, request_path, user_doc
from fjordbank.domain import standing_orders as rules
from fjordbank.domain.norway import today_in_norway
from fjordbank.domain.payments import (
    REQUEST_ID_PATTERN,
    PaymentEvent,
    PaymentRejected,
    PaymentRequested,
    body_hash,
    parse_amount,
    payment_id_for,
    projection_update,
)
from fjordbank.domain.sca import DEFAULT_THRESHOLD
from fjordbank.service_layer import outbox, sca
from fjordbank.service_layer.edge import check_accounts
from fjordbank.service_layer.ports import Publisher

log = logging.getLogger(__name__)


def _order_ref(db: firestore.Client, uid: str, order_id: str) -> DocumentReference:
    return user_doc(db, uid, STANDING_ORDERS, order_id)


def _terms_json(terms: rules.OrderTerms) -> dict[str, Any]:
    return {
        "fromAccount": terms.payment.from_account,
        "toAccount": terms.payment.to_account,
        "payeeName": terms.payment.payee_name,
        "amount": terms.payment.amount,
        "currency": terms.payment.currency,
        "message": terms.payment.message,
        "kid": terms.payment.kid,
        "frequency": terms.frequency,
        "startDate": terms.start_date.isoformat(),
        "endDate": terms.end_date.isoformat() if terms.end_date else None,
    }


def create(
    db: firestore.Client,
    uid: str,
    body: dict[str, Any],
    *,
    bank_regs: tuple[str, ...],
    sca_threshold: int = DEFAULT_THRESHOLD,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """A new standing order. The order id is the client's idempotency key: the same body
    again returns the same order; another body with a used id is refused."""
    now = now or dt.datetime.now(dt.UTC)
    today = today_in_norway(now)
    terms = rules.parse_terms(body, today=today)
    order_id = body["orderId"]
    ref = _order_ref(db, uid, order_id)
    existing = ref.get()
    fingerprint = body_hash({k: v for k, v in body.items() if k != "sca"})
    if existing.exists:
        if existing.get("bodyHash") != fingerprint:
            raise PaymentRejected("order_exists", "another standing order has this id")
        return existing.to_dict() or {}
    kind, own_payee = check_accounts(
        FirestoreDocuments(db), uid, terms.payment.from_account, terms.payment.to_account, bank_regs
    )
    sca.check_payment(
        FirestoreDocuments(db),
        uid,
        request_path=ref.path,
        request_id=order_id,
        amount=terms.payment.amount,
        currency=terms.payment.currency,
        to_account=terms.payment.to_account,
        own_payee=own_payee,
        sca=body.get("sca"),
        threshold=sca_threshold,
    )
    order = {
        "orderId": order_id,
        "uid": uid,
        **_terms_json(terms),
        "kind": kind,
        "status": rules.ACTIVE,
        "nextDue": terms.start_date.isoformat(),
        "anchorDay": terms.start_date.day,
        "runs": [],
        "bodyHash": fingerprint,
        "createdAt": now,
        "updatedAt": now,
    }
    try:
        ref.create(order)
    except AlreadyExists:  # a concurrent create with the same id
        return ref.get().to_dict() or {}
    log.info("standing order created", extra={"uid": uid, "order_id": order_id, "frequency": terms.frequency})
    return order


def change(
    db: firestore.Client,
    uid: str,
    body: object,
    *,
    sca_threshold: int = DEFAULT_THRESHOLD,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Change the amount, the end date or the next due date of an active order. A larger
    amount that needs SCA needs a new confirmation."""
    now = now or dt.datetime.now(dt.UTC)
    today = today_in_norway(now)
    asked = _change_request(body)
    ref = _order_ref(db, uid, rules.parse_order_id(asked.get("orderId")))
    order = _active_order(ref)
    update: dict[str, Any] = {}
    if "amount" in asked:
        update["amount"] = _changed_amount(db, uid, ref, order, asked, sca_threshold)
    if "nextDue" in asked:
        update["nextDue"] = _changed_next_due(asked["nextDue"], today)
    if "endDate" in asked:
        update["endDate"] = _changed_end_date(asked["endDate"], update.get("nextDue", order["nextDue"]))
    if not update:
        raise PaymentRejected("nothing_to_change", "give amount, nextDue or endDate")
    return _apply_change(db, ref, update, now)


def _change_request(body: object) -> dict[str, Any]:
    """The app's change: an object with no fields but those a change may carry."""
    if not isinstance(body, dict) or set(body) - rules.CHANGE_FIELDS:
        raise PaymentRejected("unknown_field", f"fields: {', '.join(sorted(rules.CHANGE_FIELDS))}")
    return body


def _active_order(ref: DocumentReference) -> dict[str, Any]:
    """The order as it stands; only an active one can change."""
    snap = ref.get()
    if not snap.exists:
        raise PaymentRejected("unknown_order", "no standing order with this id")
    order = snap.to_dict() or {}
    if order["status"] != rules.ACTIVE:
        raise PaymentRejected("order_not_active", f"the order is {order['status']}")
    return order


def _changed_amount(
    db: firestore.Client,
    uid: str,
    ref: DocumentReference,
    order: dict[str, Any],
    asked: dict[str, Any],
    sca_threshold: int,
) -> int:
    """The new amount. A larger one is checked as a payment to a known payee: one over the
    SCA threshold needs a new confirmation."""
    amount = parse_amount(asked["amount"])
    if amount > order["amount"]:
        sca.check_payment(
            FirestoreDocuments(db),
            uid,
            request_path=ref.path,
            request_id=order["orderId"],
            amount=amount,
            currency=order["currency"],
            to_account=order["toAccount"],
            own_payee=True,  # the payee was confirmed when the order was made
            sca=asked.get("sca"),
            threshold=sca_threshold,
        )
    return amount


def _changed_next_due(value: object, today: dt.date) -> str:
    due = rules.parse_date(value, "invalid_next_due")
    if due < today:
        raise PaymentRejected("next_due_in_past", "nextDue is before today")
    return due.isoformat()


def _changed_end_date(value: object, next_due: str) -> str | None:
    """The new end date (None: the order runs until cancelled), not before the next due date."""
    end = None if value is None else rules.parse_date(value, "invalid_end_date")
    if end is not None and end < dt.date.fromisoformat(next_due):
        raise PaymentRejected("end_before_start", "endDate is before the next due date")
    return end.isoformat() if end else None


def _apply_change(
    db: firestore.Client, ref: DocumentReference, update: dict[str, Any], now: dt.datetime
) -> dict[str, Any]:
    """Write the change in a transaction that finds the order still active."""

    @firestore.transactional
    def run(tx: Transaction) -> dict[str, Any]:
        current = ref.get(transaction=tx).to_dict() or {}
        if current["status"] != rules.ACTIVE:
            raise PaymentRejected("order_not_active", f"the order is {current['status']}")
        tx.update(ref, {**update, "updatedAt": now})
        return {**current, **update}

    changed: dict[str, Any] = run(db.transaction())
    return changed


def cancel(db: firestore.Client, uid: str, order_id: object, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Cancel an order: no payment falls due after this. Cancelling twice is harmless."""
    now = now or dt.datetime.now(dt.UTC)
    ref = _order_ref(db, uid, rules.parse_order_id(order_id))

    @firestore.transactional
    def run(tx: Transaction) -> dict[str, Any]:
        snap = ref.get(transaction=tx)
        if not snap.exists:
            raise PaymentRejected("unknown_order", "no standing order with this id")
        order = snap.to_dict() or {}
        if order["status"] == rules.ACTIVE:
            tx.update(ref, {"status": rules.CANCELLED, "cancelledAt": now, "updatedAt": now})
            order["status"] = rules.CANCELLED
        return order

    cancelled: dict[str, Any] = run(db.transaction())
    return cancelled


def public(order: dict[str, Any]) -> dict[str, Any]:
    """What the app is answered (the document itself it reads with its listener)."""
    keys = ("orderId", "status", "frequency", "amount", "fromAccount", "toAccount", "nextDue", "endDate")
    return {k: order.get(k) for k in keys}


def cancel_scheduled(
    db: firestore.Client, uid: str, request_id: str, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Cancel a payment request waiting for its due date ("scheduled"). Once it has been
    submitted it can no longer be cancelled."""
    now = now or dt.datetime.now(dt.UTC)
    if not isinstance(request_id, str) or not REQUEST_ID_PATTERN.fullmatch(request_id):
        raise PaymentRejected("invalid_request_id", "requestId must be 8-64 letters, digits, '-' or '_'")
    ref = db.document(request_path(uid, request_id))

    @firestore.transactional
    def run(tx: Transaction) -> dict[str, Any]:
        snap = ref.get(transaction=tx)
        if not snap.exists:
            raise PaymentRejected("unknown_request", "no payment request with this id")
        current = snap.to_dict() or {}
        if current.get("status") == "cancelled":
            return {"requestId": request_id, "status": "cancelled"}
        if current.get("status") != "scheduled":
            raise PaymentRejected("not_scheduled", f"the payment is {current.get('status')}, not scheduled")
        update = projection_update(current, "cancelled") or {}  # never None: scheduled may be cancelled
        tx.update(ref, {**update, "updatedAt": now, "timeline.cancelled": now})
        return {"requestId": request_id, "status": "cancelled"}

    cancelled: dict[str, Any] = run(db.transaction())
    return cancelled


# ---- the job ----------------------------------------------------------------------------
def occurrence(order: dict[str, Any], due: dt.date, now: dt.datetime) -> PaymentRequested:
    request_id = rules.occurrence_request_id(order["orderId"], due)
    return PaymentRequested(
        payment_id=payment_id_for(order["uid"], request_id),
        uid=order["uid"],
        request_id=request_id,
        kind=order["kind"],
        from_account=order["fromAccount"],
        to_account=order["toAccount"],
        amount=order["amount"],
        currency=order["currency"],
        message=order.get("message"),
        kid=order.get("kid"),
        due_date=due.isoformat(),
        body_hash=order["bodyHash"],
        requested_at=now.isoformat(),
        payee_name=order.get("payeeName"),
    )


def available_of(db: firestore.Client, account_id: str) -> tuple[int | None, bool]:
    snap = db.collection(ACCOUNTS).document(account_id).get()
    if not snap.exists:
        return None, False
    data = snap.to_dict() or {}
    return data.get("available"), data.get("status") == "open"


def run_due(
    db: firestore.Client,
    publisher: Publisher,
    *,
    bank_regs: tuple[str, ...],
    now: dt.datetime | None = None,
    limit: int = 500,
    uids: tuple[str, ...] | None = None,
) -> dict[str, int]:
    """Pay (or fail) every due date that has come. See the module docstring. ``uids``: only
    these customers' orders (a scoped run on the emulator: scheduled.job_overrides)."""
    now = now or dt.datetime.now(dt.UTC)
    today = today_in_norway(now)
    counts = {"submitted": 0, "waiting": 0, "failed": 0, "skipped": 0}
    orders = db.collection_group(STANDING_ORDERS)
    if uids:
        orders = orders.where(filter=FieldFilter("uid", "in", list(uids)))
    query = (
        orders.where(filter=FieldFilter("status", "==", rules.ACTIVE))
        .where(filter=FieldFilter("nextDue", "<=", today.isoformat()))
        .limit(limit)
    )
    for snap in query.stream():
        order = snap.to_dict() or {}
        due = dt.date.fromisoformat(order["nextDue"])
        available, is_open = available_of(db, order["fromAccount"])
        decision = rules.decide(due=due, today=today, available=available, amount=order["amount"], account_open=is_open)
        if decision.action == "submit":
            try:  # the payee's account may have closed since the order was made
                check_accounts(
                    FirestoreDocuments(db), order["uid"], order["fromAccount"], order["toAccount"], bank_regs
                )
            except PaymentRejected as exc:
                decision = rules.Decision("fail", exc.code)
        try:
            outcome = _claim(db, publisher, snap.reference, order, due, decision, now)
        except (ValueError, Aborted) as exc:
            if isinstance(exc, ValueError) and not str(exc).startswith("Failed to commit transaction"):
                raise
            # every attempt lost to a concurrent run of the job, which has it in hand
            log.warning("standing order contended; left to the other run", extra={"order_id": order["orderId"]})
            outcome = "skipped"
        counts[outcome] += 1
    log.info("standing orders run", extra=counts)
    return counts


def _claim(
    db: firestore.Client,
    publisher: Publisher,
    ref: DocumentReference,
    order: dict[str, Any],
    due: dt.date,
    decision: rules.Decision,
    now: dt.datetime,
) -> str:
    """One transaction: the due date is still the order's next one (else another run took
    it), the order moves on, and the payment's event is staged. Then it is published."""
    payment = occurrence(order, due, now)
    if decision.action == "submit":
        event = PaymentEvent(payment, "requested")
    else:
        event = PaymentEvent(payment, "failed", reason=decision.reason, message="the standing order could not be paid")
    staged = outbox.Event(event.subject, event.to_json(), event.msg_id)

    @firestore.transactional
    def run(tx: Transaction) -> str:
        current = ref.get(transaction=tx).to_dict() or {}
        if current.get("status") != rules.ACTIVE or current.get("nextDue") != due.isoformat():
            return "skipped"
        if decision.action == "wait":
            tx.update(ref, {"waiting": rules.waiting(current, due, decision.reason)})
            return "waiting"
        following = rules.next_due(
            current["frequency"],
            due,
            anchor_day=int(current.get("anchorDay", due.day)),
            end=dt.date.fromisoformat(current["endDate"]) if current.get("endDate") else None,
        )
        run_record = {
            "date": due.isoformat(),
            "paymentId": payment.payment_id,
            "status": "submitted" if decision.action == "submit" else "failed",
            "reason": decision.reason,
        }
        tx.update(
            ref,
            {
                "nextDue": following.isoformat() if following else None,
                "status": rules.ACTIVE if following else rules.ENDED,
                "lastRun": run_record,
                "runs": [*current.get("runs", []), run_record][-rules.MAX_HISTORY :],
                "waiting": firestore.DELETE_FIELD,
                "updatedAt": now,
            },
        )
        outbox.stage(FirestoreUnitOfWork(db, tx), staged)
        return "submitted" if decision.action == "submit" else "failed"

    outcome: str = run(db.transaction())
    if outcome in ("submitted", "failed"):
        outbox.deliver(FirestoreDocuments(db), publisher, [staged])
        log.info(
            "standing order due date claimed",
            extra={"order_id": order["orderId"], "due": due.isoformat(), "outcome": outcome, "reason": decision.reason},
        )
    return outcome
