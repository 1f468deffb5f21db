"""fjb_firestore_transaction_attempts_total: the services' transactions count their attempts
through fjordbank.adapters.firestore.async_transactional, driven here by the Firestore
client's own retry loop over a stand-in transaction whose commit loses to contention a
given number of times."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest
from google.api_core import exceptions as api_errors
from prometheus_client import REGISTRY

from fjordbank.adapters.firestore import (
    BODY_ABORT_BACKOFF_S,
    BODY_ABORT_TRIES,
    async_transactional,
    body_abort_backoff,
    is_transient,
)

REPO = Path(__file__).resolve().parents[2]


class ContendedTransaction:
    """What the client's retry loop uses of an AsyncTransaction; the first ``aborts``
    commits fail with ABORTED."""

    _read_only = False

    def __init__(self, aborts: int, max_attempts: int = 5) -> None:
        self._max_attempts = max_attempts
        self._id = None
        self.aborts = aborts
        self.commits = 0
        self.rolled_back = False

    def _clean_up(self) -> None:
        self._id = None

    async def _begin(self, retry_id=None) -> None:
        self._id = b"tx"

    async def _commit(self) -> list:
        if self.aborts:
            self.aborts -= 1
            raise api_errors.Aborted("Transaction lock timeout")
        self.commits += 1
        return []

    async def _rollback(self) -> None:
        self.rolled_back = True


def counts(operation: str) -> dict[str, float]:
    return {
        result: REGISTRY.get_sample_value(
            "fjb_firestore_transaction_attempts_total", {"operation": operation, "result": result}
        )
        or 0
        for result in ("committed", "retried", "aborted")
    }


def run(operation: str, tx: ContendedTransaction, body=None):
    calls = []

    @async_transactional(operation=operation)
    async def work(transaction, value):
        calls.append(value)
        if body is not None:
            body()
        return value * 2

    return asyncio.run(work(tx, 21)), calls


def test_a_transaction_that_commits_at_once_counts_one_committed_attempt():
    result, calls = run("t_first", ContendedTransaction(aborts=0))
    assert result == 42 and calls == [21]
    assert counts("t_first") == {"committed": 1, "retried": 0, "aborted": 0}


def test_each_attempt_lost_to_contention_and_run_again_counts_as_retried():
    tx = ContendedTransaction(aborts=2)
    result, calls = run("t_contended", tx)
    assert result == 42 and len(calls) == 3 and tx.commits == 1
    assert counts("t_contended") == {"committed": 1, "retried": 2, "aborted": 0}


def test_a_transaction_that_loses_every_attempt_counts_the_last_as_aborted_and_stays_busy():
    tx = ContendedTransaction(aborts=10, max_attempts=3)
    with pytest.raises(ValueError) as caught:
        run("t_gave_up", tx)
    assert is_transient(caught.value)  # still answered as `busy` / retried by NATS
    assert tx.rolled_back
    assert counts("t_gave_up") == {"committed": 0, "retried": 2, "aborted": 1}


def test_a_body_that_fails_is_neither_a_commit_nor_contention():
    def boom():
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run("t_bug", ContendedTransaction(aborts=0), body=boom)
    assert counts("t_bug") == {"committed": 0, "retried": 0, "aborted": 0}


def test_contention_while_reading_runs_the_transaction_again_then_counts_as_aborted(monkeypatch):
    monkeypatch.setattr("fjordbank.adapters.firestore.body_abort_backoff", lambda _tries: 0)

    def contended_read():
        raise api_errors.Aborted("lock timeout on read")

    with pytest.raises(api_errors.Aborted):
        run("t_read", ContendedTransaction(aborts=0), body=contended_read)
    assert counts("t_read") == {"committed": 0, "retried": BODY_ABORT_TRIES - 1, "aborted": 1}


def test_a_read_that_lost_once_to_a_lock_is_run_again_and_commits(monkeypatch):
    monkeypatch.setattr("fjordbank.adapters.firestore.body_abort_backoff", lambda _tries: 0)
    lost = []

    def contended_once():
        if not lost:
            lost.append(1)
            raise api_errors.Aborted("Transaction lock timeout.")

    tx = ContendedTransaction(aborts=0)
    result, calls = run("t_read_once", tx, body=contended_once)
    assert result == 42 and calls == [21, 21] and tx.commits == 1
    assert counts("t_read_once") == {"committed": 1, "retried": 1, "aborted": 0}


def test_the_backoff_after_an_aborted_body_is_jittered_under_a_doubling_ceiling():
    first, cap = BODY_ABORT_BACKOFF_S
    for tries in range(1, 10):
        waits = [body_abort_backoff(tries) for _ in range(50)]
        assert all(0 <= w <= min(cap, first * 2 ** (tries - 1)) for w in waits)


def _decorated_operations(path: Path, tree: ast.AST) -> list[str]:
    """The operations of the adapter's ``@async_transactional(operation=...)`` bodies."""
    operations = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and "async_transaction" in node.module:
            pytest.fail(f"{path.name} imports the client's transactional decorator: use adapters.firestore's")
        if isinstance(node, ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                if isinstance(deco, ast.Name) and deco.id == "async_transactional":
                    pytest.fail(f"{path.name}:{deco.lineno}: async_transactional without operation=")
                if isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "async_transactional":
                    operations += [k.value.value for k in deco.keywords if k.arg == "operation"]
    return operations


def _transact_operations(path: Path, tree: ast.AST) -> list[str]:
    """The operations of a use case's ``docs.transact(fn, operation=...)`` calls (the ports'
    Firestore adapter counts them through the same decorator: adapters.documents)."""
    operations = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "transact":
            named = [k.value for k in node.keywords if k.arg == "operation"]
            if not named or not isinstance(named[0], ast.Constant):
                pytest.fail(f"{path.name}:{node.lineno}: transact without a literal operation=")
            operations.append(named[0].value)
    return operations


def test_every_transaction_of_the_services_goes_through_the_counting_decorator():
    """No adapter uses the client's decorator directly, and each transaction, in an adapter
    or a use case on the ports, names its operation."""
    operations = []
    for path in sorted((REPO / "fjordbank" / "adapters").glob("*.py")):
        if path.name == "firestore.py":
            continue
        operations += _decorated_operations(path, ast.parse(path.read_text()))
    for path in sorted((REPO / "fjordbank" / "service_layer").glob("*.py")):
        operations += _transact_operations(path, ast.parse(path.read_text()))
    # (ledger_post_batch, screening and notifier_project are precondition commits, not
    # transactions: their services count them with fjordbank.adapters.firestore.count_attempts)
    assert {"ledger_deposit", "clearing"} <= set(operations)
    assert len(operations) == len(set(operations)), f"an operation name used twice: {sorted(operations)}"
