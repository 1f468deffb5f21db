"""Per-user rate limits, free of I/O: a token bucket per user and action.

A bucket holds at most ``capacity`` tokens and refills ``capacity`` per ``period``
seconds; each request takes one. The state is two numbers (tokens, as of), stored by the
adapter in one small document per user and action and updated in a transaction.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    capacity: int  # a burst of this many
    period_seconds: float  # ... refilled over this long

    @property
    def rate(self) -> float:
        return self.capacity / self.period_seconds


# The bank's limits per signed-in user. Generous for a person, tight for a script.
LIMITS: dict[str, Limit] = {
    "payments": Limit(capacity=60, period_seconds=60),
    "onboarding": Limit(capacity=5, period_seconds=3600),
    "cards": Limit(capacity=20, period_seconds=60),
    "accounts": Limit(capacity=20, period_seconds=60),
    "invoices": Limit(capacity=30, period_seconds=60),
}


def take(limit: Limit, tokens: float | None, as_of: float | None, now: float) -> tuple[bool, float]:
    """(allowed, tokens left) after asking for one token at ``now`` (seconds). Tokens are
    request counts that refill continuously, not money: fractions are meant."""
    if tokens is None or as_of is None:
        tokens, as_of = float(limit.capacity), now
    tokens = min(float(limit.capacity), tokens + max(0.0, now - as_of) * limit.rate)
    if tokens >= 1.0:
        return True, tokens - 1.0
    return False, tokens


def retry_after(limit: Limit, tokens: float) -> float:
    """Seconds until one token is there again."""
    return max(0.0, (1.0 - tokens) / limit.rate)
