"""Per-user rate limits in Firestore: ``rateLimits/{uid}:{action}`` holds a token bucket
(fjordbank.domain.ratelimit), updated in a transaction so concurrent requests cannot
both take the last token. Backend-only: the rules give clients no access."""

from __future__ import annotations

import time

from google.cloud import firestore

from fjordbank.domain.errors import DomainError
from fjordbank.domain.ratelimit import LIMITS, retry_after, take

RATE_LIMITS = "rateLimits"


class RateLimited(DomainError):
    code = "rate_limited"

    def __init__(self, action: str, wait: float) -> None:
        super().__init__(f"too many {action} requests; try again in {wait:.0f} s")
        self.retry_after = wait


def check(db: firestore.Client, uid: str, action: str, *, now: float | None = None) -> None:
    """Take one token of ``action`` for ``uid``; raises `RateLimited` when none is left."""
    limit = LIMITS[action]
    now = time.time() if now is None else now
    ref = db.collection(RATE_LIMITS).document(f"{uid}:{action}")

    @firestore.transactional
    def run(tx) -> tuple[bool, float]:
        snap = ref.get(transaction=tx)
        data = snap.to_dict() if snap.exists else {}
        allowed, left = take(limit, data.get("tokens"), data.get("asOf"), now)
        if allowed:
            tx.set(ref, {"tokens": left, "asOf": now})
        return allowed, left

    allowed, left = run(db.transaction())
    if not allowed:
        raise RateLimited(action, retry_after(limit, left))
