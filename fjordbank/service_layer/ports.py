"""What a use case needs from the world, as small ports.

A use case of the service layer takes these Protocols and returns a result; it never
imports a database or a NATS client. Two implementations stand behind each port:

- ``fjordbank.adapters.documents``: Firestore (the emulator locally, production in the
  cloud), the only place that knows Firestore's client, sentinels and errors;
- ``tests/support/memory.py``: one in-memory fake, for unit tests of the use cases that
  run in milliseconds and without the emulators.

The two are held to the same behaviour by one contract suite run on both
(``tests/integration/test_documents_contract.py``): what a unit test learns on the fake is
what the real database does.

Documents are addressed by slash paths (``accounts/97100000028``,
``users/{uid}/paymentRequests/{id}``), their data is JSON-like (str, int, bool, None,
datetimes, lists and maps; never a float for money). Values that the database computes at
commit are the sentinels below.

The ports come in a blocking flavour (the callables and triggers of Cloud Functions) and an
asynchronous one (the consumer services); the write side of a unit of work is the same in
both, because writes are buffered until the commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

Data = dict[str, Any]
T = TypeVar("T")


# ---- values the database computes at commit ----------------------------------------------
class _Sentinel:
    """One of a kind: copying it gives itself, so ``is`` still finds it in copied data."""

    def __copy__(self) -> _Sentinel:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Sentinel:
        return self


class _ServerTime(_Sentinel):
    def __repr__(self) -> str:
        return "SERVER_TIME"


class _DeleteField(_Sentinel):
    def __repr__(self) -> str:
        return "DELETE_FIELD"


SERVER_TIME: Any = _ServerTime()  # the commit's time
DELETE_FIELD: Any = _DeleteField()  # in an update: remove the field


@dataclass(frozen=True)
class Increment:
    """In a write: add ``by`` to the field's stored number (0 when it has none)."""

    by: int


# ---- what can go wrong, in the port's words ----------------------------------------------
class PortError(Exception):
    """Base of the errors a port raises; the adapters translate their client's errors."""


class AlreadyExists(PortError):
    """A create found the document there (at the commit of its unit of work)."""


class NotFound(PortError):
    """An update found no document."""


class Stale(PortError):
    """A write with ``if_updated`` found the document changed since that time."""


class ReadAfterWrite(PortError):
    """A unit of work read after it had written (a bug of the use case, not of the data)."""


class Contention(PortError):
    """A unit of work lost every attempt to concurrent changes of the same documents:
    the request may well succeed a moment later (the caller answers with a retry hint)."""


@dataclass(frozen=True)
class Doc:
    """One stored document: its path, its data and when it was last written (the version a
    precondition write compares against)."""

    path: str
    data: Data
    updated: dt.datetime

    @property
    def id(self) -> str:
        return self.path.rsplit("/", 1)[-1]


Op = Literal["==", "!=", "<", "<=", ">", ">=", "in", "array_contains"]


@dataclass(frozen=True)
class Where:
    field: str
    op: Op
    value: Any


@dataclass(frozen=True)
class OrderBy:
    field: str
    descending: bool = False


@dataclass(frozen=True)
class Written:
    """What one write of a committed batch left: the document's update time (None after a
    delete) and the values the database computed at the commit for the write's sentinel
    fields (Increment, SERVER_TIME), by dotted field path (``w.000000004711``). An
    Increment's result is how a use case reads a counter in the same round trip that
    counts (fjordbank.service_layer.ratelimits)."""

    path: str
    updated: dt.datetime | None
    computed: Mapping[str, Any]


# ---- the write side (buffered until the commit) ------------------------------------------
class Writes(Protocol):
    def create(self, path: str, data: Mapping[str, Any]) -> None:
        """The commit fails with AlreadyExists if the document exists."""

    def set(self, path: str, data: Mapping[str, Any], *, merge: bool = False) -> None:
        """Replace the document (or, with ``merge``, only the given fields)."""

    def update(self, path: str, data: Mapping[str, Any], *, if_updated: dt.datetime | None = None) -> None:
        """Change the given fields; the commit fails with NotFound if there is no document,
        or with Stale if ``if_updated`` is given and the document changed since."""

    def delete(self, path: str) -> None: ...


class Batch(Writes, Protocol):
    """Writes committed together, atomically, with no reads (one round trip)."""

    def commit(self) -> list[Written]:
        """What each write left, in the order they were added (see `Written`)."""


class AsyncBatch(Writes, Protocol):
    async def commit(self) -> list[Written]: ...


