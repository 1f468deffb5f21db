"""The edge's Firestore client (and the card service's, asynchronous) waits a bounded time
for every call, its retries included (fjordbank.adapters.firestore.bound_waits), held to a
real gRPC server that answers every call UNAVAILABLE: when each attempt arrived and what
the client gave it as its deadline are read on the server, so nothing here depends on how
fast the machine is."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from types import SimpleNamespace

import grpc
import pytest
from google.cloud.firestore_v1.types import Document, RunQueryResponse

from fjordbank.adapters import firestore as firestore_adapter
from fjordbank.adapters.documents import AsyncFirestoreDocuments, FirestoreDocuments
from fjordbank.adapters.firestore import (
    EDGE_CALL_DEADLINE_S,
    RemainingTime,
    async_client,
    is_transient,
    sync_client,
)


class _Down(grpc.GenericRpcHandler):
    """Every Firestore RPC fails UNAVAILABLE at once, and each call's arrival (on the
    server's clock) and remaining time are noted. ``hang_queries``: a query answers one
    document, then nothing more until its caller gives up."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, float | None]] = []
        self.hang_queries = False
        self._lock = threading.Lock()

    def _note(self, method: str, context: grpc.ServicerContext) -> None:
        with self._lock:
            self.calls.append((method.rsplit("/", 1)[-1], time.monotonic(), context.time_remaining()))

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if method.endswith(("/RunQuery", "/BatchGetDocuments")):

            def stream(_request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
                self._note(method, context)
                if self.hang_queries and method.endswith("/RunQuery"):
                    yield _one_document()
                    while context.is_active():
                        time.sleep(0.05)
                    return
                context.abort(grpc.StatusCode.UNAVAILABLE, "the database is away")

            return grpc.unary_stream_rpc_method_handler(stream)

        def unary(_request: bytes, context: grpc.ServicerContext) -> bytes:
            self._note(method, context)
            context.abort(grpc.StatusCode.UNAVAILABLE, "the database is away")

        return grpc.unary_unary_rpc_method_handler(unary)


def _one_document() -> bytes:
    now = dt.datetime.now(dt.UTC)
    doc = Document(
        name=f"projects/{PROJECT}/databases/(default)/documents/accounts/a", create_time=now, update_time=now
    )
    return RunQueryResponse.serialize(RunQueryResponse(document=doc, read_time=now))


@pytest.fixture
def down(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Down]:
    handler = _Down()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{port}")
    try:
        yield handler
    finally:
        server.stop(grace=None)


PROJECT = "demo-deadline"
DEADLINE = 2.5
SLACK = 0.3  # the client's and the server's view of when a call started


def _waits(down: _Down, *methods: str) -> list[tuple[float, float]]:
    """(arrival after the first call, the time the client gave it) of each call of ``methods``."""
    calls = [(at, left) for name, at, left in down.calls if name in methods and left is not None]
    first = min(at for at, _ in calls)
    return [(at - first, left) for at, left in calls]


def _assert_within_deadline(waits: list[tuple[float, float]]) -> None:
    """Every attempt retried within one budget, and none allowed to end past it."""
    assert len(waits) >= 2, "the client's retry of UNAVAILABLE is kept"
    for arrived, left in waits:
        assert arrived + left <= DEADLINE + SLACK, (arrived, left)


def test_a_document_read_is_retried_within_the_deadline_then_ends_transient(down: _Down) -> None:
    db = sync_client(PROJECT, deadline=DEADLINE)
    with pytest.raises(Exception) as raised:
        db.document("accounts/a").get()
    assert is_transient(raised.value)  # the edge answers it `busy`
    _assert_within_deadline(_waits(down, "GetDocument", "BatchGetDocuments"))


def test_a_transaction_start_and_a_commit_are_bounded(down: _Down) -> None:
    db = sync_client(PROJECT, deadline=DEADLINE)
    with pytest.raises(Exception) as begun:
        db.transaction()._begin()
    assert is_transient(begun.value)
    _assert_within_deadline(_waits(down, "BeginTransaction"))
    down.calls.clear()
    batch = db.batch()
    batch.set(db.document("accounts/a"), {"x": 1})
    with pytest.raises(Exception) as committed:
        batch.commit()
    assert is_transient(committed.value)
    _assert_within_deadline(_waits(down, "Commit"))


def test_a_query_is_bounded(down: _Down) -> None:
    docs = FirestoreDocuments(sync_client(PROJECT, deadline=DEADLINE))
    with pytest.raises(Exception) as raised:
        docs.query("accounts", limit=5)
    assert is_transient(raised.value)
    _assert_within_deadline(_waits(down, "RunQuery"))


def test_a_query_that_stops_answering_midway_ends_transient_not_internal(down: _Down) -> None:
    """The client's own retry of a stream broken midway read the retry from the raw gRPC
    callable and raised AttributeError, which the edge answered INTERNAL (found in
    review, 2026-12-06)."""
    down.hang_queries = True
    docs = FirestoreDocuments(sync_client(PROJECT, deadline=DEADLINE))
    with pytest.raises(Exception) as raised:
        docs.query("accounts", limit=5)
    assert is_transient(raised.value), repr(raised.value)
    ((_arrived, left),) = _waits(down, "RunQuery")
    assert left <= DEADLINE + SLACK


@pytest.mark.usefixtures("down")  # the emulator's address: no credentials looked for
def test_without_a_deadline_the_client_keeps_its_own_wait() -> None:
    """The scheduled jobs' client (whole-collection reads) keeps the client's own waits;
    read from the client's settings for its commits, not waited out."""
    db = sync_client(PROJECT)
    api = db._firestore_api
    assert db._transport._wrapped_methods[db._transport.commit]._timeout > 30  # the client's 60 s
    assert api is db._firestore_api  # made once
    bounded = sync_client(PROJECT, deadline=EDGE_CALL_DEADLINE_S)
    assert bounded._firestore_api is bounded._firestore_api
    assert bounded._transport._wrapped_methods[bounded._transport.commit]._timeout.deadline == EDGE_CALL_DEADLINE_S


async def test_a_bounded_async_client_waits_its_deadline_for_every_call(down: _Down) -> None:
    """The card service's client (run_services/cards.py): the card processor waits 2 s for
    an answer, and the client's own waits (60 s for a document or a commit, 300 s for a
    query) held its requests far past that (found in review, 2026-12-06)."""
    db = async_client(PROJECT, deadline=DEADLINE)
    with pytest.raises(Exception) as read:
        await db.document("accounts/a").get()
    assert is_transient(read.value)
    _assert_within_deadline(_waits(down, "GetDocument", "BatchGetDocuments"))
    down.calls.clear()
    with pytest.raises(Exception) as queried:
        await AsyncFirestoreDocuments(db).query("accounts", limit=5)
    assert is_transient(queried.value)
    _assert_within_deadline(_waits(down, "RunQuery"))
    down.calls.clear()
    with pytest.raises(Exception) as begun:
        await db.transaction()._begin()
    assert is_transient(begun.value)
    _assert_within_deadline(_waits(down, "BeginTransaction"))


@pytest.mark.usefixtures("down")
async def test_the_services_async_client_keeps_its_own_waits_unless_given_a_deadline() -> None:
    # async: the client's gRPC channel is made on the running loop
    db = async_client(PROJECT)
    assert db._firestore_api is not None  # made, with its transport
    assert db._transport._wrapped_methods[db._transport.commit]._timeout > 30  # the client's 60 s
    bounded = async_client(PROJECT, deadline=DEADLINE)
    assert bounded._firestore_api is bounded._firestore_api
    assert bounded._transport._wrapped_methods[bounded._transport.commit]._timeout.deadline == DEADLINE


def test_an_attempt_is_given_what_is_left_of_the_deadline_never_all_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """api_core's own timeout gives an attempt starting with under 1 s left the whole
    timeout again (an edge call then waited nearly twice its deadline: seen in CI,
    2026-12-07); each attempt here gets what is left, and one starting with nothing left
    a last moment to end DEADLINE_EXCEEDED."""
    now = [100.0]
    deadline = 2.5
    monkeypatch.setattr(firestore_adapter, "time", SimpleNamespace(monotonic=lambda: now[0]))
    given: list[float] = []
    attempt = RemainingTime(deadline)(lambda *, timeout: given.append(timeout))
    for at in (0.0, 1.0, 1.9, 2.45, 2.6):
        now[0] = 100.0 + at
        attempt()
    assert given == pytest.approx([2.5, 1.5, 0.6, 0.05, RemainingTime.LAST_ATTEMPT_S])
