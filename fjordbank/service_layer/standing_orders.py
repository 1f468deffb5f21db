"""Standing orders and scheduled payments: the app's callables and the due-payments job.

  users/{uid}/standingOrders/{orderId}   the order: terms, next due date, status, runs

The callables create, change and cancel orders; the checks are those of any payment
(ownership, account state, SCA for a new payee or a large amount: the customer confirms
the order once, its payments then run without the phone, as PSD2 allows for recurring
payments of a fixed amount to the same payee).

The job (`run_due`) takes each active order whose next due date has come, on banking days
only (`fjordbank.domain.norway.is_banking_day`: a date on a weekend or holiday is paid on
the next banking day, `fjordbank.domain.standing_orders.payment_day`). It decides with
`fjordbank.domain.standing_orders.decide` and claims the due date in one unit of work
(fjordbank.service_layer.ports) that moves the order to its next date and stages the
payment's event in the outbox (fjordbank.service_layer.outbox); only then is the event
published. So a due date
is paid at most once however often the job runs, even concurrently, and a crash after the
claim leaves the event in the outbox for the relay instead of losing it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from fjordbank.adapters.firestore import ACCOUNTS, PAYMENT_REQUESTS, STANDING_ORDERS, USERS, request_path
from fjordbank.domain import standing_orders as rules
from fjordbank.domain.norway import is_banking_day, today_in_norway
from fjordbank.domain.payments import (
    REQUEST_ID_PATTERN,
    PaymentEvent,
    PaymentRejected,
    PaymentRequested,
    body_hash,
    check_sca_shape,
    parse_amount,
    payment_id_for,
    projection_update,
)
from fjordbank.domain.sca import DEFAULT_THRESHOLD, order_challenge, order_change_challenge, order_schedule_challenge
from fjordbank.service_layer import edge, outbox, seams
from fjordbank.service_layer.lanes import FailureRow, in_lanes
from fjordbank.service_layer.ports import (
    DELETE_FIELD,
    AlreadyExists,
    Clock,
    Contention,
    Doc,
    Documents,
    Publisher,
    UnitOfWork,
    Where,
    system_clock,
)
from fjordbank.service_layer.sca import key_path

log = logging.getLogger(__name__)


def order_path(uid: str, order_id: str) -> str:
    return f"{USERS}/{uid}/{STANDING_ORDERS}/{order_id}"


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
    docs: Documents,
    uid: str,
    body: dict[str, Any],
    *,
    bank_regs: tuple[str, ...],
    check_sca: seams.ScaCheck,
    sca_threshold: int = DEFAULT_THRESHOLD,
    clock: Clock = system_clock,
) -> dict[str, Any]:
    """A new standing order. The order id is the client's idempotency key: the same body
    again returns the same order; another body with a used id is refused. ``check_sca``:
    sca.check_payment on its client (fjordbank.service_layer.seams)."""
    now = clock()
    if not isinstance(body, dict) or set(body) - rules.CREATE_FIELDS:
        rules.parse_terms(body, today=today_in_norway(now))  # refused, with its reason
    path = order_path(uid, rules.parse_order_id(body.get("orderId")))
    existing = docs.get(path)
    fingerprint = rules.order_hash(body)
    if existing is not None and existing.data.get("orderHash") == fingerprint:
        # the same create again (a retry after a lost answer): answered as it was made, even
        # when today's rules would refuse it (its start date since passed, a text rule since)
        return existing.data
    terms = rules.parse_terms(body, today=today_in_norway(now))
    order_id = body["orderId"]
    payment_hash = body_hash({k: v for k, v in body.items() if k != "sca"})  # what its payments carry
    if existing is not None:
        if not _same_order(existing.data, terms, fingerprint, payment_hash):
            raise PaymentRejected("order_exists", "another standing order has this id")
        return existing.data
    kind, own_payee = edge.check_accounts(docs, uid, terms.payment.from_account, terms.payment.to_account, bank_regs)
    _check_room(docs, uid)
    check_sca(
        uid,
        request_path=path,
        request_id=order_id,
        amount=terms.payment.amount,
        currency=terms.payment.currency,
        to_account=terms.payment.to_account,
        own_payee=own_payee,
        sca=body.get("sca"),
        threshold=sca_threshold,
        challenge=order_challenge(
            order_id,
            terms.payment.amount,
            terms.payment.currency,
            terms.payment.to_account,
            terms.frequency,
            terms.start_date.isoformat(),
            from_account=terms.payment.from_account,
            end_date=terms.end_date.isoformat() if terms.end_date else None,
        ),
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
        "bodyHash": payment_hash,
        "orderHash": fingerprint,
        **_confirmed_by({}, body.get("sca")),
        "createdAt": now,
        "updatedAt": now,
    }

    # The accounts are read again with the create, in one unit of work: the check above
    # was a plain read and the SCA check takes round trips, and an account closed in
    # between (accounts.close_account cancels the orders it finds in its own unit of work)
    # left an active order on a closed account, answered "active" and ended only on its
    # first due date (found in review, 2026-12-06). Both units of work read the account
    # document and the close writes it, so one of them sees the other.
    def run(uow: UnitOfWork) -> dict[str, Any] | None:
        if (made := uow.get(path)) is not None:  # a concurrent create with the same id
            return made.data
        paths = [f"{ACCOUNTS}/{terms.payment.from_account}", f"{ACCOUNTS}/{terms.payment.to_account}"]
        found = uow.get_many(paths)
        edge.account_verdict(
            uid,
            None if (a := found[paths[0]]) is None else a.data,
            terms.payment.to_account,
            None if (b := found[paths[1]]) is None else b.data,
            bank_regs,
        )
        uow.create(path, order)
        return None

    try:
        made = docs.transact(run, operation="standing_order_create")
    except AlreadyExists:  # created by a concurrent call between the read and the commit
        made = _data_or_empty(docs.get(path))
    if made is not None:
        if made and not _same_order(made, terms, fingerprint, payment_hash):
            raise PaymentRejected("order_exists", "another standing order has this id")
        return made
    log.info("standing order created", extra={"uid": uid, "order_id": order_id, "frequency": terms.frequency})
    return order


# The active standing orders a customer may have. The due-payments job decides every due
# date of every order in each run: without a bound, one customer's thousands of orders
# (each below the SCA threshold, within the rate limit) took the run's time from everyone
# else's payments (found in review, 2026-12-06). A household has a few dozen.
MAX_ACTIVE_ORDERS = 100


def _check_room(docs: Documents, uid: str) -> None:
    """Refused when the customer has `MAX_ACTIVE_ORDERS` active orders (one count; a few
    made at the same instant may pass it together: a bound on the job's work, not a rule
    to the order)."""
    active = docs.count(
        f"{USERS}/{uid}/{STANDING_ORDERS}", where=[Where("status", "==", rules.ACTIVE)], up_to=MAX_ACTIVE_ORDERS
    )
    if active >= MAX_ACTIVE_ORDERS:
        raise PaymentRejected(
            "too_many_standing_orders", f"at most {MAX_ACTIVE_ORDERS} active standing orders; stop one first"
        )


def _data_or_empty(doc: Doc | None) -> dict[str, Any]:
    return {} if doc is None else doc.data


def _same_order(stored: dict[str, Any], terms: rules.OrderTerms, fingerprint: str, payment_hash: str) -> bool:
    """Whether a create with a used order id repeats the create that made the order."""
    if "orderHash" in stored:
        return bool(stored["orderHash"] == fingerprint)
    # An order made before its whole create was fingerprinted keeps the payment fields'
    # hash (``bodyHash``). Its frequency and start date never change, so they are compared
    # as stored; its end date may have been changed since, so it is not.
    return (
        stored.get("bodyHash") == payment_hash
        and stored.get("frequency") == terms.frequency
        and stored.get("startDate") == terms.start_date.isoformat()
    )


def change(
    docs: Documents,
    uid: str,
    body: object,
    *,
    check_sca: seams.ScaCheck,
    sca_threshold: int = DEFAULT_THRESHOLD,
    clock: Clock = system_clock,
) -> dict[str, Any]:
    """Change the amount, the end date or the next due date of an active order. A larger
    amount that needs SCA needs a new confirmation, and so does a change that makes an
    order over the threshold pay sooner (an earlier next due date) or for longer (a later
    end date, or none): `order_schedule_challenge`. A new next due date moves the schedule:
    a monthly order then falls due on that day of the month (a rent order moved from the
    31st to the 2nd pays on the 2nd from then on); it must come after the last date the
    order ran, whose payment id it would take again."""
    now = clock()
    today = today_in_norway(now)
    asked = _change_request(body)
    path = order_path(uid, rules.parse_order_id(asked.get("orderId")))
    found = _active_order(docs.get(path))
    order: dict[str, Any] = found.data
    check_sca_shape(asked.get("sca"))
    update: dict[str, Any] = {}
    if "nextDue" in asked:
        update["nextDue"] = _changed_next_due(asked["nextDue"], today)
        update["waiting"] = DELETE_FIELD  # a wait for funds counts on its own due date
    if "endDate" in asked:
        update["endDate"] = _changed_end_date(asked["endDate"], update.get("nextDue", order["nextDue"]), today)
    if not update and "amount" not in asked:
        raise PaymentRejected("nothing_to_change", "give amount, nextDue or endDate")
    _check_within_end(update.get("nextDue", order["nextDue"]), update.get("endDate", order.get("endDate")))
    # last: a confirmation is used only by a change that is otherwise valid. The signature
    # is recorded as used for this version of the order: the same change retried (its
    # commit failed) may use it again, a later change may not (replayed after the amount
    # was lowered, it would raise it again without the customer)
    version = f"{path}@{found.updated.isoformat()}"
    if _pays_sooner_or_longer(order, update):
        amount = parse_amount(asked["amount"]) if "amount" in asked else order["amount"]
        _confirm_schedule(check_sca, uid, version, order, update, amount, asked.get("sca"), sca_threshold)
        update.update(_confirmed_by(order, asked.get("sca")))
        if "amount" in asked:
            update["amount"] = amount
    elif "amount" in asked:
        update["amount"] = _changed_amount(check_sca, uid, version, order, asked, sca_threshold)
        if update["amount"] > order["amount"]:  # (a confirmation given was checked)
            update.update(_confirmed_by(order, asked.get("sca")))
    return _apply_change(docs, path, update, now, order)


# On an order: the device keys whose confirmations (of the order, of a raise, of a new
# schedule) the order stands on. A due date is paid only while every one of them is still
# the customer's (`_confirming_keys_kept`): an order a thief confirmed on a stolen phone
# went on paying after the customer had the phone removed, or the bank reset every key,
# where a scheduled payment confirmed the same way failed (found in review, 2026-12-07).
# Orders made before it have no list and nothing to check.
CONFIRMED_BY = "confirmedBy"


def _confirmed_by(order: dict[str, Any], sca: object) -> dict[str, list[str]]:
    """The order's `CONFIRMED_BY` with the key of ``sca`` (a confirmation the SCA check
    verified) added; nothing to write when none was given."""
    if not (isinstance(sca, dict) and isinstance(sca.get("keyId"), str)):
        return {}
    kept = order.get(CONFIRMED_BY)
    keys = [k for k in kept if isinstance(k, str)] if isinstance(kept, list) else []
    return {CONFIRMED_BY: sorted({*keys, sca["keyId"]})}


def _schedule_of(order: dict[str, Any]) -> tuple[Any, Any]:
    return order.get("nextDue"), order.get("endDate")


def _pays_sooner_or_longer(order: dict[str, Any], update: dict[str, Any]) -> bool:
    """Whether the change makes the order pay before its next due date or past its end
    date: what the customer's confirmation of the order did not cover."""
    sooner = "nextDue" in update and update["nextDue"] < order["nextDue"]
    end, new_end = order.get("endDate"), update.get("endDate", order.get("endDate"))
    longer = "endDate" in update and end is not None and (new_end is None or new_end > end)
    return sooner or longer


