"""The ledger audit's checks: the money invariants over the whole ledger, free of I/O.

The service layer (fjordbank.service_layer.audit) reads the collections; every check here
takes their documents as plain data and returns its findings, so each invariant can be
tried on a ledger made up in a test:

* conservation: the balances of all accounts (internal ones included) sum to zero;
* every posting balances, and every stored balance equals the replay of the postings (the
  postings collection's and those payments' and card authorisations' records keep:
  `carried_postings`);
* the bank's own accounts (internal) are exactly `INTERNAL_ACCOUNTS`, every other is a
  customer's; every payment record says its kind and both accounts;
* no customer account's available balance is below its overdraft floor; holds are >= 0;
  each account's held amount is the sum of its active holds (the holds collection's and
  those external payments' and card authorisations' records carry: `all_holds`), and no
  active card hold is past its expiry;
* each active hold is positive, active in one place, and belongs to its record: an external
  payment reserved (its amount on its payer's account; a reserved payment has its hold and
  no postings) or a card authorisation approved (on the card's account);
* every completed payment is posted exactly once (its verdict lists postings that exist
  and belong to it); a failed payment's postings (an internal payment's debit and refund)
  leave no account changed, and no other failed payment has postings; each of a payment's
  postings moves its amount between the accounts the ledger posts its step between (the
  payer's or payee's account and its partition's transit, settlement or suspense shard);
* the internal transit shards hold exactly the internal payments between their debit and
  their credit or refund (fjordbank.domain.payment_ledger): zero when nothing is in flight;
* the suspense shards hold exactly the payments from other banks held for sanctions review
  (booked ``held``, not yet released or sent back), and a credit left unapplied moved no
  money (held, then sent back: into suspense and out again);
* a payment between its steps has the postings of its steps so far only (an internal one
  awaiting its credit or refund its debit, one from another bank held for review its move
  into suspense);
* every card capture is posted exactly once, for the captured amount (no more than was
  authorised), and no other card authorisation has a posting;
* a deposit brings money in from the outside world's accounts into a customer's, and a
  payout moves a closed account's money to another account of the same customer's; each is
  in the journal once.

The findings come in a fixed order (the documents' faults, conservation, the accounts by
id, the holds, the holds' records, the card captures, the payments, the transit shards, the suspense shards,
postings without a payment, deposits and payouts), which the report and the scheduled
audit's examples keep.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from fjordbank.domain.ledger import (
    CUSTOMER,
    INTERNAL_ACCOUNTS,
    INTERNAL_CARD_SCHEME,
    INTERNAL_SETTLEMENT,
    INTERNAL_SUSPENSE,
    INTERNAL_TRANSIT,
    INTERNAL_WORLD,
    INTERNAL_WORLD_SHARDS,
    RETIRED_CARD_SCHEME,
    RETIRED_INTERNAL_ACCOUNTS,
    Hold,
    Posting,
    UnbalancedPosting,
    as_utc,
    replay,
    settlement_account,
    suspense_account,
    transit_in_account,
    transit_out_account,
)
from fjordbank.domain.ledger import (
    INTERNAL as INTERNAL_KIND,
)
from fjordbank.domain.money import NOK
from fjordbank.domain.payments import EXTERNAL, INCOMING, INTERNAL
from fjordbank.topology import CREDIT, REFUND, UNAPPLIED
from fjordbank.topology import HELD as HELD_STEP

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
CARD_POSTINGS = "card_postings"  # a card capture or refund not posted exactly once, or a posting without one
SUSPENSE = "suspense"  # the suspense shards do not hold exactly the payments from other banks held for review
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
    SUSPENSE,
)

APPROVED = "approved"  # a card authorisation whose hold waits for its capture
# The card scheme's accounts a capture may have credited (a refund debited): its shards, and
# its one account before them (captures of 2026-11-26 went there)
SCHEME_ACCOUNTS = (*INTERNAL_CARD_SCHEME, RETIRED_CARD_SCHEME)

# The step of a card capture's posting (the card service's, fjordbank.domain.card_settlement
# CAPTURE_STEP, which tests/unit/test_audit_checks.py keeps equal to this): captures are
# checked against their authorisations, not against a payment's verdict.
CARD_CAPTURE = "card-capture"
# A card refund's posting step is this, a dash and the refund's id (card_settlement.REFUND_STEP,
# kept equal by the same test): refunds are checked against their authorisation's record.
CARD_REFUND = "card-refund"
# The authorisation record's incremental authorisations (card_settlement.INCREMENTS, kept
# equal by the same test): what a capture may take is the request's amount and these.
INCREMENTS = "increments"
# Its partial reversals (card_settlement.REVERSALS, kept equal by the same test): what they
# gave back is no longer authorised, except one that released all that was left (``whole``).
REVERSALS = "reversals"
# Its refunds (card_settlement.REFUNDS, kept equal by the same test): refund id -> its amount.
CARD_REFUNDS = "refunds"
DEPOSIT = "deposit"  # money put in from outside (a test's or an operator's): no payment verdict
# What a closed account is paid out to the customer's open account with (the accounts
# service's PAYOUT_STEP, kept equal by a unit test): no payment verdict either
PAYOUT = "payout"
# An active hold is reported once it is this far past its expiry: the card service's sweep
# (release-expired-holds) runs every hour, so a hold that expired since its last run is
# not yet a fault (the audit runs at another minute of the hour).
EXPIRY_GRACE = dt.timedelta(hours=2)

# A collection as read: document id -> its data, in the order the documents came.
Documents = dict[str, dict[str, Any]]


class Finding(NamedTuple):
    """One broken invariant: its kind (KINDS) and the reason, as the operator reads it."""

    kind: str
    problem: str


@dataclass(frozen=True)
class LedgerDocuments:
    """Every collection the audit reads, as plain data."""

    accounts: Documents = field(default_factory=dict)
    postings: Documents = field(default_factory=dict)
    payments: Documents = field(default_factory=dict)  # the ledger's verdicts (ledgerPayments)
    holds: Documents = field(default_factory=dict)  # holds of payments and cards from before holds moved
    card_authorizations: Documents = field(default_factory=dict)


@dataclass
class AuditReport:
    accounts: int = 0
    postings: int = 0
    payments: int = 0
    holds: int = 0
    total_balance: int = 0
    problems: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)  # kind -> how many problems

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, problem: str) -> None:
        self.problems.append(problem)
        self.kinds[kind] += 1

    def record(self, findings: Iterable[Finding]) -> None:
        for finding in findings:
            self.add(finding.kind, finding.problem)

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


def audit(ledger: LedgerDocuments, *, now: dt.datetime) -> AuditReport:
    """Every check over the whole ledger. ``now``: the moment active holds must not be past."""
    read = Read.of(ledger)
    report = AuditReport(
        accounts=len(read.accounts),
        postings=len(read.postings),
        payments=len(ledger.payments),
        holds=len(read.holds),
        total_balance=sum(a["balance"] for a in read.accounts.values()),
    )
    report.record(_findings(ledger, read, now=now))
    return report


def findings(ledger: LedgerDocuments, *, now: dt.datetime) -> list[Finding]:
    """What every check finds, in the audit's order (the report's, and the tests')."""
    return _findings(ledger, Read.of(ledger), now=now)


