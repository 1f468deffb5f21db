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
from google.api_core.exceptions import DeadlineExceeded, ServiceUnavailable

from fjordbank.adapters import documents
from fjordbank.adapters.documents import AsyncFirestoreDocuments
from fjordbank.adapters.firestore import async_client, is_transient


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
    assert took < 10, f"the cancel waited {took:.2f} s for the rollback"  # the hung rollback: for ever


class SlowToBegin:
    """The GAPIC surface of a database that does not answer BeginTransaction in time (the
    card service's client gives each call STORE_CALL_DEADLINE_SECONDS: DeadlineExceeded)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def begin_transaction(self, request, metadata=None, **kw):
        self.calls.append("BeginTransaction")
        raise DeadlineExceeded("the database did not answer in time")

    async def rollback(self, request, metadata=None, **kw):
        self.calls.append("Rollback")


@pytest.fixture
def slow_to_begin(monkeypatch) -> tuple[AsyncFirestoreDocuments, SlowToBegin]:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")  # anonymous credentials; nothing dialled
    db = async_client("demo-x")
    api = SlowToBegin()
    db._firestore_api_internal = api
    return AsyncFirestoreDocuments(db), api


async def _read(uow) -> bool:
    await uow.get("cardAuthorizations/x")
    return True


async def test_a_transaction_that_did_not_begin_keeps_its_transient_error(slow_to_begin) -> None:
    """The client's wrapper rolls back a transaction whose BeginTransaction failed, one with
    no id: its ValueError ("cannot be rolled back") replaced the DeadlineExceeded, which is
    transient, and the card API answered 500 for it (found in review, 2026-12-06)."""
    docs, api = slow_to_begin
    with pytest.raises(Exception) as raised:
        await docs.transact(_read, operation="test")
    assert isinstance(raised.value, DeadlineExceeded), repr(raised.value)
    assert is_transient(raised.value)
    assert api.calls == ["BeginTransaction"]  # nothing to roll back, nothing asked


async def test_a_card_request_whose_transaction_did_not_begin_is_answered_503(slow_to_begin) -> None:
    from run_services.cards import _answered

    docs, api = slow_to_begin

    async def capture(data: object) -> tuple[int, dict]:
        return 200, {"captured": await docs.transact(_read, operation="cards_capture")}

    assert await _answered("/v1/captures", capture, {}) == (503, {"error": "unavailable", "retryable": True})
    assert api.calls == ["BeginTransaction", "BeginTransaction"]  # tried once more, as a transient error is


class CommitInFlight:
    """The GAPIC surface of a database whose commit does not answer and whose rollback fails
    (the store away): the rollback's error replaces the cancel's CancelledError."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def begin_transaction(self, request, metadata=None, **kw):
        self.calls.append("BeginTransaction")
        return SimpleNamespace(transaction=b"tx-1")

    async def batch_get_documents(self, request, metadata=None, **kw):
        self.calls.append("BatchGetDocuments")

        async def nothing():
            return
            yield

        return nothing()

    async def commit(self, request, metadata=None, **kw):
        self.calls.append("Commit")
        await asyncio.Event().wait()

    async def rollback(self, request, metadata=None, **kw):
        self.calls.append("Rollback")
        raise ServiceUnavailable("the database is away")


async def test_a_card_request_cut_off_mid_commit_stays_cancelled_when_its_rollback_fails(monkeypatch) -> None:
    """The card API cancels a handler at its route's timeout: a rollback that failed replaced
    the CancelledError with its transient error, and `_answered` ran the handler again, in a
    task no longer cancelled nor bounded, after the caller had its 503 (found in review,
    2026-12-06). The cancel goes on."""
    from run_services.cards import _answered

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")  # anonymous credentials; nothing dialled
    db = async_client("demo-x")
    api = CommitInFlight()
    db._firestore_api_internal = api
    docs = AsyncFirestoreDocuments(db)
    runs: list[int] = []

    async def write(uow) -> bool:
        await uow.get("cardAuthorizations/x")
        uow.set("cardAuthorizations/x", {"status": "approved"})
        return True

    async def authorize(data: object) -> tuple[int, dict]:
        runs.append(1)
        return 200, {"approved": await docs.transact(write, operation="cards_authorize")}

    work = asyncio.ensure_future(_answered("/v1/authorizations", authorize, {}))
    done, _ = await asyncio.wait({work}, timeout=0.2)  # the route's timeout (JsonApiServer's cut)
    assert not done
    work.cancel()
    await asyncio.wait({work}, timeout=5)
    assert work.cancelled()
    assert len(runs) == 1 and api.calls.count("BeginTransaction") == 1