def _confirm_schedule(
    check_sca: seams.ScaCheck,
    uid: str,
    version: str,
    order: dict[str, Any],
    update: dict[str, Any],
    amount: int,
    sca: dict[str, Any] | None,
    sca_threshold: int,
) -> None:
    """An order that is to pay sooner or for longer is checked as its payment (of the new
    amount) to a known payee: over the SCA threshold it needs a confirmation of the new
    schedule (and amount), recorded as used for ``version`` of the order. Below it, a
    session alone could make such payments one by one anyway."""
    schedule = (
        order["nextDue"],
        update.get("nextDue", order["nextDue"]),
        order.get("endDate"),
        update.get("endDate", order.get("endDate")),
    )
    challenge = order_schedule_challenge(
        order["orderId"], order["amount"], amount, order["currency"], order["toAccount"], schedule
    )
    _check_order_change(check_sca, uid, version, order, amount, sca, sca_threshold, challenge)


def _check_order_change(
    check_sca: seams.ScaCheck,
    uid: str,
    version: str,
    order: dict[str, Any],
    amount: int,
    sca: dict[str, Any] | None,
    sca_threshold: int,
    challenge: bytes,
) -> None:
    """A change of ``order`` checked as a payment of ``amount`` to a known payee, its
    confirmation (of ``challenge``) recorded as used for ``version`` of the order."""
    check_sca(
        uid,
        request_path=version,
        request_id=order["orderId"],
        amount=amount,
        currency=order["currency"],
        to_account=order["toAccount"],
        own_payee=True,  # the payee was confirmed when the order was made
        sca=sca,
        threshold=sca_threshold,
        challenge=challenge,
    )


