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
a record goes to an empty slot or over one that has settled, else (runs closer together)
its accounts are added to the newest record (`Records.placed`). The accounts are kept as a Bloom
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
        return cls(bytes(size), size * 8, ended).joined(numbers, ended)

    def joined(self, accounts: Iterable[str], ended: dt.datetime) -> Settling:
        """This filter with ``accounts`` as well (at this filter's size: more false
        positives, never an account less), held until ``ended`` if that is later."""
        array = bytearray(self.filter)
        for account in accounts:
            for bit in _bits(account, self.bits):
                array[bit // 8] |= 1 << (bit % 8)
        return Settling(bytes(array), self.bits, max(self.ended, ended))

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
    """The runs' records as one run began, by slot (None: the slot is empty; a slot that
    could not be read is left out): ``holds`` over all of them."""

    slots: dict[str, Settling | None]

    @property
    def settling(self) -> tuple[Settling, ...]:
        return tuple(s for s in self.slots.values() if s is not None)

    def holds(self, account: str, now: dt.datetime) -> bool:
        return any(s.holds(account, now) for s in self.settling)

    def placed(self, accounts: list[str], ended: dt.datetime) -> tuple[str, Settling] | None:
        """Where the run's own record goes, and what is written there: an empty slot, else
        the one whose record has settled (the oldest), else, every record still inside its
        window, the newest with the run's accounts added to its filter (held until the run's
        own end: longer, never shorter). A slot that could not be read is never written
        over: it may hold a live record. None: nowhere (no slot was read)."""
        if not self.slots:
            return None
        empty = [slot for slot, s in self.slots.items() if s is None]
        if empty:
            return empty[0], Settling.of(accounts, ended)
        records = {slot: s for slot, s in self.slots.items() if s is not None}
        # settled: outside its window either way (a record on a clock moved ahead, as the
        # emulator's runs given their clock may leave, would otherwise stay for good)
        settled = [slot for slot, s in records.items() if abs(ended - s.ended) >= SETTLE]
        if settled:
            oldest = min(settled, key=lambda slot: records[slot].ended)
            return oldest, Settling.of(accounts, ended)
        # a run less than SETTLE after each of three others (a chain whose runs end early,
        # runs asked for by hand): written over one, the runs before it were no longer held
        # (found in review, 2026-12-06)
        newest = max(records, key=lambda slot: records[slot].ended)
        return newest, records[newest].joined(accounts, ended)


def record(docs: Documents, records: Records, run: str, accounts: Iterable[str], ended: dt.datetime) -> None:
    """Keep the accounts the run ``run`` paid from (see the module docstring and
    `Records.placed`). A failure is logged, never the run's: without the record, the next
    run reckons as it did before."""
    placed = records.placed(sorted(set(accounts)), ended)
    if placed is None:
        log.warning("due payments: no record of the runs could be read; the accounts paid from are not kept")
        return
    slot, kept = placed
    fields: dict[str, Any] = {"run": run, "ended": kept.ended, "filter": kept.filter, "bits": kept.bits}
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
        except Exception:  # as without this record, and never written over
            log.exception("due payments: the accounts a run paid from could not be read", extra={"slot": slot})
            continue
        found[slot] = None if doc is None else _parsed(doc.data)
    return Records(found)


def _parsed(data: dict[str, Any]) -> Settling | None:
    raw, bits, ended = data.get("filter"), data.get("bits"), data.get("ended")
    if not isinstance(raw, bytes) or not isinstance(bits, int) or not isinstance(ended, dt.datetime):
        return None
    if bits <= 0 or bits > len(raw) * 8:
        return None
    return Settling(raw, bits, ended if ended.tzinfo else ended.replace(tzinfo=dt.UTC))
