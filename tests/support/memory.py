"""The one in-memory fake of the service layer's ports (fjordbank.service_layer.ports).

Unit tests run the use cases on it in milliseconds, with no emulator. It behaves as the
Firestore adapter does on the points a use case can observe, and the contract suite
(tests/integration/test_documents_contract.py) runs the same tests on both to keep it so:

- creates fail with AlreadyExists, updates of a missing document with NotFound, a write
  with ``if_updated`` on a changed document with Stale, all at the commit, all or nothing;
- a unit of work reads before it writes (ReadAfterWrite otherwise), is committed when its
  function returns, and runs again when a document it read changed before its commit
  (optimistic: the versions read are compared at the commit; the asynchronous flavour can
  really interleave), at most ``MAX_ATTEMPTS`` times, then Contention;
- SERVER_TIME is the commit's time, strictly increasing; Increment adds to the stored
  number (a batch's commit returns what each write computed); DELETE_FIELD removes a
  field; ``update`` takes dotted field paths, ``set`` with ``merge`` merges maps field
  by field;
- queries see a collection's direct children, leave out documents without the filtered or
  ordered field, and order by path when no order is given; a collection-group query sees
  every collection of that name, wherever it is;
- a query in a unit of work is read in it: the unit runs again if its result (which
  documents, at which versions) changed before the commit;
- every version written is kept, so a query can read the documents as they were at a
  time (``query_at``).

The stored data is copied in and out, so a use case cannot change it behind the port.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from google.api_core.exceptions import InvalidArgument

from fjordbank.service_layer.ports import (
    DELETE_FIELD,
    SERVER_TIME,
    AlreadyExists,
    Contention,
    Data,
    Doc,
    Increment,
    NotFound,
    OrderBy,
    ReadAfterWrite,
    Stale,
    Where,
    Written,
)

T = TypeVar("T")
MAX_ATTEMPTS = 5  # as the Firestore client's transactions


_MISSING = object()
_INEQUALITIES = frozenset({"<", "<=", ">", ">=", "!="})


def _get_field(data: Mapping[str, Any], field: str) -> Any:
    value: Any = data
    for part in field.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _resolve(value: Any, old: Any, now: dt.datetime) -> Any:
    if value is SERVER_TIME:
        return now
    if isinstance(value, Increment):
        return (old if isinstance(old, int) and not isinstance(old, bool) else 0) + value.by
    if isinstance(value, Mapping):
        base = old if isinstance(old, Mapping) else {}
        return {k: _resolve(v, base.get(k), now) for k, v in value.items() if v is not DELETE_FIELD}
    if isinstance(value, list):
        return [_resolve(v, None, now) for v in value]
    return copy.deepcopy(value)


def _merge(target: dict[str, Any], patch: Mapping[str, Any], now: dt.datetime) -> None:
    for key, value in patch.items():
        if value is DELETE_FIELD:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value, now)
        else:
            target[key] = _resolve(value, target.get(key), now)


def _update(target: dict[str, Any], patch: Mapping[str, Any], now: dt.datetime) -> None:
    for field, value in patch.items():
        *parents, last = field.split(".")
        node = target
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if value is DELETE_FIELD:
            node.pop(last, None)
        else:
            node[last] = _resolve(value, node.get(last), now)


def _compare(value: Any, op: str, wanted: Any) -> bool:
    try:
        return {
            "==": lambda: value == wanted,
            "!=": lambda: value != wanted,
            "<": lambda: value < wanted,
            "<=": lambda: value <= wanted,
            ">": lambda: value > wanted,
            ">=": lambda: value >= wanted,
            "in": lambda: value in wanted,
            "array_contains": lambda: isinstance(value, list) and wanted in value,
        }[op]()
    except TypeError:  # Firestore compares only values of one type
        return False


def _computed_fields(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted paths of a write's sentinels that the commit computes (Increment,
    SERVER_TIME): an update's dotted keys and a set's nested maps give the same paths."""
    found = []
    for key, value in data.items():
        field = f"{prefix}{key}"
        if value is SERVER_TIME or isinstance(value, Increment):
            found.append(field)
        elif isinstance(value, Mapping):
            found += _computed_fields(value, field + ".")
    return found