class Read(NamedTuple):
    """The ledger's documents as the checks read them, each collection once (the whole
    ledger: the hourly audit's), with the faults of those that cannot be read."""

    accounts: Documents
    postings: list[Posting]
    holds: list[Hold]
    payments: Documents
    cards: Documents
    faults: list[Finding]

    @classmethod
    def of(cls, ledger: LedgerDocuments) -> Read:
        accounts, account_faults = read_accounts(ledger.accounts)
        postings, posting_faults = read_postings(journal(ledger))
        holds, hold_faults = read_holds(all_holds(ledger))
        payments, payment_faults = read_payments(ledger.payments)
        cards, card_faults = read_card_authorizations(ledger.card_authorizations)
        faults = [*account_faults, *posting_faults, *hold_faults, *payment_faults, *card_faults]
        return cls(accounts, postings, holds, payments, cards, faults)


def _findings(ledger: LedgerDocuments, read: Read, *, now: dt.datetime) -> list[Finding]:
    accounts, postings, payments, cards = read.accounts, read.postings, read.payments, read.cards
    return [
        *read.faults,
        *check_conservation(accounts),
        *check_balances(accounts, replay(postings)),
        *check_holds(accounts, read.holds, now=now, card_holds=card_hold_ids(ledger)),
        *check_hold_owners(ledger, payments, cards),
        *check_card_captures(postings, cards, unreadable=set(ledger.card_authorizations) - set(cards)),
        *check_payment_postings(payments, postings),
        *check_transit(accounts, ledger.payments),
        *check_suspense(accounts, ledger.payments),
        *check_postings_without_verdict(ledger.payments, postings),
        *check_deposits_and_payouts(accounts, postings),
        *check_kept_once(postings),
    ]


# ---- reading the documents ------------------------------------------------------------------
# An account's amounts besides its balance, with what a malformed one is read as (after its
# finding): a float passed every comparison (5000.0 == 5000), a None stopped the audit.
AMOUNTS = {"held": 0, "overdraftLimit": 0}


INTERNAL_ACCOUNT_IDS = frozenset((*INTERNAL_ACCOUNTS, *RETIRED_INTERNAL_ACCOUNTS))


def read_accounts(docs: Documents) -> tuple[Documents, list[Finding]]:
    """The accounts, each with integer amounts (balance, held, available, overdraft
    limit) and its kind (internal exactly for the bank's own, `INTERNAL_ACCOUNTS`): a
    malformed one is a finding and counts as 0 (available as balance - held; the kind its
    id says), so the other checks still run over the rest."""
    accounts: Documents = {}
    findings: list[Finding] = []
    for account_id, data in docs.items():
        if type(data.get("balance")) is not int:
            findings.append(Finding(MALFORMED, f"account {account_id} is malformed: balance {data.get('balance')!r}"))
            data = {**data, "balance": 0}
        for field_name, default in AMOUNTS.items():
            if field_name in data and type(data[field_name]) is not int:
                findings.append(
                    Finding(MALFORMED, f"account {account_id} is malformed: {field_name} {data[field_name]!r}")
                )
                data = {**data, field_name: default}
        if "available" in data and type(data["available"]) is not int:
            findings.append(Finding(MALFORMED, f"account {account_id} is malformed: available {data['available']!r}"))
            data = {**data, "available": data["balance"] - data.get("held", 0)}
        # the bank's own accounts are the fixed list the ledger makes, and only those: a
        # customer's account marked internal was never held to its overdraft floor (nor is
        # it by the ledger's own check of what it may spend: found in review, 2026-12-07)
        kind, internal = data.get("kind", CUSTOMER), account_id in INTERNAL_ACCOUNT_IDS
        if kind != (INTERNAL_KIND if internal else CUSTOMER):
            findings.append(Finding(MALFORMED, f"account {account_id} is malformed: kind {kind!r:.30}"))
            data = {**data, "kind": INTERNAL_KIND if internal else CUSTOMER}
        accounts[account_id] = data
    return accounts, findings


def read_postings(docs: Documents) -> tuple[list[Posting], list[Finding]]:
    """The postings that can be read (each one balances, or it is a finding)."""
    postings: list[Posting] = []
    findings: list[Finding] = []
    for doc_id, data in docs.items():
        try:
            posting = Posting.from_dict(data)
            _well_typed(posting)
        except (UnbalancedPosting, KeyError, TypeError, ValueError) as exc:
            findings.append(Finding(MALFORMED, f"posting {doc_id} is invalid: {exc}"))
            continue
        postings.append(posting)
    return postings, findings


