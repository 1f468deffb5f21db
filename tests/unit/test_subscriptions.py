"""Subscription detection on generated histories: a year of a customer's charges with
noise, price changes and a missed month; it must find the recurring merchants and
nothing else."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from fjordbank.domain.subscriptions import FOUR_WEEKLY, MONTHLY, WEEKLY, Charge, add_charge, detect

START = dt.date(2025, 12, 1)
END = dt.date(2026, 11, 25)


def _monthly(day: int, first: dt.date = START):
    d = dt.date(first.year, first.month, 1)
    while d <= END:
        try:
            yield d.replace(day=day)
        except ValueError:  # the 31st in a short month: the last day
            nxt = (d.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
            yield nxt - dt.timedelta(days=1)
        d = (d.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


class _History:
    """A customer's charges as they are generated: merchant -> charges, numbered in order,
    only those between START and END kept."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.charges: dict[str, list[Charge]] = {}
        self.n = 0

    def charge(self, merchant: str, day: dt.date, amount: int) -> None:
        if START <= day <= END:
            self.n += 1
            self.charges.setdefault(merchant, []).append(Charge(f"t{self.n}", day, amount))

    def jitter(self, day: dt.date) -> dt.date:  # card subscriptions are charged a day early or late now and then
        return day + dt.timedelta(days=self.rng.choice((0, 0, 0, -1, 1)))


def _subscriptions(h: _History) -> dict[str, tuple[str, int]]:
    """The recurring charges detection must find; returns merchant -> (interval, last amount)."""
    # Netflix: monthly on the 5th, the price goes up from 129 to 149 kr in June.
    for day in _monthly(5):
        h.charge("netflix", h.jitter(day), 12900 if day < dt.date(2026, 6, 1) else 14900)
    # Spotify: monthly on the 31st (the last day in short months), one missed month (a failed charge).
    missed = h.rng.randrange(3, 9)
    for i, day in enumerate(_monthly(31)):
        if i != missed:
            h.charge("spotify", day, 11900)
    h.charge("spotify", dt.date(2026, 3, 17), 50000)  # a gift card: a one-off at the same merchant
    # The gym: monthly on the 1st, paid by payment with a KID.
    for day in _monthly(1):
        h.charge("a:gym", day, 49900)
    # A digital newspaper: weekly on Mondays, 49 kr, started in the spring.
    day = dt.date(2026, 4, 6)
    while day <= END:
        h.charge("aftenposten", day, 4900)
        day += dt.timedelta(days=7)
    # A gym billed every four weeks (28 days), 399 kr, from a day in the first month.
    day = START + dt.timedelta(days=h.rng.randrange(0, 28))
    while day <= END:
        h.charge("sats", day, 39900)
        day += dt.timedelta(days=28)

    return {
        "netflix": (MONTHLY, 14900),
        "spotify": (MONTHLY, 11900),
        "a:gym": (MONTHLY, 49900),
        "aftenposten": (WEEKLY, 4900),
        "sats": (FOUR_WEEKLY, 39900),
    }


def _everyday_noise(h: _History) -> None:
    """Day-to-day spending that must not be found: groceries, coffee, shopping, eating out."""
    rng = h.rng
    day = START
    while day <= END:
        if rng.random() < 0.45:  # groceries: several times a week, any amount
            h.charge(rng.choice(("rema-1000", "kiwi", "coop-extra")), day, rng.randrange(4_000, 120_000))
        if rng.random() < 0.4:  # coffee: often, always about the same price
            h.charge("kaffebrenneriet", day, rng.choice((4200, 4500, 4900, 5200)))
        if rng.random() < 0.05:
            h.charge(rng.choice(("ikea", "elkjop", "xxl", "vinmonopolet")), day, rng.randrange(20_000, 800_000))
        if rng.random() < 0.08:
            h.charge(rng.choice(("peppes-pizza", "egon", "sushi-bar")), day, rng.randrange(25_000, 120_000))
        day += dt.timedelta(days=1)