def _not_reserved(path: str) -> None:
    """Firestore (production and the emulator) answers a read or write naming a document id
    of the form __...__ with 400 INVALID_ARGUMENT ("Resource id ... is invalid because it is
    reserved"): so does this fake, so a client's id that reaches a path unchecked shows."""
    for segment in path.split("/"):
        if len(segment) >= 4 and segment.startswith("__") and segment.endswith("__"):
            raise InvalidArgument(f'Resource id "{segment}" is invalid because it is reserved.')


def _no_array_in_array(value: Any, where: str = "") -> None:
    """Firestore takes no array directly inside an array (INVALID_ARGUMENT, "Cannot convert
    an array value in an array value"): neither does this fake, which took one, and a
    history written so failed every booking batch in production (found in review)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            _no_array_in_array(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, list | tuple):
                raise InvalidArgument(f"{where}: Cannot convert an array value in an array value.")
            _no_array_in_array(item, where)


class _Store:
    """The documents and their versions, shared by both flavours."""

    def __init__(self, clock: Callable[[], dt.datetime]) -> None:
        self.docs: dict[str, tuple[Data, dt.datetime]] = {}
        self.history: dict[str, list[tuple[dt.datetime, Data | None]]] = {}  # every version, oldest first
        self.clock = clock
        self.last_commit = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        self.commits = 0
        self.lock = threading.RLock()  # a commit's check and writes are one step

    def doc(self, path: str) -> Doc | None:
        _not_reserved(path)
        stored = self.docs.get(path)
        return None if stored is None else Doc(path, copy.deepcopy(stored[0]), stored[1])

    def version(self, path: str) -> dt.datetime | None:
        _not_reserved(path)
        stored = self.docs.get(path)
        return None if stored is None else stored[1]

    def commit_time(self) -> dt.datetime:
        now = max(self.clock(), self.last_commit + dt.timedelta(microseconds=1))
        self.last_commit = now
        return now

    def query(
        self,
        collection: str,
        where: Sequence[Where],
        order_by: Sequence[OrderBy],
        limit: int | None,
        *,
        group: bool = False,
        read_time: dt.datetime | None = None,
        start_after: Doc | None = None,
    ) -> list[Doc]:
        """``collection``'s documents (with ``group``: those of every collection of that
        name), as they are or as they were at ``read_time``, filtered, ordered and limited;
        with ``start_after``, those after that document's values (as given) and path."""
        depth = collection.count("/") + 1

        def member(path: str) -> bool:
            if group:
                parts = path.split("/")
                return len(parts) % 2 == 0 and parts[-2] == collection
            return path.startswith(collection + "/") and path.count("/") == depth

        docs = self.docs if read_time is None else self._as_of(read_time)
        found = [(path, data, version) for path, (data, version) in docs.items() if member(path)]
        for w in where:
            found = [
                f for f in found if (v := _get_field(f[1], w.field)) is not _MISSING and _compare(v, w.op, w.value)
            ]
        if not order_by:  # as Firestore: an inequality orders by its fields first (by path), then by id
            order_by = [OrderBy(f) for f in sorted({w.field for w in where if w.op in _INEQUALITIES})]
        # then by the document's name, segment by segment, in the last order's direction (Firestore's)
        names_descending = bool(order_by) and order_by[-1].descending
        found.sort(key=lambda f: f[0].split("/"), reverse=names_descending)
        for o in reversed(order_by):
            found = [f for f in found if _get_field(f[1], o.field) is not _MISSING]
            found.sort(key=lambda f, o=o: _get_field(f[1], o.field), reverse=o.descending)
        if start_after is not None:
            cursor = start_after

            def after(data: Data, path: str) -> bool:
                """Whether a document comes after the cursor in the query's order."""
                for o in order_by:
                    mine, its = _get_field(data, o.field), _get_field(cursor.data, o.field)
                    if mine != its:
                        return bool(mine < its) if o.descending else bool(mine > its)
                mine_name, its_name = path.split("/"), cursor.path.split("/")
                return mine_name < its_name if names_descending else mine_name > its_name

            found = [f for f in found if after(f[1], f[0])]
        if limit is not None:
            found = found[:limit]
        return [Doc(path, copy.deepcopy(data), version) for path, data, version in found]

    def _as_of(self, read_time: dt.datetime) -> dict[str, tuple[Data, dt.datetime]]:
        """Every document as it was at ``read_time`` (its last version written by then)."""
        docs = {}
        for path, versions in self.history.items():
            then = [(version, data) for version, data in versions if version <= read_time]
            if then and then[-1][1] is not None:
                docs[path] = (then[-1][1], then[-1][0])
        return docs

    def apply(self, writes: list[tuple[str, str, Mapping[str, Any], Any]]) -> list[Written]:
        """Check every write's precondition, then apply them all (or none)."""
        with self.lock:
            return self._apply(writes)

    def _apply(self, writes: list[tuple[str, str, Mapping[str, Any], Any]]) -> list[Written]:
        for kind, path, _, option in writes:
            _not_reserved(path)
            exists = path in self.docs
            if kind == "create" and exists:
                raise AlreadyExists(path)
            if kind == "update" and not exists:
                raise NotFound(path)
            if kind == "update" and option is not None and self.docs[path][1] != option:
                raise Stale(path)
        now = self.commit_time()
        written = []
        for kind, path, data, option in writes:
            if kind == "delete":
                self.docs.pop(path, None)
                self.history.setdefault(path, []).append((now, None))
                written.append(Written(path, None, {}))
                continue
            current = copy.deepcopy(self.docs[path][0]) if path in self.docs else {}
            if kind == "update":
                _update(current, data, now)
            elif kind == "set" and option:  # merge
                _merge(current, data, now)
            else:
                current = {}
                _merge(current, data, now)
            self.docs[path] = (current, now)
            self.history.setdefault(path, []).append((now, copy.deepcopy(current)))
            computed = {f: copy.deepcopy(_get_field(current, f)) for f in _computed_fields(data)}
            written.append(Written(path, now, computed))
        self.commits += 1
        return written