def _well_typed(posting: Posting) -> None:
    """Raises TypeError for a posting whose ids, step, currency or entries are not what the
    checks read (a step that is no text stopped the whole audit), ValueError for one in
    another currency than the ledger's: every account is in NOK (the accounts service
    opens them so, the internal ones are made so, a payment in another is refused) and the
    balances are sums of øre, so 5 000 EUR summed into them passed every check (found in
    review, 2026-12-07)."""
    for name in ("posting_id", "payment_id", "step", "currency"):
        if not isinstance(getattr(posting, name), str):
            raise TypeError(f"its {name} is {type(getattr(posting, name)).__name__}, not text")
    for entry in posting.entries:
        if not isinstance(entry.account_id, str) or type(entry.amount) is not int:
            raise TypeError("an entry is not an account and a whole amount")
    if posting.currency != NOK:
        raise ValueError(f"its currency is {posting.currency:.10}, not {NOK}")


def read_payments(records: Documents) -> tuple[Documents, list[Finding]]:
    """The payments' ledger records the checks can read: postingIds a list of ids, the
    amount a whole number; any other is a finding and left out of the checks (a record
    with postingIds 5, or amount None, stopped the whole audit)."""
    readable: Documents = {}
    findings: list[Finding] = []
    for payment_id, data in records.items():
        listed, amount, status = data.get("postingIds", []), data.get("amount", 0), data.get("status")
        kind, payer, payee = data.get("kind"), data.get("fromAccount"), data.get("toAccount")
        if (
            not isinstance(listed, list)
            or not all(isinstance(i, str) for i in listed)
            or type(amount) is not int
            or not (status is None or isinstance(status, str))  # a list passed every check unseen
            # every record the ledger makes says its kind and both accounts: one without
            # escaped every check of where its postings took the money, so a forged record
            # and one posting moved any amount between any two accounts (found in review,
            # 2026-12-07)
            or kind not in (INTERNAL, EXTERNAL, INCOMING)
            or not (isinstance(payer, str) and isinstance(payee, str))
        ):
            findings.append(
                Finding(
                    MALFORMED,
                    f"payment {payment_id} is malformed: postingIds {listed!r:.60}, amount {amount!r:.30}, "
                    f"status {status!r:.30}, kind {kind!r:.30}, accounts {payer!r:.30} to {payee!r:.30}",
                )
            )
            continue
        readable[payment_id] = data
    return readable, findings


# A card authorisation's amounts (what its request asked, what its capture took) and the
# maps of what followed it, each entry with its amount: read by the card checks.
CARD_AMOUNTS = ("amount", "capturedAmount")
CARD_OPERATIONS = (CARD_REFUNDS, INCREMENTS, REVERSALS)


def read_card_authorizations(records: Documents) -> tuple[Documents, list[Finding]]:
    """The card authorisations' records the checks can read: their amounts whole numbers,
    their refunds, increments and partial reversals each a map of entries with a whole
    amount; any other is a finding and left out of the checks, its postings with it (a
    refund that was None, or refunds kept as a list, stopped the whole audit, and a refund
    of 200.0 passed as one of 200; found in review, 2026-12-07)."""
    readable: Documents = {}
    findings: list[Finding] = []
    for auth_id, data in records.items():
        fault = _card_record_fault(data)
        if fault is not None:
            findings.append(Finding(MALFORMED, f"card authorisation {auth_id} is malformed: {fault}"))
            continue
        readable[auth_id] = data
    return readable, findings


def _card_record_fault(data: dict[str, Any]) -> str | None:
    """What of a card authorisation's record the checks cannot read, or None. The card
    service writes each amount as a whole number and each map by the operation's id, with
    an amount in every entry; a record without a map yet has none to read."""
    for name in CARD_AMOUNTS:
        if name in data and type(data[name]) is not int:
            return f"{name} {data[name]!r:.30}"
    # what it authorised, which its capture is held to: without it a capture of any amount
    # passed (found in review, 2026-12-07)
    if data.get("status") in (APPROVED, "captured") and type(data.get("amount")) is not int:
        return f"status {data.get('status')} without an amount"
    for name in CARD_OPERATIONS:
        entries = data.get(name) or {}
        if not isinstance(entries, dict) or not all(
            isinstance(e, dict) and type(e.get("amount")) is int for e in entries.values()
        ):
            return f"{name} {data.get(name)!r:.60}"
    return None


def journal(ledger: LedgerDocuments) -> Documents:
    """Every posting: the postings collection's and those the payments' and card
    authorisations' records keep (`carried_postings`)."""
    return {
        **ledger.postings,
        **carried_postings(ledger.payments, "ledgerPayments"),
        **carried_postings(ledger.card_authorizations, "cardAuthorizations"),
    }


def all_holds(ledger: LedgerDocuments) -> Documents:
    """Every hold: the holds collection's and those external payments' and card
    authorisations' records carry."""
    return {
        **ledger.holds,
        **carried_holds(ledger.payments, "ledgerPayments"),
        **carried_holds(ledger.card_authorizations, "cardAuthorizations"),
    }


def carried_postings(records: Documents, collection: str) -> Documents:
    """The postings records keep (``postings``, by step: a payment's ledger record, a card
    authorisation's record), each by the record's path and its step: the same checks as the
    postings collection's documents, and a posting that were in both would count twice
    (posted twice)."""
    return {
        f"{collection}/{record_id}#{step}": posting
        for record_id, data in records.items()
        if isinstance(kept := data.get("postings"), dict)
        for step, posting in kept.items()
    }


def carried_holds(records: Documents, collection: str) -> Documents:
    """The holds records carry (``hold``: an external payment's ledger record, a card
    authorisation's record), by the record's path: the same checks as the holds
    collection's documents."""
    return {f"{collection}/{record_id}": data["hold"] for record_id, data in records.items() if "hold" in data}


def read_holds(docs: Documents) -> tuple[list[Hold], list[Finding]]:
    holds: list[Hold] = []
    findings: list[Finding] = []
    for doc_id, data in docs.items():
        try:
            hold = Hold.from_dict(data)
        except (KeyError, TypeError) as exc:
            findings.append(Finding(MALFORMED, f"hold {doc_id} is malformed: missing {exc}"))
            continue
        if type(hold.amount) is not int:
            findings.append(Finding(MALFORMED, f"hold {doc_id} is malformed: amount {hold.amount!r}"))
            continue
        # the checks key by these and compare them: a list (a console edit) raised there,
        # the audit stored no result and FjbAuditFailing never fired (found in review, 2026-12-07)
        wrong = [
            f
            for f in ("hold_id", "account_id", "status", "kind", "expires_at")
            if not isinstance(getattr(hold, f), str)
        ]
        if wrong:
            findings.append(Finding(MALFORMED, f"hold {doc_id} is malformed: {', '.join(wrong)} not text"))
            continue
        holds.append(hold)
    return holds, findings


