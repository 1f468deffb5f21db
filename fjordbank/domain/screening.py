"""Payment screening rules, free of I/O.

Per customer: a per-payment limit, a daily limit (Europe/Oslo calendar day, approved
amounts only), a velocity limit (payments in a sliding window), and a lower limit for the
first payment to a payee the customer has not paid before (a common fraud pattern; the
customer's own accounts are never new payees; it holds for all that is paid the payee within
a day of its first payment). Per counterparty: a blocked list
(sanctions, known mule accounts), and for a payment to another bank its payee's name
against the sanctions list (fjordbank.domain.payee_screening: decided before, given here as
``payee``). Every refusal has a precise reason code.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from fjordbank.domain.money import Money
from fjordbank.domain.norway import normalize_account_number, today_in_norway
from fjordbank.domain.payments import PaymentRequested

MAX_KNOWN_PAYEES = 500
# Payees first paid within the new-payee window, each with what it was paid in it: at most
# this many a customer (a person paying more new payees in a day is no person; the state is
# one document, read and written with every decision).
MAX_NEW_PAYEES = 200


@dataclass(frozen=True)
class ScreeningPolicy:
    max_per_payment: int = 50_000_000  # 500 000,00 kr
    daily_limit: int = 100_000_000  # 1 000 000,00 kr
    velocity_max: int = 100  # payments ...
    velocity_window_seconds: int = 60  # ... per this many seconds
    new_payee_limit: int = 5_000_000  # 50 000,00 kr paid to a new payee ...
    new_payee_window_seconds: int = 86_400  # ... within this long of its first payment
    blocked_accounts: frozenset[str] = frozenset()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScreeningPolicy:
        # A key it does not know is refused, not left out: "blocked_account" for
        # "blocked_accounts" left the blocked list empty, and "dailyLimit" the daily limit
        # at its default, with nothing said (found in review, 2026-12-07). Keys beginning
        # with "_" are comments.
        unknown = sorted(k for k in data if k not in cls.__dataclass_fields__ and not k.startswith("_"))
        if unknown:
            raise ValueError(
                f"screening policy has unknown keys {unknown}; it knows {sorted(cls.__dataclass_fields__)}"
            )
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for name, value in fields.items():
            if name != "blocked_accounts" and (type(value) is not int or value <= 0):
                raise ValueError(f"screening policy {name} must be a positive int, got {value!r}")
        blocked = fields.get("blocked_accounts", [])
        if not isinstance(blocked, list) or not all(isinstance(a, str) for a in blocked):
            raise ValueError("screening policy blocked_accounts must be a list of account numbers")
        fields["blocked_accounts"] = frozenset(normalize_account_number(a) for a in blocked)
        return cls(**fields)


@dataclass
class CustomerState:
    day: str = ""
    day_total: int = 0
    recent: list[int] = field(default_factory=list)  # epoch seconds of recent approvals
    payees: list[str] = field(default_factory=list)  # most recent last
    # payee -> [epoch seconds of its first payment, amount paid it since], within the policy's
    # new-payee window
    new_payees: dict[str, list[int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "dayTotal": self.day_total,
            "recent": self.recent,
            "payees": self.payees,
            "newPayees": self.new_payees,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CustomerState:
        data = data or {}
        return cls(
            day=data.get("day", ""),
            day_total=data.get("dayTotal", 0),
            recent=list(data.get("recent", [])),
            payees=list(data.get("payees", [])),
            new_payees={k: [int(v[0]), int(v[1])] for k, v in (data.get("newPayees") or {}).items()},
        )


@dataclass(frozen=True)
class Screened:
    approved: bool
    reason: str | None = None
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"approved": self.approved, "reason": self.reason, "message": self.message}


def screen(
    policy: ScreeningPolicy,
    state: CustomerState,
    payment: PaymentRequested,
    *,
    own_payee: bool,
    now: dt.datetime,
    payee: tuple[str, str] | None = None,
) -> Screened:
    """Decide one payment and, when approved, record it in ``state``. ``payee``: (reason,
    message) when the payee's sanctions screening refuses it
    (fjordbank.domain.payee_screening.refusal); a refusal counts toward no limit."""
    today = today_in_norway(now).isoformat()
    if today > state.day:  # a new day; a clock behind the last decision does not reset it
        state.day, state.day_total = today, 0
    epoch = int(now.timestamp())
    state.recent = [t for t in state.recent if t > epoch - policy.velocity_window_seconds]
    window_start = epoch - policy.new_payee_window_seconds
    state.new_payees = {a: v for a, v in state.new_payees.items() if v[0] > window_start}

    if payment.to_account in policy.blocked_accounts:
        return Screened(False, "blocked_counterparty", "payments to this account are not allowed")
    if payee is not None:
        return Screened(False, *payee)
    if payment.amount > policy.max_per_payment:
        return Screened(False, "over_payment_limit", f"above the limit of {_kr(policy.max_per_payment)} per payment")
    if state.day_total + payment.amount > policy.daily_limit:
        return Screened(False, "over_daily_limit", f"above the daily limit of {_kr(policy.daily_limit)}")
    if len(state.recent) >= policy.velocity_max:
        return Screened(False, "velocity_limit", "too many payments in a short time; try again shortly")
    new_payee = not own_payee and payment.to_account not in state.payees
    window = None if own_payee else state.new_payees.get(payment.to_account)
    if refused := _new_payee_refusal(policy, state, payment, new_payee=new_payee, window=window):
        return refused

    state.day_total += payment.amount
    state.recent.append(epoch)
    if window is not None:  # (also for a payee the known list no longer holds: its window goes on)
        window[1] += payment.amount
    elif new_payee:
        state.new_payees[payment.to_account] = [epoch, payment.amount]
    if not own_payee:
        if payment.to_account in state.payees:
            state.payees.remove(payment.to_account)
        state.payees = [*state.payees, payment.to_account][-MAX_KNOWN_PAYEES:]
    return Screened(True)


def _new_payee_refusal(
    policy: ScreeningPolicy,
    state: CustomerState,
    payment: PaymentRequested,
    *,
    new_payee: bool,
    window: list[int] | None,
) -> Screened | None:
    """The new-payee limit holds for what a payee is paid within the window after its first
    payment (``window``: [its first payment, paid since]), not for that payment alone: a
    payee was known once any payment to it was approved, so "send 1 kr first" lifted the
    limit at once, in the same second (found in review, 2026-12-07). Counted from screening's
    approvals (a payment the ledger then declines counts too): the limit errs on the side of
    the customer's money."""
    paid = window[1] if window is not None else 0
    if (new_payee or window is not None) and paid + payment.amount > policy.new_payee_limit:
        return Screened(
            False,
            "new_payee_limit",
            f"payments to a new payee are limited to {_kr(policy.new_payee_limit)} "
            f"in its first {_span(policy.new_payee_window_seconds)}",
        )
    if new_payee and len(state.new_payees) >= MAX_NEW_PAYEES:
        return Screened(False, "new_payee_limit", f"at most {MAX_NEW_PAYEES} new payees in a day; try again tomorrow")
    return None


def _span(seconds: int) -> str:
    """A window as the customer reads it: "24 hours", "30 minutes"."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hours"
    return f"{max(1, seconds // 60)} minutes"


def _kr(limit: int) -> str:
    """A limit (øre) as the customer reads it: the app shows a refusal's message as it is,
    and "limited to 5000000 øre" was what it showed (found in review, 2026-12-07)."""
    return Money.nok(limit).format_nok()