def _check_within_end(next_due: str | None, end: str | None) -> None:
    """Nothing falls due after the end date: a next due date past it is refused."""
    if next_due is not None and end is not None and next_due > end:
        raise PaymentRejected("next_due_after_end", "nextDue is after the order's endDate")


def _change_request(body: object) -> dict[str, Any]:
    """The app's change: an object with no fields but those a change may carry."""
    if not isinstance(body, dict) or set(body) - rules.CHANGE_FIELDS:
        raise PaymentRejected("unknown_field", f"fields: {', '.join(sorted(rules.CHANGE_FIELDS))}")
    return body


def _active_order(doc: Doc | None) -> Doc:
    """The order as it stands; only an active one can change."""
    if doc is None:
        raise PaymentRejected("unknown_order", "no standing order with this id")
    if doc.data["status"] != rules.ACTIVE:
        raise PaymentRejected("order_not_active", f"the order is {doc.data['status']}")
    return doc


def _changed_amount(
    check_sca: seams.ScaCheck,
    uid: str,
    version: str,
    order: dict[str, Any],
    asked: dict[str, Any],
    sca_threshold: int,
) -> int:
    """The new amount. A larger one is checked as a payment to a known payee: one over the
    SCA threshold needs a new confirmation, recorded as used for ``version`` of the order."""
    amount = parse_amount(asked["amount"])
    if amount > order["amount"]:
        challenge = order_change_challenge(
            order["orderId"], order["amount"], amount, order["currency"], order["toAccount"]
        )
        _check_order_change(check_sca, uid, version, order, amount, asked.get("sca"), sca_threshold, challenge)
    return amount


