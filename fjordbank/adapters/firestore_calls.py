"""Counting the Firestore work: round trips (RPCs) and document reads and writes.

Every client made by fjordbank.adapters.firestore (``sync_client``, ``async_client``)
carries these gRPC interceptors on the emulator's channel, the one every RPC of the
client goes through (why a channel interceptor: see fjordbank.adapters.faults). They
count, per RPC method:

- ``fjb_firestore_calls_total{method}``: round trips (a streaming read is one);
- ``fjb_firestore_documents_total{method,op}``: documents read and written, as Firestore
  bills them: a batch get reads every document it names (found or not), a query reads
  the documents it returns (at least one), a commit writes each of its writes (a write's
  field transforms are part of it).

The bench (bench/docops.py) scrapes every service's /metrics before and after a run of one
payment kind and divides by the payments: the document operations per payment and step.
A ``tally()`` block counts the calls of the code inside it alone (per thread or task: a
context variable), which is how the edge's round trips per payment request are measured.

In production the channel is the client's own (no interceptor); the same figures come
from Cloud Monitoring's firestore.googleapis.com/document/{read,write}_count.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections import Counter as Tallies
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar, cast

import grpc
import grpc.aio
from prometheus_client import Counter

# A call's request and response messages (gRPC's interceptors are generic over them). The
# counters read a request of any Firestore method, hence ``Any`` where one is read.
Req = TypeVar("Req")
Resp = TypeVar("Resp")
CallDetails = grpc.ClientCallDetails | grpc.aio.ClientCallDetails

# Declared by keywords (tests/unit/test_reasons.py reads positional snake_case strings in
# fjordbank/ as reason codes).
CALLS = Counter(
    name="fjb_firestore_calls_total",
    documentation="Firestore round trips (RPCs) this process made, by method",
    labelnames=["method"],
)
DOCUMENTS = Counter(
    name="fjb_firestore_documents_total",
    documentation="Firestore documents this process read or wrote, by method, op (read, write) and collection",
    labelnames=["method", "op", "collection"],
)
READ = "read"
WRITE = "write"

_TALLY: contextvars.ContextVar[Tallies[str] | None] = contextvars.ContextVar("fjb-firestore-tally", default=None)


@contextlib.contextmanager
def tally() -> Iterator[Tallies[str]]:
    """Counts of the Firestore work done inside the block by this thread or task:
    ``calls``, ``reads``, ``writes`` and ``calls:<Method>``."""
    counts: Tallies[str] = Tallies()
    token = _TALLY.set(counts)
    try:
        yield counts
    finally:
        _TALLY.reset(token)


def method_path(client_call_details: CallDetails) -> str:
    """The call's full method, ``/google.firestore.v1.Firestore/Commit``."""
    return _text(client_call_details.method)


def _text(method: str | bytes) -> str:
    # grpc.aio hands interceptors the method as bytes, though its type stubs say str
    return method.decode() if isinstance(method, bytes) else str(method)


def method_name(client_call_details: CallDetails) -> str:
    return method_path(client_call_details).rsplit("/", 1)[-1]