def _almost_recurring(h: _History) -> None:
    """Charges that look recurring but are not subscriptions: a regular day with an amount
    that varies, a similar amount at irregular intervals."""
    # Electricity: monthly, but the amount follows the weather.
    for day in _monthly(15):
        h.charge("a:electricity", day, h.rng.randrange(40_000, 300_000))
    # A parking app: a similar amount at irregular intervals.
    day = START
    while day <= END:
        h.charge("easypark", day, 3000)
        day += dt.timedelta(days=h.rng.randrange(9, 24))


def generate_year(seed: int) -> tuple[dict[str, list[Charge]], dict[str, tuple[str, int]]]:
    """merchant -> charges, and the subscriptions expected: merchant -> (interval, last amount)."""
    h = _History(seed)
    expected = _subscriptions(h)
    # Noise that must not be found.
    _everyday_noise(h)
    _almost_recurring(h)
    return h.charges, expected


@pytest.mark.parametrize("seed", range(25))
def test_a_year_of_history_yields_exactly_the_recurring_merchants(seed):
    charges, expected = generate_year(seed)
    found = {m: detect(c) for m, c in charges.items()}
    found = {m: s for m, s in found.items() if s is not None}
    assert set(found) == set(expected), {m: (s.interval, s.occurrences) for m, s in found.items()}
    for merchant, (interval, amount) in expected.items():
        assert found[merchant].interval == interval
        assert found[merchant].amount == amount


def test_figures_of_the_found_subscriptions():
    charges, _ = generate_year(1)
    netflix = detect(charges["netflix"])
    assert netflix.monthly_cost == 14900
    # the chain goes through the price change: the whole year, not only since June
    assert netflix.occurrences == 12
    assert netflix.first_date.month == 12 and netflix.first_date.year == 2025
    assert netflix.next_expected.month == 12 and netflix.next_expected.day in (4, 5, 6)
    paper = detect(charges["aftenposten"])
    assert paper.monthly_cost == (4900 * 52 + 6) // 12  # 52 weeks over 12 months
    assert paper.next_expected == paper.last_date + dt.timedelta(days=7)
    spotify = detect(charges["spotify"])
    assert spotify.occurrences == 10  # 31 Dec to 31 Oct less the missed month; not the gift card
    # every 28 days: 13 charges a year, the next four weeks on (it passed as monthly, at 12
    # a year and the next a month on: found in review, 2026-12-07)
    gym = detect(charges["sats"])
    assert gym.interval == FOUR_WEEKLY and gym.occurrences >= 12
    assert gym.monthly_cost == (39900 * 13 + 6) // 12
    assert gym.next_expected == gym.last_date + dt.timedelta(days=28)


def test_a_monthly_subscription_is_not_taken_for_a_four_weekly_one_nor_the_other_way():
    """Three charges 28 and 29 days apart fit both: a monthly one billed on the 31st moved
    off weekends (Saturday 31 January 2026 to Monday 2 February, Saturday 28 February to
    Monday 2 March, then 31 March) stays monthly; four charges 28 days apart are
    four-weekly from the fourth on (three: monthly until then)."""
    monthly = _charges(dt.date(2026, 2, 2), dt.date(2026, 3, 2), dt.date(2026, 3, 31))
    found = detect(monthly)
    assert found is not None and found.interval == MONTHLY
    every_28 = [dt.date(2026, 1, 5) + dt.timedelta(days=28 * i) for i in range(6)]
    assert detect(_charges(*every_28[:3])).interval == MONTHLY
    for n in range(4, 7):
        found = detect(_charges(*every_28[:n]))
        assert found is not None and (found.interval, found.occurrences) == (FOUR_WEEKLY, n)


