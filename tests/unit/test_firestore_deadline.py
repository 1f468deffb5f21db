"""The edge's Firestore client waits a bounded time for every call, its retries included
(fjordbank.adapters.firestore.bound_waits), held to a real gRPC server that answers every
call UNAVAILABLE: what the client sends as each call's deadline is read on the server, so
nothing here depends on how fast the machine is."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from fjordbank.adapters.firestore import EDGE_CALL_DEADLINE_S, is_transient, sync_client


class _Down(grpc.GenericRpcHandler):
    """Every Firestore RPC fails UNAVAILABLE, and each call's remaining time is noted."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float | None]] = []
        self._lock = threading.Lock()

    def _note(self, method: str, context: grpc.ServicerContext) -> None:
        with self._lock:
            self.calls.append((method.rsplit("/", 1)[-1], context.time_remaining()))
        context.abort(grpc.StatusCode.UNAVAILABLE, "the database is away")

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if method.endswith(("/RunQuery", "/BatchGetDocuments")):

            def stream(_request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
                self._note(method, context)
                yield b""  # never reached

            return grpc.unary_stream_rpc_method_handler(stream)

        def unary(_request: bytes, context: grpc.ServicerContext) -> bytes:
            self._note(method, context)
            return b""  # never reached

        return grpc.unary_unary_rpc_method_handler(unary)


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


DEADLINE = 0.6  # short, so the retry loop's whole budget passes quickly


def _remaining(down: _Down, method: str) -> list[float]:
    return [left for name, left in down.calls if name == method and left is not None]


def test_a_document_read_is_retried_within_the_deadline_then_ends_transient(down: _Down) -> None:
    db = sync_client("demo-deadline", deadline=DEADLINE)
    with pytest.raises(Exception) as raised:
        db.document("accounts/a").get()
    assert is_transient(raised.value)  # the edge answers it `busy`
    waits = _remaining(down, "GetDocument") or _remaining(down, "BatchGetDocuments")
    assert len(waits) >= 2, "the client's retry of UNAVAILABLE is kept"
    assert max(waits) <= DEADLINE + 0.05


def test_a_transaction_start_and_a_commit_are_bounded(down: _Down) -> None:
    db = sync_client("demo-deadline", deadline=DEADLINE)
    with pytest.raises(Exception) as begun:
        db.transaction()._begin()
    assert is_transient(begun.value)
    batch = db.batch()
    batch.set(db.document("accounts/a"), {"x": 1})
    with pytest.raises(Exception) as committed:
        batch.commit()
    assert is_transient(committed.value)
    assert max(_remaining(down, "BeginTransaction")) <= DEADLINE + 0.05
    assert max(_remaining(down, "Commit")) <= DEADLINE + 0.05


def test_a_query_is_bounded(down: _Down) -> None:
    db = sync_client("demo-deadline", deadline=DEADLINE)
    with pytest.raises(Exception) as raised:
        list(db.collection("accounts").limit(5).stream())
    assert is_transient(raised.value)
    assert max(_remaining(down, "RunQuery")) <= DEADLINE + 0.05


@pytest.mark.usefixtures("down")  # the emulator's address: no credentials looked for
def test_without_a_deadline_the_client_keeps_its_own_wait() -> None:
    """The scheduled jobs' client (whole-collection reads) keeps the client's own waits;
    read from the client's settings for its commits, not waited out."""
    db = sync_client("demo-deadline")
    api = db._firestore_api
    assert db._transport._wrapped_methods[db._transport.commit]._timeout > 30  # the client's 60 s
    assert api is db._firestore_api  # made once
    bounded = sync_client("demo-deadline", deadline=EDGE_CALL_DEADLINE_S)
    assert bounded._firestore_api is bounded._firestore_api
    assert bounded._transport._wrapped_methods[bounded._transport.commit]._timeout == EDGE_CALL_DEADLINE_S
