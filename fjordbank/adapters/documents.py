"""The service layer's document ports (fjordbank.service_layer.ports) on Firestore.

The only place where a use case's reads and writes meet Firestore's client: paths become
references, the ports' sentinels become Firestore's (SERVER_TIMESTAMP, Increment,
DELETE_FIELD), Firestore's errors become the ports' (AlreadyExists, NotFound, Stale,
Contention), and every unit of work is counted in fjb_firestore_transaction_attempts_total
under its operation, as the consumers' transactions are (fjordbank.adapters.firestore).

The in-memory fake (tests/support/memory.py) is held to the same behaviour by the contract
suite tests/integration/test_documents_contract.py, which runs on both.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from google.api_core import exceptions as api_errors
from google.api_core import gapic_v1
from google.cloud import firestore
from google.cloud.firestore_v1 import AsyncTransaction
from google.cloud.firestore_v1._helpers import (
    ReadAfterWriteError,
    decode_dict,
    decode_value,
    get_transaction_id,
    make_retry_timeout_kwargs,
)
from google.cloud.firestore_v1.base_document import DocumentSnapshot
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.transaction import Transaction, transactional
from google.cloud.firestore_v1.types.write import Write

from fjordbank.adapters import firestore_writes
from fjordbank.adapters.firestore import (
    BODY_ABORT_TRIES,
    CountedClient,
    async_transactional,
    body_abort_backoff,
    count_attempts,
    is_contention,
)
from fjordbank.service_layer import ports
from fjordbank.service_layer.ports import Data, Doc, OrderBy, Where, Written

log = logging.getLogger(__name__)

T = TypeVar("T")


def to_firestore(value: Any) -> Any:
    """The ports' sentinels, anywhere in a document's data, as Firestore's."""
    if value is ports.SERVER_TIME:
        return firestore.SERVER_TIMESTAMP
    if value is ports.DELETE_FIELD:
        return firestore.DELETE_FIELD
    if isinstance(value, ports.Increment):
        return firestore.Increment(value.by)
    if isinstance(value, Mapping):
        return {k: to_firestore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_firestore(v) for v in value]
    return value


def stream_group(db: firestore.Client, collection_id: str) -> Iterator[Doc]:
    """Every document of every collection named ``collection_id``, streamed page by page
    (a migration's scan of the whole database: never held in memory at once)."""
    for snap in db.collection_group(collection_id).stream():
        if (doc := to_doc(snap)) is not None:
            yield doc


def to_doc(snap: DocumentSnapshot[Any]) -> Doc | None:
    if not snap.exists:
        return None
    data: Data = snap.to_dict() or {}
    updated = snap.update_time
    assert updated is not None  # an existing document always has one
    return Doc(snap.reference.path, data, updated)


