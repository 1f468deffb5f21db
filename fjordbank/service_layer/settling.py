"""The accounts the last due-payments run paid from, while its payments may still be on
their way to the ledger.

Each run of the due-payments job reckons what an account can pay from the account's
``available`` (the ledger's) less what the run itself has submitted from it (`RunFunds`).
A run that runs out of time hands the rest to a next run at once (`scheduled.continuation`),
and that run began its reckoning afresh: the ledger had not yet reserved the last
run's payments (the pipeline takes seconds, minutes on a payday), so a payer's second
bill was paid from the money the first had taken, and the ledger declined it for good,
where it should have waited for the money for its four banking days (found in review,
2026-12-06).

So a run records the accounts it paid from (`record`, one of the SLOTS documents
``ops/dueRunPaid*``), and a run that begins within SETTLE of a recorded run's end leaves
those accounts' due payments to a later run (`Settling.holds`, over every record still
inside its window: `read`). One record only, the run after the next overwrote it and paid
from the money of the run before its last, still on its way (found in review, 2026-12-06).
Runs of a chain come a run's time apart (about 8 minutes), so SLOTS records cover SETTLE;
a record is written over the oldest (or an empty) one. The accounts are kept as a Bloom
filter: a payday's run pays from some 330,000 accounts, which as numbers would not fit in
a document (1 MiB), and as a filter of about ten bits each do (a false positive only
leaves one more payment to a later run). Past MAX_BYTES the filter is kept at that size
and gives more false positives.

A run given its customers (the emulator's tests and chaos runs) neither records nor reads
this: its caller decides its runs. One given only its clock does, on that clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fjordbank.adapters.firestore import OPS
from fjordbank.service_layer.ports import Documents

log = logging.getLogger(__name__)

# one document each: a payday run's filter takes 410 KB, and two in one document would not fit
SLOTS = (f"{OPS}/dueRunPaid", f"{OPS}/dueRunPaid1", f"{OPS}/dueRunPaid2")
PAID = SLOTS[0]
# How long after a run's end its payments may still be on their way to the ledger: a
# payday's backlog in the pipeline is a few minutes (docs/capacity.md, section 2: the
# job releases faster than the pipeline's design rate for the morning's half hour).
SETTLE = dt.timedelta(minutes=10)
BITS_PER_ACCOUNT = 10  # about 1 % false positives with HASHES
HASHES = 7
MAX_BYTES = 900_000  # under Firestore's 1 MiB per document, with room for the other fields


@dataclass(frozen=True)
class Settling:
    """The accounts a run that ended at ``ended`` paid from (a Bloom filter of ``bits``
    bits)."""

    filter: bytes
    bits: int
    ended: dt.datetime

    @classmethod
    def of(cls, accounts: Iterable[str], ended: dt.datetime) -> Settling:
        numbers = sorted(set(accounts))
        size = min(MAX_BYTES, max(1, math.ceil(len(numbers) * BITS_PER_ACCOUNT / 8)))
        array = bytearray(size)
        for account in numbers:
            for bit in _bits(account, size * 8):
                array[bit // 8] |= 1 << (bit % 8)
        return cls(bytes(array), size * 8, ended)

    def holds(self, account: str, now: dt.datetime) -> bool:
        """Whether ``account``'s payments wait for a later run: the run that ended at
        ``ended`` paid from it (or the filter says it may have), and SETTLE has not passed."""
        # a record a little ahead of ``now`` is another instance's clock: held all the same
        if not -SETTLE < now - self.ended < SETTLE or not self.filter:
            return False
        return all(self.filter[bit // 8] >> (bit % 8) & 1 for bit in _bits(account, self.bits))


def _bits(account: str, bits: int) -> list[int]:
    digest = hashlib.sha256(account.encode()).digest()
    return [int.from_bytes(digest[4 * i : 4 * i + 4], "big") % bits for i in range(HASHES)]


@dataclass(frozen=True)
class Records:
    """The runs' records as one run began: ``holds`` over all of them; ``free`` the slot
    the run's own record goes to (an empty one, else the oldest)."""

    settling: tuple[Settling, ...]
    free: str

    def holds(self, account: str, now: dt.datetime) -> bool:
        return any(s.holds(account, now) for s in self.settling)


def record(docs: Documents, slot: str, run: str, accounts: Iterable[str], ended: dt.datetime) -> None:
    """Keep the accounts the run ``run`` paid from in ``slot`` (see the module docstring). A
    failure is logged, never the run's: without the record, the next run reckons as it did
    before."""
    settling = Settling.of(accounts, ended)
    fields: dict[str, Any] = {"run": run, "ended": ended, "filter": settling.filter, "bits": settling.bits}
    try:
        batch = docs.batch()
        batch.set(slot, fields)
        batch.commit()
    except Exception:  # the run's result stands; the next run reckons without it
        log.exception("due payments: the accounts paid from were not recorded", extra={"run": run})


def read(docs: Documents) -> Records:
    """The runs' records (none readable: the run reckons without them, as before)."""
    found: dict[str, Settling | None] = {}
    for slot in SLOTS:
        try:
            doc = docs.get(slot)
        except Exception:  # as without this record
            log.exception("due payments: the accounts a run paid from could not be read", extra={"slot": slot})
            found[slot] = None
            continue
        found[slot] = _parsed({} if doc is None else doc.data)
    kept = {slot: s for slot, s in found.items() if s is not None}
    # an empty (or unreadable) slot first, else the oldest record's
    free = min(SLOTS, key=lambda slot: kept[slot].ended if slot in kept else _EPOCH)
    return Records(tuple(kept.values()), free)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _parsed(data: dict[str, Any]) -> Settling | None:
    raw, bits, ended = data.get("filter"), data.get("bits"), data.get("ended")
    if not isinstance(raw, bytes) or not isinstance(bits, int) or not isinstance(ended, dt.datetime):
        return None
    if bits <= 0 or bits > len(raw) * 8:
        return None
    return Settling(raw, bits, ended if ended.tzinfo else ended.replace(tzinfo=dt.UTC))
