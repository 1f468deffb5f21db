""" "My economy": a customer's income, spending per category and savings per month, free of I/O.

Maintained incrementally: each booking contributes one `Item` (its month, direction,
category and amount), remembered under the booking's id. Applying a booking again with the
same item changes nothing (redeliveries and replays are harmless); applying it with a
different item (the customer recategorised the merchant) moves the amount from the old
item to the new one. `recompute` derives the same months from all bookings at once; the
incremental figures must always equal it.

Transfers between a customer's own accounts are neither income nor spending. Savings are
income minus spending for the month.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fjordbank.domain.bookings import IN, Booking
from fjordbank.domain.categories import categorise


@dataclass(frozen=True)
class Item:
    """One booking's contribution to its month."""

    month: str  # YYYY-MM
    direction: str  # in | out
    category: str
    amount: int  # øre, positive (negative: a refund, spending given back)

    def to_dict(self) -> dict[str, Any]:
        return {"month": self.month, "direction": self.direction, "category": self.category, "amount": self.amount}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Item:
        return cls(data["month"], data["direction"], data["category"], data["amount"])


def category_of(booking: Booking, overrides: dict[str, str] | None = None) -> str:
    """The booking's category: the customer's choice for its merchant, else the bank's rules."""
    if booking.own_transfer:
        return "transfers"
    return categorise(
        direction=booking.direction,
        kind=booking.kind,
        mcc=booking.mcc,
        merchant_name=booking.merchant_name,
        counterparty_account=booking.counterparty_account,
        kid=booking.kid,
        overrides=overrides,
    )


def item_of(booking: Booking, overrides: dict[str, str] | None = None) -> Item | None:
    """What the booking adds to its month; None for a transfer between own accounts. A
    refund takes its amount off the purchase's category (a negative amount)."""
    if booking.own_transfer:
        return None
    if booking.refund:  # the customer's choice for the merchant first: the purchase's category moves with it
        chosen = (overrides or {}).get(booking.key) or booking.category
        return Item(booking.month, booking.direction, chosen or category_of(booking, overrides), -booking.amount)
    return Item(booking.month, booking.direction, category_of(booking, overrides), booking.amount)


@dataclass
class Month:
    month: str
    income: int = 0
    spending: dict[str, int] = field(default_factory=dict)
    count: int = 0  # bookings counted

    @property
    def spent(self) -> int:
        return sum(self.spending.values())

    @property
    def savings(self) -> int:
        return self.income - self.spent

    def add(self, item: Item, sign: int = 1) -> None:
        if item.direction == IN:
            self.income += sign * item.amount
        else:
            total = self.spending.get(item.category, 0) + sign * item.amount
            if total:
                self.spending[item.category] = total
            else:
                self.spending.pop(item.category, None)
        self.count += sign

    def to_dict(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "income": self.income,
            "spending": dict(sorted(self.spending.items())),
            "spent": self.spent,
            "savings": self.savings,
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Month:
        return cls(
            month=data["month"],
            income=int(data.get("income", 0)),
            # a category a refund took to 0 by an increment (the month not read) is no spending
            spending={k: int(v) for k, v in (data.get("spending") or {}).items() if int(v)},
            count=int(data.get("count", 0)),
        )

    def figures(self) -> dict[str, Any]:
        """What is compared with a recomputation (everything but bookkeeping)."""
        return {"income": self.income, "spending": dict(sorted(self.spending.items())), "count": self.count}


def apply(months: dict[str, Month], old: Item | None, new: Item | None) -> set[str]:
    """Replace a booking's contribution ``old`` with ``new``. Returns the months touched
    (none when they are equal: the same booking applied twice)."""
    if old == new:
        return set()
    touched = set()
    if old is not None:
        months.setdefault(old.month, Month(old.month)).add(old, -1)
        touched.add(old.month)
    if new is not None:
        months.setdefault(new.month, Month(new.month)).add(new)
        touched.add(new.month)
    return touched


def recompute(bookings: Iterable[Booking], overrides: dict[str, str] | None = None) -> dict[str, Month]:
    """Every month from scratch (bookings are deduplicated by id and account)."""
    months: dict[str, Month] = {}
    seen: set[tuple[str, str]] = set()
    for booking in bookings:
        if (booking.tx_id, booking.account_id) in seen:
            continue
        seen.add((booking.tx_id, booking.account_id))
        apply(months, None, item_of(booking, overrides))
    return months


def previous_month(month: str) -> str:
    year, number = int(month[:4]), int(month[5:7])
    return f"{year - 1}-12" if number == 1 else f"{year}-{number - 1:02d}"


def compare(current: Month, previous: Month | None) -> dict[str, Any]:
    """This month against the one before: the change of income, spending (in all and per
    category) and savings, in øre."""
    before = previous or Month(previous_month(current.month))
    categories = sorted(set(current.spending) | set(before.spending))
    return {
        "month": current.month,
        "previousMonth": before.month,
        "income": current.income - before.income,
        "spent": current.spent - before.spent,
        "savings": current.savings - before.savings,
        "spending": {c: current.spending.get(c, 0) - before.spending.get(c, 0) for c in categories},
    }