def _changed_next_due(value: object, today: dt.date) -> str:
    due = rules.parse_date(value, "invalid_next_due")
    if due < today:
        raise PaymentRejected("next_due_in_past", "nextDue is before today")
    rules.check_horizon(due, today=today)  # as a new order's dates (found in review, 2026-12-06)
    return due.isoformat()


def _changed_end_date(value: object, next_due: str, today: dt.date) -> str | None:
    """The new end date (None: the order runs until cancelled), not before the next due
    date, and not past the horizon a new order's end date has."""
    end = None if value is None else rules.parse_date(value, "invalid_end_date")
    if end is not None and end < dt.date.fromisoformat(next_due):
        raise PaymentRejected("end_before_start", "endDate is before the next due date")
    if end is not None:
        rules.check_horizon(end, today=today)
    return end.isoformat() if end else None


def _judged_on_another(current: dict[str, Any], update: dict[str, Any], checked: dict[str, Any]) -> bool:
    """Whether the order changed since the change was judged (``checked``) in what the
    judgement of its confirmation rested on. The job ran the order (or another change moved
    it): a next due date that was later than the one read is sooner than the one now, and
    was not confirmed for it (found in review: a 9 000 kr order paid twice in a month).
    Another change set the amount: a new amount judged "no raise" against the amount read
    raises the one now, and a schedule judged below the SCA threshold pays sooner or longer
    at an amount above it; two changes sent at once, neither needing a confirmation alone,
    made a 15 000 kr order pay sooner and for ever without one (found in review,
    2026-12-07)."""
    amount_moved = current.get("amount") != checked.get("amount")
    if "amount" in update and amount_moved:
        return True
    return _pays_sooner_or_longer(current, update) and (amount_moved or _schedule_of(current) != _schedule_of(checked))


def _apply_change(
    docs: Documents, path: str, update: dict[str, Any], now: dt.datetime, checked: dict[str, Any]
) -> dict[str, Any]:
    """Write the change in a unit of work that finds the order still active. ``checked``:
    the order as the change was judged against (whether it pays sooner or for longer, and
    so needs a confirmation of the new schedule)."""

    def run(uow: UnitOfWork) -> dict[str, Any]:
        found = uow.get(path)
        current = {} if found is None else found.data
        if current["status"] != rules.ACTIVE:
            raise PaymentRejected("order_not_active", f"the order is {current['status']}")
        if _judged_on_another(current, update, checked):
            raise PaymentRejected("order_changed", "the order ran or changed meanwhile: look at it and change it again")
        write = {**update, "updatedAt": now}
        if (
            "nextDue" not in update
            and update.get("endDate")
            and current.get("nextDue")
            and (current["nextDue"] > update["endDate"])
        ):
            # the job paid the due date this change was checked against, between its read
            # and now: nothing is left before the new end date, so the order has ended
            write.update(status=rules.ENDED, nextDue=None, waiting=DELETE_FIELD)
        elif "nextDue" in update:
            _check_within_end(update["nextDue"], update.get("endDate", current.get("endDate")))
            ran = (current.get("lastRun") or {}).get("date")
            if ran and update["nextDue"] <= ran:  # its payment id is that date's, paid or failed
                raise PaymentRejected("next_due_already_run", f"the order ran for {ran}: nextDue must come after it")
            anchor = rules.moved_anchor(current, dt.date.fromisoformat(update["nextDue"]))
            if anchor is not None:
                write["anchorDay"] = anchor
        elif "endDate" in update:
            write.update(_window_shown(current, {**current, **write}))
        uow.update(path, write)
        return {k: v for k, v in {**current, **write}.items() if v is not DELETE_FIELD}

    return docs.transact(run, operation="standing_orders_change")


def _window_shown(current: dict[str, Any], changed: dict[str, Any]) -> dict[str, Any]:
    """The wait for funds of the order's next due date with the last day it is tried on
    as the order ``changed`` has it ({} when it is not waiting). A weekly order's window
    ends before the next date's payment day (`rules.last_try_day`), so a new end date can
    move it; the app went on showing the old day while the job decided on the new one, a
    date failed with the money in before the day shown, or was paid after it (found in
    review, 2026-12-07)."""
    wait, due = current.get("waiting"), current.get("nextDue")
    if not (isinstance(wait, dict) and isinstance(due, str) and rules.waited_on(current, dt.date.fromisoformat(due))):
        return {}
    day = dt.date.fromisoformat(due)
    return {"waiting": {**wait, "until": rules.last_try_day(day, _following(changed, day)).isoformat()}}


