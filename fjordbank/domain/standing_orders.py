"""Standing orders (faste betalinger) and when their payments fall due, free of I/O.

A standing order pays the same payee the same amount weekly or monthly from a start date
until an end date (or until cancelled). Each due date is one payment whose id derives from
the order and the date (`occurrence_request_id`), so the job that submits due payments may
run any number of times, even concurrently: each date is paid at most once.

A monthly order falls due on its start date's day of the month (or, once its next due date
is moved, that date's day: `moved_anchor`), or on the month's last day when the month is
shorter (started on the 31st: 30 April, 28 or 29 February).

A payment is made on its due date's banking day: the date itself, or for a date on a
weekend, a public holiday, Christmas Eve or New Year's Eve, the next banking day
(`payment_day`, as Norwegian banks move such a date; rent due on Saturday 1 May is paid on
Monday 3 May, when the salary may have come). The due date itself stays the order's date,
so the next one keeps its day of the month, and the payment's id is the due date's. No
scheduled payment is made on a day that is not a banking day.

A payment the account cannot cover stays due for `TRY_BANKING_DAYS` banking days, its
banking day the first (`last_try_day`): the job tries it each time it runs on those days,
so the salary that comes on Monday still pays the rent due on Friday. Once the last of
them has passed, it fails (the customer is told) and the order moves on to its next date.
Norwegian banks keep an uncovered payment in their due register so (SpareBank 1: "the
payment stays in the due register for 4 days"; then it is listed as not made).
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from fjordbank.domain.norway import next_banking_day, today_in_norway
from fjordbank.domain.payments import BANK_REQUEST_PREFIX, PaymentRejected, PaymentRequest, parse_request

WEEKLY = "weekly"
MONTHLY = "monthly"
FREQUENCIES = (WEEKLY, MONTHLY)
ACTIVE = "active"
CANCELLED = "cancelled"
ENDED = "ended"
# A due date failed for one of these ends the order: an account does not reopen, so no
# later date could be paid (it was kept active and failed, and was told, every time).
# A device key the order was confirmed with revoked (KEY_REVOKED) ends it too: the customer
# had the device removed, or the bank reset every key, and confirms a new order if it is theirs.
KEY_REVOKED = "sca_key_revoked"
ENDS_ORDER = frozenset({"account_closed", "to_account_closed", "unknown_account", "unknown_to_account", KEY_REVOKED})
ORDER_ID = re.compile(r"(?!__.*__$)[A-Za-z0-9_-]{8,40}")
MAX_YEARS = 10  # an end date at most this far ahead (and an order without one runs until cancelled)
MAX_HISTORY = 24  # runs kept on the order document

CREATE_FIELDS = frozenset(
    {
        "orderId",
        "fromAccount",
        "toAccount",
        "payeeName",
        "amount",
        "message",
        "kid",
        "frequency",
        "startDate",
        "endDate",
        "sca",
    }
)
CHANGE_FIELDS = frozenset({"orderId", "amount", "endDate", "nextDue", "sca"})


def order_hash(body: dict[str, Any]) -> str:
    """Fingerprint of a new order's fields but its confirmation: the order id is the
    client's idempotency key, so the same id with another frequency or other dates is
    another order, not a repeat."""
    canonical = {k: body[k] for k in sorted(CREATE_FIELDS - {"sca"}) if k in body}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class OrderTerms:
    payment: PaymentRequest  # what each due date pays (its due_date: the start date)
    frequency: str
    start_date: dt.date
    end_date: dt.date | None


def parse_date(value: object, code: str) -> dt.date:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise PaymentRejected(code, "dates are YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise PaymentRejected(code, "dates are YYYY-MM-DD") from None


def parse_order_id(value: object) -> str:
    if not isinstance(value, str) or not ORDER_ID.fullmatch(value):
        raise PaymentRejected("invalid_order_id", "orderId must be 8-40 letters, digits, '-' or '_'")
    return value


def parse_terms(body: dict[str, Any], *, today: dt.date) -> OrderTerms:
    """A new standing order's terms; the payment fields are checked as for any payment."""
    if not isinstance(body, dict):
        raise PaymentRejected("malformed_request", "the request is not an object")
    unknown = set(body) - CREATE_FIELDS
    if unknown:
        raise PaymentRejected("unknown_field", f"unknown field(s): {', '.join(sorted(unknown))}")
    frequency = body.get("frequency")
    if frequency not in FREQUENCIES:
        raise PaymentRejected("invalid_frequency", f"frequency must be one of {', '.join(FREQUENCIES)}")
    start = parse_date(body.get("startDate"), "invalid_start_date")
    if start < today:
        raise PaymentRejected("start_date_in_past", "startDate is before today")
    end = None if body.get("endDate") is None else parse_date(body["endDate"], "invalid_end_date")
    if end is not None and end < start:
        raise PaymentRejected("end_before_start", "endDate is before startDate")
    check_horizon(end or start, today=today)
    payment_fields: dict[str, Any] = {
        k: body[k] for k in ("fromAccount", "toAccount", "payeeName", "amount", "message", "kid", "sca") if k in body
    }
    request = parse_request(
        {"v": 1, "currency": "NOK", **payment_fields}, request_id=parse_order_id(body.get("orderId")), today=today
    )
    return OrderTerms(request, frequency, start, end)


