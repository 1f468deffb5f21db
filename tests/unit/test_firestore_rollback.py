"""A transaction's rollback is waited for a bounded time (fjordbank.adapters.documents,
BoundedRollback): the consumer's handler deadline cancels a handler whose database stopped
answering, and the client's rollback on that cancel waited up to 60 s more, the partition
held all the while (found in review, 2026-12-06). The real AsyncClient, AsyncTransaction and
AsyncFirestoreDocuments.transact, over a database that answers nothing after the
transaction's start."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from fjordbank.adapters import documents
from fjordbank.adapters.documents import AsyncFirestoreDocuments
from fjordbank.adapters.firestore import async_client


class HungDatabase:
    """The GAPIC surface of a database that stopped answering once the transaction began."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def begin_transaction(self, request, metadata=None, **kw):
        self.calls.append("BeginTransaction")
        return SimpleNamespace(transaction=b"tx-1")

    async def batch_get_documents(self, request, metadata=None, **kw):
        self.calls.append("BatchGetDocuments")
        await asyncio.Event().wait()

    async def rollback(self, request, metadata=None, **kw):
        self.calls.append("Rollback")
        await asyncio.Event().wait()


@pytest.fixture
def hung(monkeypatch) -> tuple[AsyncFirestoreDocuments, HungDatabase]:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")  # anonymous credentials; nothing dialled
    monkeypatch.setattr(documents, "ROLLBACK_WAIT_S", 0.3)
    db = async_client("demo-x")
    api = HungDatabase()
    db._firestore_api_internal = api
    return AsyncFirestoreDocuments(db), api


async def test_a_cancelled_transaction_gives_its_rollback_up_after_the_bound(hung) -> None:
    docs, api = hung

    async def read(uow):
        await uow.get_many(["clearingPayments/p1"])

    began = time.perf_counter()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):  # the handler's deadline, scaled down
            await docs.transact(read, operation="test")
    took = time.perf_counter() - began
    assert api.calls == ["BeginTransaction", "BatchGetDocuments", "Rollback"]
    assert took < 2.0, f"the cancel waited {took:.2f} s for the rollback"