# ---- the checks -------------------------------------------------------------------------------
def check_conservation(accounts: Documents) -> list[Finding]:
    """Money is only moved, never made: every balance together is zero."""
    total = sum(a["balance"] for a in accounts.values())
    if total != 0:
        return [Finding(CONSERVATION, f"conservation broken: balances sum to {total}")]
    return []


def check_balances(accounts: Documents, replayed: dict[str, int]) -> list[Finding]:
    """Each account against the replay of the postings (by account id): postings touch only
    accounts that exist, and each account's figures agree."""
    findings: list[Finding] = []
    for account_id in sorted(set(accounts) | set(replayed)):
        data = accounts.get(account_id)
        if data is None:
            findings.append(Finding(UNKNOWN_ACCOUNT, f"postings touch unknown account {account_id}"))
        else:
            findings += check_account(account_id, data, replayed.get(account_id, 0))
    return findings


def check_account(account_id: str, data: dict[str, Any], replayed: int) -> list[Finding]:
    """One account: its stored balance is the replay of its postings, its holds are not
    negative, available = balance - held, and a customer's available is not below its
    overdraft floor."""
    findings: list[Finding] = []
    balance = data["balance"]
    if balance != replayed:
        findings.append(Finding(BALANCE, f"account {account_id}: stored balance {balance} != replay {replayed}"))
    held = data.get("held", 0)
    if held < 0:
        findings.append(Finding(HELD, f"account {account_id}: negative holds {held}"))
    if data.get("available") != balance - held:
        findings.append(
            Finding(AVAILABLE, f"account {account_id}: available {data.get('available')} != balance - held")
        )
    floor = -data.get("overdraftLimit", 0)
    if data.get("kind", CUSTOMER) == CUSTOMER and balance - held < floor:
        findings.append(Finding(OVERDRAWN, f"account {account_id}: available {balance - held} below {floor}"))
    return findings


def check_holds(
    accounts: Documents, holds: list[Hold], *, now: dt.datetime, card_holds: Collection[str] = ()
) -> list[Finding]:
    """No active card hold is past its expiry by more than ``EXPIRY_GRACE`` (the card
    service's hourly sweep releases them), and each account's held amount is the sum of its
    active holds. An external payment's hold is released by the clearing house's answer,
    not by its expiry: one past it is a payment not final (the FjbPaymentNotFinal alert,
    after 4 days submitted), not a fault of the ledger's. A card's hold is the hold of a
    card authorisation (``card_holds``: their ids, `card_hold_ids`), whatever its ``kind`` says (one relabelled a
    payment's was never past its expiry: found in review, 2026-12-07)."""
    findings: list[Finding] = []
    active: dict[str, int] = {}
    due = (now if now.tzinfo is not None else now.replace(tzinfo=dt.UTC)) - EXPIRY_GRACE
    for hold in holds:
        if hold.status == "active":
            active[hold.account_id] = active.get(hold.account_id, 0) + hold.amount
            if (hold.kind == "card" or hold.hold_id in card_holds) and _expired(hold, due):
                findings.append(Finding(HELD, f"hold {hold.hold_id} expired at {hold.expires_at} and is still active"))
    for account_id, data in accounts.items():
        held, wanted = data.get("held", 0), active.get(account_id, 0)
        if held != wanted:
            findings.append(Finding(HELD, f"account {account_id}: held {held} != active holds {wanted}"))
    for account_id in sorted(set(active) - set(accounts)):
        findings.append(
            Finding(HELD, f"active holds of {active[account_id]} on account {account_id}, which is not there")
        )
    return findings


def card_hold_ids(ledger: LedgerDocuments) -> set[str]:
    """The ids of the holds that are card authorisations': those their records carry (by
    whatever id the hold says) and the holds collection's of a card authorisation's id."""
    carried = [r["hold"].get("holdId") for r in ledger.card_authorizations.values() if isinstance(r.get("hold"), dict)]
    return {h for h in carried if isinstance(h, str)} | (set(ledger.holds) & set(ledger.card_authorizations))


def _expired(hold: Hold, due: dt.datetime) -> bool:
    """Whether the hold expired before ``due``: compared as times (text compared as text is
    off by any offset ``due`` is given in); an expiry that is not a time is past."""
    try:
        return as_utc(hold.expires_at) < due
    except (TypeError, ValueError):
        return True