class _Writes:
    def __init__(self) -> None:
        self.writes: list[tuple[str, str, Mapping[str, Any], Any]] = []

    def create(self, path: str, data: Mapping[str, Any]) -> None:
        _no_array_in_array(data)
        self.writes.append(("create", path, copy.deepcopy(dict(data)), None))

    def set(self, path: str, data: Mapping[str, Any], *, merge: bool = False) -> None:
        _no_array_in_array(data)
        self.writes.append(("set", path, copy.deepcopy(dict(data)), merge))

    def update(self, path: str, data: Mapping[str, Any], *, if_updated: dt.datetime | None = None) -> None:
        _no_array_in_array(data)
        self.writes.append(("update", path, copy.deepcopy(dict(data)), if_updated))

    def delete(self, path: str) -> None:
        self.writes.append(("delete", path, {}, None))


class MemoryBatch(_Writes):
    def __init__(self, store: _Store) -> None:
        super().__init__()
        self._store = store

    def commit(self) -> list[Written]:
        return self._store.apply(self.writes)


class AsyncMemoryBatch(MemoryBatch):
    async def commit(self) -> list[Written]:  # type: ignore[override]  # the async flavour of the same batch
        return self._store.apply(self.writes)


class _Unit(_Writes):
    """One attempt of a unit of work: what it read (and at which version) and wrote."""

    def __init__(self, store: _Store) -> None:
        super().__init__()
        self._store = store
        self.read: dict[str, dt.datetime | None] = {}
        self.queries: list[tuple[Callable[[], list[Doc]], list[tuple[str, dt.datetime]]]] = []

    def _get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]:
        if self.writes:
            raise ReadAfterWrite("a unit of work reads before it writes")
        out = {}
        for path in paths:
            self.read[path] = self._store.version(path)
            out[path] = self._store.doc(path)
        return out

    def _query(
        self, collection: str, where: Sequence[Where], order_by: Sequence[OrderBy], limit: int | None
    ) -> list[Doc]:
        """Run the query and keep it, with what it found, to run it again at the commit."""
        if self.writes:
            raise ReadAfterWrite("a unit of work reads before it writes")

        def rerun() -> list[Doc]:
            return self._store.query(collection, where, order_by, limit)

        found = rerun()
        self.queries.append((rerun, [(d.path, d.updated) for d in found]))
        return found

    def _changed(self) -> bool:
        """Whether a document read, or a query's result, changed since it was read."""
        if any(self._store.version(path) != version for path, version in self.read.items()):
            return True
        return any([(d.path, d.updated) for d in rerun()] != seen for rerun, seen in self.queries)

    def commit(self) -> bool:
        """Apply the writes if nothing read has changed since; False: run again."""
        with self._store.lock:
            if self._changed():
                return False
            self._store.apply(self.writes)
            return True


