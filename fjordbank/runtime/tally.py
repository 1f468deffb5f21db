"""What a consumer process has seen of each message it was given, for deciding when to give
up on it (fjordbank.runtime.consumer).

The server's count of a message's deliveries (``num_delivered``) counts every delivery:
the ones whose handler failed, and the ones given back without being handled, because the
partition moved to another instance, the message was queued here at a handover, or its
batch waited while the lease went. Dead-lettering on that count sent a message to the DLQ
on the first failure of its handler after five handovers (found in review, 2026-12-06).
The tally counts, per message, the failures of its handler and the deliveries that ended
here without an ack (failures and give-backs), so that the runtime can tell the two apart.

It lives in the process: a restarted instance starts from nothing, so a message failing
there gets its tries again, and its deliveries elsewhere count as ones without an outcome
(the consumer allows a few for the message's age: UNSETTLED_ALLOWANCE_SECONDS in
fjordbank.runtime.consumer, and an hour's worth for one seen failing here on a transient
error). It remembers the last ``TALLY_SIZE`` messages it saw (a
message that moved to another instance is never settled here, so the oldest are
forgotten rather than kept for ever).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

TALLY_SIZE = 20_000  # messages remembered: about 5.5 MB (measured); a process has a few thousand in hand

Key = tuple[str, int]  # (durable consumer, stream sequence)


@dataclass(slots=True)
class Seen:
    failures: int = 0  # the handler failed (a Retry outcome)
    own: int = 0  # of those, failures of the message's own (not transient: it alone timed out, or failed so)
    alone: int = 0  # of those, failures while it was handled alone
    given_back: int = 0  # delivered here and given back unhandled
    first_failed: float | None = None  # when its handler first failed here (monotonic)
    last_failed: float | None = None  # when it last did

    @property
    def ended_here(self) -> int:
        """Deliveries of the message that ended in this process without an ack."""
        return self.failures + self.given_back


class DeliveryTally:
    def __init__(self, size: int = TALLY_SIZE) -> None:
        self._seen: OrderedDict[Key, Seen] = OrderedDict()
        self._size = size

    def _entry(self, key: Key) -> Seen:
        seen = self._seen.pop(key, None) or Seen()
        self._seen[key] = seen  # the newest last
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return seen

    def failed(self, key: Key, *, now: float | None = None, own: bool = False, alone: bool = False) -> int:
        """Count a failure of the message's handler (``own``: not a transient one; ``alone``:
        handled alone); returns its failures here so far."""
        seen = self._entry(key)
        seen.failures += 1
        seen.own += own
        seen.alone += alone
        at = time.monotonic() if now is None else now
        if seen.first_failed is None:
            seen.first_failed = at
        seen.last_failed = at
        return seen.failures

    def failures(self, key: Key) -> int:
        seen = self._seen.get(key)
        return 0 if seen is None else seen.failures

    def alone_failures(self, key: Key) -> int:
        seen = self._seen.get(key)
        return 0 if seen is None else seen.alone

    def own_failures(self, key: Key) -> int:
        seen = self._seen.get(key)
        return 0 if seen is None else seen.own

    def transient_failures(self, key: Key) -> int:
        """Its failures here on a transient error (the database's or NATS's, not its own)."""
        seen = self._seen.get(key)
        return 0 if seen is None else seen.failures - seen.own

    def failing_for(self, key: Key, *, now: float | None = None) -> float:
        """Seconds since the message's handler first failed here (0: it has not)."""
        seen = self._seen.get(key)
        if seen is None or seen.first_failed is None:
            return 0.0
        return (time.monotonic() if now is None else now) - seen.first_failed

    def last_failed(self, key: Key) -> float | None:
        """When its handler last failed here (monotonic; None: it has not)."""
        seen = self._seen.get(key)
        return None if seen is None else seen.last_failed

    def gave_back(self, key: Key) -> None:
        """Count a delivery given back without being handled."""
        self._entry(key).given_back += 1

    def ended_here(self, key: Key) -> int:
        seen = self._seen.get(key)
        return 0 if seen is None else seen.ended_here

    def forget(self, key: Key) -> None:
        """The message is settled for good (acked or dead-lettered)."""
        self._seen.pop(key, None)

    def __len__(self) -> int:
        return len(self._seen)
