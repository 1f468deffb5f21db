"""The card service's background work (the outbox relay, the hold expiry) reads pages of up
to 500 documents, each page one RunQuery stream: with every call of the card service's
Firestore client bounded at 1.5 s (run_services/cards.py STORE_CALL_DEADLINE_SECONDS), a
page that a slow store delivers steadily but not within 1.5 s failed every round (found in
review, 2026-12-06). Their queries have BACKGROUND_QUERY_DEADLINE_SECONDS; the request
path keeps 1.5 s. Held to a real gRPC server on the loopback that streams the documents."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from concurrent import futures
from types import SimpleNamespace

import grpc
import pytest
from google.cloud.firestore_v1.types import Document, MapValue, RunQueryRequest, RunQueryResponse, Value

from fjordbank.adapters.documents import AsyncFirestoreDocuments
from fjordbank.adapters.firestore import is_transient
from run_services import cards

PROJECT = "demo-cards"


def _document(n: int, collection: str) -> bytes:
    now = dt.datetime.now(dt.UTC)
    body = MapValue(fields={"auth_id": Value(string_value=f"a{n}"), "pad": Value(string_value="x" * 800)})
    doc = Document(
        name=f"projects/{PROJECT}/databases/(default)/documents/{collection}/m{n}",
        fields={"subject": Value(string_value="cards.captured"), "body": Value(map_value=body)},
        create_time=now,
        update_time=now,
    )
    return RunQueryResponse.serialize(RunQueryResponse(document=doc, read_time=now))


class _Slow(grpc.GenericRpcHandler):
    """RunQuery streams as many documents as asked, one every ``gap`` s (500: about 2 s)."""

    def __init__(self, gap: float) -> None:
        self.gap = gap

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if not handler_call_details.method.endswith("/RunQuery"):
            return None

        def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            query = RunQueryRequest.deserialize(request).structured_query
            for n in range(query.limit or 500):
                if not context.is_active():
                    return
                time.sleep(self.gap)
                yield _document(n, query.from_[0].collection_id)

        return grpc.unary_stream_rpc_method_handler(stream)


@pytest.fixture
def slow_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[_Slow(gap=0.004)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{port}")
    yield
    server.stop(grace=None)


async def test_a_full_page_fits_the_background_query_deadline_and_not_the_request_paths(slow_store) -> None:
    db = cards.card_store(PROJECT)  # on the running loop: its gRPC channel is made there
    background = cards.background_documents(db)
    page = await background.query("cardOutbox", limit=500)
    assert len(page) == 500
    with pytest.raises(Exception) as failed:  # the request path's: 1.5 s for the whole stream
        await AsyncFirestoreDocuments(db).query("cardOutbox", limit=500)
    assert is_transient(failed.value)
    assert cards.STORE_CALL_DEADLINE_SECONDS < cards.BACKGROUND_QUERY_DEADLINE_SECONDS


async def test_the_relay_and_the_expiry_run_on_the_background_documents() -> None:
    calls: list[str] = []

    async def expire_holds() -> list:
        calls.append("expire")
        return []

    async def relay() -> dict:
        calls.append("relay")
        stop.set()
        return {}

    stop = asyncio.Event()
    service = cards.CardService(SimpleNamespace(card_processor_secret="s"), None, None, b"")  # type: ignore[arg-type]
    service.background = SimpleNamespace(expire_holds=expire_holds, relay=relay)  # type: ignore[assignment]
    await service.expire_holds()
    await service.relay_outbox(stop)
    assert calls == ["expire", "relay"]