# ---- reads: the client's batch get, without its snapshots -------------------------------------
# ``get_all`` wraps every document of a batch read in a DocumentSnapshot through proto-plus and
# `to_doc` deep-copies its data: about 125 µs per document against 38 µs for the same request
# and the same decoding (`_helpers.decode_dict`, and proto-plus's own rule for the update time,
# which the writes' preconditions compare) read off the raw response. The reads of the
# consumers' hot path (a batch's accounts, records, owners, labels) go this way;
# tests/unit/test_firestore_reads.py holds both to the same documents. The client's internals
# used here (``_firestore_api``, ``_rpc_metadata``) are pinned by requirements.lock; the
# contract suite on the emulator shows one that moved.
def _batch_get(db: Any, paths: Sequence[str], transaction: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The BatchGetDocuments request the client's ``get_all`` sends, its keyword arguments,
    and document name -> path (each path checked as a document reference is)."""
    names = {db.document(p)._document_path: p for p in paths}
    request = {
        "database": db._database_string,
        "documents": list(names),
        "transaction": get_transaction_id(transaction),
    }
    kwargs = {"metadata": db._rpc_metadata, **make_retry_timeout_kwargs(gapic_v1.method.DEFAULT, None)}
    return {"request": request, **kwargs}, names


def doc_of(response: Any, names: Mapping[str, str], db: Any) -> Doc | None:
    """The document of one raw BatchGetDocumentsResponse (None: it is missing)."""
    if response.WhichOneof("result") != "found":
        return None
    found = response.found
    data = decode_dict(found.fields, db)
    if not isinstance(data, dict):  # fields that spell a vector or a BSON value: never one of ours
        raise ValueError(f"{found.name} decodes to a {type(data).__name__}, not a document")
    return Doc(names[found.name], data, firestore_writes.TIMESTAMPS.to_python(found.update_time))


def _get_many(db: firestore.Client, paths: Sequence[str], transaction: Any = None) -> dict[str, Doc | None]:
    found: dict[str, Doc | None] = dict.fromkeys(paths)
    if paths:
        call, names = _batch_get(db, paths, transaction)
        for response in db._firestore_api.batch_get_documents(**call):
            if (doc := doc_of(response._pb, names, db)) is not None:
                found[doc.path] = doc
    return found


async def _get_many_async(
    db: firestore.AsyncClient, paths: Sequence[str], transaction: Any = None
) -> dict[str, Doc | None]:
    found: dict[str, Doc | None] = dict.fromkeys(paths)
    if paths:
        call, names = _batch_get(db, paths, transaction)
        async for response in await db._firestore_api.batch_get_documents(**call):
            if (doc := doc_of(response._pb, names, db)) is not None:
                found[doc.path] = doc
    return found


def _retry_body_aborts(run: Callable[[], T]) -> T:
    """``run`` (one transaction, with the client's own retries of an aborted commit) again
    when its body's read was ABORTED (fjordbank.adapters.firestore.BODY_ABORT_TRIES)."""
    tries = 0
    while True:
        try:
            return run()
        except api_errors.Aborted:
            tries += 1
            if tries >= BODY_ABORT_TRIES:
                raise
            time.sleep(body_abort_backoff(tries))


@contextmanager
def port_errors() -> Iterator[None]:
    """Firestore's errors as the ports' (a commit's precondition, or contention)."""
    try:
        yield
    except api_errors.AlreadyExists as exc:  # a create of an existing document
        raise ports.AlreadyExists(str(exc)) from exc
    except api_errors.NotFound as exc:  # an update of a missing one
        raise ports.NotFound(str(exc)) from exc
    except api_errors.FailedPrecondition as exc:  # last_update_time did not match
        raise ports.Stale(str(exc)) from exc
    except ReadAfterWriteError as exc:
        raise ports.ReadAfterWrite(str(exc)) from exc
    except (api_errors.Aborted, ValueError) as exc:
        if is_contention(exc):
            raise ports.Contention(str(exc)) from exc
        raise


class _Writer:
    """The write side of a batch or a transaction: paths to references, sentinels. Each
    write is built as a raw protobuf by fjordbank.adapters.firestore_writes (the client's
    own encoding, byte for byte, at a fraction of its CPU) and handed to the batch or
    transaction as the client would hand its own; what that module leaves alone (None) is
    given to the client's method, which encodes it or refuses it."""

    def __init__(self, db: firestore.Client | firestore.AsyncClient, target: Any) -> None:
        self._db = db
        self._target = target  # a WriteBatch, Transaction or their async kin
        self._paths: list[tuple[str, bool]] = []  # each write's path, and whether it deletes

    def create(self, path: str, data: Mapping[str, Any]) -> None:
        ref = self._db.document(path)
        if not self._add(firestore_writes.create(ref._document_path, data)):
            self._target.create(ref, to_firestore(data))
        self._paths.append((path, False))

    def set(self, path: str, data: Mapping[str, Any], *, merge: bool = False) -> None:
        ref = self._db.document(path)
        if not self._add(firestore_writes.set_(ref._document_path, data, merge=merge)):
            self._target.set(ref, to_firestore(data), merge=merge)
        self._paths.append((path, False))

    def update(self, path: str, data: Mapping[str, Any], *, if_updated: dt.datetime | None = None) -> None:
        ref = self._db.document(path)
        if not self._add(firestore_writes.update(ref._document_path, data, if_updated=if_updated)):
            option = self._db.write_option(last_update_time=if_updated) if if_updated is not None else None
            self._target.update(ref, to_firestore(data), option=option)
        self._paths.append((path, False))

    def delete(self, path: str) -> None:
        self._target.delete(self._db.document(path))
        self._paths.append((path, True))

    def _add(self, write: Any | None) -> bool:
        """Hand a raw write to the batch or transaction (False: there is none)."""
        if write is None:
            return False
        self._target._add_write_pbs([write])  # what the client's create/set/update do with theirs
        return True

    def _pending(self) -> list[Write]:
        """The batch's writes as sent (the commit clears them): each one's field transforms,
        in the order of its result's ``transform_results``."""
        pending: list[Write] = self._target._write_pbs  # the client keeps them only here
        return list(pending)

    def _written(self, writes: list[Write], results: Sequence[Any]) -> list[Written]:
        return [
            Written(path, None if deletes else result.update_time, self._computed(write, result))
            for (path, deletes), write, result in zip(self._paths, writes, results, strict=True)
        ]

    def _computed(self, write: Write, result: Any) -> dict[str, Any]:
        """The field transforms' results by dotted field path (Firestore quotes a segment
        that is not an identifier: ``w.`000000004711```)."""
        return {
            ".".join(FieldPath.from_api_repr(transform.field_path).parts): decode_value(value, self._db)
            for transform, value in zip(write.update_transforms, result.transform_results, strict=True)
        }


class FirestoreBatch(_Writer):
    def commit(self) -> list[Written]:
        writes = self._pending()
        with port_errors():
            results = self._target.commit()
        return self._written(writes, results)


class AsyncFirestoreBatch(_Writer):
    async def commit(self) -> list[Written]:
        writes = self._pending()
        with port_errors():
            results = await self._target.commit()
        return self._written(writes, results)


def _query(
    db: firestore.Client | firestore.AsyncClient,
    collection: str,
    where: Sequence[Where],
    order_by: Sequence[OrderBy],
    limit: int | None,
) -> Any:
    return _refine(db.collection(collection), where, order_by, limit)


def _refine(query: Any, where: Sequence[Where], order_by: Sequence[OrderBy], limit: int | None) -> Any:
    """A collection's or a collection group's query with the filters, order and limit."""
    for w in where:
        query = query.where(filter=FieldFilter(w.field, w.op, w.value))
    for o in order_by:
        query = query.order_by(o.field, direction=firestore.Query.DESCENDING if o.descending else "ASCENDING")
    if limit is not None:
        query = query.limit(limit)
    return query


class FirestoreUnitOfWork(_Writer):
    def __init__(self, db: firestore.Client, tx: Transaction) -> None:
        super().__init__(db, tx)
        self._tx = tx

    def get(self, path: str) -> Doc | None:
        return self.get_many([path])[path]

    def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]:
        db: firestore.Client = self._db  # type: ignore[assignment]  # always the blocking client here
        return _get_many(db, paths, self._tx)

    def query(
        self,
        collection: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
    ) -> list[Doc]:
        snaps = _query(self._db, collection, where, order_by, limit).stream(transaction=self._tx)
        return [d for d in (to_doc(s) for s in snaps) if d is not None]


def _after(db: firestore.Client | firestore.AsyncClient, query: Any, start_after: Doc | None) -> Any:
    """``query`` from after ``start_after`` (None: from the start). A snapshot cursor (not
    field values): the client then orders by the inequality's fields and the document's
    name, so a page ends between two documents with the same values."""
    if start_after is None:
        return query
    ref = db.document(start_after.path)
    return query.start_after(DocumentSnapshot(ref, start_after.data, True, None, None, start_after.updated))


class FirestoreDocuments:
    """fjordbank.service_layer.ports.Documents on a blocking Firestore client."""

    def __init__(self, db: firestore.Client) -> None:
        self.db = db
        # a bounded client's (the edge's) stream options: fjordbank.adapters.firestore.query_options
        self._stream: dict[str, Any] = db.fjb_query_options if isinstance(db, CountedClient) else {}

    def get(self, path: str) -> Doc | None:
        return to_doc(self.db.document(path).get())

    def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]:
        return _get_many(self.db, paths)

    def query(
        self,
        collection: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
        start_after: Doc | None = None,
    ) -> list[Doc]:
        query = _after(self.db, _query(self.db, collection, where, order_by, limit), start_after)
        return [d for d in (to_doc(s) for s in query.stream(**self._stream)) if d is not None]

    def count(self, collection: str, *, where: Sequence[Where] = (), up_to: int) -> int:
        # the limit bounds what the aggregation reads (Firestore bills a read per 1,000 entries)
        (result,) = _query(self.db, collection, where, (), up_to).count().get(**self._stream)
        return int(result[0].value)

    def batch(self) -> FirestoreBatch:
        return FirestoreBatch(self.db, self.db.batch())

    def transact(self, fn: Callable[[FirestoreUnitOfWork], T], *, operation: str) -> T:
        attempts = 0

        def attempt(tx: Transaction) -> T:
            nonlocal attempts
            attempts += 1
            return fn(FirestoreUnitOfWork(self.db, tx))

        try:
            with port_errors():
                result: T = _retry_body_aborts(lambda: transactional(attempt)(self.db.transaction()))
        except BaseException as exc:
            count_attempts(operation, attempts, exc.__cause__ if isinstance(exc, ports.Contention) else exc)
            raise
        count_attempts(operation, attempts, None)
        return result

    def query_group(
        self,
        collection_id: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
        start_after: Doc | None = None,
    ) -> list[Doc]:
        query = _after(self.db, _refine(self.db.collection_group(collection_id), where, order_by, limit), start_after)
        return [d for d in (to_doc(s) for s in query.stream(**self._stream)) if d is not None]

    def query_at(
        self,
        collection: str,
        read_time: dt.datetime,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
    ) -> list[Doc]:
        snaps = _query(self.db, collection, where, order_by, limit).stream(read_time=read_time, **self._stream)
        return [d for d in (to_doc(s) for s in snaps) if d is not None]


