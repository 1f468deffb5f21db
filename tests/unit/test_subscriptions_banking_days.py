"""Monthly subscriptions whose charges come on the next banking day when the billing day
is none: the move continues the chain, but it does not widen a month's tolerance. Only the
charge's own day is allowed ±3 days; a day before it that was no banking day (the day the
charge may have been billed on) is projected a month on exactly, to that day or to the
banking day it moves to (found in review, 2026-12-06: with ±3 days around every day before
a Monday or a Wednesday that was no banking day, charges 22 to 24 days apart made a month)."""

from __future__ import annotations

import calendar
import datetime as dt

import pytest

from fjordbank.domain.norway import is_banking_day, next_banking_day
from fjordbank.domain.subscriptions import MONTHLY, Charge, detect

D = dt.date


def _charges(*days: dt.date, amount: int = 9900) -> list[Charge]:
    return [Charge(f"t{i}", day, amount) for i, day in enumerate(days)]


def _billed(year: int, month: int, day: int) -> dt.date:
    """The billing day ``day`` in a month: the month's last day in a shorter month."""
    return D(year, month, min(day, calendar.monthrange(year, month)[1]))


@pytest.mark.parametrize(
    "days",
    [
        # 10 February 2025 is a Monday (8 and 9 February a weekend): 5 March, 23 days on
        (D(2025, 1, 10), D(2025, 2, 10), D(2025, 3, 5)),
        # 3 February 2025, a Monday: 26 February, 23 days on
        (D(2025, 1, 3), D(2025, 2, 3), D(2025, 2, 26)),
        # Tuesday 22 April 2025, after Easter (Easter Monday 21 April): 14 May, 22 days on
        (D(2025, 3, 21), D(2025, 4, 22), D(2025, 5, 14)),
    ],
    ids=["10-feb-5-mar", "3-feb-26-feb", "22-apr-14-may"],
)
def test_charges_22_to_24_days_apart_are_no_month(days: tuple[dt.date, ...]) -> None:
    """The first two charges are a month apart; the third, 22 or 23 days after the second,
    is not a month after it, and two charges are no subscription."""
    assert all(is_banking_day(day) for day in days)
    assert detect(_charges(*days)) is None


@pytest.mark.parametrize("billing_day", range(1, 32))
def test_charges_on_the_banking_day_after_their_billing_day_are_one_subscription(billing_day: int) -> None:
    """Billed on the same day of every month from January 2025 to December 2027, each
    charge taken on the billing day or the next banking day after it (weekends, Easter,
    Ascension and Whit Monday, 1 and 17 May, Christmas, New Year's Eve and Day): all 36
    are one subscription, and the next is expected on the billing day in January 2028."""
    months = [(2025 + n // 12, n % 12 + 1) for n in range(36)]
    days = [next_banking_day(_billed(year, month, billing_day)) for year, month in months]
    found = detect(_charges(*days))
    assert found is not None
    assert (found.interval, found.occurrences) == (MONTHLY, 36)
    assert (found.first_date, found.last_date) == (days[0], days[-1])
    assert found.next_expected == _billed(2028, 1, billing_day)


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        # billed on the 24th: Christmas Eve 2026 is a Thursday, the charge comes on Monday 28th
        ((D(2026, 10, 26), D(2026, 11, 24), D(2026, 12, 28), D(2027, 1, 25)), D(2027, 2, 24)),
        # billed on the 17th: Constitution Day 2027 is a Monday, the charge comes on Tuesday
        ((D(2027, 3, 17), D(2027, 4, 19), D(2027, 5, 18), D(2027, 6, 17)), D(2027, 7, 17)),
        # billed on the 1st: 1 May 2026 is a Friday, the charge comes on Monday 4 May
        ((D(2026, 3, 2), D(2026, 4, 1), D(2026, 5, 4), D(2026, 6, 1)), D(2026, 7, 1)),
        # billed on the 2nd: Maundy Thursday 2026 is 2 April, the charge comes on Tuesday 7 April
        ((D(2026, 2, 2), D(2026, 3, 2), D(2026, 4, 7), D(2026, 5, 4)), D(2026, 6, 2)),
    ],
    ids=["christmas-eve", "17-may", "1-may", "easter"],
)
def test_a_charge_moved_off_a_holiday_continues_the_subscription(days: tuple[dt.date, ...], expected: dt.date) -> None:
    found = detect(_charges(*days))
    assert found is not None
    assert (found.interval, found.occurrences) == (MONTHLY, len(days))
    assert found.next_expected == expected


