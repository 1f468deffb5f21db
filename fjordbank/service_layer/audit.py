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

from google.cloud.firestore_v1 import Client

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
    Documents,
    LedgerDocuments,
    audit,
)

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


def run_and_record(db: Client, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Run the audit (a sync client) and store its summary in ops/ledgerAudit. Returns the
    summary. An audit that cannot finish raises and leaves the last summary as it was, so
    its ranAt grows old (the staleness alert's signal)."""
    ran_at = now or dt.datetime.now(dt.UTC)
    # one consistent snapshot of the whole ledger, a moment ago (never in the future of the
    # database's clock): payments committing while the collections are read one after the
    # other would otherwise show as problems that are none
    report = audit_ledger(db, now=ran_at, read_time=ran_at - SNAPSHOT_LAG)
    summary = summary_of(report, ran_at)
    db.collection(OPS).document(SUMMARY_DOC).set(summary)
    if report.ok:
        log.info("ledger audit ok", extra={"accounts": report.accounts, "postings": report.postings})
    else:
        log.error(
            "ledger audit found problems",
            extra={"problems": summary["problems"], "examples": report.problems[:EXAMPLES]},
        )
    return summary


def audit_ledger(db: Client, *, now: dt.datetime | None = None, read_time: dt.datetime | None = None) -> AuditReport:
    """Read the whole ledger with a sync Firestore client and check every invariant.

    ``read_time``: read every collection as it was at that moment (a consistent snapshot,
    as the scheduled audit needs while payments run; Firestore serves reads up to an hour
    back, older ones with point-in-time recovery). None: the latest data, collection by
    collection (enough when nothing else writes: bankctl audit after a run, the tests)."""
    ledger = load_ledger(db, read_time=read_time)
    return audit(ledger, now=now or dt.datetime.now(dt.UTC))


def load_ledger(db: Client, *, read_time: dt.datetime | None = None) -> LedgerDocuments:
    """Every collection the audit checks, as plain data (see ``audit_ledger``)."""
    return LedgerDocuments(
        accounts=_documents(db, ACCOUNTS, read_time),
        postings=_documents(db, POSTINGS, read_time),
        payments=_documents(db, LEDGER_PAYMENTS, read_time),
        holds=_documents(db, HOLDS, read_time),
        card_authorizations=_documents(db, CARD_AUTHORIZATIONS, read_time),
    )


def _documents(db: Client, collection: str, read_time: dt.datetime | None) -> Documents:
    """A whole collection: document id -> data, in the order Firestore streams it."""
    docs: dict[str, dict[str, Any]] = {}
    for snap in db.collection(collection).stream(read_time=read_time):
        docs[snap.id] = snap.to_dict() or {}  # a streamed document exists: never None
    return docs
