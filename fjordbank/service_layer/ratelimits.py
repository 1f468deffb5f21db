"""Per-user rate limits in Firestore (fjordbank.domain.ratelimit), without a transaction.

``rateLimits/{uid}:{action}`` holds the request count of each window in the map ``w``,
keyed by the window's index. One write per request adds 1 to this window's count and 0
to the previous window's (atomic increments): the write's own result carries both counts
(what the batch's commit returns, fjordbank.service_layer.ports.Written), so a check is
one round trip, and concurrent requests of one user never conflict (a transaction on one
bucket document did: 8 at once failed to commit after 10 s). The same write deletes the
counts of windows that can no longer matter and sets ``expireAt``, which a Firestore TTL
policy (firestore.indexes.json) uses to remove an idle user's document. Backend-only: the
rules give clients no access.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from fjordbank.domain.errors import DomainError
from fjordbank.domain.ratelimit import LIMITS, Limit, decide, window
from fjordbank.service_layer.ports import DELETE_FIELD, Clock, Documents, Increment, Writes, Written, system_clock

RATE_LIMITS = "rateLimits"


class RateLimited(DomainError):
    code = "rate_limited"

    def __init__(self, action: str, wait: int) -> None:
        super().__init__(f"too many {action} requests; try again in {wait} s")
        self.retry_after = wait


def document_id(uid: str, action: str) -> str:
    return f"{uid}:{action}"


def document_path(uid: str, action: str) -> str:
    return f"{RATE_LIMITS}/{document_id(uid, action)}"


def window_key(index: int) -> str:
    """Zero-padded, so the keys sort as the windows do."""
    return f"{index:012d}"


def counts_update(limit: Limit, index: int, now: float, add: int = 1) -> dict[str, Any]:
    """The merge-write that counts ``add`` requests in window ``index`` and reads the one before."""
    expire = dt.datetime.fromtimestamp(now + 2 * limit.period_seconds, dt.UTC)
    return {
        "w": {
            window_key(index): Increment(add),
            window_key(index - 1): Increment(0),
            window_key(index - 2): DELETE_FIELD,
            window_key(index - 3): DELETE_FIELD,
        },
        "expireAt": expire,
    }


def check(docs: Documents, uid: str, action: str, *, clock: Clock = system_clock) -> None:
    """Count one request of ``action`` for ``uid``; raises `RateLimited` when over the limit."""
    batch = docs.batch()
    counted = count_in(batch, uid, action, now=clock().timestamp())
    counted.check(batch.commit())


class Counted:
    """One request counted by a write added to a batch (``count_in``); ``check`` reads the
    write's result once the batch committed."""

    def __init__(self, action: str, limit: Limit, path: str, index: int, elapsed: float) -> None:
        self.action, self.limit, self.path, self.index, self.elapsed = action, limit, path, index, elapsed

    def check(self, results: Sequence[Written]) -> None:
        """Raises `RateLimited` when the counts the commit returned are over the limit."""
        (written,) = (w for w in results if w.path == self.path)
        previous = written.computed[f"w.{window_key(self.index - 1)}"]
        current = written.computed[f"w.{window_key(self.index)}"]
        decision = decide(self.limit, int(previous), int(current), self.elapsed)
        if not decision.allowed:
            raise RateLimited(self.action, decision.retry_after)


def count_in(batch: Writes, uid: str, action: str, *, now: float) -> Counted:
    """Add the write that counts one request of ``action`` to ``batch`` (so the count goes
    in the same commit as the caller's other writes: one round trip)."""
    limit = LIMITS[action]
    at = window(limit, now)
    path = document_path(uid, action)
    batch.set(path, counts_update(limit, at.index, now), merge=True)
    return Counted(action, limit, path, at.index, at.elapsed)