def test_detection_follows_the_charges_as_they_arrive():
    charges, _ = generate_year(3)
    history: list[Charge] = []
    first_found = None
    for i, charge in enumerate(sorted(charges["netflix"], key=lambda c: c.date)):
        history = add_charge(history, charge)
        history = add_charge(history, charge)  # a redelivery adds nothing
        if detect(history) is not None and first_found is None:
            first_found = i + 1
    assert first_found == 3  # three monthly charges make a subscription
    assert len(history) == 12
    assert detect(history) == detect(charges["netflix"])


def test_two_charges_or_irregular_ones_are_not_a_subscription():
    d = dt.date(2026, 1, 10)
    assert detect([Charge("a", d, 9900), Charge("b", d + dt.timedelta(days=30), 9900)]) is None
    irregular = [Charge(str(i), d + dt.timedelta(days=x), 9900) for i, x in enumerate((0, 12, 50, 63, 110))]
    assert detect(irregular) is None


def test_a_big_price_jump_starts_a_new_subscription_once_the_new_price_is_established():
    d = dt.date(2026, 1, 10)
    months = [d.replace(year=2026 + (m - 1) // 12, month=(m - 1) % 12 + 1) for m in range(1, 13)]
    charges = [Charge(str(i), day, 9900 if i < 3 else 19900) for i, day in enumerate(months)]
    # doubled: not a price rise of the same product; three months at the new price could be a
    # variable bill, six make it a subscription again
    assert detect(charges[:6]) is None
    found = detect(charges[:9])
    assert found is not None and found.occurrences == 6 and found.first_date == months[3]


def _charges(*dates: dt.date, amount: int = 11_900) -> list[Charge]:
    return [Charge(f"t{i}", d, amount) for i, d in enumerate(dates)]


@pytest.mark.parametrize(
    ("last", "expected"),
    [(dt.date(2027, 2, 28), dt.date(2027, 3, 31)), (dt.date(2027, 4, 30), dt.date(2027, 5, 31))],
)
def test_a_subscription_billed_on_the_31st_is_next_expected_on_a_months_last_day(last, expected):
    billed = [dt.date(2026, 12, 31), dt.date(2027, 1, 31), dt.date(2027, 2, 28), dt.date(2027, 3, 31)]
    billed += [dt.date(2027, 4, 30)]
    found = detect(_charges(*[d for d in billed if d <= last]))
    assert found is not None and found.next_expected == expected


def test_a_charge_moved_into_the_next_month_off_a_weekend_is_the_months_before():
    """Billed on the 31st: Saturday 31 October 2026's charge came on Monday 2 November, and
    November's was expected on 31 December, a month skipped (found in review, 2026-12-06)."""
    found = detect(_charges(dt.date(2026, 7, 31), dt.date(2026, 8, 31), dt.date(2026, 9, 30), dt.date(2026, 11, 2)))
    assert found is not None and found.interval == "monthly" and found.next_expected == dt.date(2026, 11, 30)
    # billed on the 1st, a charge on a Monday 3rd is that month's (moved off Saturday the 1st)
    found = detect(_charges(dt.date(2025, 1, 1), dt.date(2025, 2, 3), dt.date(2025, 3, 3)))
    assert found is not None and found.next_expected == dt.date(2025, 4, 1)


def test_a_subscription_billed_on_the_30th_is_next_expected_on_the_30th_after_february():
    found = detect(_charges(dt.date(2026, 12, 30), dt.date(2027, 1, 30), dt.date(2027, 2, 28)))
    assert found is not None and found.next_expected == dt.date(2027, 3, 30)


@pytest.mark.parametrize(
    "dates",
    [
        # billed on the 31st, the March charge taken a day late (1 April)
        (dt.date(2026, 12, 31), dt.date(2027, 1, 31), dt.date(2027, 2, 28), dt.date(2027, 4, 1), dt.date(2027, 4, 30)),
        # billed on the 1st, the March charge taken a day early (28 February)
        (dt.date(2026, 12, 1), dt.date(2027, 1, 1), dt.date(2027, 2, 1), dt.date(2027, 2, 28), dt.date(2027, 4, 1)),
    ],
    ids=["31st-late-after-february", "1st-early-in-february"],
)
def test_a_charge_slipping_a_day_over_a_month_end_keeps_the_whole_subscription(dates):
    found = detect(_charges(*dates))
    assert found is not None and (found.interval, found.occurrences) == (MONTHLY, len(dates))


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        ((dt.date(2027, 4, 30), dt.date(2027, 5, 30), dt.date(2027, 6, 30)), dt.date(2027, 7, 30)),
        ((dt.date(2027, 9, 30), dt.date(2027, 10, 30), dt.date(2027, 11, 30)), dt.date(2027, 12, 30)),
        ((dt.date(2027, 2, 28), dt.date(2027, 3, 30), dt.date(2027, 4, 30)), dt.date(2027, 5, 30)),
        ((dt.date(2027, 1, 31), dt.date(2027, 2, 28), dt.date(2027, 3, 31)), dt.date(2027, 4, 30)),  # the 31st's
        ((dt.date(2027, 3, 31), dt.date(2027, 4, 30), dt.date(2027, 5, 31)), dt.date(2027, 6, 30)),
    ],
)
def test_a_subscription_billed_on_the_30th_is_expected_on_the_30th_and_one_on_the_31st_on_the_months_last(
    dates, expected
):
    """A charge on a month's last day counted as the 31st: after 30 April, 30 May and 30
    June the 31st out-voted the 30th, and 31 July was shown as the next charge (found in
    review)."""
    found = detect([Charge(f"t{i}", d, 11_900) for i, d in enumerate(dates)])
    assert found is not None and found.next_expected == expected