class MemoryUnitOfWork(_Unit):
    def get(self, path: str) -> Doc | None:
        return self._get_many([path])[path]

    def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]:
        return self._get_many(paths)

    def query(
        self,
        collection: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
    ) -> list[Doc]:
        return self._query(collection, where, order_by, limit)


class AsyncMemoryUnitOfWork(_Unit):
    async def get(self, path: str) -> Doc | None:
        return self._get_many([path])[path]

    async def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]:
        return self._get_many(paths)

    async def query(
        self,
        collection: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
    ) -> list[Doc]:
        return self._query(collection, where, order_by, limit)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class MemoryDocuments:
    """The blocking ports on memory (fjordbank.service_layer.ports.Documents)."""

    def __init__(self, clock: Callable[[], dt.datetime] = _utc_now, *, store: _Store | None = None) -> None:
        self.store = store or _Store(clock)
        self.attempts: dict[str, int] = {}  # per operation, as the metrics count them

    def get(self, path: str) -> Doc | None:
        return self.store.doc(path)

    def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]:
        return {p: self.store.doc(p) for p in paths}

    def query(
        self,
        collection: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
        start_after: Doc | None = None,
    ) -> list[Doc]:
        return self.store.query(collection, where, order_by, limit, start_after=start_after)

    def count(self, collection: str, *, where: Sequence[Where] = (), up_to: int) -> int:
        return len(self.store.query(collection, where, (), up_to))

    def batch(self) -> MemoryBatch:
        return MemoryBatch(self.store)

    def transact(self, fn: Callable[[MemoryUnitOfWork], T], *, operation: str) -> T:
        for _ in range(MAX_ATTEMPTS):
            self.attempts[operation] = self.attempts.get(operation, 0) + 1
            unit = MemoryUnitOfWork(self.store)
            result = fn(unit)
            if unit.commit():
                return result
        raise Contention(operation)

    def asynchronous(self) -> AsyncMemoryDocuments:
        """The asynchronous ports on the same documents."""
        return AsyncMemoryDocuments(store=self.store)

    def query_group(
        self,
        collection_id: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
        start_after: Doc | None = None,
    ) -> list[Doc]:
        return self.store.query(collection_id, where, order_by, limit, group=True, start_after=start_after)

    def query_at(
        self,
        collection: str,
        read_time: dt.datetime,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
    ) -> list[Doc]:
        return self.store.query(collection, where, order_by, limit, read_time=read_time)


class AsyncMemoryDocuments:
    """The asynchronous ports on memory (fjordbank.service_layer.ports.AsyncDocuments)."""

    def __init__(self, clock: Callable[[], dt.datetime] = _utc_now, *, store: _Store | None = None) -> None:
        self.store = store or _Store(clock)
        self.attempts: dict[str, int] = {}

    async def get(self, path: str) -> Doc | None:
        return self.store.doc(path)

    async def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]:
        return {p: self.store.doc(p) for p in paths}

    async def query(
        self,
        collection: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
        start_after: Doc | None = None,
    ) -> list[Doc]:
        return self.store.query(collection, where, order_by, limit, start_after=start_after)

    def batch(self) -> AsyncMemoryBatch:
        return AsyncMemoryBatch(self.store)

    async def transact(self, fn: Callable[[AsyncMemoryUnitOfWork], Awaitable[T]], *, operation: str) -> T:
        for _ in range(MAX_ATTEMPTS):
            self.attempts[operation] = self.attempts.get(operation, 0) + 1
            unit = AsyncMemoryUnitOfWork(self.store)
            result = await fn(unit)
            if unit.commit():
                return result
        raise Contention(operation)

    async def query_group(
        self,
        collection_id: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
    ) -> list[Doc]:
        return self.store.query(collection_id, where, order_by, limit, group=True)

    async def query_at(
        self,
        collection: str,
        read_time: dt.datetime,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
    ) -> list[Doc]:
        return self.store.query(collection, where, order_by, limit, read_time=read_time)