def check_hold_owners(ledger: LedgerDocuments, payments: Documents, cards: Documents) -> list[Finding]:
    """Each hold against the record it belongs to (found in review, 2026-12-07: only the
    sums were checked, so a negative hold cancelling a real one, one hold counted twice, a
    hold of nobody's, or a hold on another account than its payment's all passed):

    * an active hold is of a positive amount, and is active in one place only (a record's,
      or the holds collection's from before holds moved onto the records);
    * it belongs to a payment or card authorisation of its own id: an external payment
      ``reserved`` (its hold on its payer's account, for its amount) or a card
      authorisation ``approved`` (on the card's account); any other status keeps no hold;
    * a payment ``reserved`` has its hold active, and no postings yet; so has a card
      authorisation ``approved``;
    * a hold a record carries has the record's id.
    ``payments``, ``cards``: the records the checks could read."""
    findings: list[Finding] = []
    places: Counter[str] = Counter()
    held: set[str] = set()  # the records with an active hold
    kept: set[str] = set()  # the records with a hold that can be read, active or not
    for where, hold, owner_id in _holds_by_owner(ledger, payments, cards):
        kept.add(owner_id)
        if hold.amount < 0 or (hold.amount == 0 and hold.status == "active"):
            findings.append(Finding(HELD, f"hold {where} is not positive: {hold.amount}"))
        if hold.hold_id != owner_id:
            findings.append(Finding(HELD, f"hold {where} says it is {hold.hold_id}'s"))
        if hold.status != "active":
            continue
        places[hold.hold_id] += 1
        held.add(owner_id)
        if (payment := payments.get(owner_id)) is not None:
            findings += _payment_hold(where, hold, owner_id, payment)
        elif (card := cards.get(owner_id)) is not None:
            findings += _card_hold(where, hold, owner_id, card)
        elif owner_id not in ledger.payments and owner_id not in ledger.card_authorizations:
            findings.append(Finding(HELD, f"hold {where} of {hold.amount} belongs to no payment or card authorisation"))
    findings += [Finding(HELD, f"hold {h} is active in {n} places") for h, n in sorted(places.items()) if n > 1]
    for pid, payment in payments.items():
        if payment.get("status") == "reserved":
            if pid not in held:
                findings.append(Finding(HELD, f"payment {pid} is reserved without an active hold"))
            if payment.get("postingIds"):
                findings.append(Finding(PAYMENT_POSTINGS, f"payment {pid} is reserved but has postings"))
    # (one whose hold cannot be read is that hold's finding already)
    unreadable = {a for a, c in cards.items() if "hold" in c or a in ledger.holds} - kept
    findings += [
        Finding(HELD, f"card authorisation {auth_id} is approved without an active hold")
        for auth_id, card in cards.items()
        if card.get("status") == APPROVED and auth_id not in held and auth_id not in unreadable
    ]
    return findings


def _holds_by_owner(ledger: LedgerDocuments, payments: Documents, cards: Documents) -> Iterable[tuple[str, Hold, str]]:
    """Every readable hold, where it is kept and the id of the record it belongs to: a
    record's own, or for the holds collection's the record of the hold's id. Those
    `read_holds` cannot read are its findings."""
    sources = [
        *((f"holds/{doc_id}", data, None) for doc_id, data in ledger.holds.items()),
        *((f"ledgerPayments/{pid}", r["hold"], pid) for pid, r in payments.items() if isinstance(r.get("hold"), dict)),
        *((f"cardAuthorizations/{aid}", r["hold"], aid) for aid, r in cards.items() if isinstance(r.get("hold"), dict)),
    ]
    for where, data, owner_id in sources:
        try:
            hold = Hold.from_dict(data)
        except (KeyError, TypeError):
            continue
        readable = type(hold.amount) is int and all(
            isinstance(v, str) for v in (hold.hold_id, hold.status, hold.account_id)
        )
        if readable:
            yield where, hold, owner_id if owner_id is not None else hold.hold_id


def _payment_hold(where: str, hold: Hold, payment_id: str, payment: dict[str, Any]) -> list[Finding]:
    """An active hold of a payment's: the payment reserved, the hold its amount on its
    payer's account. (A hold on a record that is no longer reserved is reported by
    `check_payment_postings`; the holds collection's here.)"""
    status = payment.get("status")
    if status != "reserved":
        if where.startswith("ledgerPayments/"):
            return []
        return [Finding(HELD, f"payment {payment_id} is {status} and its hold {where} is still active")]
    if payment.get("kind") != EXTERNAL:  # only a payment to another bank waits for its clearing
        return [Finding(HELD, f"payment {payment_id} is {payment.get('kind')} and reserved")]
    if hold.account_id != payment.get("fromAccount") or hold.amount != payment.get("amount"):
        return [
            Finding(
                HELD,
                f"payment {payment_id} reserves {payment.get('amount')} on {payment.get('fromAccount')}, "
                f"its hold {where} {hold.amount} on {hold.account_id}",
            )
        ]
    return []


def _card_hold(where: str, hold: Hold, auth_id: str, card: dict[str, Any]) -> list[Finding]:
    """An active hold of a card authorisation's: the authorisation approved, the hold on
    the card's account (its amount against what was authorised: `_hold_not_authorised`)."""
    status = card.get("status")
    if status != APPROVED:
        return [Finding(HELD, f"card authorisation {auth_id} is {status} and its hold {where} is still active")]
    findings: list[Finding] = []
    authorised = _authorised(card)
    if where.startswith("holds/") and authorised is not None and hold.amount != authorised:
        # a record's own hold is `_hold_not_authorised`'s; one kept before holds moved
        # onto the records was not held to it (found in review, 2026-12-07)
        findings.append(
            Finding(CARD_POSTINGS, f"card authorisation {auth_id}: holds {hold.amount}, authorised {authorised}")
        )
    if hold.account_id != card.get("accountId"):
        findings.append(
            Finding(
                HELD,
                f"card authorisation {auth_id} is on {card.get('accountId')}, its hold {where} on {hold.account_id}",
            )
        )
    return findings


def is_card_refund(step: str) -> bool:
    return step.startswith(CARD_REFUND + "-")


def moved(posting: Posting, *, debit: Iterable[str | None], credit: Iterable[str | None]) -> int | None:
    """What a card posting moved, if it moved it one way from one of the accounts ``debit``
    to one of ``credit`` (a capture: the purchase's account to a card scheme shard; a
    refund: back); None for a posting that went any other way."""
    if len(posting.entries) != 2:
        return None
    out, into = sorted(posting.entries, key=lambda e: e.amount)
    if out.account_id not in set(debit) or into.account_id not in set(credit):
        return None
    return into.amount