class AsyncFirestoreUnitOfWork(_Writer):
    def __init__(self, db: firestore.AsyncClient, tx: AsyncTransaction) -> None:
        super().__init__(db, tx)
        self._tx = tx

    async def get(self, path: str) -> Doc | None:
        return (await self.get_many([path]))[path]

    async def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]:
        db: firestore.AsyncClient = self._db  # type: ignore[assignment]  # always the async client here
        return await _get_many_async(db, paths, self._tx)

    async def query(
        self,
        collection: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
    ) -> list[Doc]:
        return await _collect(_query(self._db, collection, where, order_by, limit).stream(transaction=self._tx))


# How long a transaction's rollback is waited for. The client rolls a transaction back on
# any error, a cancel included, and waits up to 60 s for it: the consumer's handler
# deadline (fjordbank/runtime/consumer.py, HANDLER_DEADLINE_SECONDS) cancels a handler whose
# database stopped answering, and the partition then stayed held for that rollback, a
# minute past the deadline (found in review, 2026-12-06). A rollback not answered is given
# up: the database ends the transaction itself when it expires, and nothing was written.
ROLLBACK_WAIT_S = 5.0


class BoundedRollback(AsyncTransaction):
    """The client's transaction, its rollback waited for at most ``ROLLBACK_WAIT_S``."""

    async def _rollback(self) -> None:
        # A BeginTransaction that failed (not answered in time) leaves no transaction to
        # roll back, and the client's wrapper rolls back all the same: the client's
        # ValueError ("cannot be rolled back") then replaced the real error, a transient
        # one, and the card API answered 500 where it answers 503 retry, and the processor
        # does not send a 500's capture or refund again (found in review, 2026-12-06).
        if not self.in_progress:
            return
        try:
            async with asyncio.timeout(ROLLBACK_WAIT_S):
                await super()._rollback()
        except TimeoutError:
            log.warning("a transaction's rollback was not answered in time; the database ends it at expiry")
            self._clean_up()


