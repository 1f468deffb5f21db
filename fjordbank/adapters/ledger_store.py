"""The ledger of record in Firestore.

Collections:
  accounts/{accountId}          balance, held, available, owner, status (the app reads its own)
  postings/{paymentId:step}     one balanced posting each; the id makes it exactly-once
  holds/{paymentId}             funds reserved for a payment not yet posted
  ledgerPayments/{paymentId}    the ledger's record of a payment: the result of every step it
                                went through, so a redelivered or replayed step gets the same
                                answer and changes nothing

One Firestore transaction per batch: it reads every account and verdict the batch needs,
applies the batch in order in memory (`fjordbank.domain.ledger.Book`), then writes each
touched account once plus the new postings and verdicts. A hot account receiving many
payments in a batch costs one write per commit, not one per payment.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1 import AsyncTransaction
from google.cloud.firestore_v1.async_document import AsyncDocumentReference

from fjordbank.adapters.firestore import (
    ACCOUNTS,
    HOLDS,
    LEDGER_PAYMENTS,
    POSTINGS,
    async_transactional,
    fields_of,
)
from fjordbank.domain.ledger import (
    INTERNAL,
    INTERNAL_ACCOUNTS,
    INTERNAL_WORLD,
    Account,
    Book,
    Declined,
    Hold,
    Posting,
    settlement_account,
    transit_in_account,
    transit_out_account,
)
from fjordbank.domain.payment_ledger import StepResult, UnexpectedStep, apply_step
from fjordbank.domain.payments import INTERNAL as INTERNAL_KIND
from fjordbank.domain.payments import PaymentEvent
from fjordbank.topology import CREDIT, REFUND

log = logging.getLogger(__name__)


def account_from_doc(data: dict[str, Any]) -> Account:
    return Account(
        account_id=data["accountId"],
        currency=data["currency"],
        balance=data["balance"],
        held=data.get("held", 0),
        overdraft_limit=data.get("overdraftLimit", 0),
        status=data.get("status", "open"),
        kind=data.get("kind", "customer"),
        owner_uid=data.get("ownerUid"),
    )


def balance_fields(acct: Account) -> dict[str, Any]:
    return {
        "balance": acct.balance,
        "held": acct.held,
        "available": acct.available,
        "updatedAt": firestore.SERVER_TIMESTAMP,
    }


def write_book(tx: AsyncTransaction, db: firestore.AsyncClient, book: Book) -> None:
    """Write what one commit's Book changed: each touched account once, the new postings
    (create: a posting id applied twice fails the commit) and the touched holds."""
    for account_id in sorted(book.touched):
        tx.update(db.collection(ACCOUNTS).document(account_id), balance_fields(book.accounts[account_id]))
    for posting in book.postings:
        tx.create(
            db.collection(POSTINGS).document(posting.posting_id),
            {**posting.to_dict(), "createdAt": firestore.SERVER_TIMESTAMP},
        )
    for hold_id in sorted(book.touched_holds):
        tx.set(db.collection(HOLDS).document(hold_id), book.holds[hold_id].to_dict())


@dataclass(frozen=True)
class Verdict:
    event: PaymentEvent  # the step that was applied
    result: StepResult | None  # what to publish next; None when the step was refused
    replayed: bool = False  # the ledger had already applied this step
    error: str | None = None  # an impossible step, for the dead-letter stream


def accounts_needed(event: PaymentEvent) -> set[str]:
    """The accounts a step reads and may write: all in the partition the step is routed by
    (the payee's for a credit, else the payer's; fjordbank.domain.payment_ledger)."""
    p = event.payment
    if event.status == "approved":
        return {p.from_account} | ({transit_out_account(p.from_account)} if p.kind == INTERNAL_KIND else set())
    if event.status == CREDIT:
        return {p.to_account, transit_in_account(p.to_account)}
    if event.status == REFUND:
        return {p.from_account, transit_out_account(p.from_account)}
    return {p.from_account, settlement_account(p.from_account)}


class FirestoreLedger:
    def __init__(self, db: firestore.AsyncClient) -> None:
        self.db = db

    def _account_ref(self, account_id: str) -> AsyncDocumentReference:
        return self.db.collection(ACCOUNTS).document(account_id)

    async def post_batch(self, events: list[PaymentEvent], *, now: dt.datetime | None = None) -> list[Verdict]:
        """Apply a batch of payment steps in one transaction (see the module docstring)."""
        now = now or dt.datetime.now(dt.UTC)

        @async_transactional(operation="ledger_post_batch")
        async def run(tx: AsyncTransaction) -> list[Verdict]:
            account_ids = sorted(set().union(*(accounts_needed(e) for e in events)))
            payment_ids = sorted({e.payment.payment_id for e in events})
            refs = [self._account_ref(a) for a in account_ids]
            refs += [self.db.collection(LEDGER_PAYMENTS).document(p) for p in payment_ids]
            settling = sorted({e.payment.payment_id for e in events if e.status in ("settled", "returned")})
            refs += [self.db.collection(HOLDS).document(p) for p in settling]  # only these can hold
            accounts: dict[str, Account] = {}
            records: dict[str, dict[str, Any]] = {}
            holds: dict[str, Hold] = {}
            async for snap in self.db.get_all(refs, transaction=tx):
                if not snap.exists:
                    continue
                collection = snap.reference.parent.id
                if collection == ACCOUNTS:
                    accounts[snap.id] = account_from_doc(fields_of(snap))
                elif collection == HOLDS:
                    holds[snap.id] = Hold.from_dict(fields_of(snap))
                else:
                    records[snap.id] = fields_of(snap)
            book = Book(accounts, holds=holds)
            verdicts: list[Verdict] = []
            changed: set[str] = set()
            for event in events:
                pid = event.payment.payment_id
                try:
                    record, result, replayed = apply_step(book, records.get(pid), event, now=now)
                except (UnexpectedStep, Declined) as exc:
                    verdicts.append(Verdict(event, None, error=f"{exc.code}: {exc.message}"))
                    continue
                if not replayed:
                    records[pid] = record
                    changed.add(pid)
                verdicts.append(Verdict(event, result, replayed))
            self._write(tx, book, {pid: records[pid] for pid in changed})
            return verdicts

        return await run(self.db.transaction())

    def _write(self, tx: AsyncTransaction, book: Book, records: dict[str, dict[str, Any]]) -> None:
        write_book(tx, self.db, book)
        for payment_id, record in records.items():
            tx.set(
                self.db.collection(LEDGER_PAYMENTS).document(payment_id),
                {**record, "updatedAt": firestore.SERVER_TIMESTAMP},
            )

    # ---- admin path: accounts and deposits ------------------------------------------------
    async def ensure_internal_accounts(self, currency: str = "NOK") -> None:
        for account_id in INTERNAL_ACCOUNTS:
            ref = self._account_ref(account_id)
            if not (await ref.get()).exists:
                try:
                    await ref.create(
                        {
                            "accountId": account_id,
                            "kind": INTERNAL,
                            "currency": currency,
                            "balance": 0,
                            "held": 0,
                            "available": 0,
                            "status": "open",
                            "ownerUid": None,
                            "name": account_id,
                            "updatedAt": firestore.SERVER_TIMESTAMP,
                        }
                    )
                except Exception as exc:
                    if "already exists" not in str(exc).lower():
                        raise

    async def open_account(
        self, *, account_id: str, owner_uid: str, name: str, currency: str = "NOK", overdraft_limit: int = 0
    ) -> None:
        await self._account_ref(account_id).create(
            {
                "accountId": account_id,
                "ownerUid": owner_uid,
                "name": name,
                "kind": "customer",
                "currency": currency,
                "balance": 0,
                "held": 0,
                "available": 0,
                "overdraftLimit": overdraft_limit,
                "status": "open",
                "createdAt": firestore.SERVER_TIMESTAMP,
                "updatedAt": firestore.SERVER_TIMESTAMP,
            }
        )

    async def deposit(self, *, deposit_id: str, account_id: str, amount: int, currency: str = "NOK") -> bool:
        """Money entering the bank from outside (the admin path's opening balances).
        Exactly once per ``deposit_id``. Returns False if it had been posted already."""
        return await self.deposit_many([(deposit_id, account_id, amount)], currency=currency) == 1

    async def deposit_many(self, items: list[tuple[str, str, int]], *, currency: str = "NOK") -> int:
        """Several deposits (deposit id, account, amount) in one transaction: the outside
        world's account is written once. Returns how many were new."""
        postings = [Posting.transfer(d, "deposit", INTERNAL_WORLD, a, amount, currency) for d, a, amount in items]

        @async_transactional(operation="ledger_deposit")
        async def run(tx: AsyncTransaction) -> int:
            posting_refs = [self.db.collection(POSTINGS).document(p.posting_id) for p in postings]
            account_refs = [self._account_ref(a) for a in {INTERNAL_WORLD, *(a for _d, a, _m in items)}]
            accounts: dict[str, Account] = {}
            posted: set[str] = set()
            async for snap in self.db.get_all(posting_refs + account_refs, transaction=tx):
                if snap.exists and snap.reference.parent.id == ACCOUNTS:
                    accounts[snap.id] = account_from_doc(fields_of(snap))
                elif snap.exists:
                    posted.add(snap.id)
            book = Book(accounts)
            for posting in postings:
                if posting.posting_id not in posted:
                    book.apply(posting)
            self._write(tx, book, {})
            return len(book.postings)

        return await run(self.db.transaction())
