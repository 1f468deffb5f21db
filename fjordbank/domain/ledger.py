"""Double-entry ledger rules, free of I/O.

* Every amount is an integer in minor units (øre) of one currency.
* A posting is a set of entries whose amounts sum to zero. Internal accounts (clearing,
  settlement, the outside world) are ordinary ledger accounts, so the sum of all balances
  is always zero: money is never created or destroyed, only moved.
* A customer account's available balance is ``balance - held``; a debit or a hold may
  never take it below ``-overdraft_limit``. Internal accounts have no such floor.
* Every posting has an id derived from the payment id and the step, so applying a payment
  twice is detected by the id, inside the same commit that would apply it.

`Book` is the working set of one ledger commit: the adapter loads the accounts a batch
touches, the batch is applied in order in memory (so concurrent payments from one account
are decided one after the other, exactly), and the adapter writes each touched account
once together with the new postings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from fjordbank.domain.errors import DomainError
from fjordbank.topology import PAYMENT_PARTITIONS, partition_of

# Internal accounts. "world" stands for every party outside the bank: money that enters
# (deposits, incoming payments) is debited from it, money that leaves is credited to it.
INTERNAL_WORLD = "internal-world"
# Deposits (the admin path's money from outside) debit a shard of the world, one per
# deposit call, fixed by its first deposit id: one document every deposit wrote made
# concurrent deposits wait on each other's locks for seconds and fail. ``internal-world``
# keeps the deposits made before the shards and takes no new ones; the shards and it
# together are the world's balance.
WORLD_SHARDS = 16
INTERNAL_WORLD_SHARDS = tuple(f"internal-world-{i:02d}" for i in range(WORLD_SHARDS))
INTERNAL_CLEARING = "internal-clearing"
# Settled external payments: what the bank paid out through clearing, less what came in
# from other banks (the payee's partition's shard pays an incoming payment out to the
# payee): the bank's position with the clearing house. Sharded by payment partition
# (fjordbank/topology.py): a partition's steps are posted by the one ledger instance that
# holds it, so each shard has one writer and instances never contend for it.
# ``internal-settlement`` itself took every settlement before the partitions; it keeps
# those and takes no new ones. The shards and it together are the settlement balance.
INTERNAL_SETTLEMENT = "internal-settlement"
INTERNAL_SETTLEMENT_SHARDS = tuple(f"internal-settlement-p{n}" for n in range(PAYMENT_PARTITIONS))
# What the bank owes the card scheme for captured card purchases (settled with the scheme
# outside this system). Sharded: every capture and refund writes one in its transaction, and
# one document cannot take every capture's write; the shards together are the scheme's
# balance. 256: at the design's 35 million purchases a month (docs/capacity.md, section 2)
# the lunch peak's 33-80 captures/s kept each of 16 shards at 2-5 writes/s, past the
# sustained 1 write/s of a document (found in review, 2026-12-07); 256 keep them at 0.3. A
# refund of a capture posted before takes the shard its id gives now: the shards are one
# balance, and every one exists (the card service and the ledger make the missing at start).
CARD_SCHEME_SHARDS = 256
INTERNAL_CARD_SCHEME = tuple(f"internal-card-scheme-{i:02d}" for i in range(CARD_SCHEME_SHARDS))
# Internal payments in transit between two partitions: the payer's partition debits the
# payer and credits its ``internal-transit-out-p<a>``; the payee's partition debits its
# ``internal-transit-in-p<b>`` and credits the payee (a refund reverses the first leg). Each
# shard is written by its own partition only. Out and in together hold exactly the internal
# payments between their two legs: zero when the pipeline is drained (the audit checks it).
INTERNAL_TRANSIT_OUT = tuple(f"internal-transit-out-p{n}" for n in range(PAYMENT_PARTITIONS))
INTERNAL_TRANSIT_IN = tuple(f"internal-transit-in-p{n}" for n in range(PAYMENT_PARTITIONS))
INTERNAL_TRANSIT = (*INTERNAL_TRANSIT_OUT, *INTERNAL_TRANSIT_IN)
# Payments from other banks held for sanctions review (fjordbank.service_layer.incoming):
# the clearing house settled them with the bank, so the payee's partition books each from
# its settlement shard into its suspense shard (``held``), and out again when a compliance
# officer decides: to the payee on a release, back to the settlement shard when the credit
# goes back; one frozen stays. Together they hold exactly the credits held or frozen (the
# audit checks it).
INTERNAL_SUSPENSE = tuple(f"internal-suspense-p{n}" for n in range(PAYMENT_PARTITIONS))
# The bank's own accounts the ledger no longer posts to but may still hold: the card scheme's
# one account before its shards (made 2026-11-26, for an hour). The audit takes them as the
# bank's own, so a ledger that has one is not malformed for it.
RETIRED_CARD_SCHEME = "internal-card-scheme"
RETIRED_INTERNAL_ACCOUNTS = (RETIRED_CARD_SCHEME,)
INTERNAL_ACCOUNTS = (
    INTERNAL_WORLD,
    *INTERNAL_WORLD_SHARDS,
    INTERNAL_CLEARING,
    INTERNAL_SETTLEMENT,
    *INTERNAL_SETTLEMENT_SHARDS,
    *INTERNAL_CARD_SCHEME,
    *INTERNAL_TRANSIT,
    *INTERNAL_SUSPENSE,
)


def settlement_account(payer_account: str) -> str:
    """The settlement shard of a payment: its payer's partition's (a payment from another
    bank: its payee's, the account its steps are routed by)."""
    return INTERNAL_SETTLEMENT_SHARDS[partition_of(payer_account)]


def transit_out_account(payer_account: str) -> str:
    """Where the payer's partition puts an internal payment it has debited."""
    return INTERNAL_TRANSIT_OUT[partition_of(payer_account)]


def transit_in_account(payee_account: str) -> str:
    """Where the payee's partition takes an internal payment from to credit it."""
    return INTERNAL_TRANSIT_IN[partition_of(payee_account)]


def suspense_account(payee_account: str) -> str:
    """Where the payee's partition keeps a payment from another bank held for review."""
    return INTERNAL_SUSPENSE[partition_of(payee_account)]


def world_account(deposit_id: str) -> str:
    """The world shard a deposit call debits, fixed by (its first) deposit id."""
    digest = hashlib.sha256(deposit_id.encode()).digest()
    return INTERNAL_WORLD_SHARDS[int.from_bytes(digest[:4], "big") % WORLD_SHARDS]


def card_scheme_account(key: str) -> str:
    """The scheme shard a capture credits, fixed by the authorisation's id: a hash of it,
    so the captures spread over every shard (the id's last four bytes took only 10 of the
    16, six of them twice as often). Which shard a capture took is on its posting; the
    audit sums them all."""
    digest = hashlib.sha256(key.encode()).digest()
    return INTERNAL_CARD_SCHEME[int.from_bytes(digest[:4], "big") % CARD_SCHEME_SHARDS]


CUSTOMER = "customer"
INTERNAL = "internal"
OPEN = "open"
# An account frozen under financial sanctions (fjordbank.service_layer.rescreening): nothing
# is paid from it (Council Regulation (EU) No 269/2014, art. 2), money may still be paid in
# (art. 7: a credit to a frozen account is frozen with it). Only compliance lifts it.
FROZEN = "frozen"
TAKES_CREDITS = frozenset({OPEN, FROZEN})


class LedgerError(DomainError):
    code = "ledger_error"


class UnbalancedPosting(LedgerError):
    code = "unbalanced_posting"


class Declined(LedgerError):
    """A payment the ledger refuses; ``code`` is the reason shown to the customer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def posting_id(payment_id: str, step: str) -> str:
    return f"{payment_id}:{step}"


@dataclass(frozen=True, slots=True)
class Entry:
    account_id: str
    amount: int  # signed minor units: + increases the account's balance

    def __post_init__(self) -> None:
        if type(self.amount) is not int or self.amount == 0:
            raise UnbalancedPosting(f"entry amount must be a non-zero int, got {self.amount!r}")


@dataclass(frozen=True, slots=True)
class Posting:
    posting_id: str
    payment_id: str
    step: str
    currency: str
    entries: tuple[Entry, ...]

    def __post_init__(self) -> None:
        if len(self.entries) < 2:
            raise UnbalancedPosting("a posting needs at least two entries")
        if sum(e.amount for e in self.entries) != 0:
            raise UnbalancedPosting(f"posting {self.posting_id} does not balance")

    @classmethod
    def transfer(
        cls,
        payment_id: str,
        step: str,
        debit: str,
        credit: str,
        amount: int,
        currency: str,
    ) -> Posting:
        if type(amount) is not int or amount <= 0:
            raise UnbalancedPosting(f"transfer amount must be a positive int, got {amount!r}")
        return cls(
            posting_id=posting_id(payment_id, step),
            payment_id=payment_id,
            step=step,
            currency=currency,
            entries=(Entry(debit, -amount), Entry(credit, amount)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "postingId": self.posting_id,
            "paymentId": self.payment_id,
            "step": self.step,
            "currency": self.currency,
            "entries": [{"account": e.account_id, "amount": e.amount} for e in self.entries],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Posting:
        return cls(
            posting_id=data["postingId"],
            payment_id=data["paymentId"],
            step=data["step"],
            currency=data["currency"],
            entries=tuple(Entry(e["account"], e["amount"]) for e in data["entries"]),
        )


@dataclass(slots=True)
class Account:
    account_id: str
    currency: str
    balance: int = 0
    held: int = 0
    overdraft_limit: int = 0
    status: str = OPEN
    kind: str = CUSTOMER
    owner_uid: str | None = None

    @property
    def available(self) -> int:
        return self.balance - self.held

    def can_spend(self, amount: int) -> bool:
        if self.kind == INTERNAL:
            return True
        return self.available - amount >= -self.overdraft_limit


@dataclass(slots=True)
class Hold:
    """Funds reserved on a customer account for a payment that has not been posted yet
    (an external payment waiting for clearing, a card authorisation waiting for capture)."""

    hold_id: str  # the payment id (one hold per payment)
    account_id: str
    amount: int
    currency: str
    expires_at: str  # ISO 8601 UTC; the audit flags active holds past it
    status: str = "active"  # active | captured | released
    kind: str = "payment"  # payment (external, in clearing) | card (an authorisation)

    def to_dict(self) -> dict[str, Any]:
        return {
            "holdId": self.hold_id,
            "accountId": self.account_id,
            "amount": self.amount,
            "currency": self.currency,
            "expiresAt": self.expires_at,
            "status": self.status,
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hold:
        return cls(
            hold_id=data["holdId"],
            account_id=data["accountId"],
            amount=data["amount"],
            currency=data["currency"],
            expires_at=data["expiresAt"],
            status=data.get("status", "active"),
            kind=data.get("kind", "payment"),
        )


@dataclass
class Book:
    """The accounts of one commit and what the commit changes."""

    accounts: dict[str, Account]
    postings: list[Posting] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    holds: dict[str, Hold] = field(default_factory=dict)
    touched_holds: set[str] = field(default_factory=set)

    def account(self, account_id: str) -> Account:
        try:
            return self.accounts[account_id]
        except KeyError:
            raise Declined("unknown_account", f"account {account_id[-4:]} is not in the ledger") from None

    def apply(self, posting: Posting) -> None:
        """Apply a balanced posting (all-or-nothing: checks every entry before changing any)."""
        accounts = [self.account(e.account_id) for e in posting.entries]
        for acct in accounts:
            if acct.currency != posting.currency:
                raise Declined(
                    "currency_mismatch",
                    f"account is in {acct.currency}, posting in {posting.currency}",
                )
        for acct, entry in zip(accounts, posting.entries, strict=True):
            if entry.amount < 0 and not acct.can_spend(-entry.amount):
                raise Declined("insufficient_funds", "available balance is too low")
        for acct, entry in zip(accounts, posting.entries, strict=True):
            acct.balance += entry.amount
            self.touched.add(acct.account_id)
        self.postings.append(posting)

    def transfer(
        self,
        *,
        payment_id: str,
        step: str,
        payer_uid: str,
        debit: str,
        credit: str,
        amount: int,
        currency: str,
    ) -> Posting:
        """An internal transfer posted at once. Raises `Declined` with a reason code."""
        source = self.account(debit)
        target = self.account(credit)
        self._check_payer(source, payer_uid, currency)
        if target.status not in TAKES_CREDITS:
            raise Declined("to_account_closed", "the to-account is not open")
        if debit == credit:
            raise Declined("same_account", "from- and to-account are the same")
        if source.currency != currency or target.currency != currency:
            raise Declined("currency_mismatch", f"the accounts do not hold {currency}")
        if not source.can_spend(amount):
            raise Declined("insufficient_funds", "available balance is too low")
        posting = Posting.transfer(payment_id, step, debit, credit, amount, currency)
        self.apply(posting)
        return posting

    def receive(
        self, *, payment_id: str, step: str, source: str, credit: str, amount: int, currency: str, refund: bool = False
    ) -> Posting:
        """Money from an internal account (``source``: a transit shard) to a customer's
        account: the payee's credit, or (``refund``) the payer's money back. A credit needs
        an open account in the currency; a refund is never refused for the account's
        status (the money was the payer's). Raises `Declined` with a reason code."""
        if self.account(source).kind != INTERNAL:
            raise Declined("unknown_account", "money is received from an internal account only")
        target = self.account(credit)
        if target.kind != CUSTOMER:
            raise Declined("unknown_account", "the to-account is not a customer's account")
        if target.status not in TAKES_CREDITS and not refund:
            raise Declined("to_account_closed", "the to-account is not open")
        if target.currency != currency:
            raise Declined("currency_mismatch", f"the to-account does not hold {currency}")
        posting = Posting.transfer(payment_id, step, source, credit, amount, currency)
        self.apply(posting)
        return posting

    def payer_account(self, account_id: str, payer_uid: str, currency: str) -> Account:
        """The payer's account, if the payer may pay from it. Raises `Declined`."""
        source = self.account(account_id)
        self._check_payer(source, payer_uid, currency)
        return source

    def _check_payer(self, source: Account, payer_uid: str, currency: str) -> None:
        if source.kind != CUSTOMER or source.owner_uid != payer_uid:
            raise Declined("unknown_account", "the payer has no such account")  # as for a missing one
        if source.status == FROZEN:
            raise Declined("account_frozen", "the account is frozen")
        if source.status != OPEN:
            raise Declined("account_closed", "the from-account is not open")
        if source.currency != currency:
            raise Declined("currency_mismatch", f"the account does not hold {currency}")

    def hold(
        self,
        *,
        hold_id: str,
        payer_uid: str,
        account_id: str,
        amount: int,
        currency: str,
        expires_at: str,
        kind: str = "payment",
    ) -> Hold:
        """Reserve funds: available balance drops, the ledger balance does not."""
        if type(amount) is not int or amount <= 0:
            raise Declined("invalid_amount", "a hold must be a positive int")
        if hold_id in self.holds:
            raise Declined("duplicate_hold", "this payment already holds funds")
        source = self.account(account_id)
        self._check_payer(source, payer_uid, currency)
        if not source.can_spend(amount):
            raise Declined("insufficient_funds", "available balance is too low")
        source.held += amount
        self.touched.add(account_id)
        hold = Hold(hold_id, account_id, amount, currency, expires_at, kind=kind)
        self.holds[hold_id] = hold
        self.touched_holds.add(hold_id)
        return hold

    def extend(self, hold_id: str, *, amount: int, expires_at: str) -> Hold:
        """Hold ``amount`` more on an active hold (a card's incremental authorisation): the
        available balance drops, the ledger balance does not; the hold expires at
        ``expires_at`` if that is later than it did. Raises `Declined`."""
        if type(amount) is not int or amount <= 0:
            raise Declined("invalid_amount", "a hold must be a positive int")
        hold = self._active_hold(hold_id)
        source = self.account(hold.account_id)
        if source.status == FROZEN:
            raise Declined("account_frozen", "the account is frozen")
        if source.status != OPEN:
            raise Declined("account_closed", "the account is not open")
        if not source.can_spend(amount):
            raise Declined("insufficient_funds", "available balance is too low")
        source.held += amount
        hold.amount += amount
        if as_utc(expires_at) > as_utc(hold.expires_at):
            hold.expires_at = expires_at
        self.touched.add(hold.account_id)
        self.touched_holds.add(hold_id)
        return hold

    def reduce(self, hold_id: str, *, amount: int) -> Hold:
        """Give ``amount`` of an active hold back to the available balance, less than all of
        it (a card's partial reversal; all of it is `release`); nothing is posted. Raises
        `Declined`."""
        hold = self._active_hold(hold_id)
        if type(amount) is not int or not 0 < amount < hold.amount:
            raise Declined("invalid_amount", "a reduction must be positive and less than the hold")
        self.account(hold.account_id).held -= amount
        hold.amount -= amount
        self.touched.add(hold.account_id)
        self.touched_holds.add(hold_id)
        return hold

    def _active_hold(self, hold_id: str) -> Hold:
        hold = self.holds.get(hold_id)
        if hold is None or hold.status != "active":
            raise Declined("no_active_hold", f"no active hold for {hold_id}")
        return hold

    def release(self, hold_id: str) -> Hold:
        """Give held funds back to the available balance; nothing is posted."""
        hold = self._active_hold(hold_id)
        self.account(hold.account_id).held -= hold.amount
        hold.status = "released"
        self.touched.add(hold.account_id)
        self.touched_holds.add(hold_id)
        return hold

    def capture(self, hold_id: str, *, step: str, credit: str, amount: int | None = None) -> Posting:
        """Post a held payment: the hold is consumed whole and ``amount`` (at most the
        hold; all of it by default) is posted from the held account to ``credit``."""
        hold = self._active_hold(hold_id)
        amount = hold.amount if amount is None else amount
        if type(amount) is not int or not 0 < amount <= hold.amount:
            raise Declined("invalid_capture", "a capture must be positive and at most the hold")
        posting = Posting.transfer(hold_id, step, hold.account_id, credit, amount, hold.currency)
        account = self.account(hold.account_id)
        account.held -= hold.amount
        try:
            self.apply(posting)
        except Declined:
            account.held += hold.amount  # all-or-nothing, like apply itself
            raise
        hold.status = "captured"
        self.touched_holds.add(hold_id)
        return posting


def as_utc(iso: str) -> dt.datetime:
    """An ISO 8601 time (a hold's expiry); one without a zone is UTC."""
    when = dt.datetime.fromisoformat(iso)
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def record_postings(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The postings a record keeps in its ``postings`` map (a payment's ledger record, a
    card authorisation's record): none for one from before they moved onto the record."""
    kept = record.get("postings")
    return list(kept.values()) if isinstance(kept, dict) else []


def carries_hold(record: dict[str, Any]) -> bool:
    """The record keeps its hold (``hold``): an external payment's ledger record reserved
    since 2026-12-01, a card authorisation's record approved since 2026-12-02. Older ones
    keep theirs in the holds collection."""
    return isinstance(record.get("hold"), dict)


def readable_hold(record: dict[str, Any]) -> bool:
    """A record that carries its hold (`carries_hold`) carries one `Hold.from_dict` reads,
    under the record's own ``holdId``."""
    hold = record.get("hold")
    if not isinstance(hold, dict):
        return False
    fields = ("holdId", "accountId", "currency", "expiresAt")
    amount = hold.get("amount")
    return (
        all(isinstance(hold.get(f), str) for f in fields)
        and isinstance(amount, int)
        and not isinstance(amount, bool)
        and record.get("holdId") == hold["holdId"]
    )


def record_holds(records: dict[str, dict[str, Any]]) -> dict[str, Hold]:
    """The holds the records carry, by hold id (the payment's or authorisation's id). A
    hold that cannot be read is left out (its record's step is refused alone:
    fjordbank.domain.payment_ledger._require_readable): read here, it raised a bare
    KeyError that failed its whole batch (found in review, 2026-12-07)."""
    out: dict[str, Hold] = {}
    for record in records.values():
        if carries_hold(record) and readable_hold(record):
            hold = Hold.from_dict(record["hold"])
            out[hold.hold_id] = hold
    return out


def replay(postings: list[Posting]) -> dict[str, int]:
    """Balances as the sum of every posting's entries: the ledger's ground truth."""
    balances: dict[str, int] = {}
    for posting in postings:
        for entry in posting.entries:
            balances[entry.account_id] = balances.get(entry.account_id, 0) + entry.amount
    return balances