def test_a_charge_keeps_its_refunds_through_the_history_and_one_refunded_in_full_is_no_charge():
    charge = Charge("dup", dt.date(2026, 10, 9), 12_900).with_refund("rf-1", 2_900)
    assert Charge.from_dict(charge.to_dict()) == charge and not charge.refunded_in_full
    whole = charge.with_refund("rf-2", 10_000).with_refund("rf-2", 10_000)  # a refund noted again: once
    assert whole.refunds == (("rf-1", 2_900), ("rf-2", 10_000)) and whole.refunded_in_full
    again = add_charge([whole], Charge("dup", dt.date(2026, 10, 9), 12_900))  # the charge booked again
    assert again == [whole]
    monthly = [Charge(f"m{n}", dt.date(2026, month, 9), 12_900) for n, month in enumerate(range(7, 12))]
    # one purchase at the price beside the chain is one now and then (found in review,
    # 2026-12-06: it hid a subscription for as long as the history held it); two in five
    # months are frequent purchases, unless given back in full
    assert detect([*monthly, Charge("dup", dt.date(2026, 10, 9), 12_900)]) is not None
    second = Charge("dup-2", dt.date(2026, 8, 20), 12_900)
    assert detect([*monthly, Charge("dup", dt.date(2026, 10, 9), 12_900), second]) is None
    assert detect([*monthly, whole, second]) is not None


def test_a_month_given_back_in_full_is_still_a_month_of_the_subscription():
    """Found in review of the refunds change: dropping a charge refunded in full broke the
    chain (a chain of four allows no gap), and an outage credit took the subscription off."""
    months = [Charge(f"m{n}", dt.date(2026, month, 9), 12_900) for n, month in enumerate(range(7, 11))]
    given_back = [c.with_refund("rf", 12_900) if c.tx_id == "m2" else c for c in months]
    assert detect(months) is not None and detect(given_back) is not None