def cancel(docs: Documents, uid: str, order_id: object, *, clock: Clock = system_clock) -> dict[str, Any]:
    """Cancel an order: no payment falls due after this. Cancelling twice is harmless."""
    now = clock()
    path = order_path(uid, rules.parse_order_id(order_id))

    def run(uow: UnitOfWork) -> dict[str, Any]:
        found = uow.get(path)
        if found is None:
            raise PaymentRejected("unknown_order", "no standing order with this id")
        order = found.data
        if order["status"] == rules.ACTIVE:
            uow.update(path, {"status": rules.CANCELLED, "cancelledAt": now, "updatedAt": now})
            order["status"] = rules.CANCELLED
        return order

    return docs.transact(run, operation="standing_orders_cancel")


def orders_of_account(uow: UnitOfWork, uid: str, account_id: str) -> list[Doc]:
    """The customer's active orders from or to the account (read in the unit of work that
    closes it, before its writes)."""
    found = uow.query(f"{USERS}/{uid}/{STANDING_ORDERS}", where=[Where("status", "==", rules.ACTIVE)])
    return [o for o in found if account_id in (o.data.get("fromAccount"), o.data.get("toAccount"))]


def cancel_for_closed_account(uow: UnitOfWork, orders: list[Doc], now: dt.datetime) -> None:
    """Cancel ``orders`` (`orders_of_account`) with the account they pay from or to: kept
    "active", each due date failed and was told again, month after month."""
    for order in orders:
        uow.update(
            order.path,
            {
                "status": rules.CANCELLED,
                "cancelledAt": now,
                "cancelledReason": "account_closed",
                "nextDue": None,
                "waiting": DELETE_FIELD,
                "updatedAt": now,
            },
        )


def scheduled_of_account(uow: UnitOfWork, uid: str, account_id: str) -> list[Doc]:
    """The customer's payments waiting for their due date ("scheduled") from or to the
    account (read in the unit of work that closes it, before its writes)."""
    found = uow.query(f"{USERS}/{uid}/{PAYMENT_REQUESTS}", where=[Where("status", "==", "scheduled")])
    return [r for r in found if account_id in _accounts_of(r.data.get("payment"))]


def _accounts_of(payment: object) -> tuple[object, ...]:
    """The from- and to-account of a request's payment (PaymentRequested's JSON)."""
    if not isinstance(payment, dict):
        return ()
    return tuple(payment.get(field) for field in PAYMENT_ACCOUNT_FIELDS)


PAYMENT_ACCOUNT_FIELDS = tuple(f"{side}_account" for side in ("from", "to"))  # (not reason codes)


def cancel_scheduled_for_closed_account(uow: UnitOfWork, requests: list[Doc], now: dt.datetime) -> None:
    """Cancel ``requests`` (`scheduled_of_account`) with the account they pay from or to:
    kept, one into the account was paid on its due date (the debit made, the credit
    refused, the money back) and one from it failed then (found in review, 2026-12-06)."""
    for request in requests:
        update = projection_update(request.data, "cancelled", reason="account_closed", message="the account was closed")
        if update is not None:
            uow.update(request.path, {**update, "updatedAt": now, "timeline.cancelled": now})


def public(order: dict[str, Any]) -> dict[str, Any]:
    """What the app is answered (the document itself it reads with its listener)."""
    keys = ("orderId", "status", "frequency", "amount", "fromAccount", "toAccount", "nextDue", "endDate")
    return {k: order.get(k) for k in keys}


def cancel_scheduled(docs: Documents, uid: str, request_id: object, *, clock: Clock = system_clock) -> dict[str, Any]:
    """Cancel a payment request waiting for its due date ("scheduled"). Once it has been
    submitted it can no longer be cancelled."""
    now = clock()
    if not isinstance(request_id, str) or not REQUEST_ID_PATTERN.fullmatch(request_id):
        raise PaymentRejected("invalid_request_id", "requestId must be 8-64 letters, digits, '-' or '_'")
    path = request_path(uid, request_id)
    cancelled = {"requestId": request_id, "status": "cancelled"}

    def run(uow: UnitOfWork) -> dict[str, Any]:
        found = uow.get(path)
        if found is None:
            raise PaymentRejected("unknown_request", "no payment request with this id")
        current = found.data
        if current.get("status") == "cancelled":
            return cancelled
        if current.get("status") != "scheduled":
            raise PaymentRejected("not_scheduled", f"the payment is {current.get('status')}, not scheduled")
        update = projection_update(current, "cancelled") or {}  # never None: scheduled may be cancelled
        uow.update(path, {**update, "updatedAt": now, "timeline.cancelled": now})
        return cancelled

    return docs.transact(run, operation="payments_cancel_scheduled")


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


