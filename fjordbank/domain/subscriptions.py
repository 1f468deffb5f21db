"""Recurring charges (subscriptions) found in one merchant's charges, free of I/O.

A subscription is a chain of charges from the same merchant (or to the same payee) at a
regular interval, weekly, every four weeks or monthly, with a similar amount:

- interval: consecutive charges of the chain are one period apart (monthly: the same day
  of the month ±3 days, weekly: 7 ±1 days, four-weekly: 28 ±1 days), or two periods apart
  once in a while (a missed month: at most one gap in four);
- amount: consecutive charges within 5 % of each other, except one price rise of at most
  35 % (a streaming service raising its price) after at least three charges at the old
  price (shown at the new price from its first charge on); a chain whose old price has
  fewer (an introductory price, or a second rise soon after the first) is taken from its
  newest price on, as a chain of its own;
- length: at least 3 monthly, or 4 four-weekly or weekly charges;
- it stands out: other charges from the merchant within 15 % of the chain's price inside
  the chain's span (two, and one for every four charges of the chain) mean frequent
  purchases of about the same price (a daily coffee), not a subscription (one such
  purchase hid a two-year subscription for as long as the history held it); and where
  the chain is under half of the merchant's charges in its span (a shop the customer
  also buys in), it takes six charges at one exact price. A one-off purchase of a
  clearly different amount in between is ignored. A bill whose amount
  varies (electricity) that happens to be about the same three months running is not a
  subscription either: a charge one period before the chain at another price means the
  chain needs six charges.

The chain is searched backwards from each of the merchant's latest charges; the longest
wins. Detection is re-run on a merchant's history each time a charge arrives, so the list
follows price changes and new subscriptions as transactions come in.

A subscription ends when no charge continues it: after its ``lapses_after`` day (the last
day a charge could still come on, a charge missed included) it is no longer counted
(the app compares the day with today: no job has to run for it), and a chain that ended
before the merchant's newest charge is none (a subscription stopped in 2024 was listed
again, as active, at one purchase from the merchant in 2026: found in review, 2026-12-07).
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
from dataclasses import dataclass, replace
from typing import Any

from fjordbank.domain.norway import is_banking_day, next_banking_day

WEEKLY = "weekly"
FOUR_WEEKLY = "four-weekly"
MONTHLY = "monthly"
PERIODS = {
    # interval -> (days for one period, tolerance in days, minimum chain length); a monthly
    # charge is expected on the same day of the month (the last day in a shorter month)
    MONTHLY: (30.44, 3, 3),
    WEEKLY: (7.0, 1, 4),
    # billed every 28 days (gyms, some newspapers and streaming plans): such a chain also
    # passes as monthly (its day of the month drifts 2 or 3 days a month, inside the
    # monthly tolerance) and was listed so, at 12 charges a year where it takes 13 and
    # with its next charge a month on (found in review, 2026-12-07). A monthly chain
    # passes as this only by chance (its gaps of 30 and 31 days are outside 28 ±1 but
    # February's and some moved off a day that was no banking day: two gaps so in a row
    # happen, three hardly), so it takes four charges, and on a tie it is taken (`detect`)
    FOUR_WEEKLY: (28.0, 1, 4),
}
WEEKS = {WEEKLY: 1, FOUR_WEEKLY: 4}  # the intervals counted in weeks: the weeks of one period
CHARGES_A_YEAR = {WEEKLY: 52, FOUR_WEEKLY: 13}
SAME_AMOUNT = 0.05  # consecutive charges this close are "the same price"
NEAR_AMOUNT = 0.15  # a charge in between this close to the chain's price: frequent purchases
BUSY_MERCHANT_CHAIN = 6  # where the chain is under half the merchant's charges: this long, one exact price
MAX_PRICE_CHANGE = 0.35
MAX_SKIPPED_PERIODS = 2  # a gap of two periods (one missed charge) still continues the chain
HISTORY_LIMIT = 60  # charges kept per merchant: five years of a monthly subscription
START_CANDIDATES = 3  # the chain may end at any of the merchant's last three charges


@dataclass(frozen=True)
class Charge:
    tx_id: str
    date: dt.date
    amount: int  # øre, positive
    # The charge's category in "my economy" when the history keeps its item (fjordbank.domain.
    # economy_booking); None: its item is a document of its own. Detection ignores it.
    category: str | None = None
    # The merchant's refunds of it, (refund id, øre): one refunded in full (a charge made
    # twice by mistake, the second given back) is no charge to detection.
    refunds: tuple[tuple[str, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.tx_id, "date": self.date.isoformat(), "amount": self.amount}
        if self.category is not None:
            out["category"] = self.category
        if self.refunds:
            out["refunds"] = dict(self.refunds)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Charge:
        category, refunds = data.get("category"), data.get("refunds")
        return cls(
            data["id"],
            dt.date.fromisoformat(data["date"]),
            int(data["amount"]),
            category if isinstance(category, str) else None,
            tuple(sorted((str(k), v) for k, v in refunds.items() if type(v) is int))
            if isinstance(refunds, dict)
            else (),
        )

    @property
    def refunded_in_full(self) -> bool:
        return sum(amount for _, amount in self.refunds) >= self.amount

    def with_refund(self, refund_id: str, amount: int) -> Charge:
        """The charge with the refund noted (once: a refund given again changes nothing)."""
        return replace(self, refunds=tuple(sorted({**dict(self.refunds), refund_id: amount}.items())))

    @property
    def month(self) -> str:
        return self.date.isoformat()[:7]


@dataclass(frozen=True)
class Subscription:
    interval: str
    amount: int  # the latest charge, øre
    monthly_cost: int  # øre per month (a weekly one: 52 charges over 12 months, a four-weekly one 13)
    first_date: dt.date
    last_date: dt.date
    next_expected: dt.date
    occurrences: int
    # the last day a charge could still continue it (one missed charge included): after it,
    # with no charge since, the subscription has ended
    lapses_after: dt.date

    def to_dict(self) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "amount": self.amount,
            "monthlyCost": self.monthly_cost,
            "firstDate": self.first_date.isoformat(),
            "lastDate": self.last_date.isoformat(),
            "nextExpected": self.next_expected.isoformat(),
            "occurrences": self.occurrences,
            "lapsesAfter": self.lapses_after.isoformat(),
        }


def add_charge(history: list[Charge], charge: Charge) -> list[Charge]:
    """The history with ``charge`` in it once (by id), oldest first, the newest kept."""
    merged = {c.tx_id: c for c in history}
    before = merged.get(charge.tx_id)
    # a charge booked again keeps the refunds noted on it since
    merged[charge.tx_id] = replace(charge, refunds=before.refunds) if before is not None else charge
    return sorted(merged.values(), key=lambda c: (c.date, c.tx_id))[-HISTORY_LIMIT:]


def _similar(a: int, b: int, tolerance: float) -> bool:
    return abs(a - b) <= tolerance * max(a, b)


def _periods(earlier: dt.date, later: dt.date, interval: str) -> int | None:
    """How many whole periods lie between two charges (1 or 2), or None."""
    tolerance = PERIODS[interval][1]
    for k in range(1, MAX_SKIPPED_PERIODS + 1):
        if interval == MONTHLY:
            if _months_on(earlier, later, k, tolerance):
                return k
        elif _weeks_on(earlier, later, k * WEEKS[interval], tolerance):
            return k
    return None


def _weeks_on(earlier: dt.date, later: dt.date, weeks: int, tolerance: int) -> bool:
    """Whether a weekly (or four-weekly) charge on ``later`` is the one ``weeks`` weeks after ``earlier``: within
    the tolerance, or moved to the next banking day as the monthly ones are (`_months_on`).
    A weekly standing order's Christmas Eve charge came on 29 December and New Year's Eve's
    on 2 January, the chain broke and the order left the list for three weeks (found in
    review, 2026-12-07)."""
    week_on = [billed + dt.timedelta(days=7 * weeks) for billed in _billed_on(earlier)]
    return abs((later - week_on[0]).days) <= tolerance or any(later == next_banking_day(day) for day in week_on)


def _months_on(earlier: dt.date, later: dt.date, k: int, tolerance: int) -> bool:
    """Whether a monthly charge on ``later`` is the one ``k`` months after ``earlier``."""
    slips = [dt.timedelta(days=s) for s in range(-tolerance, tolerance + 1)]

    def projected(day: dt.date) -> set[dt.date]:
        # a charge may itself have slipped by up to the tolerance from its billing day: one
        # billed on the 31st taken on 28 Feb bills again on 31 Mar, not the 28th, and one
        # billed on the 1st taken on 28 Feb again on 1 Apr
        return {_add_months(day + slip, k) - slip for slip in slips}

    # the tolerance is kept around the earlier charge's own day only
    if any(abs((later - e).days) <= tolerance for e in projected(earlier)):
        return True
    # a monthly charge due on a day that is no banking day comes on the next that is:
    # billed on the 31st, Thursday 31 December 2026's came on Monday 4 January, four days
    # on, past the tolerance (the chain broke there, found in review, 2026-12-06). The
    # earlier charge may have been moved so too (`_billed_on`); from the day it was billed
    # on, only the day a month on (a month's last day in a shorter month) or the banking day
    # it moves to is the charge: with the tolerance around each day before the earlier
    # charge that was no banking day as well, charges 22 to 24 days apart made a month
    # (Monday 10 February 2025 and Wednesday 5 March, found in review, 2026-12-06)
    return any(later in (e, next_banking_day(e)) for billed in _billed_on(earlier) for e in projected(billed))


def _billed_on(day: dt.date) -> list[dt.date]:
    """The days a charge on ``day`` may have been billed on: ``day``, and each day of the
    week before it that was no banking day and moved to it (Easter: Maundy Thursday's
    charge comes on the Tuesday after)."""
    before = (day - dt.timedelta(days=n) for n in range(1, 8))
    return [day, *(b for b in before if not is_banking_day(b) and next_banking_day(b) == day)]


def _chain(charges: list[Charge], start: int, interval: str) -> list[Charge]:
    """The longest regular chain ending at ``charges[start]``, built backwards."""
    chain = [charges[start]]
    price_changed = False
    i = start
    while True:
        current = chain[-1]
        best: tuple[int, int] | None = None  # (periods, index)
        for j in range(i - 1, -1, -1):
            gap = (current.date - charges[j].date).days
            if gap > _reach(interval):
                break
            k = _periods(charges[j].date, current.date, interval)
            if k is None:
                continue
            earlier = charges[j].amount
            same = _similar(earlier, current.amount, SAME_AMOUNT)
            # one price change, up or down: taken as a rise only, a plan moved down (149 to
            # 129 kr) broke the chain, the list showed the old price with a next charge date
            # gone by and then dropped it for three months (found in review, 2026-12-07)
            changed = not price_changed and _similar(earlier, current.amount, MAX_PRICE_CHANGE)
            if (same or changed) and (
                best is None or k < best[0] or (k == best[0] and _instead(charges[j], charges[best[1]]))
            ):
                best = (k, j)
        if best is None:
            return chain
        j = best[1]
        if not _similar(charges[j].amount, current.amount, SAME_AMOUNT):
            price_changed = True
        chain.append(charges[j])
        i = j


def _regular(chain: list[Charge], interval: str) -> bool:
    """Long enough, missing a charge only now and then (one gap in four: a short chain
    never), and any price rise after a run of at least three charges at the old price
    (the new price counts from its first charge: the list shows a rise the month it
    comes, not two months later with the old price and a next charge date gone by)."""
    if len(chain) < PERIODS[interval][2]:
        return False
    gaps = [_periods(b.date, a.date, interval) for a, b in itertools.pairwise(chain)]
    if sum(1 for k in gaps if k and k > 1) > len(gaps) // 4:
        return False
    steps = _price_steps(chain)
    return not steps or len(chain) - steps[0] - 1 >= 3


def _price_steps(chain: list[Charge]) -> list[int]:
    """Where the price changes along the chain (newest first): i is between chain[i] and
    chain[i + 1]."""
    return [i for i, (a, b) in enumerate(itertools.pairwise(chain)) if not _similar(a.amount, b.amount, SAME_AMOUNT)]


def _at_newest_price(chain: list[Charge]) -> list[Charge]:
    """The chain from its newest price on: what is regular of a chain whose old price had
    too few charges (an introductory month or two, or a second rise soon after the first).
    Without it the whole chain failed, and the subscription was off the list for as long
    as the history held those charges (five years)."""
    steps = _price_steps(chain)
    return chain[: steps[0] + 1] if steps else chain


def _instead(candidate: Charge, chosen: Charge) -> bool:
    """Of two charges that continue the chain alike, one not refunded in full rather than
    one that was (a charge made twice by mistake, the second given back)."""
    return chosen.refunded_in_full and not candidate.refunded_in_full


def _stands_out(charges: list[Charge], chain: list[Charge], interval: str) -> bool:
    """Nothing of about the chain's price in between; the chain is most of the merchant's
    charges in its span (else: a long chain at one exact price); and it is no lull in a
    bill whose amount varies (a charge one period before it at another price: then it
    takes a long chain)."""
    ids = {c.tx_id for c in chain}
    first, last = chain[-1], chain[0]
    amounts = [c.amount for c in chain]
    # a charge refunded in full beside the chain is none (a duplicate given back); in the
    # chain it still counts (a month given back after an outage is still a month billed)
    others = [c for c in charges if c.tx_id not in ids and first.date <= c.date <= last.date and not c.refunded_in_full]
    near = [c for c in others if any(_similar(c.amount, a, NEAR_AMOUNT) for a in amounts)]
    if len(near) >= max(2, (len(chain) + 3) // 4):  # frequent purchases, not one now and then
        return False
    if len(others) > len(chain) and not (len(chain) >= BUSY_MERCHANT_CHAIN and len(set(amounts)) == 1):
        return False
    varied_before = any(
        c.date < first.date
        and _periods(c.date, first.date, interval) == 1
        and not _similar(c.amount, first.amount, SAME_AMOUNT)
        and not c.refunded_in_full  # a wrong plan charged and given back is no varying bill
        for c in charges
    )
    return not varied_before or len(chain) >= BUSY_MERCHANT_CHAIN


def _add_months(day: dt.date, months: int) -> dt.date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _next_billing(chain: list[Charge]) -> dt.date:
    """The month after the last charge, on the chain's billing day: the day most of its
    charges fit, a charge fitting a day when it came on it or, in a shorter month, on the
    month's last day (billed on the 31st: 28 Feb, 30 Apr; billed on the 30th: 28 Feb, but
    30 May, not 31), or on the next banking day when that day was none; the later day on
    a tie (the one more charges came on itself first); in a shorter month its last day. (A charge on
    a month's last day counted as the 31st made one billed on the 30th come out on the 31st
    after April to June.)"""

    def fits(anchor: int, day: dt.date) -> bool:
        # on the billing day, or moved from one that was no banking day to the next that was
        # (billed on the 1st: 3 Feb and 3 Mar 2025 were charges moved off a Saturday; the
        # 3rd came out on the tie, found in review, 2026-12-06), also into the next month
        # (billed on the 31st, Thursday 31 December 2026's came on Monday 4 January and
        # Saturday 31 October's on Monday 2 November: the 2nd fitted more than the 31st)
        return any(
            day == billed or (not is_banking_day(billed) and day == next_banking_day(billed))
            for month in (day.replace(day=1), _add_months(day.replace(day=1), -1))
            for billed in [month.replace(day=min(anchor, calendar.monthrange(month.year, month.month)[1]))]
        )

    def on(anchor: int, day: dt.date) -> bool:  # on the billing day itself (a month's last in a shorter one)
        return day.day == min(anchor, calendar.monthrange(day.year, day.month)[1])

    # on a tie, the day more charges came on, then the later day: card charges are never
    # moved to a banking day, and ones on the 2nd three months running (2 January, 2
    # February, 2 March 2026) fitted the 31st as well, moved off 31 December, 31 January
    # and 28 February, none a banking day: the next was expected on 31 March (found in
    # review, 2026-12-07)
    candidates = {c.date.day for c in chain} | {31}
    anchor = max(candidates, key=lambda a: (sum(fits(a, c.date) for c in chain), sum(on(a, c.date) for c in chain), a))
    last = chain[0].date
    # the month the last charge was billed for: the one before when it was moved into this
    # one off a billing day that was no banking day (billed on the 31st, Saturday 31 October
    # came out on Monday 2 November; November's was then expected on 31 December, found in
    # review, 2026-12-06)
    before = _add_months(last.replace(day=1), -1)
    billed_before = before.replace(day=min(anchor, calendar.monthrange(before.year, before.month)[1]))
    moved_in = not is_banking_day(billed_before) and next_banking_day(billed_before) == last
    following = _add_months(before if moved_in else last.replace(day=1), 1)
    return following.replace(day=min(anchor, calendar.monthrange(following.year, following.month)[1]))


def detect(charges: list[Charge]) -> Subscription | None:
    """The subscription in one merchant's charges (oldest first), if there is one. A charge
    refunded in full beside the chain does not hide it (`_stands_out`: it kept a real
    subscription off the list for as long as the history held it)."""
    charges = sorted(charges, key=lambda c: (c.date, c.tx_id))
    # a chain ends at a charge that was not given back in full: purchases refunded after the
    # last charge took every start, and charges all given back were listed
    starts = [i for i in range(len(charges) - 1, -1, -1) if not charges[i].refunded_in_full][:START_CANDIDATES]
    newest = charges[starts[0]].date if starts else None
    found: list[tuple[int, int, int, str, list[Charge]]] = []  # (-length, interval's rank, start's rank, ...)
    for rank, start in enumerate(starts):
        mine: list[tuple[int, int, int, str, list[Charge]]] = []
        for order, interval in enumerate((FOUR_WEEKLY, MONTHLY, WEEKLY)):  # on a tie, the first (see PERIODS)
            chain = _chain(charges, start, interval)
            if not _regular(chain, interval):
                chain = _at_newest_price(chain)
            if _regular(chain, interval) and _stands_out(charges, chain, interval):
                mine.append((-len(chain), order, rank, interval, chain))
        if not mine:
            continue
        _, _, _, interval, chain = min(mine, key=lambda c: c[:3])
        # the chain ending at this charge ended before the merchant's newest one, no charge
        # continuing it: none from here is current. Judged as what it would be listed as
        # (a four-weekly chain ended so passed as monthly, listed again at the wrong cost and
        # a next charge gone by: found in review, 2026-12-07)
        if newest is not None and newest > lapses_after(chain[0].date, interval):
            continue
        found += mine
    best = min(found, key=lambda c: c[:3])[3:] if found else None
    if best is None:
        return None
    interval, chain = best
    last, first = chain[0], chain[-1]
    if interval == MONTHLY:
        monthly_cost, next_expected = last.amount, _next_billing(chain)
    else:
        monthly_cost = (last.amount * CHARGES_A_YEAR[interval] + 6) // 12
        next_expected = _billed_weekday(chain) + dt.timedelta(days=7 * WEEKS[interval])
    return Subscription(
        interval=interval,
        amount=last.amount,
        monthly_cost=monthly_cost,
        first_date=first.date,
        last_date=last.date,
        next_expected=next_expected,
        occurrences=len(chain),
        lapses_after=lapses_after(last.date, interval),
    )


def lapses_after(last: dt.date, interval: str) -> dt.date:
    """The last day a charge could still continue a chain whose latest charge came on
    ``last`` (`_periods`: one period on, or two with a charge missed, within the tolerance
    or moved to a banking day)."""
    day = last + dt.timedelta(days=_reach(interval))
    while day > last and _periods(last, day, interval) is None:
        day -= dt.timedelta(days=1)
    return day


def _reach(interval: str) -> int:
    """The most days between two charges of a chain: two periods and a half, and a week for
    a charge moved to the next banking day (Easter). `_chain` looks back this far, and
    `lapses_after` looks ahead as far: a weekly charge missed, and the next moved off Maundy
    Thursday, came 19 days on, which `_periods` takes but `_chain` did not look back to, so
    the subscription was shown current until a day no charge could continue it, or (with
    the two alike but shorter) dropped at that charge (found in review, 2026-12-07)."""
    return int((MAX_SKIPPED_PERIODS + 0.5) * PERIODS[interval][0]) + 7


def _billed_weekday(chain: list[Charge]) -> dt.date:
    """The day the latest charge of a weekly or four-weekly chain was billed on: the
    chain's weekday, when the charge was moved to a banking day off one that was none
    (billed on Thursdays, Maundy Thursday 2 April 2026's came on Tuesday 7 April: the next
    is Thursday 9 April, not Tuesday 14th, found in review, 2026-12-07), else its own day."""
    weekdays = [c.date.weekday() for c in chain]
    weekday = max(set(weekdays), key=lambda d: (weekdays.count(d), d == chain[0].date.weekday()))
    return next((d for d in _billed_on(chain[0].date) if d.weekday() == weekday), chain[0].date)