def check_card_captures(
    postings: list[Posting], authorizations: Documents, *, unreadable: Collection[str] = ()
) -> list[Finding]:
    """Each captured card authorisation has exactly one capture posting, for the captured
    amount from its account to a card scheme shard, and one posting per refund its record
    lists, for the refund's amount back, refunds in all at most what was captured; no other
    authorisation has one, and no capture or refund posting is without one.
    ``authorizations``: the records `read_card_authorizations` could read; the postings of
    those it could not (``unreadable``) are left out, their record's finding says it."""
    posted: dict[str, list[Posting]] = {}
    refunds: dict[str, dict[str, list[Posting]]] = {}
    for p in postings:
        if p.payment_id in unreadable:
            continue
        if p.step == CARD_CAPTURE:
            posted.setdefault(p.payment_id, []).append(p)
        elif is_card_refund(p.step):
            refund = p.step.removeprefix(CARD_REFUND + "-")
            refunds.setdefault(p.payment_id, {}).setdefault(refund, []).append(p)
    findings: list[Finding] = []
    for auth_id, record in authorizations.items():
        mine = posted.pop(auth_id, [])
        refunded = refunds.pop(auth_id, {})
        if _hold_not_authorised(record):
            findings.append(
                Finding(
                    CARD_POSTINGS,
                    f"card authorisation {auth_id}: holds {record['hold'].get('amount')}, "
                    f"authorised {_authorised(record)}",
                )
            )
        if record.get("status") == "captured":
            if _over_authorised(record):
                findings.append(
                    Finding(
                        CARD_POSTINGS,
                        f"card authorisation {auth_id}: captured {record.get('capturedAmount')}, "
                        f"authorised {_authorised(record)}",
                    )
                )
            account = [record.get("accountId")]
            amounts = [moved(p, debit=account, credit=SCHEME_ACCOUNTS) for p in mine]
            if amounts != [record.get("capturedAmount")]:
                findings.append(
                    Finding(
                        CARD_POSTINGS,
                        f"card authorisation {auth_id}: captured {record.get('capturedAmount')}, posted {amounts}",
                    )
                )
            findings += _check_refunds(auth_id, record, refunded)
        elif mine or refunded:
            findings.append(
                Finding(CARD_POSTINGS, f"card authorisation {auth_id} is {record.get('status')} but has postings")
            )
    findings += [Finding(CARD_POSTINGS, f"card postings for {auth_id} without an authorisation") for auth_id in posted]
    findings += [Finding(CARD_POSTINGS, f"card refunds for {auth_id} without an authorisation") for auth_id in refunds]
    return findings


def _check_refunds(auth_id: str, record: dict[str, Any], postings: dict[str, list[Posting]]) -> list[Finding]:
    """A captured authorisation's refunds: each listed one posted once for its amount, from
    a card scheme shard to the purchase's account, none posted that is not listed, and no
    more given back than was captured."""
    listed = record.get(CARD_REFUNDS) or {}
    account = [record.get("accountId")]
    posted = {r: [moved(p, debit=SCHEME_ACCOUNTS, credit=account) for p in ps] for r, ps in postings.items()}
    findings: list[Finding] = []
    for refund in sorted(set(listed) | set(posted)):
        want = listed[refund].get("amount") if refund in listed else None
        if posted.get(refund, []) != ([want] if want is not None else []):
            what = f"of {want}" if want is not None else "not listed"
            findings.append(
                Finding(
                    CARD_POSTINGS,
                    f"card authorisation {auth_id}: refund {refund} {what}, posted {posted.get(refund, [])}",
                )
            )
    total = sum(r.get("amount", 0) for r in listed.values())
    captured = record.get("capturedAmount")
    if type(captured) is int and total > captured:
        findings.append(Finding(CARD_POSTINGS, f"card authorisation {auth_id}: refunded {total}, captured {captured}"))
    return findings


def _over_authorised(record: dict[str, Any]) -> bool:
    """A captured authorisation whose capture is larger than what was authorised."""
    captured, authorised = record.get("capturedAmount"), _authorised(record)
    return type(captured) is int and authorised is not None and captured > authorised


def _authorised(record: dict[str, Any]) -> int | None:
    """What an authorisation authorises in all: its request's amount and its approved
    increments, less what its partial reversals gave back (counted here apart from the card
    service's code, which it checks)."""
    amount = record.get("amount")
    more = [i.get("amount") for i in (record.get(INCREMENTS) or {}).values() if i.get("status") == "approved"]
    less = [r.get("amount") for r in (record.get(REVERSALS) or {}).values() if not r.get("whole")]
    if type(amount) is not int or any(type(m) is not int for m in [*more, *less]):
        return None
    return int(amount) + sum(int(m) for m in more) - sum(int(m) for m in less)


def _hold_not_authorised(record: dict[str, Any]) -> bool:
    """An approved authorisation whose active hold (on its record) is not what it authorised."""
    hold = record.get("hold")
    if record.get("status") != "approved" or not isinstance(hold, dict) or hold.get("status") != "active":
        return False
    authorised = _authorised(record)
    return authorised is not None and hold.get("amount") != authorised


def payment_posting_counts(postings: list[Posting]) -> Counter[str]:
    """How many postings each payment has (deposits, payouts, card captures and refunds
    belong to none)."""
    return Counter(
        p.payment_id for p in postings if p.step not in (DEPOSIT, PAYOUT, CARD_CAPTURE) and not is_card_refund(p.step)
    )


def check_payment_postings(verdicts: Documents, postings: list[Posting]) -> list[Finding]:
    """Each payment against its verdict: posted exactly once, as its verdict lists."""
    counts = payment_posting_counts(postings)
    by_id = {p.posting_id: p for p in postings}
    of_payment: dict[str, list[Posting]] = {}
    for p in postings:
        if p.payment_id in counts:
            of_payment.setdefault(p.payment_id, []).append(p)
    findings: list[Finding] = []
    for payment_id, verdict in verdicts.items():
        listed = verdict.get("postingIds", [])
        status = verdict.get("status")
        if status == "completed" or listed:
            findings += check_posted_payment(payment_id, status, listed, counts.get(payment_id, 0), by_id)
            findings += check_payment_moves(payment_id, verdict, of_payment.get(payment_id, []))
        elif counts.get(payment_id):
            findings.append(Finding(PAYMENT_POSTINGS, f"payment {payment_id} is {status} but has postings"))
        findings += _check_steps_so_far(payment_id, verdict, of_payment.get(payment_id, []))
        hold = verdict.get("hold")
        if isinstance(hold, dict) and hold.get("status", "active") == "active" and status != "reserved":
            # only a reservation awaiting the clearing's answer holds money; a payment
            # settled, returned or failed with its hold active keeps the customer's money
            findings.append(Finding(HELD, f"payment {payment_id} is {status} and its hold is still active"))
    return findings