def available_of(docs: Documents, account_id: str) -> tuple[int | None, str | None]:
    """What the account can pay (None: no such account): its available balance and its
    overdraft, as the ledger decides (fjordbank.domain.ledger: available down to minus the
    limit); and its status (None: no such account)."""
    account = docs.get(f"{ACCOUNTS}/{account_id}")
    if account is None:
        return None, None
    available, overdraft = account.data.get("available"), account.data.get("overdraftLimit", 0)
    if type(available) is int and type(overdraft) is int and overdraft > 0:
        available += overdraft
    return available, account.data.get("status")


class RunFunds:
    """What each account can pay in one run of the due-payments job: the lower of what
    `available_of` reads now and what it read the first time the run needed the account
    less what the run has submitted from it since. Read afresh only, a payment the run had
    just submitted was not there yet (the ledger reserves it from its event, moments
    later), and two payments due the same day that together exceed the funds were both
    submitted: the ledger declined the second for good, where it should have waited for the
    money for its four banking days. Read once only, money spent meanwhile (a card
    purchase, the customer's own payment) was not seen. Money that comes in during the run
    counts at the next run."""

    def __init__(self, docs: Documents) -> None:
        self.docs = docs
        self.first: dict[str, int | None] = {}
        self.spent: dict[str, int] = {}
        # a run's lanes (fjordbank/service_layer/lanes.py) each reckon their own accounts;
        # the lock keeps the shared dicts whole, not an account's order (its lane does that)
        self._lock = threading.Lock()

    def available(self, account_id: str) -> tuple[int | None, str | None]:
        """`available_of` now, or what the run's first read left once the run's payments
        from the account are taken off it, whichever is lower; and the account's status."""
        available, status = available_of(self.docs, account_id)
        with self._lock:
            first = self.first.setdefault(account_id, available)
            spent = self.spent.get(account_id, 0)
        if available is None or first is None:
            return available, status
        return min(available, first - spent), status

    def submitted(self, account_id: str, amount: int) -> None:
        """``amount`` from the account is on its way. The account is read first if the run
        has not read it yet: a first read after the ledger reserved this payment would
        take it off twice (a covered standing order then waited, or failed at the end of
        its window)."""
        if account_id not in self.first:
            read = available_of(self.docs, account_id)[0]
            with self._lock:
                self.first.setdefault(account_id, read)
        with self._lock:
            self.spent[account_id] = self.spent.get(account_id, 0) + amount


# Due dates of one order a run decides at most (failed ones, then one more).
MAX_DATES_PER_RUN = 8
# Payments (or orders) that failed with an error one after the other before a run of the
# due-payments job stops and fails: one failure is that payment's, a row of them is
# Firestore away or a bug in every one, and the alert on the runs (FjbDuePaymentsNotRun)
# should see it. At least twice the lanes: with 64 in flight, a second of Firestore errors
# is 64 in a row (`errors_allowed`; found in review, 2026-12-06).
MAX_ERRORS_IN_A_ROW = 20
# The outcomes that did the store's work, each ending a row of errors (lanes.FailureRow).
WORKED = frozenset({"submitted", "waiting", "failed", "ended", "unpublished"})


def errors_allowed(lanes: int) -> int:
    return max(MAX_ERRORS_IN_A_ROW, 2 * lanes)


def due_orders(docs: Documents, today: dt.date, limit: int, uids: tuple[str, ...] | None = None) -> Iterator[Doc]:
    """Active orders whose next due date has come (``uids``: only these customers'), a page
    of ``limit`` at a time, each page read once the one before is handled: an order left
    waiting for funds stays due, and without the cursor the same first page would be all
    a run ever saw (a covered order behind 500 waiting ones never tried on its day)."""
    where = [Where("uid", "in", list(uids))] if uids else []
    where += [Where("status", "==", rules.ACTIVE), Where("nextDue", "<=", today.isoformat())]
    yield from pages(docs, STANDING_ORDERS, where, limit)


def pages(docs: Documents, collection_id: str, where: list[Where], limit: int) -> Iterator[Doc]:
    """Every document of a collection-group query, ``limit`` at a time (see due_orders)."""
    after: Doc | None = None
    while True:
        page = docs.query_group(collection_id, where=where, limit=limit, start_after=after)
        yield from page
        if len(page) < limit:
            return
        after = page[-1]