def horizon(today: dt.date) -> dt.date:
    """The last date an order's dates may name: the same day `MAX_YEARS` years on (28
    February for 29 February). Counted in days (365 * 10 + 2) it was a day short whenever
    the ten years held three leap days."""
    return add_months(today, 12 * MAX_YEARS, anchor_day=today.day)


def check_horizon(day: dt.date, *, today: dt.date) -> None:
    """Raises `PaymentRejected` (end_date_too_far) for a date past `horizon`: a new order's
    start or end, and a change's next due date or end date alike."""
    if day > horizon(today):
        raise PaymentRejected("end_date_too_far", f"dates at most {MAX_YEARS} years ahead")


def add_months(day: dt.date, months: int, *, anchor_day: int) -> dt.date:
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(anchor_day, calendar.monthrange(year, month)[1]))


def moved_anchor(order: dict[str, Any], next_due: dt.date) -> int | None:
    """The order's new day of the month when its next due date is changed to ``next_due``
    (the schedule moves with it), or None when it stays: the same date sent back with
    another change, or the anchor's own day in a shorter month (an order on the 31st moved
    to 30 April keeps the 31st)."""
    if order.get("nextDue") == next_due.isoformat():
        return None
    anchor = int(order.get("anchorDay") or next_due.day)
    if next_due.day == min(anchor, calendar.monthrange(next_due.year, next_due.month)[1]):
        return None
    return next_due.day


def next_due(frequency: str, after: dt.date, *, anchor_day: int, end: dt.date | None) -> dt.date | None:
    """The due date following ``after`` (None when the order has ended by then)."""
    following = after + dt.timedelta(days=7) if frequency == WEEKLY else add_months(after, 1, anchor_day=anchor_day)
    return None if end is not None and following > end else following


def occurrence_request_id(order_id: str, due: dt.date) -> str:
    """The payment of one due date: stable, so the payment id is too."""
    return f"{BANK_REQUEST_PREFIX}{order_id}-{due:%Y%m%d}"


def waited_on(current: dict[str, Any], due: dt.date) -> bool:
    """Whether a payment (a scheduled request, a standing order) waited for funds on ``due``
    already (`waiting` recorded for that date)."""
    before = current.get("waiting")
    return isinstance(before, dict) and before.get("date") == due.isoformat()


