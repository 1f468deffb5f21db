"""Subscriptions over the turn of the year: a charge billed on 31 December comes on the
first banking day of January (New Year's Eve and New Year's Day are no banking days: on
Monday 4 January 2027 after a Thursday 31 December), a monthly charge on the 31st through
February, and weekly charges through ISO week 53 (28 December 2026 is in week 53 of 2026)."""

from __future__ import annotations

import datetime as dt

import pytest

from fjordbank.domain.norway import next_banking_day
from fjordbank.domain.subscriptions import MONTHLY, WEEKLY, Charge, detect

D = dt.date


def _charges(*days: dt.date, amount: int = 9900) -> list[Charge]:
    return [Charge(f"t{i}", day, amount) for i, day in enumerate(days)]


def test_the_calendar_of_these_tests() -> None:
    # billed on the 31st in 2026/27: Saturday 31 October came on Monday 2 November,
    # Thursday 31 December (New Year's Eve, then New Year's Day and a weekend) on Monday
    # 4 January, Sunday 31 January on Monday 1 February
    assert next_banking_day(D(2026, 10, 31)) == D(2026, 11, 2)
    assert next_banking_day(D(2026, 12, 31)) == D(2027, 1, 4)
    assert next_banking_day(D(2027, 1, 31)) == D(2027, 2, 1)
    assert D(2026, 12, 28).isocalendar()[:2] == (2026, 53)


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        # three charges: the subscription was not found at all
        ((D(2026, 11, 2), D(2026, 11, 30), D(2027, 1, 4)), D(2027, 1, 31)),
        # four: it was found ending 30 November, next expected 31 December, a day gone by
        ((D(2026, 9, 30), D(2026, 11, 2), D(2026, 11, 30), D(2027, 1, 4)), D(2027, 1, 31)),
        # and January's, moved off Sunday the 31st, continues it
        ((D(2026, 9, 30), D(2026, 11, 2), D(2026, 11, 30), D(2027, 1, 4), D(2027, 2, 1)), D(2027, 2, 28)),
    ],
    ids=["three", "four", "five"],
)
def test_a_charge_billed_on_31_december_and_taken_on_4_january_continues_the_subscription(
    days: tuple[dt.date, ...], expected: dt.date
) -> None:
    """Billed on the 31st, December's charge came on the first banking day of January, four
    days later, one more than a monthly charge's tolerance: the chain broke there, and the
    subscription was listed as ending in November, or not at all (found in review,
    2026-12-06)."""
    found = detect(_charges(*days))
    assert found is not None
    assert (found.interval, found.occurrences) == (MONTHLY, len(days))
    assert (found.first_date, found.last_date, found.next_expected) == (days[0], days[-1], expected)


def test_a_charge_moved_over_easter_continues_the_subscription() -> None:
    """Billed on the 25th: Maundy Thursday 25 March 2027 came on Tuesday 30 March (five
    days), Sunday 25 April on Monday 26 April."""
    days = (D(2027, 1, 25), D(2027, 2, 25), D(2027, 3, 30), D(2027, 4, 26))
    assert next_banking_day(D(2027, 3, 25)) == days[2]
    found = detect(_charges(*days))
    assert found is not None and (found.interval, found.occurrences) == (MONTHLY, 4)
    assert found.next_expected == D(2027, 5, 25)


def test_a_charge_on_31_december_and_one_on_4_january_are_not_a_month_apart() -> None:
    assert detect(_charges(D(2026, 12, 31), D(2027, 1, 4))) is None
    assert detect(_charges(D(2026, 11, 30), D(2026, 12, 31), D(2027, 1, 4))) is None
    # monthly on the 4th from January: the charge on 31 December is none of it
    found = detect(_charges(D(2026, 12, 31), D(2027, 1, 4), D(2027, 2, 4), D(2027, 3, 4)))
    assert found is not None and (found.interval, found.occurrences) == (MONTHLY, 3)
    assert (found.first_date, found.next_expected) == (D(2027, 1, 4), D(2027, 4, 4))


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ((D(2026, 11, 30), D(2026, 12, 31), D(2027, 1, 31)), D(2027, 2, 28)),
        ((D(2026, 12, 31), D(2027, 1, 31), D(2027, 2, 28)), D(2027, 3, 31)),
        ((D(2027, 1, 31), D(2027, 2, 28), D(2027, 3, 31)), D(2027, 4, 30)),
        ((D(2027, 12, 31), D(2028, 1, 31), D(2028, 2, 29)), D(2028, 3, 31)),
        ((D(2028, 1, 31), D(2028, 2, 29), D(2028, 3, 31)), D(2028, 4, 30)),
    ],
)
def test_a_monthly_charge_on_the_31st_over_the_new_year_and_february(
    days: tuple[dt.date, ...], expected: dt.date
) -> None:
    found = detect(_charges(*days))
    assert found is not None and (found.interval, found.occurrences) == (MONTHLY, 3)
    assert found.next_expected == expected


@pytest.mark.parametrize("first", [D(2026, 12, 7), D(2026, 12, 14), D(2026, 12, 21), D(2026, 12, 28)])
def test_weekly_charges_through_iso_week_53(first: dt.date) -> None:
    days = tuple(first + dt.timedelta(weeks=n) for n in range(5))
    found = detect(_charges(*days, amount=4900))
    assert found is not None and (found.interval, found.occurrences) == (WEEKLY, 5)
    assert found.next_expected == days[-1] + dt.timedelta(weeks=1)
