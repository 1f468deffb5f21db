"""Standing orders' terms, due dates and the job's decision, without I/O."""

from __future__ import annotations

import datetime as dt

import pytest

from fjordbank.domain import standing_orders as so
from fjordbank.domain.norway import next_banking_day
from fjordbank.domain.payments import PaymentRejected

TODAY = dt.date(2026, 11, 26)
BODY = {
    "orderId": "order-0001",
    "fromAccount": "1234.56.78903",
    "toAccount": "86011117947",
    "amount": 10_000,
    "frequency": "monthly",
    "startDate": "2027-01-31",
}


def test_terms_are_checked_as_a_payment_and_normalised():
    terms = so.parse_terms({**BODY, "endDate": "2027-12-31", "message": "Husleie"}, today=TODAY)
    assert terms.payment.from_account == "12345678903" and terms.payment.amount == 10_000
    assert (terms.frequency, terms.start_date, terms.end_date) == (
        "monthly",
        dt.date(2027, 1, 31),
        dt.date(2027, 12, 31),
    )


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"frequency": "daily"}, "invalid_frequency"),
        ({"startDate": "2026-11-25"}, "start_date_in_past"),
        ({"startDate": "31.01.2027"}, "invalid_start_date"),
        ({"startDate": "2027-02-30"}, "invalid_start_date"),
        ({"endDate": "2027-01-30"}, "end_before_start"),
        ({"endDate": "2040-01-01"}, "end_date_too_far"),
        ({"amount": 1.5}, "invalid_amount"),
        ({"toAccount": "12345678900"}, "invalid_to_account"),
        ({"orderId": "x"}, "invalid_order_id"),
        ({"status": "active"}, "unknown_field"),
        ({"kid": "1234567890128", "message": "both"}, "kid_and_message"),
    ],
)
def test_bad_terms_are_refused_with_their_reason(change, code):
    with pytest.raises(PaymentRejected) as refused:
        so.parse_terms({**BODY, **change}, today=TODAY)
    assert refused.value.code == code


@pytest.mark.parametrize(
    ("today", "last"),
    [
        (dt.date(2027, 3, 1), dt.date(2037, 3, 1)),  # three leap days between: 3,653 days
        (dt.date(2026, 11, 26), dt.date(2036, 11, 26)),
        (dt.date(2028, 2, 29), dt.date(2038, 2, 28)),
    ],
)
def test_dates_reach_the_same_day_ten_years_on_and_no_further(today, last):
    """Counted as 3,652 days, an order ending the same day ten years on was refused
    whenever those years held three leap days (found in review, 2026-12-06)."""
    assert so.horizon(today) == last
    terms = so.parse_terms({**BODY, "startDate": today.isoformat(), "endDate": last.isoformat()}, today=today)
    assert terms.end_date == last
    with pytest.raises(PaymentRejected) as refused:
        so.parse_terms(
            {**BODY, "startDate": today.isoformat(), "endDate": (last + dt.timedelta(days=1)).isoformat()}, today=today
        )
    assert refused.value.code == "end_date_too_far"


def test_a_monthly_order_keeps_its_day_or_takes_the_months_last():
    due, dates = dt.date(2027, 1, 31), []
    for _ in range(4):
        dates.append(due)
        due = so.next_due("monthly", due, anchor_day=31, end=None)
    assert dates == [dt.date(2027, 1, 31), dt.date(2027, 2, 28), dt.date(2027, 3, 31), dt.date(2027, 4, 30)]
    assert so.next_due("monthly", dt.date(2028, 1, 31), anchor_day=31, end=None) == dt.date(2028, 2, 29)


def test_weekly_and_the_end_date():
    assert so.next_due("weekly", TODAY, anchor_day=26, end=None) == TODAY + dt.timedelta(days=7)
    assert so.next_due("weekly", TODAY, anchor_day=26, end=TODAY + dt.timedelta(days=6)) is None
    assert so.next_due("monthly", TODAY, anchor_day=26, end=dt.date(2026, 12, 26)) == dt.date(2026, 12, 26)


def test_each_due_date_is_its_own_payment():
    a = so.occurrence_request_id("order-0001", dt.date(2027, 1, 31))
    b = so.occurrence_request_id("order-0001", dt.date(2027, 2, 28))
    assert a == "so-order-0001-20270131" and a != b


@pytest.mark.parametrize(
    ("due", "available", "status", "decision"),
    [
        (TODAY, 10_000, "open", so.Decision("submit")),
        (TODAY - dt.timedelta(days=3), 10_000, "open", so.Decision("submit")),  # after a job outage: paid late
        (TODAY, 9_999, "open", so.Decision("wait", "insufficient_funds")),
        # tried on its payment day and the 3 banking days after (Wed 25 Nov: until Mon 30)
        (TODAY - dt.timedelta(days=1), 9_999, "open", so.Decision("wait", "insufficient_funds")),
        # Fri 20 Nov: tried 20, 23, 24 and 25 Nov, and not covered by then
        (TODAY - dt.timedelta(days=6), 9_999, "open", so.Decision("fail", "insufficient_funds")),
        (TODAY, 10_000, "closed", so.Decision("fail", "account_closed")),
        (TODAY, 10_000, None, so.Decision("fail", "account_closed")),  # no such account
        # frozen under sanctions: this due date fails, the order is not ended by it
        (TODAY, 10_000, "frozen", so.Decision("fail", "account_frozen")),
        (TODAY, None, "open", so.Decision("fail", "account_closed")),
    ],
)
def test_what_the_job_does_with_a_due_date(due, available, status, decision):
    assert so.decide(due=due, today=TODAY, available=available, amount=10_000, account_status=status) == decision


@pytest.mark.parametrize(
    ("due", "last"),
    [
        (dt.date(2027, 4, 30), dt.date(2027, 5, 5)),  # Fri; Mon 3, Tue 4, Wed 5 May
        (dt.date(2027, 5, 1), dt.date(2027, 5, 7)),  # Sat: from Mon 3; Thu 6 is Ascension Day
        (dt.date(2027, 3, 24), dt.date(2027, 4, 1)),  # Wed before Easter: Tue 30, Wed 31, Thu 1
        (dt.date(2026, 12, 23), dt.date(2026, 12, 30)),  # Christmas Eve to the 27th; not New Year's Eve
    ],
)
def test_an_uncovered_payment_is_tried_on_four_banking_days(due, last):
    assert so.last_try_day(due) == last
    assert so.decide(due=due, today=last, available=0, amount=1, account_status="open") == so.Decision(
        "wait", "insufficient_funds"
    )
    after = next_banking_day(last + dt.timedelta(days=1))
    assert so.decide(due=due, today=after, available=0, amount=1, account_status="open") == so.Decision(
        "fail", "insufficient_funds"
    )
    assert so.decide(due=due, today=after, available=1, amount=1, account_status="open") == so.Decision("submit")
    # ... unless it waited already and was shown its last day: past it, it fails whatever came in
    assert so.decide(due=due, today=after, available=1, amount=1, account_status="open", waited=True) == (
        so.Decision("fail", "insufficient_funds")
    )
    assert so.decide(due=due, today=last, available=1, amount=1, account_status="open", waited=True) == (
        so.Decision("submit")
    )