# The postings a payment has while between its steps: an internal payment debited, awaiting
# its credit or refund, has its debit alone; a payment from another bank held for review
# its move into suspense alone. (The transit and suspense shards are checked as totals: an
# extra credit to a shard hid a leg missing, found in review, 2026-12-07.)
STEPS_SO_FAR = {(INTERNAL, CREDIT): ["debit"], (INTERNAL, REFUND): ["debit"], (INCOMING, HELD_STEP): ["suspense"]}


def _check_steps_so_far(payment_id: str, verdict: dict[str, Any], postings: list[Posting]) -> list[Finding]:
    want = STEPS_SO_FAR.get((verdict.get("kind"), verdict.get("status")))  # type: ignore[arg-type]
    steps = sorted(p.step for p in postings)
    if want is None or steps == want:
        return []
    return [Finding(PAYMENT_POSTINGS, f"payment {payment_id} is {verdict.get('status')} with postings {steps}")]


def check_posted_payment(
    payment_id: str, status: object, listed: list[str], count: int, by_id: dict[str, Posting]
) -> list[Finding]:
    """A payment whose verdict lists postings (or that completed): every listed posting
    exists and is the payment's, it has no others, and a failed one moved no money."""
    findings: list[Finding] = []
    if status == "completed" and not listed:
        findings.append(Finding(PAYMENT_POSTINGS, f"payment {payment_id} completed without postings"))
    for pid in listed:
        if pid not in by_id or by_id[pid].payment_id != payment_id:
            findings.append(Finding(PAYMENT_POSTINGS, f"payment {payment_id}: posting {pid} missing"))
    if count != len(listed):
        findings.append(Finding(PAYMENT_POSTINGS, f"payment {payment_id} has {count} postings, expected {len(listed)}"))
    if status in ("failed", UNAPPLIED) and any(replay([by_id[i] for i in listed if i in by_id]).values()):
        findings.append(Finding(PAYMENT_POSTINGS, f"payment {payment_id} {status} but its postings moved money"))
    return findings


def check_payment_moves(payment_id: str, verdict: dict[str, Any], postings: list[Posting]) -> list[Finding]:
    """A payment's postings against the payment its record describes (a record that says
    its kind, accounts and amount): each posting moves its amount, from and to the accounts
    the ledger posts its step between (`step_accounts`); a completed one has taken the
    amount from its payer (internal, external) and given it to its payee (internal, from
    another bank). Balances, conservation and transit all agree with a credit to a third
    customer, a completed payment refunded, a posting for another amount, or a settlement
    into a card scheme shard."""
    kind, payer, payee, amount = (verdict.get(f) for f in ("kind", "fromAccount", "toAccount", "amount"))
    if kind not in (INTERNAL, EXTERNAL, INCOMING) or not (isinstance(payer, str) and isinstance(payee, str)):
        return []
    if type(amount) is not int:  # a malformed record: read_payments reports it
        return []
    findings: list[Finding] = []
    for posting in postings:
        moved_amount = sum(e.amount for e in posting.entries if e.amount > 0)
        if moved_amount != amount:
            findings.append(
                Finding(PAYMENT_POSTINGS, f"payment {payment_id}: {posting.step} moved {moved_amount}, not {amount}")
            )
        findings += _check_step_accounts(payment_id, str(kind), posting, payer, payee)
    if verdict.get("status") == "completed":
        net = replay(postings)
        wanted = {payer: -amount} if kind in (INTERNAL, EXTERNAL) else {}
        if kind in (INTERNAL, INCOMING):
            wanted[payee] = amount
        for account_id, change in wanted.items():
            if net.get(account_id, 0) != change:
                findings.append(
                    Finding(
                        PAYMENT_POSTINGS,
                        f"payment {payment_id} completed with {net.get(account_id, 0)} on {account_id}, not {change}",
                    )
                )
    return findings


def step_accounts(kind: str, step: str, payer: str, payee: str) -> set[tuple[str, str]]:
    """The accounts the ledger posts a step of a payment between, as (from, to) pairs
    (fjordbank.domain.payment_ledger; none for a step it never posts for the kind). Each
    shard is the one of the partition that posts the step: an internal payment's debit and
    refund are the payer's partition's (its transit-out shard), its credit the payee's (its
    transit-in shard); an external payment settles into its payer's settlement shard; one
    from another bank is booked by its payee's partition, from its settlement shard, or from
    its suspense shard once held for review. Some came before the shards: an internal
    payment was one posting from the payer to the payee (step ``transfer``), and an external
    one settled into ``internal-settlement``; their postings are still in the ledger."""
    if kind == INTERNAL:
        out = transit_out_account(payer)
        ways = {
            "debit": {(payer, out)},
            CREDIT: {(transit_in_account(payee), payee)},
            REFUND: {(out, payer)},
            "transfer": {(payer, payee)},
        }
    elif kind == EXTERNAL:
        ways = {"settle": {(payer, settlement_account(payer)), (payer, INTERNAL_SETTLEMENT)}}
    else:
        settlement, suspense = settlement_account(payee), suspense_account(payee)
        ways = {
            CREDIT: {(settlement, payee), (suspense, payee)},
            "suspense": {(settlement, suspense)},
            "unheld": {(suspense, settlement)},
        }
    return ways.get(step, set())


def _check_step_accounts(payment_id: str, kind: str, posting: Posting, payer: str, payee: str) -> list[Finding]:
    """A payment's posting moved its money one way, between the accounts the ledger posts
    its step between: any internal account passed before, so a settlement into a card
    scheme shard or a credit paid out of one was not seen (found in review, 2026-12-07)."""
    wanted = step_accounts(kind, posting.step, payer, payee)
    if not wanted:
        return [
            Finding(PAYMENT_POSTINGS, f"payment {payment_id}: the ledger posts no {posting.step} for {kind} payments")
        ]
    way = _one_way(posting)
    if way in wanted:
        return []
    went = f"{way[0]} to {way[1]}" if way is not None else "between " + ", ".join(e.account_id for e in posting.entries)
    expected = " or ".join(f"{a} to {b}" for a, b in sorted(wanted))
    return [Finding(PAYMENT_POSTINGS, f"payment {payment_id}: {posting.step} from {went}, not from {expected}")]