# ---- the read side -----------------------------------------------------------------------
class UnitOfWork(Writes, Protocol):
    """One transaction: reads first, then writes; committed when the use case's function
    returns, or not at all. The reads are consistent with each other and the commit fails
    (and the function runs again) if a document read was changed in between."""

    def get(self, path: str) -> Doc | None: ...

    def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]: ...

    def query(
        self,
        collection: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
    ) -> list[Doc]:
        """A query read in the unit of work (one round trip): the commit fails, and the
        function runs again, if a document it found changed in between."""


class AsyncUnitOfWork(Writes, Protocol):
    async def get(self, path: str) -> Doc | None: ...

    async def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]: ...

    async def query(
        self,
        collection: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
    ) -> list[Doc]: ...


class Documents(Protocol):
    """The document database, blocking flavour (Cloud Functions)."""

    def get(self, path: str) -> Doc | None: ...

    def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]:
        """Every path's document (None when missing), in one round trip."""

    def query(
        self,
        collection: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
        start_after: Doc | None = None,
    ) -> list[Doc]:
        """``start_after``: the next page, after this document of the page before (as in
        `query_group`)."""

    def count(self, collection: str, *, where: Sequence[Where] = (), up_to: int) -> int:
        """How many documents of ``collection`` match ``where``, counted up to ``up_to`` (the
        answer is at most that): one aggregation, which reads index entries, not documents."""

    def batch(self) -> Batch: ...

    def transact(self, fn: Callable[[UnitOfWork], T], *, operation: str) -> T:
        """Run ``fn`` in a unit of work and commit what it wrote; run it again when the
        commit lost to a concurrent change (a few attempts, then Contention). ``operation``
        names the use case in the attempt metrics."""

    def query_group(
        self,
        collection_id: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
        start_after: Doc | None = None,
    ) -> list[Doc]:
        """A collection-group query: every collection named ``collection_id``, wherever it
        is (``users/{uid}/standingOrders`` of every user), in one round trip.
        ``start_after``: the next page, after this document of the page before (by its
        values as they were read there, then by its path, as Firestore's cursors go)."""

    def query_at(
        self,
        collection: str,
        read_time: dt.datetime,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
    ) -> list[Doc]:
        """``query`` as the documents were at ``read_time`` (a consistent snapshot across
        several queries; Firestore keeps an hour of versions)."""


class AsyncDocuments(Protocol):
    """The document database, asynchronous flavour (the consumer services)."""

    async def get(self, path: str) -> Doc | None: ...

    async def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]: ...

    async def query(
        self,
        collection: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
        start_after: Doc | None = None,
    ) -> list[Doc]:
        """``start_after``: the next page, after this document of the page before (as in
        `Documents.query_group`)."""

    def batch(self) -> AsyncBatch: ...

    async def transact(self, fn: Callable[[AsyncUnitOfWork], Awaitable[T]], *, operation: str) -> T: ...

    async def query_group(
        self,
        collection_id: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
    ) -> list[Doc]: ...

    async def query_at(
        self,
        collection: str,
        read_time: dt.datetime,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
    ) -> list[Doc]: ...


# ---- the other ports ---------------------------------------------------------------------
class Clock(Protocol):
    """Now, in UTC. Use cases take a clock so a test can set the date (a due date, a
    month's end, an expired hold)."""

    def __call__(self) -> dt.datetime: ...


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Sessions(Protocol):
    """The customer's sign-in sessions (fjordbank.adapters.sessions): ``end_all`` signs the
    user out everywhere: no session gets a new ID token, and it returns the time (Unix
    seconds) from which the identity platform takes tokens again, which the use case
    records so that tokens signed in before are refused at once
    (fjordbank.service_layer.sessions); raises if the identity platform did not take it."""

    def end_all(self, uid: str) -> int: ...


class Publisher(Protocol):
    """Publishes one event to JetStream and waits for its ack; ``msg_id`` makes a second
    publish of the same event a no-op (the stream's duplicate window)."""

    def publish_json(self, subject: str, body: dict[str, Any], *, msg_id: str, stream: str | None = None) -> Any: ...


class AsyncPublisher(Protocol):
    """`Publisher`, asynchronous flavour (the consumer services): publishes one event to
    JetStream and waits for its ack; raises fjordbank.errors.PublishError when it was not
    stored. ``msg_id`` makes a second publish of the same event a no-op."""

    async def publish_json(
        self, subject: str, body: dict[str, Any], *, msg_id: str, stream: str | None = None
    ) -> Any: ...