def test_charges_that_fit_two_billing_days_alike_are_taken_as_billed_on_the_day_more_came_on() -> None:
    """Monday 1 December 2025, Friday 2 January 2026 and Monday 2 February 2026 fit billing
    on the 1st (New Year's Day a holiday, 1 February a Sunday) and on the 31st just as well
    (30 November, the month's last day, a Sunday; New Year's Eve and Day holidays; 31 January
    a Saturday). On such a tie the day more of the charges came on itself is taken (one on
    the 1st, none on the 31st), so the next charge is expected on 1 March (a Sunday, taken
    on Monday 2 March), not on 28 February. Until 2026-12-07 the later day was taken, which
    put a card's charges on the 2nd three months running on the 31st (the next test). This
    documents the choice: three charges cannot tell the two apart, the next one settles it."""
    days = (D(2025, 12, 1), D(2026, 1, 2), D(2026, 2, 2))
    assert [next_banking_day(_billed(y, m, 1)) for y, m in ((2025, 12), (2026, 1), (2026, 2))] == list(days)
    assert [next_banking_day(_billed(y, m, 31)) for y, m in ((2025, 11), (2025, 12), (2026, 1))] == list(days)
    found = detect(_charges(*days))
    assert found is not None and (found.interval, found.occurrences) == (MONTHLY, 3)
    assert found.next_expected == D(2026, 3, 1)


def test_card_charges_on_the_same_day_three_months_running_are_expected_on_that_day() -> None:
    """Card charges on 2 January, 2 February and 2 March 2026 fit billing on the 31st as
    well (31 December a holiday, 31 January and 28 February Saturdays, each moved to the
    2nd), and the tie went to the 31st: the next was expected on 31 March, in the month of
    the last charge (found in review, 2026-12-07)."""
    found = detect(_charges(D(2026, 1, 2), D(2026, 2, 2), D(2026, 3, 2)))
    assert found is not None and found.interval == MONTHLY and found.next_expected == D(2026, 4, 2)


def test_a_weekly_order_paid_on_the_banking_day_after_christmas_and_new_years_eve_stays_one():
    """Every Wednesday from 5 November 2025: the 24 December charge comes on Monday the
    29th and New Year's Eve's on Friday 2 January. The chain broke there, and the order
    left the list for three weeks (found in review, 2026-12-07)."""
    from fjordbank.domain.subscriptions import WEEKLY

    due = [D(2025, 11, 5) + dt.timedelta(days=7 * n) for n in range(12)]
    days = [next_banking_day(day) for day in due]
    assert D(2025, 12, 29) in days and D(2026, 1, 2) in days
    found = detect(_charges(*days))
    assert found is not None and (found.interval, found.occurrences) == (WEEKLY, 12)
    five_days_on = _charges(D(2025, 12, 3), D(2025, 12, 10), D(2025, 12, 15), D(2025, 12, 22))
    assert detect(five_days_on) is None  # (a week is 6 to 8 days, or the next banking day)


def test_a_plan_moved_down_keeps_its_subscription_at_the_new_price():
    """149 kr on the 5th for six months, then 129 kr: taken as a rise only, the lower
    price broke the chain, the list showed 149 kr with a next date gone by and then lost
    the subscription for three months (found in review, 2026-12-07)."""
    days = [next_banking_day(D(2026, month, 5)) for month in range(1, 10)]
    charges = [Charge(f"t{i}", day, 14_900 if i < 6 else 12_900) for i, day in enumerate(days)]
    for seen in range(7, 10):
        found = detect(charges[:seen])
        assert found is not None and (found.amount, found.last_date) == (12_900, days[seen - 1]), seen


def test_a_weekly_charge_moved_off_a_holiday_is_expected_again_on_its_own_weekday() -> None:
    """Billed on Thursdays: Maundy Thursday 2 April 2026's charge came on Tuesday 7 April.
    The next was expected a week after the Tuesday (14 April), not on Thursday 9 April;
    four-weekly on Fridays, Good Friday 3 April's on 7 April, 5 May for 1 May (found in
    review, 2026-12-07)."""
    from fjordbank.domain.subscriptions import FOUR_WEEKLY, WEEKLY

    weekly = detect(_charges(D(2026, 3, 5), D(2026, 3, 12), D(2026, 3, 19), D(2026, 3, 26), D(2026, 4, 7)))
    assert weekly is not None and weekly.interval == WEEKLY and weekly.next_expected == D(2026, 4, 9)
    due = [D(2025, 12, 12) + dt.timedelta(days=28 * n) for n in range(5)]
    four = detect(_charges(*(next_banking_day(d) for d in due)))
    assert four is not None and four.interval == FOUR_WEEKLY and four.next_expected == D(2026, 5, 1)


