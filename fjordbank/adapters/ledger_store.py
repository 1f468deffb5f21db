"""The ledger of record in Firestore.

Collections:
  accounts/{accountId}          balance, held, available, owner, status (the app reads its own)
  postings/{paymentId:step}     one balanced posting each; the id makes it exactly-once
  ledgerPayments/{paymentId}    the ledger's verdict on a payment (posted or declined), so a
                                redelivered or replayed request gets the same answer

One Firestore transaction per batch: it reads every account and verdict the batch needs,
applies the batch in order in memory (`fjordbank.domain.ledger.Book`), then writes each
touched account once plus the new postings and verdicts. A hot account receiving many
payments in a batch costs one write per commit, not one per payment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from google.cloud import firestore
from google.cloud.firestore_v1.async_transaction import async_transactional

from fjordbank.adapters.firestore import ACCOUNTS, LEDGER_PAYMENTS, POSTINGS
from fjordbank.domain.ledger import (
    INTERNAL,
    INTERNAL_ACCOUNTS,
    INTERNAL_WORLD,
    Account,
    Book,
    Declined,
    Posting,
)
from fjordbank.domain.payments import PaymentOutcome, PaymentRequested

log = logging.getLogger(__name__)


def account_from_doc(data: dict) -> Account:
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


def balance_fields(acct: Account) -> dict:
    return {
        "balance": acct.balance,
        "held": acct.held,
        "available": acct.available,
        "updatedAt": firestore.SERVER_TIMESTAMP,
    }


@dataclass(frozen=True)
class Verdict:
    outcome: PaymentOutcome
    replayed: bool  # True when the ledger had already decided this payment


class FirestoreLedger:
    def __init__(self, db: firestore.AsyncClient) -> None:
        self.db = db

    def _account_ref(self, account_id: str):
        return self.db.collection(ACCOUNTS).document(account_id)

    async def post_transfers(self, events: list[PaymentRequested]) -> list[Verdict]:
        """Decide and post a batch of internal transfers in one transaction."""

        @async_transactional
        async def run(tx) -> list[Verdict]:
            account_ids = sorted({a for e in events for a in (e.from_account, e.to_account)})
            payment_ids = sorted({e.payment_id for e in events})
            refs = [self._account_ref(a) for a in account_ids]
            refs += [self.db.collection(LEDGER_PAYMENTS).document(p) for p in payment_ids]
            accounts: dict[str, Account] = {}
            decided: dict[str, dict] = {}
            async for snap in self.db.get_all(refs, transaction=tx):
                if not snap.exists:
                    continue
                if snap.reference.parent.id == ACCOUNTS:
                    accounts[snap.id] = account_from_doc(snap.to_dict())
                else:
                    decided[snap.id] = snap.to_dict()
            book = Book(accounts)
            verdicts: list[Verdict] = []
            new_records: dict[str, dict] = {}
            for e in events:
                record = decided.get(e.payment_id) or new_records.get(e.payment_id)
                if record is not None:
                    verdicts.append(Verdict(_outcome(e, record), replayed=True))
                    continue
                try:
                    posting = book.transfer(
                        payment_id=e.payment_id,
                        step="transfer",
                        payer_uid=e.uid,
                        debit=e.from_account,
                        credit=e.to_account,
                        amount=e.amount,
                        currency=e.currency,
                    )
                    record = {"status": "completed", "postingIds": [posting.posting_id], "reason": None}
                except Declined as exc:
                    record = {"status": "failed", "postingIds": [], "reason": exc.code, "message": exc.message}
                record.update(
                    {
                        "paymentId": e.payment_id,
                        "uid": e.uid,
                        "requestId": e.request_id,
                        "amount": e.amount,
                        "currency": e.currency,
                        "bodyHash": e.body_hash,
                        "decidedAt": firestore.SERVER_TIMESTAMP,
                    }
                )
                new_records[e.payment_id] = record
                verdicts.append(Verdict(_outcome(e, record), replayed=False))
            self._write(tx, book, new_records)
            return verdicts

        return await run(self.db.transaction())

    def _write(self, tx, book: Book, records: dict[str, dict]) -> None:
        for account_id in sorted(book.touched):
            tx.update(self._account_ref(account_id), balance_fields(book.accounts[account_id]))
        for posting in book.postings:
            tx.create(
                self.db.collection(POSTINGS).document(posting.posting_id),
                {**posting.to_dict(), "createdAt": firestore.SERVER_TIMESTAMP},
            )
        for payment_id, record in records.items():
            tx.create(self.db.collection(LEDGER_PAYMENTS).document(payment_id), record)

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
        posting = Posting.transfer(deposit_id, "deposit", INTERNAL_WORLD, account_id, amount, currency)

        @async_transactional
        async def run(tx) -> bool:
            posting_ref = self.db.collection(POSTINGS).document(posting.posting_id)
            refs = [posting_ref, self._account_ref(INTERNAL_WORLD), self._account_ref(account_id)]
            snaps = {s.id: s async for s in self.db.get_all(refs, transaction=tx)}
            if snaps[posting.posting_id].exists:
                return False
            book = Book(
                {s.id: account_from_doc(s.to_dict()) for s in snaps.values() if s.exists and s.id != posting.posting_id}
            )
            book.apply(posting)
            self._write(tx, book, {})
            return True

        return await run(self.db.transaction())


def _outcome(e: PaymentRequested, record: dict) -> PaymentOutcome:
    return PaymentOutcome(
        payment_id=e.payment_id,
        uid=e.uid,
        request_id=e.request_id,
        status=record["status"],
        reason=record.get("reason"),
        message=record.get("message"),
    )
