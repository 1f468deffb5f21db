"""fjordbank.service_layer.audit on the in-memory documents: the audit's loading of the
ledger (the checks themselves are fjordbank.domain.audit's, tests/unit/test_audit_checks.py)
and the scheduled audit's summary.

What is promised: every collection the checks need is read whole, as plain data; the
scheduled audit reads them as one snapshot a moment before it runs (a payment committing
meanwhile is not half seen) and keeps its summary in ops/ledgerAudit.
"""

from __future__ import annotations

import datetime as dt

import pytest

from fjordbank.service_layer import audit
from tests.support.memory import MemoryDocuments
from tests.support.use_cases import data, seed
from tests.unit.test_audit_checks import ALICE, NOW, balanced

COLLECTIONS = {
    "accounts": "accounts",
    "postings": "postings",
    "payments": "ledgerPayments",
    "holds": "holds",
    "card_authorizations": "cardAuthorizations",
}


class Clock:
    """The database's clock, moved by the test."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def db_clock() -> Clock:
    return Clock(NOW - dt.timedelta(minutes=5))


@pytest.fixture
def docs(db_clock) -> MemoryDocuments:
    """The balanced ledger of the checks' tests, stored as its documents five minutes ago."""
    docs = MemoryDocuments(db_clock)
    ledger = balanced()
    seed(
        docs,
        {
            f"{collection}/{doc_id}": doc
            for field, collection in COLLECTIONS.items()
            for doc_id, doc in getattr(ledger, field).items()
        },
    )
    return docs


def test_the_ledger_is_loaded_whole_as_plain_data(docs):
    loaded = audit.load_ledger(docs)
    assert loaded == balanced()
    assert list(loaded.accounts) == sorted(balanced().accounts)  # in the order of the ids


def test_a_balanced_ledger_passes_and_a_broken_one_is_reported(docs):
    report = audit.audit_ledger(docs, clock=lambda: NOW)
    assert report.ok, report.render()
    assert (report.accounts, report.postings, report.payments, report.holds) == (6, 5, 3, 1)
    seed(docs, {f"accounts/{ALICE}": {**data(docs, f"accounts/{ALICE}"), "balance": 1}})
    broken = audit.audit_ledger(docs, clock=lambda: NOW)
    assert not broken.ok and broken.kinds[audit.BALANCE] == 1


def test_the_scheduled_audit_reads_one_snapshot_from_a_moment_ago_and_keeps_its_summary(docs, db_clock):
    db_clock.now = NOW - dt.timedelta(seconds=1)  # a change committed within the snapshot's lag
    seed(docs, {f"accounts/{ALICE}": {**data(docs, f"accounts/{ALICE}"), "balance": 1}})
    db_clock.now = NOW
    summary = audit.run_and_record(docs, clock=lambda: NOW)
    assert summary["ok"] is True and summary["ranAt"] == NOW  # the snapshot is from before the change
    assert summary["problems"] == dict.fromkeys(audit.KINDS, 0)
    assert (summary["accounts"], summary["postings"], summary["payments"]) == (6, 5, 3)
    assert data(docs, "ops/ledgerAudit") == summary
    later = NOW + dt.timedelta(minutes=1)
    summary = audit.run_and_record(docs, clock=lambda: later)
    assert summary["ok"] is False and summary["problems"][audit.BALANCE] == 1 and summary["examples"]
    assert data(docs, "ops/ledgerAudit")["ranAt"] == later


def test_an_audit_of_an_empty_database_finds_nothing_to_fault():
    report = audit.audit_ledger(MemoryDocuments(), clock=lambda: NOW)
    assert report.ok and report.accounts == 0