def run_due(
    docs: Documents,
    publisher: Publisher,
    *,
    bank_regs: tuple[str, ...],
    clock: Clock = system_clock,
    limit: int = 500,
    uids: tuple[str, ...] | None = None,
    funds: RunFunds | None = None,
    lanes: int = 1,
    deadline_passed: Callable[[], bool] = lambda: False,
    settling: Callable[[str], bool] = lambda _account: False,
) -> dict[str, int]:
    """Pay (or fail) every due date that has come. See the module docstring. ``uids``: only
    these customers' orders (a scoped run on the emulator: scheduled.job_overrides).
    ``funds``: the run's (what the scheduled payments it submitted took). ``lanes``: orders
    worked on at a time, each payer's in order on one lane (fjordbank/service_layer/lanes.py).
    ``settling``: the accounts whose orders wait for a later run (the run before paid from
    them moments ago: fjordbank/service_layer/settling.py)."""
    now = clock()
    today = today_in_norway(now)
    funds = funds if funds is not None else RunFunds(docs)
    counts = {"submitted": 0, "waiting": 0, "failed": 0, "skipped": 0, "ended": 0, "errors": 0, "settling": 0}
    if not is_banking_day(today):  # what falls due today is paid on the next banking day
        log.info("standing orders: not a banking day", extra={"today": today.isoformat()})
        return counts
    counting = threading.Lock()
    errors = FailureRow(errors_allowed(lanes), WORKED)
    broken = threading.Event()

    def one(found: Doc) -> None:
        try:
            if settling(str(found.data.get("fromAccount", ""))):
                outcomes = ["settling"]  # the run before paid from the account moments ago: a later run decides
            else:
                outcomes = _run_order(docs, publisher, found, today, now, bank_regs, funds)
        except Exception:  # one order's failure is that order's; the others are paid
            # an order that failed (a Firestore timeout after the client's retries, a bug
            # in one document) stopped every lane and the run, and every order after it
            # waited for the next run (found in review, 2026-12-06); it is decided again then
            log.exception("standing order not decided: left for the next run", extra={"path": found.path})
            outcomes = ["errors"]
        for outcome in outcomes:
            with counting:
                counts[outcome] += 1
                if errors.note(outcome):
                    broken.set()  # Firestore away, or a bug in every order: the run fails

    if in_lanes(
        due_orders(docs, today, limit, uids),
        key=lambda found: str(found.data.get("fromAccount", "")),
        work=one,
        lanes=lanes,
        deadline_passed=deadline_passed,
        stop=broken,
    ):
        counts["deferred"] = 1  # the orders not looked at wait for the next run
        log.warning("standing orders: this run's time is spent, the rest wait for the next", extra=counts)
    if broken.is_set():
        raise RuntimeError(
            f"standing orders: {errors.limit} failed one after the other; the run stops and the rest wait for "
            f"the next (counts {counts})"
        )
    log.info("standing orders run", extra=counts)
    return counts


def _run_order(
    docs: Documents,
    publisher: Publisher,
    found: Doc,
    today: dt.date,
    now: dt.datetime,
    bank_regs: tuple[str, ...],
    funds: RunFunds,
) -> list[str]:
    """One due order's outcomes: its due dates decided, up to MAX_DATES_PER_RUN."""
    outcomes: list[str] = []
    order: dict[str, Any] | None = found.data
    # a date failed after its tries moves the order on, and the next may have come too
    # (a weekly order in an Easter week): that one is tried today, not on the next run
    for _ in range(MAX_DATES_PER_RUN):
        if order is None or order.get("status") != rules.ACTIVE or not order.get("nextDue"):
            break
        due = dt.date.fromisoformat(order["nextDue"])
        if due > today:
            break
        if rules.tried_lately(order, due, now):
            # waited for funds a moment ago: decided again by a run RETRY_WAIT later, not by
            # every run of a chain (each an account read and a transaction, and one more
            # attempt shown to the customer: found in review, 2026-12-06)
            outcomes.append("skipped")
            break
        decision = _decide(docs, order, due, today, bank_regs, funds)
        # counted before the claim: a claim whose commit landed and whose answer was lost
        # raises, and the payer's next payment was then decided on money this one took
        # (found in review, 2026-12-06); a claim that did not happen gives it back
        paying = decision.action == "submit"
        if paying:
            funds.submitted(order["fromAccount"], order["amount"])
        try:
            outcome = _claim(docs, publisher, found.path, order, due, decision, now)
        except Contention:
            # every attempt lost to a concurrent run of the job, which has it in hand
            log.warning("standing order contended; left to the other run", extra={"order_id": order["orderId"]})
            outcome = "skipped"
        if paying and outcome != "submitted":
            funds.submitted(order["fromAccount"], -order["amount"])
        outcomes.append(outcome)
        # on only after a failed date: a date submitted has reserved nothing yet (the
        # ledger books it from its event), so the next one decided now would be judged
        # on money already spent; a job away for days pays one date a run, as before
        if outcome != "failed":
            break
        moved = docs.get(found.path)
        order = None if moved is None else moved.data
    return outcomes


def _decide(
    docs: Documents,
    order: dict[str, Any],
    due: dt.date,
    today: dt.date,
    bank_regs: tuple[str, ...],
    funds: RunFunds,
) -> rules.Decision:
    """Submit, wait or fail this due date: the funds (what this run left) and the accounts
    as they are now. A payee's account closed or gone fails it whatever the payer's state
    (and ends the order, `rules.ENDS_ORDER`): checked only on submitting, an order into a
    closed account from an account short of money or frozen failed every month for ever."""
    if not _confirming_keys_kept(docs, order):
        return rules.Decision("fail", rules.KEY_REVOKED)
    available, status = funds.available(order["fromAccount"])
    decision = rules.decide(
        due=due,
        today=today,
        available=available,
        amount=order["amount"],
        account_status=status,
        following=_following(order, due),
        waited=rules.waited_on(order, due),
    )
    try:  # the payee's account may have closed since the order was made
        if decision.action == "submit":
            edge.check_accounts(docs, order["uid"], order["fromAccount"], order["toAccount"], bank_regs)
        else:
            edge.check_payee(docs, order["toAccount"], bank_regs)
    except PaymentRejected as exc:
        decision = rules.Decision("fail", exc.code)
    return decision


