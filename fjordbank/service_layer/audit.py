"""The ledger audit: checks the money invariants over the whole ledger.

* conservation: the balances of all accounts (internal ones included) sum to zero;
* every posting balances, and every stored balance equals the replay of the postings;
* no customer account's available balance is below its overdraft floor; holds are >= 0;
  each account's held amount is the sum of its active holds, and no active hold is past
  its expiry;
* every completed payment is posted exactly once (its verdict lists postings that exist
  and belong to it); a failed payment's postings (an internal payment's debit and refund)
  leave no account changed, and no other failed payment has postings;
* the internal transit shards hold exactly the internal payments between their debit and
  their credit or refund (fjordbank.domain.payment_ledger): zero when nothing is in flight;
* every card capture is posted exactly once, for the captured amount, and no other card
  authorisation has a posting.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field

from fjordbank.adapters.card_store import CAPTURE_STEP, CARD_AUTHORIZATIONS
from fjordbank.adapters.firestore import ACCOUNTS, HOLDS, LEDGER_PAYMENTS, OPS, POSTINGS
from fjordbank.domain.ledger import CUSTOMER, INTERNAL_TRANSIT, Hold, Posting, UnbalancedPosting, replay
from fjordbank.topology import CREDIT, REFUND

log = logging.getLogger(__name__)

# What kind of invariant a problem breaks (fjb_audit_problems{kind}, the audit summary).
MALFORMED = "malformed"  # an account, posting or hold document that cannot be read
CONSERVATION = "conservation"  # the balances of all accounts do not sum to zero
UNKNOWN_ACCOUNT = "unknown_account"  # postings touch an account that does not exist
BALANCE = "balance_mismatch"  # a stored balance differs from the replay of its postings
AVAILABLE = "available_mismatch"  # available != balance - held
OVERDRAWN = "below_overdraft_floor"  # a customer account's available balance below its floor
HELD = "holds"  # negative holds, held != the active holds, an active hold past its expiry
PAYMENT_POSTINGS = "payment_postings"  # a payment not posted exactly once (or posted though failed)
TRANSIT = "transit"  # the transit shards do not hold exactly the internal payments in flight
CARD_POSTINGS = "card_postings"  # a card capture not posted exactly once, or a posting without one
KINDS = (
    MALFORMED,
    CONSERVATION,
    UNKNOWN_ACCOUNT,
    BALANCE,
    AVAILABLE,
    OVERDRAWN,
    HELD,
    PAYMENT_POSTINGS,
    CARD_POSTINGS,
    TRANSIT,
)


@dataclass
class AuditReport:
    accounts: int = 0
    postings: int = 0
    payments: int = 0
    holds: int = 0
    total_balance: int = 0
    problems: list[str] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)  # kind -> how many problems

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, problem: str) -> None:
        self.problems.append(problem)
        self.kinds[kind] += 1

    def render(self) -> str:
        lines = [
            "Fjordbank ledger audit",
            f"  accounts:   {self.accounts}",
            f"  postings:   {self.postings}",
            f"  payments:   {self.payments}",
            f"  holds:      {self.holds}",
            f"  sum of all balances: {self.total_balance} (must be 0)",
        ]
        if self.ok:
            lines.append("  result: OK, every invariant holds")
        else:
            lines.append(f"  result: {len(self.problems)} problem(s)")
            lines += [f"   - {p}" for p in self.problems[:200]]
        return "\n".join(lines)


# ---- the scheduled audit ------------------------------------------------------------------
# The `audit-ledger` job (fjordbank/service_layer/scheduled.py) runs the audit and keeps its
# result here, where the notifier's ops sweep (fjordbank/runtime/ops_sweep.py) reads it for
# fjb_audit_last_success, fjb_audit_last_run_timestamp_seconds and fjb_audit_problems{kind}.
SUMMARY_DOC = "ledgerAudit"  # ops/ledgerAudit
EXAMPLES = 20  # problems kept as text in the summary, for the operator who gets the alert
SNAPSHOT_LAG = dt.timedelta(seconds=2)


def summary_of(report: AuditReport, ran_at: dt.datetime) -> dict:
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


def run_and_record(db, *, now: dt.datetime | None = None) -> dict:
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


def audit_ledger(db, *, now: dt.datetime | None = None, read_time: dt.datetime | None = None) -> AuditReport:
    """Read the whole ledger with a sync Firestore client and check every invariant.

    ``read_time``: read every collection as it was at that moment (a consistent snapshot,
    as the scheduled audit needs while payments run; Firestore serves reads up to an hour
    back, older ones with point-in-time recovery). None: the latest data, collection by
    collection (enough when nothing else writes: bankctl audit after a run, the tests)."""
    report = AuditReport()
    accounts: dict[str, dict] = {}
    for snap in db.collection(ACCOUNTS).stream(read_time=read_time):
        data = snap.to_dict()
        if type(data.get("balance")) is not int:
            report.add(MALFORMED, f"account {snap.id} is malformed: balance {data.get('balance')!r}")
            data = {**data, "balance": 0}
        accounts[snap.id] = data
    postings: list[Posting] = []
    for snap in db.collection(POSTINGS).stream(read_time=read_time):
        try:
            postings.append(Posting.from_dict(snap.to_dict()))
        except (UnbalancedPosting, KeyError, TypeError) as exc:
            report.add(MALFORMED, f"posting {snap.id} is invalid: {exc}")
    verdicts = {snap.id: snap.to_dict() for snap in db.collection(LEDGER_PAYMENTS).stream(read_time=read_time)}
    holds: list[Hold] = []
    for snap in db.collection(HOLDS).stream(read_time=read_time):
        try:
            holds.append(Hold.from_dict(snap.to_dict()))
        except (KeyError, TypeError) as exc:
            report.add(MALFORMED, f"hold {snap.id} is malformed: missing {exc}")
    report.holds = len(holds)
    report.accounts, report.postings, report.payments = len(accounts), len(postings), len(verdicts)

    replayed = replay(postings)
    report.total_balance = sum(a["balance"] for a in accounts.values())
    if report.total_balance != 0:
        report.add(CONSERVATION, f"conservation broken: balances sum to {report.total_balance}")
    for account_id in sorted(set(accounts) | set(replayed)):
        data = accounts.get(account_id)
        if data is None:
            report.add(UNKNOWN_ACCOUNT, f"postings touch unknown account {account_id}")
            continue
        if data["balance"] != replayed.get(account_id, 0):
            report.add(
                BALANCE,
                f"account {account_id}: stored balance {data['balance']} != replay {replayed.get(account_id, 0)}",
            )
        held = data.get("held", 0)
        if held < 0:
            report.add(HELD, f"account {account_id}: negative holds {held}")
        if data.get("available") != data["balance"] - held:
            report.add(AVAILABLE, f"account {account_id}: available {data.get('available')} != balance - held")
        floor = -data.get("overdraftLimit", 0)
        if data.get("kind", CUSTOMER) == CUSTOMER and data["balance"] - held < floor:
            report.add(OVERDRAWN, f"account {account_id}: available {data['balance'] - held} below {floor}")

    active: dict[str, int] = {}
    now = (now or dt.datetime.now(dt.UTC)).isoformat()
    for hold in holds:
        if hold.status == "active":
            active[hold.account_id] = active.get(hold.account_id, 0) + hold.amount
            if hold.expires_at < now:
                report.add(HELD, f"hold {hold.hold_id} expired at {hold.expires_at} and is still active")
    for account_id, data in accounts.items():
        if data.get("held", 0) != active.get(account_id, 0):
            report.add(
                HELD, f"account {account_id}: held {data.get('held', 0)} != active holds {active.get(account_id, 0)}"
            )

    card_postings = [p for p in postings if p.step == CAPTURE_STEP]
    _audit_card_captures(db, card_postings, report, read_time)
    by_payment = Counter(p.payment_id for p in postings if p.step not in ("deposit", CAPTURE_STEP))
    posting_ids = {p.posting_id: p for p in postings}
    in_transit = 0
    for payment_id, verdict in verdicts.items():
        listed = verdict.get("postingIds", [])
        status = verdict.get("status")
        if status in (CREDIT, REFUND):
            in_transit += verdict.get("amount", 0)
        if status == "completed" or listed:
            if status == "completed" and not listed:
                report.add(PAYMENT_POSTINGS, f"payment {payment_id} completed without postings")
            for pid in listed:
                if pid not in posting_ids or posting_ids[pid].payment_id != payment_id:
                    report.add(PAYMENT_POSTINGS, f"payment {payment_id}: posting {pid} missing")
            if by_payment.get(payment_id, 0) != len(listed):
                report.add(
                    PAYMENT_POSTINGS,
                    f"payment {payment_id} has {by_payment.get(payment_id, 0)} postings, expected {len(listed)}",
                )
            if status == "failed" and any(replay([posting_ids[i] for i in listed if i in posting_ids]).values()):
                report.add(PAYMENT_POSTINGS, f"payment {payment_id} failed but its postings moved money")
        elif by_payment.get(payment_id):
            report.add(PAYMENT_POSTINGS, f"payment {payment_id} is {status} but has postings")
    transit = sum(accounts.get(a, {}).get("balance", 0) for a in INTERNAL_TRANSIT)
    if transit != in_transit:
        report.add(TRANSIT, f"transit accounts hold {transit}, internal payments in flight {in_transit}")
    for payment_id in by_payment:
        if payment_id not in verdicts:
            report.add(PAYMENT_POSTINGS, f"postings for payment {payment_id} without a ledger verdict")
    return report


def _audit_card_captures(db, card_postings: list[Posting], report: AuditReport, read_time=None) -> None:
    posted: dict[str, list[Posting]] = {}
    for p in card_postings:
        posted.setdefault(p.payment_id, []).append(p)
    for snap in db.collection(CARD_AUTHORIZATIONS).stream(read_time=read_time):
        record = snap.to_dict()
        mine = posted.pop(snap.id, [])
        if record.get("status") == "captured":
            amounts = [max(e.amount for e in p.entries) for p in mine]
            if amounts != [record.get("capturedAmount")]:
                report.add(
                    CARD_POSTINGS,
                    f"card authorisation {snap.id}: captured {record.get('capturedAmount')}, posted {amounts}",
                )
        elif mine:
            report.add(CARD_POSTINGS, f"card authorisation {snap.id} is {record.get('status')} but has postings")
    for auth_id in posted:
        report.add(CARD_POSTINGS, f"card postings for {auth_id} without an authorisation")