class AsyncFirestoreDocuments:
    """fjordbank.service_layer.ports.AsyncDocuments on an asynchronous Firestore client.
    ``query_deadline``: how long a query (outside a transaction) may take in all, in place of
    the client's bound for every call (a whole RunQuery stream is one call: the card
    service's background work reads pages of up to 500 documents, run_services/cards.py)."""

    def __init__(self, db: firestore.AsyncClient, *, query_deadline: float | None = None) -> None:
        self.db = db
        self._stream: dict[str, Any] = {} if query_deadline is None else {"timeout": query_deadline}

    async def get(self, path: str) -> Doc | None:
        return to_doc(await self.db.document(path).get())

    async def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]:
        return await _get_many_async(self.db, paths)

    async def query(
        self,
        collection: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
        start_after: Doc | None = None,
    ) -> list[Doc]:
        found = []
        query = _after(self.db, _query(self.db, collection, where, order_by, limit), start_after)
        async for snap in query.stream(**self._stream):
            doc = to_doc(snap)
            if doc is not None:
                found.append(doc)
        return found

    def batch(self) -> AsyncFirestoreBatch:
        return AsyncFirestoreBatch(self.db, self.db.batch())

    async def transact(self, fn: Callable[[AsyncFirestoreUnitOfWork], Awaitable[T]], *, operation: str) -> T:
        async def attempt(tx: AsyncTransaction) -> T:
            return await fn(AsyncFirestoreUnitOfWork(self.db, tx))

        # counted under ``operation`` by the services' one transactional decorator
        with port_errors():
            result: T = await async_transactional(operation=operation)(attempt)(BoundedRollback(self.db))
        return result

    async def query_group(
        self,
        collection_id: str,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
    ) -> list[Doc]:
        return await _collect(_refine(self.db.collection_group(collection_id), where, order_by, limit).stream())

    async def query_at(
        self,
        collection: str,
        read_time: dt.datetime,
        *,
        where: Sequence[Where] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
    ) -> list[Doc]:
        return await _collect(_query(self.db, collection, where, order_by, limit).stream(read_time=read_time))


async def _collect(snaps: Any) -> list[Doc]:
    """The documents of an asynchronous query's stream."""
    found = []
    async for snap in snaps:
        doc = to_doc(snap)
        if doc is not None:
            found.append(doc)
    return found