def _confirming_keys_kept(docs: Documents, order: dict[str, Any]) -> bool:
    """Whether every device key the order was confirmed with (`CONFIRMED_BY`) is still the
    customer's: a revoked key's document is gone (fjordbank/service_layer/sca.py,
    revoke_key, reopen_enrolment). One read for all of them; none for an order that needed
    no confirmation."""
    keys = order.get(CONFIRMED_BY)
    if not isinstance(keys, list) or not keys:
        return True
    paths = [key_path(order["uid"], {"keyId": k}) for k in keys if isinstance(k, str)]
    return all(found is not None for found in docs.get_many(paths).values())


def _claim(
    docs: Documents,
    publisher: Publisher,
    path: str,
    order: dict[str, Any],
    due: dt.date,
    decision: rules.Decision,
    now: dt.datetime,
) -> str:
    """One unit of work: the due date is still the order's next one (else another run took
    it), the order moves on, and the payment's event is staged. Then it is published."""
    payment = occurrence(order, due, now)
    if decision.action == "submit":
        event = PaymentEvent(payment, "requested")
    else:
        told = (
            "the standing order has ended"
            if decision.reason in rules.ENDS_ORDER
            else "the standing order could not be paid"
        )
        event = PaymentEvent(payment, "failed", reason=decision.reason, message=told)
    staged = outbox.Event(event.subject, event.to_json(), event.msg_id)

    def run(uow: UnitOfWork) -> str:
        found = uow.get(path)
        current = {} if found is None else found.data
        if current.get("status") != rules.ACTIVE or current.get("nextDue") != due.isoformat():
            return "skipped"
        if current.get("endDate") and due.isoformat() > current["endDate"]:
            # an order stored with its next due date past its end (before changes were
            # checked against it): it has ended, and this date is not paid
            uow.update(path, {"status": rules.ENDED, "nextDue": None, "waiting": DELETE_FIELD, "updatedAt": now})
            return "ended"
        if _terms(current) != _terms(order):
            return "skipped"  # changed since it was read and decided on: the next run decides again
        if decision.action == "wait":
            uow.update(
                path, {"waiting": rules.waiting(current, due, decision.reason, _following(current, due), at=now)}
            )
            return "waiting"
        uow.update(path, _moved_on(current, due, payment, decision, now))
        outbox.stage(uow, staged)  # stagedAt: the machine's time
        return "submitted" if decision.action == "submit" else "failed"

    outcome = docs.transact(run, operation="standing_orders_claim")
    if outcome in ("submitted", "failed"):
        outbox.deliver(docs, publisher, [staged])
        log.info(
            "standing order due date claimed",
            extra={"order_id": order["orderId"], "due": due.isoformat(), "outcome": outcome, "reason": decision.reason},
        )
    return outcome


def _terms(order: dict[str, Any]) -> tuple[Any, ...]:
    """What a due date's payment and its decision are made of (`occurrence`, `_decide`)."""
    return tuple(order.get(k) for k in ("amount", "currency", "fromAccount", "toAccount", "kind", "message", "kid"))


def _following(order: dict[str, Any], due: dt.date) -> dt.date | None:
    """The order's due date after ``due`` (None when it ends with ``due``)."""
    return rules.next_due(
        order["frequency"],
        due,
        anchor_day=int(order.get("anchorDay", due.day)),
        end=dt.date.fromisoformat(order["endDate"]) if order.get("endDate") else None,
    )


def _moved_on(
    current: dict[str, Any], due: dt.date, payment: PaymentRequested, decision: rules.Decision, now: dt.datetime
) -> dict[str, Any]:
    """The order's change once a due date is paid or failed: the next due date (or ended),
    the run recorded, no longer waiting."""
    following = _following(current, due) if decision.reason not in rules.ENDS_ORDER else None
    run_record = {
        "date": due.isoformat(),
        "paymentId": payment.payment_id,
        "status": "submitted" if decision.action == "submit" else "failed",
        "reason": decision.reason,
    }
    return {
        "nextDue": following.isoformat() if following else None,
        "status": rules.ACTIVE if following else rules.ENDED,
        **({"endedReason": decision.reason} if decision.reason in rules.ENDS_ORDER else {}),
        "lastRun": run_record,
        "runs": [*current.get("runs", []), run_record][-rules.MAX_HISTORY :],
        "waiting": DELETE_FIELD,
        "updatedAt": now,
    }
