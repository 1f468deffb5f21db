"""Per-user rate limits in Firestore (fjordbank.domain.ratelimit), without a transaction.

``rateLimits/{uid}:{action}`` holds the request count of each window in the map ``w``,
keyed by the window's index. One write per request adds 1 to this window's count and 0
to the previous window's (atomic increments): the write's own result carries both counts,
so a check is one round trip, and concurrent requests of one user never conflict (a
transaction on one bucket document did: 8 at once failed to commit after 10 s). The same
write deletes the counts of windows that can no longer matter and sets ``expireAt``, which
a Firestore TTL policy (firestore.indexes.json) uses to remove an idle user's document.
Backend-only: the rules give clients no access.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1 import WriteBatch
from google.cloud.firestore_v1.types import WriteResult

from fjordbank.domain.errors import DomainError
from fjordbank.domain.ratelimit import LIMITS, Limit, decide, window

RATE_LIMITS = "rateLimits"


class RateLimited(DomainError):
    code = "rate_limited"

    def __init__(self, action: str, wait: int) -> None:
        super().__init__(f"too many {action} requests; try again in {wait} s")
        self.retry_after = wait


def document_id(uid: str, action: str) -> str:
    return f"{uid}:{action}"


def window_key(index: int) -> str:
    """Zero-padded, so the keys sort as the windows do (the write's results come in key order)."""
    return f"{index:012d}"


def counts_update(limit: Limit, index: int, now: float, add: int = 1) -> dict[str, Any]:
    """The merge-write that counts ``add`` requests in window ``index`` and reads the one before."""
    expire = dt.datetime.fromtimestamp(now + 2 * limit.period_seconds, dt.UTC)
    return {
        "w": {
            window_key(index): firestore.Increment(add),
            window_key(index - 1): firestore.Increment(0),
            window_key(index - 2): firestore.DELETE_FIELD,
            window_key(index - 3): firestore.DELETE_FIELD,
        },
        "expireAt": expire,
    }


def check(db: firestore.Client, uid: str, action: str, *, now: float | None = None) -> None:
    """Count one request of ``action`` for ``uid``; raises `RateLimited` when over the limit."""
    now = time.time() if now is None else now
    batch = db.batch()
    counted = count_in(db, batch, uid, action, now=now)
    counted.check(batch.commit()[0])


class Counted:
    """One request counted by a write added to a batch (``count_in``); ``check`` reads the
    write's result once the batch committed."""

    def __init__(self, action: str, limit: Limit, elapsed: float) -> None:
        self.action, self.limit, self.elapsed = action, limit, elapsed

    def check(self, write_result: WriteResult) -> None:
        previous, current = (int(v.integer_value) for v in write_result.transform_results)  # key order
        decision = decide(self.limit, previous, current, self.elapsed)
        if not decision.allowed:
            raise RateLimited(self.action, decision.retry_after)


def count_in(db: firestore.Client, batch: WriteBatch, uid: str, action: str, *, now: float) -> Counted:
    """Add the write that counts one request of ``action`` to ``batch`` (so the count goes
    in the same commit as the caller's other writes: one round trip)."""
    limit = LIMITS[action]
    at = window(limit, now)
    ref = db.collection(RATE_LIMITS).document(document_id(uid, action))
    batch.set(ref, counts_update(limit, at.index, now), merge=True)
    return Counted(action, limit, at.elapsed)
