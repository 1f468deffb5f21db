"""Recording doubles for the use cases' unit tests: a publisher that keeps what it was
given, and a wrapper that counts the round trips a use case makes through the document
ports (the in-memory mirror of tests/integration's count on the emulator, which the
client's interceptor makes: fjordbank.adapters.firestore_calls).

Round trips are counted as the Firestore adapter spends them (fjordbank.adapters.documents):
a get or a get_many is one BatchGetDocuments, a query one RunQuery, a batch's commit one
Commit, and a unit of work a BeginTransaction, its reads, then a Commit (a Rollback when
the function raised) per attempt.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fjordbank.errors import PublishError
from fjordbank.service_layer.ports import Batch, Doc, Documents, OrderBy, UnitOfWork, Where, Written

T = TypeVar("T")


@dataclass(frozen=True)
class Published:
    subject: str
    body: dict[str, Any]
    msg_id: str
    stream: str | None


class RecordingPublisher:
    """fjordbank.service_layer.ports.Publisher that keeps each event; ``fail`` makes every
    publish raise PublishError (NATS away) until it is set back to False."""

    def __init__(self, *, fail: bool = False) -> None:
        self.published: list[Published] = []
        self.fail = fail
        self.attempts = 0

    def publish_json(self, subject: str, body: dict[str, Any], *, msg_id: str, stream: str | None = None) -> None:
        self.attempts += 1
        if self.fail:
            raise PublishError("nats away")
        self.published.append(Published(subject, body, msg_id, stream))

    @property
    def subjects(self) -> list[str]:
        return [p.subject for p in self.published]


class _CountingWrites:
    def __init__(self, target: Any, counts: Counter[str]) -> None:
        self._target = target
        self._counts = counts

    def create(self, path: str, data: Mapping[str, Any]) -> None:
        self._target.create(path, data)

    def set(self, path: str, data: Mapping[str, Any], *, merge: bool = False) -> None:
        self._target.set(path, data, merge=merge)

    def update(self, path: str, data: Mapping[str, Any], *, if_updated: Any = None) -> None:
        self._target.update(path, data, if_updated=if_updated)

    def delete(self, path: str) -> None:
        self._target.delete(path)


class _CountingBatch(_CountingWrites):
    def commit(self) -> list[Written]:
        self._counts["Commit"] += 1
        written: list[Written] = self._target.commit()
        return written


class _CountingUnit(_CountingWrites):
    def get(self, path: str) -> Doc | None:
        return self.get_many([path])[path]

    def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]:
        self._counts["BatchGetDocuments"] += 1
        found: dict[str, Doc | None] = self._target.get_many(paths)
        return found


class RoundTrips:
    """fjordbank.service_layer.ports.Documents around another one, counting its round
    trips by RPC (``counts``) and in all (``calls``)."""

    def __init__(self, docs: Documents) -> None:
        self.docs = docs
        self.counts: Counter[str] = Counter()

    @property
    def calls(self) -> int:
        return sum(self.counts.values())

    def reset(self) -> None:
        self.counts.clear()

    def get(self, path: str) -> Doc | None:
        self.counts["BatchGetDocuments"] += 1
        return self.docs.get(path)

    def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]:
        self.counts["BatchGetDocuments"] += 1
        return self.docs.get_many(paths)

    def query(
        self,
        collection: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
        start_after: Doc | None = None,
    ) -> list[Doc]:
        self.counts["RunQuery"] += 1
        return self.docs.query(collection, where=where, order_by=order_by, limit=limit, start_after=start_after)

    def count(self, collection: str, *, where: Sequence[Where] = (), up_to: int) -> int:
        self.counts["RunAggregationQuery"] += 1
        return self.docs.count(collection, where=where, up_to=up_to)

    def batch(self) -> Batch:
        return _CountingBatch(self.docs.batch(), self.counts)

    def transact(self, fn: Callable[[UnitOfWork], T], *, operation: str) -> T:
        def attempt(uow: UnitOfWork) -> T:
            self.counts["BeginTransaction"] += 1
            try:
                result = fn(_CountingUnit(uow, self.counts))
            except BaseException:
                self.counts["Rollback"] += 1
                raise
            self.counts["Commit"] += 1
            return result

        return self.docs.transact(attempt, operation=operation)
