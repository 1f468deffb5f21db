"""The ledger audit: reads the whole ledger and checks the money invariants over it.

The checks themselves (conservation, balances against the replay of the postings, holds,
every payment and card capture posted exactly once, the transit shards) are pure:
fjordbank.domain.audit, which says what each one holds. Here the collections are read
(as one consistent snapshot for the scheduled audit) and the result is kept in
ops/ledgerAudit.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from fjordbank.adapters.firestore import ACCOUNTS, CARD_AUTHORIZATIONS, HOLDS, LEDGER_PAYMENTS, OPS, POSTINGS
from fjordbank.domain.audit import (
    AVAILABLE,
    BALANCE,
    CARD_POSTINGS,
    CONSERVATION,
    HELD,
    KINDS,
    MALFORMED,
    OVERDRAWN,
    PAYMENT_POSTINGS,
    TRANSIT,
    UNKNOWN_ACCOUNT,
    AuditReport,
    LedgerDocuments,
    audit,
)
from fjordbank.domain.audit import Documents as LedgerCollection
from fjordbank.service_layer.ports import Clock, Documents, system_clock

__all__ = [
    "AVAILABLE",
    "BALANCE",
    "CARD_POSTINGS",
    "CONSERVATION",
    "EXAMPLES",
    "HELD",
    "KINDS",
    "MALFORMED",
    "OVERDRAWN",
    "PAYMENT_POSTINGS",
    "SNAPSHOT_LAG",
    "SUMMARY_DOC",
    "TRANSIT",
    "UNKNOWN_ACCOUNT",
    "AuditReport",
    "audit_ledger",
    "load_ledger",
    "run_and_record",
    "summary_of",
]

log = logging.getLogger(__name__)


# ---- the scheduled audit ------------------------------------------------------------------
# The `audit-ledger` job (fjordbank/service_layer/scheduled.py) runs the audit and keeps its
# result here, where the notifier's ops sweep (fjordbank/runtime/ops_sweep.py) reads it for
# fjb_audit_last_success, fjb_audit_last_run_timestamp_seconds and fjb_audit_problems{kind}.
SUMMARY_DOC = "ledgerAudit"  # ops/ledgerAudit
EXAMPLES = 20  # problems kept as text in the summary, for the operator who gets the alert
SNAPSHOT_LAG = dt.timedelta(seconds=2)


def summary_of(report: AuditReport, ran_at: dt.datetime) -> dict[str, Any]:
    """The audit's summary document: ok, problems by kind (every kind, 0 included), when it
    ran and how long it took to read, and the first problems as text."""
    return {
        "ok": report.ok,
        "problems": {kind: report.kinds.get(kind, 0) for kind in KINDS},
        "problemCount": len(report.problems),
        "examples": report.problems[:EXAMPLES],
        "accounts": report.accounts,
        "postings": report.postings,
        "payments": report.payments,
        "ranAt": ran_at,
    }


def run_and_record(docs: Documents, *, clock: Clock = system_clock) -> dict[str, Any]:
    """Run the audit and store its summary in ops/ledgerAudit. Returns the summary. An
    audit that cannot finish raises and leaves the last summary as it was, so its ranAt
    grows old (the staleness alert's signal)."""
    ran_at = clock()
    # one consistent snapshot of the whole ledger, a moment ago (never in the future of the
    # database's clock): payments committing while the collections are read one after the
    # other would otherwise show as problems that are none
    report = audit_ledger(docs, clock=lambda: ran_at, read_time=ran_at - SNAPSHOT_LAG)
    summary = summary_of(report, ran_at)
    batch = docs.batch()
    batch.set(f"{OPS}/{SUMMARY_DOC}", summary)
    batch.commit()
    if report.ok:
        log.info("ledger audit ok", extra={"accounts": report.accounts, "postings": report.postings})
    else:
        log.error(
            "ledger audit found problems",
            extra={"problems": summary["problems"], "examples": report.problems[:EXAMPLES]},
        )
    return summary


def audit_ledger(docs: Documents, *, clock: Clock = system_clock, read_time: dt.datetime | None = None) -> AuditReport:
    """Read the whole ledger and check every invariant.

    ``read_time``: read every collection as it was at that moment (a consistent snapshot,
    as the scheduled audit needs while payments run; Firestore serves reads up to an hour
    back, older ones with point-in-time recovery). None: the latest data, collection by
    collection (enough when nothing else writes: bankctl audit after a run, the tests)."""
    ledger = load_ledger(docs, read_time=read_time)
    return audit(ledger, now=clock())


def load_ledger(docs: Documents, *, read_time: dt.datetime | None = None) -> LedgerDocuments:
    """Every collection the audit checks, as plain data (see ``audit_ledger``)."""
    return LedgerDocuments(
        accounts=_documents(docs, ACCOUNTS, read_time),
        postings=_documents(docs, POSTINGS, read_time),
        payments=_documents(docs, LEDGER_PAYMENTS, read_time),
        holds=_documents(docs, HOLDS, read_time),
        card_authorizations=_documents(docs, CARD_AUTHORIZATIONS, read_time),
    )


def _documents(docs: Documents, collection: str, read_time: dt.datetime | None) -> LedgerCollection:
    """A whole collection: document id -> data, in the order of the ids (as Firestore
    streams it), each in one query."""
    found = docs.query(collection) if read_time is None else docs.query_at(collection, read_time)
    return {d.id: d.data for d in found}
