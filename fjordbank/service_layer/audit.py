"""The ledger audit: checks the money invariants over the whole ledger.

* conservation: the balances of all accounts (internal ones included) sum to zero;
* every posting balances, and every stored balance equals the replay of the postings;
* no customer account's available balance is below its overdraft floor; holds are >= 0;
  each account's held amount is the sum of its active holds, and no active hold is past
  its expiry;
* every completed payment is posted exactly once (its verdict lists postings that exist
  and belong to it), and no failed payment has postings;
* every card capture is posted exactly once, for the captured amount, and no other card
  authorisation has a posting.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from fjordbank.adapters.card_store import CAPTURE_STEP, CARD_AUTHORIZATIONS
from fjordbank.adapters.firestore import ACCOUNTS, HOLDS, LEDGER_PAYMENTS, POSTINGS
from fjordbank.domain.ledger import CUSTOMER, Hold, Posting, UnbalancedPosting, replay


@dataclass
class AuditReport:
    accounts: int = 0
    postings: int = 0
    payments: int = 0
    holds: int = 0
    total_balance: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

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


def audit_ledger(db, *, now: dt.datetime | None = None) -> AuditReport:
    """Read the whole ledger with a sync Firestore client and check every invariant."""
    report = AuditReport()
    accounts: dict[str, dict] = {}
    for snap in db.collection(ACCOUNTS).stream():
        data = snap.to_dict()
        if type(data.get("balance")) is not int:
            report.problems.append(f"account {snap.id} is malformed: balance {data.get('balance')!r}")
            data = {**data, "balance": 0}
        accounts[snap.id] = data
    postings: list[Posting] = []
    for snap in db.collection(POSTINGS).stream():
        try:
            postings.append(Posting.from_dict(snap.to_dict()))
        except (UnbalancedPosting, KeyError, TypeError) as exc:
            report.problems.append(f"posting {snap.id} is invalid: {exc}")
    verdicts = {snap.id: snap.to_dict() for snap in db.collection(LEDGER_PAYMENTS).stream()}
    holds: list[Hold] = []
    for snap in db.collection(HOLDS).stream():
        try:
            holds.append(Hold.from_dict(snap.to_dict()))
        except (KeyError, TypeError) as exc:
            report.problems.append(f"hold {snap.id} is malformed: missing {exc}")
    report.holds = len(holds)
    report.accounts, report.postings, report.payments = len(accounts), len(postings), len(verdicts)

    replayed = replay(postings)
    report.total_balance = sum(a["balance"] for a in accounts.values())
    if report.total_balance != 0:
        report.problems.append(f"conservation broken: balances sum to {report.total_balance}")
    for account_id in sorted(set(accounts) | set(replayed)):
        data = accounts.get(account_id)
        if data is None:
            report.problems.append(f"postings touch unknown account {account_id}")
            continue
        if data["balance"] != replayed.get(account_id, 0):
            report.problems.append(
                f"account {account_id}: stored balance {data['balance']} != replay {replayed.get(account_id, 0)}"
            )
        held = data.get("held", 0)
        if held < 0:
            report.problems.append(f"account {account_id}: negative holds {held}")
        if data.get("available") != data["balance"] - held:
            report.problems.append(f"account {account_id}: available {data.get('available')} != balance - held")
        floor = -data.get("overdraftLimit", 0)
        if data.get("kind", CUSTOMER) == CUSTOMER and data["balance"] - held < floor:
            report.problems.append(f"account {account_id}: available {data['balance'] - held} below {floor}")

    active: dict[str, int] = {}
    now = (now or dt.datetime.now(dt.UTC)).isoformat()
    for hold in holds:
        if hold.status == "active":
            active[hold.account_id] = active.get(hold.account_id, 0) + hold.amount
            if hold.expires_at < now:
                report.problems.append(f"hold {hold.hold_id} expired at {hold.expires_at} and is still active")
    for account_id, data in accounts.items():
        if data.get("held", 0) != active.get(account_id, 0):
            report.problems.append(
                f"account {account_id}: held {data.get('held', 0)} != active holds {active.get(account_id, 0)}"
            )

    card_postings = [p for p in postings if p.step == CAPTURE_STEP]
    _audit_card_captures(db, card_postings, report)
    by_payment = Counter(p.payment_id for p in postings if p.step not in ("deposit", CAPTURE_STEP))
    posting_ids = {p.posting_id: p for p in postings}
    for payment_id, verdict in verdicts.items():
        listed = verdict.get("postingIds", [])
        if verdict.get("status") == "completed":
            if not listed:
                report.problems.append(f"payment {payment_id} completed without postings")
            for pid in listed:
                if pid not in posting_ids or posting_ids[pid].payment_id != payment_id:
                    report.problems.append(f"payment {payment_id}: posting {pid} missing")
            if by_payment.get(payment_id, 0) != len(listed):
                report.problems.append(
                    f"payment {payment_id} has {by_payment.get(payment_id, 0)} postings, expected {len(listed)}"
                )
        elif by_payment.get(payment_id):
            report.problems.append(f"payment {payment_id} is {verdict.get('status')} but has postings")
    for payment_id in by_payment:
        if payment_id not in verdicts:
            report.problems.append(f"postings for payment {payment_id} without a ledger verdict")
    return report


def _audit_card_captures(db, card_postings: list[Posting], report: AuditReport) -> None:
    posted: dict[str, list[Posting]] = {}
    for p in card_postings:
        posted.setdefault(p.payment_id, []).append(p)
    for snap in db.collection(CARD_AUTHORIZATIONS).stream():
        record = snap.to_dict()
        mine = posted.pop(snap.id, [])
        if record.get("status") == "captured":
            amounts = [max(e.amount for e in p.entries) for p in mine]
            if amounts != [record.get("capturedAmount")]:
                report.problems.append(
                    f"card authorisation {snap.id}: captured {record.get('capturedAmount')}, posted {amounts}"
                )
        elif mine:
            report.problems.append(f"card authorisation {snap.id} is {record.get('status')} but has postings")
    for auth_id in posted:
        report.problems.append(f"card postings for {auth_id} without an authorisation")
