"""The ledger of record: payment steps, internal accounts, accounts opened and deposits on
the admin path, written against the document ports (fjordbank.service_layer.ports).

Documents:
  accounts/{accountId}          balance, held, available, owner, status (the app reads its own)
  postings/{paymentId:step}     one balanced posting each; the id makes it exactly-once
  holds/{paymentId}             funds reserved for a payment not yet posted
  ledgerPayments/{paymentId}    the ledger's record of a payment: the result of every step it
                                went through, so a redelivered or replayed step gets the same
                                answer and changes nothing

One unit of work per batch (operation ``ledger_post_batch``: begin, one read, one commit):
it reads every account, record and hold the batch needs at once (`load_batch`), applies the
batch in order in memory (`decide_batch`: `fjordbank.domain.payment_ledger.apply_step` on one
`fjordbank.domain.ledger.Book`), then writes each touched account once plus the new
postings, holds and records (`save_batch`). A hot account receiving many payments in a
batch costs one write per commit, not one per payment; many payments from one account in
one batch are decided one after the other, so none takes it below its limit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fjordbank.adapters.firestore import ACCOUNTS, HOLDS, LEDGER_PAYMENTS, POSTINGS
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
from fjordbank.service_layer.ports import (
    SERVER_TIME,
    AlreadyExists,
    AsyncDocuments,
    AsyncUnitOfWork,
    Clock,
    Data,
    Doc,
    Writes,
    system_clock,
)
from fjordbank.topology import CREDIT, REFUND

Record = dict[str, Any]  # a payment's ledger record (fjordbank.domain.payment_ledger.new_record)


def account_path(account_id: str) -> str:
    return f"{ACCOUNTS}/{account_id}"


def record_path(payment_id: str) -> str:
    return f"{LEDGER_PAYMENTS}/{payment_id}"


def hold_path(hold_id: str) -> str:
    return f"{HOLDS}/{hold_id}"


def posting_path(posting_id: str) -> str:
    return f"{POSTINGS}/{posting_id}"


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


def balance_fields(acct: Account) -> Data:
    return {"balance": acct.balance, "held": acct.held, "available": acct.available, "updatedAt": SERVER_TIME}


def write_book(writes: Writes, book: Book) -> None:
    """Write what one commit's Book changed: each touched account once, the new postings
    (create: a posting id applied twice fails the commit) and the touched holds."""
    for account_id in sorted(book.touched):
        writes.update(account_path(account_id), balance_fields(book.accounts[account_id]))
    for posting in book.postings:
        writes.create(posting_path(posting.posting_id), {**posting.to_dict(), "createdAt": SERVER_TIME})
    for hold_id in sorted(book.touched_holds):
        writes.set(hold_path(hold_id), book.holds[hold_id].to_dict())


def write_records(writes: Writes, records: dict[str, Record]) -> None:
    for payment_id, record in records.items():
        writes.set(record_path(payment_id), {**record, "updatedAt": SERVER_TIME})


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


# ---- one batch: load -> decide -> save ---------------------------------------------------
@dataclass
class BatchState:
    """What a batch's unit of work read: the accounts and holds (as a Book) and the
    payments' records."""

    book: Book
    records: dict[str, Record]


def batch_paths(events: list[PaymentEvent]) -> list[str]:
    """Every document a batch reads, for one read: its accounts, its payments' records, and
    the holds of the settling steps (only those can hold)."""
    account_ids = sorted(set().union(*(accounts_needed(e) for e in events)))
    payment_ids = sorted({e.payment.payment_id for e in events})
    settling = sorted({e.payment.payment_id for e in events if e.status in ("settled", "returned")})
    return [
        *(account_path(a) for a in account_ids),
        *(record_path(p) for p in payment_ids),
        *(hold_path(p) for p in settling),
    ]


def _found(docs: Iterable[Doc | None], collection: str) -> dict[str, Data]:
    return {d.id: d.data for d in docs if d is not None and d.path.startswith(f"{collection}/")}


def state_of(found: dict[str, Doc | None]) -> BatchState:
    """The batch's state from the documents read (missing ones left out)."""
    docs = list(found.values())
    accounts = {a: account_from_doc(data) for a, data in _found(docs, ACCOUNTS).items()}
    holds = {h: Hold.from_dict(data) for h, data in _found(docs, HOLDS).items()}
    return BatchState(Book(accounts, holds=holds), _found(docs, LEDGER_PAYMENTS))


async def load_batch(uow: AsyncUnitOfWork, events: list[PaymentEvent]) -> BatchState:
    return state_of(await uow.get_many(batch_paths(events)))


