"""What a process remembers of the documents it last read or wrote: the most recent entries,
least recently used out, so a long-running consumer stays within a fixed memory.

The consumers that own partitions (fjordbank.topology) keep the versions of their records
here and write them with preconditions (``update(..., if_updated=...)``) instead of reading
them in a transaction: a version that moved meanwhile fails the commit, and the batch is
read and decided again (fjordbank.service_layer.ledger, fjordbank.service_layer.screening,
fjordbank.service_layer.notifier). The payees' owners, which never change, are kept here
too (fjordbank.service_layer.owners).
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

# Told how many commits a batch took, and the error of the last when it gave up (the
# consumers count them in fjb_firestore_transaction_attempts_total, as a transaction's).
Attempted = Callable[[int, BaseException | None], None]

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """The most recent ``size`` entries."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._seen: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def get(self, key: K) -> V | None:
        found = self._seen.get(key)
        if found is not None:
            self._seen.move_to_end(key)
        return found

    def put(self, key: K, value: V) -> None:
        self._seen[key] = value
        self._seen.move_to_end(key)
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)

    def forget(self, keys: Iterable[K]) -> None:
        for key in keys:
            self._seen.pop(key, None)

    def clear(self, _partition: int | None = None) -> None:
        """Forget everything (a consumer's ``on_partition``: it took a partition someone else
        may have written meanwhile; what it remembers is not partitioned, so all of it)."""
        self._seen.clear()


@dataclass(frozen=True, slots=True)
class Version:
    """A document as this process last read or wrote it: its data and its update time."""

    data: dict[str, Any]
    updated: dt.datetime


class Versions(Recent[str, Version]):
    """path -> the version of the most recent ``size`` documents."""