def collection_of(name: str) -> str:
    """The collection path of a document's resource name, ids left out:
    ``projects/p/databases/(default)/documents/users/u1/economy/2026-11`` -> ``users/economy``."""
    path = name.split("/documents/", 1)[-1].split("/")
    return "/".join(path[0::2][: max(1, len(path) // 2)]) if len(path) > 1 else path[0]


def _record(method: str, *, reads: Iterable[str] = (), writes: Iterable[str] = (), call: bool = True) -> None:
    """``reads``/``writes``: the collections of the documents read/written, one per document."""
    counts = _TALLY.get()
    if call:
        CALLS.labels(method).inc()
    read, written = list(reads), list(writes)
    for collection in read:
        DOCUMENTS.labels(method, READ, collection).inc()
    for collection in written:
        DOCUMENTS.labels(method, WRITE, collection).inc()
    if counts is not None:
        if call:
            counts["calls"] += 1
            counts[f"calls:{method}"] += 1
        counts["reads"] += len(read)
        counts["writes"] += len(written)


def count_request(method: str, request: Any) -> None:
    """One RPC and what its request alone says: the documents a batch get names, the
    writes of a commit, the document of a get."""
    if method == "BatchGetDocuments":
        _record(method, reads=[collection_of(d) for d in request.documents])
    elif method == "Commit":
        _record(method, writes=[collection_of(_written(w)) for w in request.writes])
    elif method == "GetDocument":
        _record(method, reads=[collection_of(request.name)])
    else:  # RunQuery (its reads come with its results), transactions, listen, ...
        _record(method)


def _written(write: Any) -> str:
    return str(write.update.name or write.delete or write.transform.document)


def count_query_results(method: str, documents: int, collection: str = "query") -> None:
    if method in ("RunQuery", "RunAggregationQuery"):
        _record(method, reads=[collection] * max(documents, 1), call=False)


def _query_collection(request: Any) -> str:
    """``users/economyItems`` for a query of users/{uid}/economyItems."""
    try:
        source = request.structured_query.from_[0].collection_id
    except (AttributeError, IndexError):
        return "query"
    rest = str(request.parent).split("/documents", 1)[-1].strip("/")
    return "/".join([*(rest.split("/")[0::2] if rest else []), source])


def _is_document(response: object) -> bool:
    return bool(getattr(response, "document", None)) or type(response).__name__ == "RunAggregationQueryResponse"


# ---- grpc.aio (the services' AsyncClient) --------------------------------------------------
class AsyncUnaryCounter(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Req], Awaitable[grpc.aio.UnaryUnaryCall[Req, Resp]]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Req,
    ) -> Resp | grpc.aio.UnaryUnaryCall[Req, Resp]:
        count_request(method_name(client_call_details), request)
        return await continuation(client_call_details, request)


class AsyncStreamCounter(grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Req], Awaitable[grpc.aio.UnaryStreamCall[Req, Resp]]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Req,
    ) -> AsyncIterator[Resp] | grpc.aio.UnaryStreamCall[Req, Resp]:
        method = method_name(client_call_details)
        count_request(method, request)
        call = await continuation(client_call_details, request)
        if method not in ("RunQuery", "RunAggregationQuery"):
            return call
        return _CountedStream(call, method, _query_collection(request))


class _CountedStream(Generic[Req, Resp]):
    """The query's call, whose results are counted as they are read (everything else is
    the call's own: grpc.aio wraps what an interceptor returns only if it is not a call)."""

    def __init__(self, call: grpc.aio.UnaryStreamCall[Req, Resp], method: str, collection: str) -> None:
        self._call = call
        self._method = method
        self._collection = collection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)

    def __aiter__(self) -> AsyncIterator[Resp]:
        return self._results()

    async def _results(self) -> AsyncGenerator[Resp, None]:
        documents = 0
        try:
            async for response in self._call:
                documents += _is_document(response)
                yield response
        finally:
            count_query_results(self._method, documents, self._collection)

    async def read(self) -> object:
        response = await self._call.read()
        if response is not grpc.aio.EOF and _is_document(response):
            count_query_results(self._method, 1, self._collection)
        return response


def async_interceptors() -> list[grpc.aio.ClientInterceptor]:
    return [AsyncUnaryCounter(), AsyncStreamCounter()]


# ---- grpc (the edge's sync Client) ---------------------------------------------------------
class SyncCounter(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Req], grpc._CallFuture[Resp]],
        client_call_details: grpc.ClientCallDetails,
        request: Req,
    ) -> grpc._CallFuture[Resp]:
        count_request(method_name(client_call_details), request)
        return continuation(client_call_details, request)

    def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Req], grpc._CallIterator[Resp]],
        client_call_details: grpc.ClientCallDetails,
        request: Req,
    ) -> grpc._CallIterator[Resp]:
        method = method_name(client_call_details)
        count_request(method, request)
        responses = continuation(client_call_details, request)
        if method not in ("RunQuery", "RunAggregationQuery"):
            return responses
        counted = _CountedSyncStream(responses, method, _TALLY.get(), _query_collection(request))
        # the sync channel hands the caller whatever the interceptor returns: a stand-in
        # for the call (its own iteration, the rest forwarded) is one as far as it goes
        return cast("grpc._CallIterator[Resp]", counted)


class _CountedSyncStream(Generic[Resp]):
    """A sync query's response stream, counted as it is read (in the reading thread, with
    the tally of the thread that made the call)."""

    def __init__(
        self, call: grpc._CallIterator[Resp], method: str, counts: Tallies[str] | None, collection: str
    ) -> None:
        self._collection = collection
        self._call = call
        self._method = method
        self._counts = counts
        self._documents = 0
        self._done = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)

    def __iter__(self) -> _CountedSyncStream[Resp]:
        return self

    def __next__(self) -> Resp:
        try:
            response = next(self._call)
        except StopIteration:
            self._finish()
            raise
        self._documents += _is_document(response)
        return response

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        token = _TALLY.set(self._counts)
        try:
            count_query_results(self._method, self._documents, self._collection)
        finally:
            _TALLY.reset(token)
