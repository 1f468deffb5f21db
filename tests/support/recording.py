"""The in-memory fake (tests/support/memory.py), with a record of what a use case asked of it.

Each call is one round trip on Firestore (fjordbank.adapters.documents: a get_many is one
get_all, a batch's commit one commit, a unit of work begin + its reads + one commit), so a
unit test counts a use case's round trips and sees which documents each unit of work read
and wrote, without the emulator:

- ``units``: every attempt of every unit of work, with its operation, reads and writes;
- ``calls``: the calls outside units of work (``get``, ``get_many``, ``query``, ``commit``).

With ``interleave`` every attempt, and every batch, yields to the event loop between its
last write and its commit, so units of work and precondition commits run concurrently
really race (and the losers run again).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fjordbank.service_layer.ports import Doc, OrderBy, Where, Written
from tests.support.memory import AsyncMemoryBatch, AsyncMemoryDocuments, AsyncMemoryUnitOfWork

T = TypeVar("T")
Write = tuple[str, str]  # (create | set | update | delete, path)


@dataclass
class Unit:
    """One attempt of a unit of work."""

    operation: str
    reads: list[list[str]] = field(default_factory=list)  # the paths of each read
    writes: list[Write] = field(default_factory=list)

    def written(self, path: str) -> int:
        return sum(1 for _kind, p in self.writes if p == path)


class RecordedUnit:
    def __init__(self, uow: AsyncMemoryUnitOfWork, unit: Unit) -> None:
        self._uow = uow
        self.unit = unit

    async def get(self, path: str) -> Doc | None:
        self.unit.reads.append([path])
        return await self._uow.get(path)

    async def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]:
        self.unit.reads.append(list(paths))
        return await self._uow.get_many(paths)

    def create(self, path: str, data: Mapping[str, Any]) -> None:
        self.unit.writes.append(("create", path))
        self._uow.create(path, data)

    def set(self, path: str, data: Mapping[str, Any], *, merge: bool = False) -> None:
        self.unit.writes.append(("set", path))
        self._uow.set(path, data, merge=merge)

    def update(self, path: str, data: Mapping[str, Any], *, if_updated: dt.datetime | None = None) -> None:
        self.unit.writes.append(("update", path))
        self._uow.update(path, data, if_updated=if_updated)

    def delete(self, path: str) -> None:
        self.unit.writes.append(("delete", path))
        self._uow.delete(path)


class RecordedBatch(AsyncMemoryBatch):
    def __init__(self, docs: RecordingDocuments) -> None:
        super().__init__(docs.store)
        self._docs = docs

    async def commit(self) -> list[Written]:
        self._docs.calls.append(("commit", [(kind, path) for kind, path, _data, _option in self.writes]))
        if self._docs.interleave:
            await asyncio.sleep(0)  # let the others read and decide first: their commits race this one
        return await super().commit()


class RecordingDocuments(AsyncMemoryDocuments):
    def __init__(self, clock: Callable[[], dt.datetime] | None = None, *, interleave: bool = False) -> None:
        if clock is None:
            super().__init__()
        else:
            super().__init__(clock)
        self.interleave = interleave
        self.units: list[Unit] = []
        self.calls: list[tuple[str, Any]] = []

    def units_of(self, operation: str) -> list[Unit]:
        return [u for u in self.units if u.operation == operation]

    def forget(self) -> None:
        """Start the record again (after a test's setup)."""
        self.units.clear()
        self.calls.clear()

    async def get(self, path: str) -> Doc | None:
        self.calls.append(("get", path))
        return await super().get(path)

    async def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]:
        self.calls.append(("get_many", list(paths)))
        return await super().get_many(paths)

    async def query(
        self,
        collection: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
        start_after: Doc | None = None,
    ) -> list[Doc]:
        self.calls.append(("query", collection))
        return await super().query(collection, where=where, order_by=order_by, limit=limit, start_after=start_after)

    def batch(self) -> RecordedBatch:
        return RecordedBatch(self)

    async def transact(self, fn: Callable[[Any], Awaitable[T]], *, operation: str) -> T:
        async def recorded(uow: AsyncMemoryUnitOfWork) -> T:
            unit = Unit(operation)
            self.units.append(unit)
            result = await fn(RecordedUnit(uow, unit))
            if self.interleave:
                await asyncio.sleep(0)  # the others run between this attempt's reads and its commit
            return result

        return await super().transact(recorded, operation=operation)