def test_a_subscription_that_ended_before_the_merchants_newest_charge_is_none() -> None:
    """Twelve monthly charges in 2024, then one purchase from the merchant in June 2026:
    the subscription was listed again, active, next charge expected January 2025 (found in
    review, 2026-12-07)."""
    from fjordbank.domain.standing_orders import add_months

    ended = [Charge(f"n{i}", add_months(D(2024, 1, 15), i, anchor_day=15), 12900) for i in range(12)]
    assert detect(ended) is not None
    assert detect([*ended, Charge("shop", D(2026, 6, 3), 45000)]) is None
    # a purchase before the next charge was due, or with one charge missed, does not end it
    assert detect([*ended, Charge("shop", D(2025, 1, 3), 45000)]) is not None
    assert detect([*ended, Charge("shop", D(2025, 2, 10), 45000)]) is not None


def test_a_subscription_lapses_after_the_last_day_a_charge_could_still_continue_it() -> None:
    """``lapses_after``: one period on, or two with a charge missed, within the tolerance
    or moved to a banking day; a charge after it starts no chain with the old ones."""
    from fjordbank.domain.standing_orders import add_months
    from fjordbank.domain.subscriptions import lapses_after

    monthly = [Charge(f"m{i}", add_months(D(2026, 1, 15), i, anchor_day=15), 9900) for i in range(6)]
    found = detect(monthly)
    assert found is not None and found.lapses_after == D(2026, 8, 18)  # 15 August, ±3 days
    assert found.to_dict()["lapsesAfter"] == "2026-08-18"
    for day, continues in ((D(2026, 8, 18), True), (D(2026, 8, 19), False)):
        again = detect([*monthly, Charge("next", day, 9900)])
        assert (again is not None and again.occurrences == 7) is continues, day
    weekly = [D(2026, 3, 5) + dt.timedelta(days=7 * n) for n in range(5)]
    assert lapses_after(weekly[-1], "weekly") == weekly[-1] + dt.timedelta(days=15)


def test_a_four_weekly_subscription_that_ended_is_not_listed_again_as_a_monthly_one() -> None:
    """Every 28 days to 29 May 2026, then one purchase two months on: the four-weekly chain
    had ended, and the same charges passed as a monthly one, listed at 199 kr a month with
    a next charge gone by (found in review, 2026-12-07)."""
    from fjordbank.domain.subscriptions import FOUR_WEEKLY

    days = [D(2026, 1, 9) + dt.timedelta(days=28 * k) for k in range(6)]
    found = detect(_charges(*days, amount=19900))
    assert found is not None and found.interval == FOUR_WEEKLY
    for gap in range(58, 70):
        assert (
            detect([*_charges(*days, amount=19900), Charge("shop", days[-1] + dt.timedelta(days=gap), 45000)]) is None
        )


def test_a_weekly_subscription_with_a_charge_missed_and_the_next_moved_off_a_holiday_stays_one() -> None:
    """Weekly on Thursdays to 19 March 2026, 26 March missed, Maundy Thursday's charge on
    Tuesday 7 April, 19 days on: `_periods` takes it, but no chain looked back that far, so
    the subscription was dropped at that charge (found in review, 2026-12-07); and every
    day it could still come on, a chain links it."""
    from fjordbank.domain.subscriptions import WEEKLY, lapses_after

    days = [D(2026, 2, 19) + dt.timedelta(days=7 * n) for n in range(5)]
    assert lapses_after(days[-1], WEEKLY) == D(2026, 4, 7)
    found = detect(_charges(*days, D(2026, 4, 7)))
    assert found is not None and found.interval == WEEKLY and found.occurrences == 6
    for last in (D(2025, 4, 3), D(2025, 12, 10), D(2026, 3, 19), D(2026, 12, 17)):
        weekly = [last - dt.timedelta(days=7 * n) for n in range(4, -1, -1)]
        then = lapses_after(last, WEEKLY)
        again = detect(_charges(*weekly, then))
        assert again is not None and again.occurrences == 6, (last, then)