def decide_batch(
    state: BatchState, events: list[PaymentEvent], *, now: dt.datetime
) -> tuple[list[Verdict], dict[str, Record]]:
    """Apply the batch's steps in order to the state (no I/O). Returns a verdict per event
    and the records that changed (a replayed or refused step changes none)."""
    verdicts: list[Verdict] = []
    changed: set[str] = set()
    for event in events:
        pid = event.payment.payment_id
        try:
            record, result, replayed = apply_step(state.book, state.records.get(pid), event, now=now)
        except (UnexpectedStep, Declined) as exc:
            verdicts.append(Verdict(event, None, error=f"{exc.code}: {exc.message}"))
            continue
        if not replayed:
            state.records[pid] = record
            changed.add(pid)
        verdicts.append(Verdict(event, result, replayed))
    return verdicts, {pid: state.records[pid] for pid in changed}


def save_batch(writes: Writes, book: Book, records: dict[str, Record]) -> None:
    write_book(writes, book)
    write_records(writes, records)


def internal_account(account_id: str, currency: str) -> Data:
    return {
        "accountId": account_id,
        "kind": INTERNAL,
        "currency": currency,
        "balance": 0,
        "held": 0,
        "available": 0,
        "status": "open",
        "ownerUid": None,
        "name": account_id,
        "updatedAt": SERVER_TIME,
    }


def customer_account(account_id: str, owner_uid: str, name: str, currency: str, overdraft_limit: int) -> Data:
    return {
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
        "createdAt": SERVER_TIME,
        "updatedAt": SERVER_TIME,
    }


class Ledger:
    """The ledger's use cases on a document database and a clock."""

    def __init__(self, docs: AsyncDocuments, clock: Clock = system_clock) -> None:
        self.docs = docs
        self.clock = clock

    async def post_batch(self, events: list[PaymentEvent], *, now: dt.datetime | None = None) -> list[Verdict]:
        """Apply a batch of payment steps in one unit of work (see the module docstring)."""
        at = now or self.clock()

        async def run(uow: AsyncUnitOfWork) -> list[Verdict]:
            state = await load_batch(uow, events)
            verdicts, records = decide_batch(state, events, now=at)
            save_batch(uow, state.book, records)
            return verdicts

        return await self.docs.transact(run, operation="ledger_post_batch")

    # ---- admin path: accounts and deposits ------------------------------------------------
    async def ensure_internal_accounts(self, currency: str = "NOK") -> None:
        """Create each internal account that is missing (one read and, when missing, one
        create each); one made meanwhile by another process is left as it is."""
        for account_id in INTERNAL_ACCOUNTS:
            if await self.docs.get(account_path(account_id)) is not None:
                continue
            batch = self.docs.batch()
            batch.create(account_path(account_id), internal_account(account_id, currency))
            try:
                await batch.commit()
            except AlreadyExists:
                pass

    async def open_account(
        self, *, account_id: str, owner_uid: str, name: str, currency: str = "NOK", overdraft_limit: int = 0
    ) -> None:
        """A customer account outside onboarding; AlreadyExists when the number is taken."""
        batch = self.docs.batch()
        batch.create(account_path(account_id), customer_account(account_id, owner_uid, name, currency, overdraft_limit))
        await batch.commit()

    async def deposit(self, *, deposit_id: str, account_id: str, amount: int, currency: str = "NOK") -> bool:
        """Money entering the bank from outside (the admin path's opening balances).
        Exactly once per ``deposit_id``. Returns False if it had been posted already."""
        return await self.deposit_many([(deposit_id, account_id, amount)], currency=currency) == 1

    async def deposit_many(self, items: list[tuple[str, str, int]], *, currency: str = "NOK") -> int:
        """Several deposits (deposit id, account, amount) in one unit of work (operation
        ``ledger_deposit``): the outside world's account is written once. Returns how many
        were new."""
        postings = [Posting.transfer(d, "deposit", INTERNAL_WORLD, a, amount, currency) for d, a, amount in items]
        account_ids = {INTERNAL_WORLD, *(a for _d, a, _m in items)}

        async def run(uow: AsyncUnitOfWork) -> int:
            found = await uow.get_many(
                [*(posting_path(p.posting_id) for p in postings), *(account_path(a) for a in account_ids)]
            )
            posted = set(_found(found.values(), POSTINGS))
            book = Book({a: account_from_doc(data) for a, data in _found(found.values(), ACCOUNTS).items()})
            for posting in postings:
                if posting.posting_id not in posted:
                    book.apply(posting)
            write_book(uow, book)
            return len(book.postings)

        return await self.docs.transact(run, operation="ledger_deposit")