def test_charges_given_back_in_full_neither_vary_the_bill_take_the_chains_end_nor_make_one():
    """Found in the last review of the refunds change: a wrong plan charged and given back
    a month before read as a varying bill, refunded purchases after the last charge took
    every start of a chain, and charges all given back were listed."""

    def charge(tx: str, day: dt.date, amount: int, given_back: bool = False) -> Charge:
        c = Charge(tx, day, amount)
        return c.with_refund(f"r-{tx}", amount) if given_back else c

    months = [charge(x, dt.date(2026, m, 9), 12_900) for x, m in (("a", 6), ("b", 7), ("c", 8), ("d", 9))]
    assert detect([charge("w", dt.date(2026, 6, 9), 19_900, True), *months[1:]]) is not None
    bought = [
        charge(f"p{n}", dt.date(2026, 9, day), amount, True)
        for n, (day, amount) in enumerate(((12, 4_900), (15, 9_900), (20, 2_900)))
    ]
    assert detect([*months, *bought]) is not None
    assert detect([charge(c.tx_id, c.date, c.amount, True) for c in months[:3]]) is None


# ---- found in review (2026-12-06) -------------------------------------------------------------
def _at_prices(*prices: int, start: dt.date = dt.date(2025, 1, 5)) -> list[Charge]:
    days = [
        dt.date(start.year + (start.month - 1 + i) // 12, (start.month - 1 + i) % 12 + 1, 5) for i in range(len(prices))
    ]
    return [Charge(f"t{i}", day, price) for i, (day, price) in enumerate(zip(days, prices, strict=True))]


@pytest.mark.parametrize("intro", [1, 2])
def test_a_subscription_after_an_introductory_price_is_found(intro):
    """One or two months at an introductory price, then the price: the chain through the
    rise had too few charges at the old price, so the whole was refused, and the
    subscription stayed off the list for as long as the history held the first charges."""
    found = detect(_at_prices(*[9900] * intro, *[12900] * (24 - intro)))
    assert found is not None and found.amount == 12900 and found.occurrences == 24 - intro
    assert found.last_date == dt.date(2026, 12, 5) and found.next_expected == dt.date(2027, 1, 5)


def test_a_price_rise_shows_from_its_first_charge():
    """Three months at 99 kr, then 129: the list showed 99 kr, last charged in March and
    next expected in April (gone by) until three charges at the new price."""
    found = detect(_at_prices(9900, 9900, 9900, 12900))
    assert found is not None and (found.amount, found.last_date, found.next_expected) == (
        12900,
        dt.date(2025, 4, 5),
        dt.date(2025, 5, 5),
    )
    assert found.occurrences == 4 and found.first_date == dt.date(2025, 1, 5)


def test_a_second_rise_soon_after_the_first_leaves_the_subscription_findable():
    """99 kr, a month at 109, then 129: never found again while the history held the 109
    charge. Now a chain from the newest price, once long enough to stand out."""
    found = detect(_at_prices(*[9900] * 6, 10900, *[12900] * 24))
    assert found is not None and found.amount == 12900 and found.occurrences == 24


def test_one_purchase_at_the_price_does_not_hide_a_subscription():
    """24 months of 29 kr, and one 29 kr purchase in March: the subscription was off the
    list for as long as the history held the purchase (five years)."""
    found = detect([*_at_prices(*[2900] * 24), Charge("one-off", dt.date(2025, 3, 20), 2900)])
    assert found is not None and found.occurrences == 24


def test_a_charge_moved_off_a_weekend_counts_for_its_billing_day():
    """Billed on the 1st: 1 Feb and 1 Mar 2025 were Saturdays, charged on Monday the 3rd.
    The 3rd fitted as many charges as the 1st and won the tie: May's charge was expected
    on the 3rd."""
    days = (dt.date(2025, 1, 1), dt.date(2025, 2, 3), dt.date(2025, 3, 3), dt.date(2025, 4, 1))
    found = detect([Charge(f"t{i}", day, 9900) for i, day in enumerate(days)])
    assert found is not None and found.next_expected == dt.date(2025, 5, 1)