def _one_way(posting: Posting) -> tuple[str, str] | None:
    """The account a posting of two entries took its money from and the one it gave it to."""
    if len(posting.entries) != 2:
        return None
    out, into = sorted(posting.entries, key=lambda e: e.amount)
    return out.account_id, into.account_id


def in_flight(verdicts: Documents) -> int:
    """What the internal payments between their debit and their credit or refund carry."""
    # every record with a whole amount, one malformed otherwise included (the transit shards
    # hold its money however its other fields read: a record with postingIds 5 showed as a
    # transit fault as well as a malformed one)
    return _carried(verdicts, (CREDIT, REFUND))


def held_for_review(verdicts: Documents) -> int:
    """What the payments from other banks held for sanctions review carry (booked ``held``)."""
    return _carried(verdicts, (HELD_STEP,))


def _carried(verdicts: Documents, statuses: tuple[str, ...]) -> int:
    return sum(
        amount for v in verdicts.values() if v.get("status") in statuses and type(amount := v.get("amount", 0)) is int
    )


def check_transit(accounts: Documents, verdicts: Documents) -> list[Finding]:
    """The transit shards hold exactly the internal payments in flight."""
    return _shards_hold(TRANSIT, accounts, INTERNAL_TRANSIT, in_flight(verdicts), "internal payments in flight")


def check_suspense(accounts: Documents, verdicts: Documents) -> list[Finding]:
    """The suspense shards hold exactly the payments from other banks held for review."""
    return _shards_hold(SUSPENSE, accounts, INTERNAL_SUSPENSE, held_for_review(verdicts), "payments held for review")


def _shards_hold(kind: str, accounts: Documents, shards: tuple[str, ...], expected: int, what: str) -> list[Finding]:
    held = sum(accounts.get(a, {}).get("balance", 0) for a in shards)
    if held != expected:
        return [Finding(kind, f"{kind} accounts hold {held}, {what} {expected}")]
    return []


def check_postings_without_verdict(verdicts: Documents, postings: list[Posting]) -> list[Finding]:
    """Every payment's postings have the ledger's verdict for that payment."""
    return [
        Finding(PAYMENT_POSTINGS, f"postings for payment {payment_id} without a ledger verdict")
        for payment_id in payment_posting_counts(postings)
        if payment_id not in verdicts
    ]


# The outside world's accounts a deposit is taken from: a shard per deposit call (by its
# first deposit's id, so not one a posting's own id tells), and ``internal-world``, which
# took the deposits before the shards.
WORLD_ACCOUNTS = frozenset({INTERNAL_WORLD, *INTERNAL_WORLD_SHARDS})


def check_deposits_and_payouts(accounts: Documents, postings: list[Posting]) -> list[Finding]:
    """The postings no payment's record is checked against (found in review, 2026-12-07):
    a deposit (the admin path's, fjordbank.service_layer.ledger) moves money from the
    outside world into the bank, and a payout (fjordbank.service_layer.accounts) a closed
    account's money to another account of the same customer's. Either from any account to
    any other, Alice's money paid into Bob's account, passed every check."""
    findings: list[Finding] = []
    for posting in postings:
        if posting.step == DEPOSIT:
            findings += _check_deposit(accounts, posting)
        elif posting.step == PAYOUT:
            findings += _check_payout(accounts, posting)
    return findings


def check_kept_once(postings: list[Posting]) -> list[Finding]:
    """A deposit's or payout's posting is in the journal once: no record lists them (a
    payment's or card's posting kept twice is its record's finding), so one kept again, in
    the postings collection or on a record, with the balances moved twice, passed every
    check (found by the audit's property tests, 2026-12-07)."""
    kept = Counter(p.posting_id for p in postings if p.step in (DEPOSIT, PAYOUT))
    return [Finding(PAYMENT_POSTINGS, f"posting {pid} is kept {n} times") for pid, n in sorted(kept.items()) if n > 1]


def _check_deposit(accounts: Documents, posting: Posting) -> list[Finding]:
    """A deposit is one world account's money to one customer account (every caller
    deposits into a customer's: one into a transit or suspense shard hid a payment's leg
    missing there, found in review, 2026-12-07). Which world shard it took is fixed by its
    call's first deposit, and left unchecked; an account not there is reported already."""
    way = _one_way(posting)
    if way is not None and way[0] in WORLD_ACCOUNTS and way[1] not in WORLD_ACCOUNTS:
        target = accounts.get(way[1])
        if target is None or target.get("kind", CUSTOMER) == CUSTOMER:
            return []
    went = f"{way[0]} to {way[1]}" if way is not None else "between " + ", ".join(e.account_id for e in posting.entries)
    return [Finding(PAYMENT_POSTINGS, f"deposit {posting.payment_id} from {went}, not from the outside world")]


def _check_payout(accounts: Documents, posting: Posting) -> list[Finding]:
    """A payout takes a closed account's money to another customer account of its owner's
    (`pay_out` refuses any other; an account once closed stays closed). An account missing
    from the ledger is the unknown-account finding already."""
    way = _one_way(posting)
    if way is None:
        accounts_moved = ", ".join(e.account_id for e in posting.entries)
        return [Finding(PAYMENT_POSTINGS, f"payout {posting.payment_id} moves between {accounts_moved}")]
    source, target = (accounts.get(a) for a in way)
    if source is None or target is None:
        return []
    owner = source.get("ownerUid")
    if source.get("status") != "closed":
        return [Finding(PAYMENT_POSTINGS, f"payout {posting.payment_id} from {way[0]}, which is not closed")]
    customers = all(a.get("kind", CUSTOMER) == CUSTOMER for a in (source, target))
    if not customers or owner is None or target.get("ownerUid") != owner:
        return [
            Finding(PAYMENT_POSTINGS, f"payout {posting.payment_id} from {way[0]} to {way[1]}, not the same customer's")
        ]
    return []
