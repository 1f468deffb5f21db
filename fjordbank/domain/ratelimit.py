"""Per-user rate limits, free of I/O: a sliding-window counter per user and action.

Time is cut into windows of ``period`` seconds. A request counts in its window; it is
allowed while ``previous × (1 − elapsed) + current ≤ capacity``, where ``previous`` and
``current`` are the counts of the window before and of this one (this request included)
and ``elapsed`` is the fraction of this window gone by. That is the usual estimate of the
requests in the last ``period`` seconds (it never allows more than ``capacity`` in one
window, and at most twice that over any ``period`` straddling two).

Why counts and not a token bucket: a bucket is read, changed and written back in a
transaction, so concurrent requests of one user contend on one document (Firestore
allows about one write per second per document; eight at once failed to commit after
10 s). Counts only ever grow, so the adapter adds one with an atomic increment and no
transaction: concurrent requests never conflict, and each learns the counts in the same
write. A refused request counts too, so a client that keeps retrying stays refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    capacity: int  # at most this many requests ...
    period_seconds: int  # ... in any this many seconds (about; see the module's text)


# The bank's limits per signed-in user. Generous for a person, tight for a script.
LIMITS: dict[str, Limit] = {
    "payments": Limit(capacity=60, period_seconds=60),
    "onboarding": Limit(capacity=5, period_seconds=3600),
    "cards": Limit(capacity=20, period_seconds=60),
    "accounts": Limit(capacity=20, period_seconds=60),
    "invoices": Limit(capacity=30, period_seconds=60),
}


@dataclass(frozen=True)
class Window:
    index: int  # whole periods since the epoch
    elapsed: float  # the fraction of this window gone by, 0 <= elapsed < 1


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int  # whole seconds until a request would be allowed again (0 if allowed)


def window(limit: Limit, now: float) -> Window:
    """The window ``now`` (seconds since the epoch) falls in."""
    index, into = divmod(now, limit.period_seconds)
    return Window(int(index), into / limit.period_seconds)


def decide(limit: Limit, previous: int, current: int, elapsed: float) -> Decision:
    """Whether the request that made this window's count ``current`` is allowed."""
    if previous * (1.0 - elapsed) + current <= limit.capacity:
        return Decision(True, 0)
    return Decision(False, _retry_after(limit, previous, current, elapsed))


def _retry_after(limit: Limit, previous: int, current: int, elapsed: float) -> int:
    """Seconds until one more request (count ``current + 1``) fits again."""
    period, room = limit.period_seconds, limit.capacity - (current + 1)
    if room >= 0:  # later in this window, once less of the previous one counts
        fraction = 1.0 - room / previous  # previous > 0, or it would have fitted now
        return max(1, math.ceil((fraction - elapsed) * period))
    # in the next window this one's count becomes the previous one's
    fraction = max(0.0, 1.0 - (limit.capacity - 1) / current)
    return max(1, math.ceil((1.0 - elapsed + fraction) * period))