def waiting(
    current: dict[str, Any],
    due: dt.date,
    reason: str | None,
    following: dt.date | None = None,
    *,
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """What a payment waiting for funds on its due date shows: one more attempt (counted
    for this due date: a wait recorded for another date starts again), and the last day it
    is tried on (``until``: the app can say "we try again until Monday"; ``following`` as
    for `last_try_day`); ``at``: when it was tried (`tried_lately`)."""
    before = current.get("waiting") or {}
    attempts = (int(before.get("attempts", 0)) if before.get("date") == due.isoformat() else 0) + 1
    until = last_try_day(due, following)
    shown = {"date": due.isoformat(), "attempts": attempts, "reason": reason, "until": until.isoformat()}
    return shown if at is None else {**shown, "at": at}


# How long a payment that waited for funds rests before a run decides it again. The job ran
# every 15 minutes and tried it at each run; a run now goes on at once in the next when it
# runs out of time (fjordbank.service_layer.scheduled.continuation), and a few customers'
# hundreds of uncovered payments, decided again at every run, took every run's time: the
# covered payments due behind them were never reached (found in review, 2026-12-06).
# Thirty minutes: a chain's runs come a few minutes apart, and the payments that waited, read
# first (the query's order is by due date), are then passed over by several runs in turn.
RETRY_WAIT = dt.timedelta(minutes=30)


def tried_lately(current: dict[str, Any], due: dt.date, now: dt.datetime) -> bool:
    """Whether the payment due on ``due`` waited for funds less than RETRY_WAIT ago, and
    rests. Never within RETRY_WAIT of the end of the last day it is tried on (`waiting`'s
    ``until``, in Norway): the job's last run of that day decides it. A rest that ran past
    midnight left money paid in at 23:40 on the day the app showed unused, and the payment
    failed at the next day's first run (found in review, 2026-12-07). Money in after the
    last run of that day (the job runs every 15 minutes) comes too late."""
    before = current.get("waiting") or {}
    at = before.get("at")
    today = today_in_norway(now)
    if before.get("until") == today.isoformat() and today_in_norway(now + RETRY_WAIT) != today:
        return False
    # an ``at`` ahead of ``now`` (a run on a clock moved forward, on the emulator) is no rest
    return (
        before.get("date") == due.isoformat()
        and isinstance(at, dt.datetime)
        and dt.timedelta(0) <= now - at < RETRY_WAIT
    )


@dataclass(frozen=True)
class Decision:
    action: str  # submit | wait | fail
    reason: str | None = None


def payment_day(due: dt.date) -> dt.date:
    """The day a payment due on ``due`` is made: its banking day (the date, or the next
    banking day after a weekend or holiday)."""
    return next_banking_day(due)


# The banking days an uncovered payment is tried on, its payment day the first.
TRY_BANKING_DAYS = 4


def last_try_day(due: dt.date, following: dt.date | None = None) -> dt.date:
    """The last banking day a payment due on ``due`` is tried on while it is not covered.

    ``following``: a standing order's next due date. The window then ends before that
    date's payment day (never before its own): a weekly order's window in an Easter or
    Christmas week would run into the next date's, which, worked one date at a time, would
    wait untried on its own days and keep only what was left of them."""
    day = payment_day(due)
    for _ in range(TRY_BANKING_DAYS - 1):
        later = next_banking_day(day + dt.timedelta(days=1))
        if following is not None and later >= payment_day(following):
            break
        day = later
    return day


def decide(
    *,
    due: dt.date,
    today: dt.date,
    available: int | None,
    amount: int,
    account_status: str | None,
    following: dt.date | None = None,
    waited: bool = False,
) -> Decision:
    """What the job, run on the banking day ``today``, does with a payment due on ``due``
    (≤ today; its `payment_day` ≤ today then too).

    Covered: submit. Not covered on its payment day or the banking days it is tried on
    after it (`last_try_day`, ``following`` a standing order's next due date): wait for the
    job's next run. Not covered once those have passed (or the account is closed): fail.
    ``account_status``: the from-account's (None: no such account); a frozen one fails
    this due date only (`ENDS_ORDER` does not name it: the order goes on if the freeze is lifted).
    ``waited``: the payment waited for funds on this due date already, and the customer was
    shown the last day it is tried (`waiting`'s ``until``): past it, it fails whatever came
    in since. The job decides it next on the next banking day, and money in meanwhile paid
    it days after that (after Easter, say), where the customer who read "we try until
    Wednesday" had paid another way (found in review, 2026-12-07). One that never waited
    (the job was away on its days) is still paid when covered."""
    if account_status == "frozen":
        return Decision("fail", "account_frozen")
    if account_status != "open" or available is None:
        return Decision("fail", "account_closed")
    if waited and last_try_day(due, following) < today:
        return Decision("fail", "insufficient_funds")
    if available >= amount:
        return Decision("submit")
    if last_try_day(due, following) >= today:
        return Decision("wait", "insufficient_funds")
    return Decision("fail", "insufficient_funds")
