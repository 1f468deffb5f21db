"""The ledger of record: payment steps, internal accounts, accounts opened and deposits on
the admin path, written against the document ports (fjordbank.service_layer.ports).

Documents:
  accounts/{accountId}          balance, held, available, owner, status (the app reads its own)
  ledgerPayments/{paymentId}    the ledger's record of a payment: the result of every step it
                                went through, so a redelivered or replayed step gets the same
                                answer and changes nothing, and each step's balanced posting
                                (``postings``: the payment's journal); an external payment's
                                record also carries the funds it holds until clearing answers
                                (``hold``)
  postings/{id}                 the deposits' postings, and those of payments and card captures
                                booked before postings moved onto their records; the id makes
                                each exactly-once
  holds/{paymentId}             a hold of a payment reserved before holds moved onto the
                                record (read and written only for such a payment's last step)

One commit per batch (``ledger_post_batch``), with no transaction: the batch's accounts,
records and holds are what this process last read or wrote of them (`Known`: their data
and update time), and only the ones it does not know are read (`load_batch`); the batch is
applied in order in memory (`decide_batch`: `fjordbank.domain.payment_ledger.apply_step` on
one `fjordbank.domain.ledger.Book`); then one batch commit writes each touched account
once plus the changed records, with their postings and holds (`save_batch`; the holds
of payments reserved before holds moved onto records as documents), every write of a document
that was read on the condition that it is still that version (``update(...,
if_updated=...)``), every new one as a create. A document another writer changed
meanwhile (the card ledger's holds, a deposit, another instance after a partition moved)
fails the whole commit, and the batch is read and decided again (at most `ATTEMPTS`
commits, then ``ports.Contention``: NATS delivers the batch again). The commit applies
whole or not at all, and at the commit every document the batch decided on is the version
it decided on: what a transaction would give, without its begin and its read.

A payment's partition (fjordbank.topology) is owned by one instance, and every step that
writes a customer account or a transit shard is routed by that account's partition, so
the owner is almost always the only writer of what it knows: a batch of known documents is
one round trip. A new payment's first step (``approved``) reads no record: the record is
created, and a redelivered step fails that create and is read and answered from the
record. A refusal (insufficient funds, a closed account, a step the record does not allow)
is only ever decided on documents read in that attempt, never on remembered ones, since
nothing is written that could catch a stale balance.

An internal payment's next leg (the credit, in the payee's partition; a refund, back in the
payer's) carries the record as the step before left it, with its update time
(``detail.ledgerRecord``, `carry`): the payee's partition is most often owned by another
instance, which would otherwise read the record to credit it. The carried version is
used like a remembered one (`carried_record`): the commit's precondition fails if the record
moved since (a redelivered leg already applied), and the batch is then read and decided
again, never on the carried version; a refusal is never decided on it either.

A hot account receiving many payments in a batch costs one write per commit, not one per
payment; many payments from one account in one batch are decided one after the other, so
none takes it below its limit.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from fjordbank.adapters.firestore import ACCOUNTS, HOLDS, LEDGER_PAYMENTS, POSTINGS
from fjordbank.domain.ledger import (
    INTERNAL,
    INTERNAL_ACCOUNTS,
    Account,
    Book,
    Declined,
    Hold,
    Posting,
    carries_hold,
    record_holds,
    record_postings,
    settlement_account,
    suspense_account,
    transit_in_account,
    transit_out_account,
    world_account,
)
from fjordbank.domain.payment_ledger import (
    StepResult,
    UnexpectedStep,
    apply_step,
)
from fjordbank.domain.payments import INTERNAL as INTERNAL_KIND
from fjordbank.domain.payments import PaymentEvent
from fjordbank.service_layer import recent
from fjordbank.service_layer.ports import (
    DELETE_FIELD,
    SERVER_TIME,
    AlreadyExists,
    AsyncDocuments,
    AsyncUnitOfWork,
    Clock,
    Contention,
    Data,
    Doc,
    NotFound,
    Stale,
    Writes,
    Written,
    system_clock,
)
from fjordbank.service_layer.recent import Attempted, Version
from fjordbank.topology import ARRIVED, CREDIT, HELD, REFUND, UNAPPLIED

Record = dict[str, Any]  # a payment's ledger record (fjordbank.domain.payment_ledger.new_record)
ATTEMPTS = 8  # commits of one batch before it is given back to NATS
KNOWN = 20_000  # documents (accounts, records, holds) a ledger process remembers
SETTLING = ("settled", "returned")  # the steps that capture or release an external payment's hold
CARRIED = "ledgerRecord"  # in an internal payment's next leg's detail: its record (`carry`)
NEXT_LEGS = (CREDIT, REFUND)  # the steps the ledger publishes to itself
# A payment's first step at the ledger: its record is new (a credit from another bank held
# for review and released has it already: the create of its ``arrived`` fails, and the batch
# is decided again on the record read)
FIRST_STEPS = frozenset({"approved", ARRIVED, HELD})


Decided = dict[str, Version]  # path -> the version a batch decided on (absent: a new document)


log = logging.getLogger(__name__)


class Known(recent.Versions):
    """The versions of the documents this process read or wrote last (`KNOWN` of them)."""

    def __init__(self, size: int = KNOWN) -> None:
        super().__init__(size)


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


def write_book(
    writes: Writes,
    book: Book,
    versions: Decided | None = None,
    *,
    carried: Collection[str] = (),
    on_records: Collection[str] = (),
) -> list[tuple[str, Data]]:
    """Write what one commit's Book changed: each touched account once, the new postings
    (create: a posting id applied twice fails the commit) and the touched holds, but not
    the holds ``carried`` nor the postings (by id) kept ``on_records`` (a payment's ledger
    record, a card authorisation's record: written with the record). With ``versions`` (a
    commit outside a transaction): each account and hold on the condition that it is still
    the version read, a hold not read as a create. Returns (path, data) of each write, in
    order."""
    out: list[tuple[str, Data]] = []
    for account_id in sorted(book.touched):
        path, fields = account_path(account_id), balance_fields(book.accounts[account_id])
        if versions is None:
            writes.update(path, fields)
        else:
            writes.update(path, fields, if_updated=versions[path].updated)
        out.append((path, fields))
    for posting in book.postings:
        if posting.posting_id in on_records:
            continue
        path, data = posting_path(posting.posting_id), {**posting.to_dict(), "createdAt": SERVER_TIME}
        writes.create(path, data)
        out.append((path, data))
    for hold_id in sorted(book.touched_holds.difference(carried)):
        path, data = hold_path(hold_id), book.holds[hold_id].to_dict()
        _put(writes, path, data, versions)
        out.append((path, data))
    return out


def write_records(
    writes: Writes, records: dict[str, Record], versions: Decided | None = None
) -> list[tuple[str, Data]]:
    out: list[tuple[str, Data]] = []
    for payment_id, record in records.items():
        path, data = record_path(payment_id), {**record, "updatedAt": SERVER_TIME}
        _put(writes, path, data, versions)
        out.append((path, data))
    return out


def _put(writes: Writes, path: str, data: Data, versions: Decided | None) -> None:
    """A whole document: in a transaction a set; else an update of the version read that
    sends only the fields that changed (`changed_fields`), or a create of one not read."""
    if versions is None:
        writes.set(path, data)
    elif (version := versions.get(path)) is not None:
        writes.update(path, changed_fields(version.data, data), if_updated=version.updated)
    else:
        writes.create(path, data)


def changed_fields(before: Data, after: Data) -> Data:
    """The update that turns ``before`` into ``after``: each top-level field that differs,
    a map field by its entries (``steps.credit``), a field gone as DELETE_FIELD. A payment's
    record grows by a step at a time, and encoding the whole record again for every step
    was the ledger's largest CPU cost under load (py-spy, 2026-12-01: protobuf building in
    save_batch, more than the rest of the batch)."""
    out: Data = {}
    for key, value in after.items():
        old = before.get(key, _MISSING)
        if old == value and not _is_sentinel(value):
            continue
        if isinstance(value, dict) and isinstance(old, dict) and value and all(_plain(k) for k in value):
            out.update({f"{key}.{k}": v for k, v in value.items() if old.get(k, _MISSING) != v or _is_sentinel(v)})
            out.update({f"{key}.{k}": DELETE_FIELD for k in old if k not in value})
        else:
            out[key] = value
    out.update({key: DELETE_FIELD for key in before if key not in after})
    return out


_MISSING = object()
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _plain(key: object) -> bool:
    """A map key that is a field path segment as it stands (no quoting needed)."""
    return isinstance(key, str) and _PLAIN.fullmatch(key) is not None


def _is_sentinel(value: object) -> bool:
    return value is SERVER_TIME


@dataclass(frozen=True)
class Verdict:
    event: PaymentEvent  # the step that was applied
    result: StepResult | None  # what to publish next; None when the step was refused
    replayed: bool = False  # the ledger had already applied this step
    error: str | None = None  # an impossible step, for the dead-letter stream
    record: Version | None = None  # the payment's record as this batch's commit left it


def carry(events: list[PaymentEvent], record: Version | None) -> list[PaymentEvent]:
    """What a step publishes, its ledger leg (`NEXT_LEGS`) carrying ``record``, the
    payment's record as the step's commit left it (`CARRIED`: its data and update time),
    so the instance that owns the next leg's partition need not read it; every other event
    carries no record (the detail is carried on from step to step)."""
    out = []
    for event in events:
        detail = {k: v for k, v in (event.detail or {}).items() if k != CARRIED}
        if event.status in NEXT_LEGS and record is not None and (wire := _record_wire(record)) is not None:
            detail[CARRIED] = wire
        out.append(replace(event, detail=detail))
    return out


def _record_wire(record: Version) -> dict[str, Any] | None:
    """The record as an event carries it; None for a record that is not plain JSON (one
    read back from Firestore holds its update time as a timestamp: it is left out, since
    every write of a record sets it again)."""
    data = {k: v for k, v in record.data.items() if k != "updatedAt"}
    try:
        json.dumps(data)
    except (TypeError, ValueError):
        return None
    return {"updated": record.updated.astimezone(dt.UTC).isoformat(), "data": data}


def carried_record(event: PaymentEvent) -> tuple[str, Version] | None:
    """The record a ledger leg carries (`carry`), by path; None when it carries none or
    one that is not this payment's."""
    wire = (event.detail or {}).get(CARRIED)
    if event.status not in NEXT_LEGS or not isinstance(wire, dict):
        return None
    data, updated = wire.get("data"), wire.get("updated")
    if not isinstance(data, dict) or data.get("paymentId") != event.payment.payment_id or not isinstance(updated, str):
        return None
    try:
        when = dt.datetime.fromisoformat(updated)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return record_path(event.payment.payment_id), Version(data, when)


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
    if event.status == ARRIVED:  # from another bank: the payee's partition pays it out
        return {p.to_account, settlement_account(p.to_account), suspense_account(p.to_account)}
    if event.status == HELD:  # held for review: into the payee's partition's suspense
        return {settlement_account(p.to_account), suspense_account(p.to_account)}
    return {p.from_account, settlement_account(p.from_account)}


# ---- one batch: load -> decide -> save ---------------------------------------------------
@dataclass
class BatchState:
    """What a batch decides on: the accounts and holds (as a Book), the payments' records,
    and the version of each of those documents (a new record or hold has none); ``read``:
    the paths read in this attempt (the others were known)."""

    book: Book
    records: dict[str, Record]
    versions: Decided
    read: set[str]


def batch_paths(events: list[PaymentEvent]) -> list[str]:
    """Every document a batch needs: its accounts and its payments' records (which carry
    their holds; see `older_holds` for those that do not)."""
    account_ids = sorted(set().union(*(accounts_needed(e) for e in events)))
    payment_ids = sorted({e.payment.payment_id for e in events})
    return [*(account_path(a) for a in account_ids), *(record_path(p) for p in payment_ids)]


def _newer(a: Version | None, b: Version | None) -> Version | None:
    if a is None or b is None:
        return a or b
    return b if b.updated > a.updated else a


def older_holds(state: BatchState, events: list[PaymentEvent]) -> list[str]:
    """The hold documents of the batch's settling steps whose records do not carry their
    hold (reserved before holds moved onto the record): read as well."""
    paths: set[str] = set()
    for event in events:
        record = state.records.get(event.payment.payment_id)
        if event.status in SETTLING and record and record.get("holdId") and not carries_hold(record):
            paths.add(hold_path(record["holdId"]))
    return sorted(paths)


def new_records(events: list[PaymentEvent]) -> set[str]:
    """The records of payments whose only step in the batch is the first (``approved``; a
    payment from another bank's ``arrived``): new ones, unless the step is redelivered (then
    their create fails the commit)."""
    later = {e.payment.payment_id for e in events if e.status not in FIRST_STEPS}
    return {record_path(e.payment.payment_id) for e in events if e.payment.payment_id not in later}


def _found(docs: Iterable[Doc | None], collection: str) -> dict[str, Data]:
    return {d.id: d.data for d in docs if d is not None and d.path.startswith(f"{collection}/")}


def state_of(found: dict[str, Doc | None], known: dict[str, Version] | None = None) -> BatchState:
    """The batch's state from the documents read (missing ones left out) and those known."""
    versions = {path: Version(doc.data, doc.updated) for path, doc in found.items() if doc is not None}
    versions |= known or {}
    docs = [Doc(path, v.data, v.updated) for path, v in versions.items()]
    accounts = {a: account_from_doc(data) for a, data in _found(docs, ACCOUNTS).items()}
    records = _found(docs, LEDGER_PAYMENTS)
    holds = {h: Hold.from_dict(data) for h, data in _found(docs, HOLDS).items()} | record_holds(records)
    return BatchState(Book(accounts, holds=holds), records, versions, set(found))


async def load_batch(
    docs: AsyncDocuments,
    events: list[PaymentEvent],
    known: Known,
    *,
    new_payments: bool,
    carried: dict[str, Version] | None = None,
) -> BatchState:
    """The batch's documents: those known or ``carried`` by the batch's ledger legs
    (`carried_record`) as the newer of the two, the rest in one read, but (with
    ``new_payments``) not the records of new payments."""
    paths = batch_paths(events)
    remembered = {path: v for path in paths if (v := _newer(known.get(path), (carried or {}).get(path))) is not None}
    guessed = new_records(events) if new_payments else set()
    missing = [path for path in paths if path not in remembered and path not in guessed]
    found = await docs.get_many(missing) if missing else {}
    state = state_of(found, remembered)
    if not (older := older_holds(state, events)):
        return state
    remembered |= {path: v for path in older if (v := known.get(path)) is not None}
    missing = [path for path in older if path not in remembered]
    found = {**found, **(await docs.get_many(missing) if missing else {})}
    return state_of(found, remembered)


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


def save_batch(writes: Writes, state: BatchState, records: dict[str, Record]) -> list[tuple[str, Data]]:
    """The batch's writes, each on the condition of the version decided on (see the module
    docstring). Returns (path, data) of each write, in order."""
    carried = {r["holdId"] for r in state.records.values() if carries_hold(r)}
    on_records = {p["postingId"] for r in records.values() for p in record_postings(r)}
    return write_book(writes, state.book, state.versions, carried=carried, on_records=on_records) + write_records(
        writes, records, state.versions
    )


def unsure(state: BatchState, verdicts: list[Verdict], carried: Mapping[str, Version] | None = None) -> set[str]:
    """The remembered documents a refusal was decided on: a refusal writes nothing that a
    stale balance or record would fail, so it must be decided on documents read now. And a
    carried record (``carried``) that says its own leg is done already: the leg then writes
    nothing, so no precondition would check the record, and a genuine one never says so
    (the credit carries the record as the debit left it, the refund as the refused credit
    left it): a redelivered leg is answered from the record as read now."""
    paths: set[str] = set()
    for v in verdicts:
        p = v.event.payment
        declined = v.event.status == "approved" and v.result is not None and v.result.status == "failed"
        refused = v.result is None or (not v.replayed and (declined or v.result.status in (REFUND, UNAPPLIED)))
        if refused:
            paths |= {account_path(a) for a in accounts_needed(v.event)} | {record_path(p.payment_id)}
        path = record_path(p.payment_id)
        if v.replayed and carried and path in carried and state.versions.get(path) == carried[path]:
            paths.add(path)
    return {path for path in paths if path in state.versions and path not in state.read}


def remember(
    known: Known, state: BatchState, writes: list[tuple[str, Data]], written: list[Written]
) -> dict[str, Version]:
    """What the commit left, as this process will know it: each document read, and each one
    written with its new data and update time (postings are never read again). Returns
    the versions written."""
    for path in state.read:
        if (version := state.versions.get(path)) is not None:
            known.put(path, version)
    out: dict[str, Version] = {}
    for (path, data), done in zip(writes, written, strict=True):
        if path.startswith(f"{POSTINGS}/") or done.updated is None:
            continue
        before = state.versions.get(path)
        fields = {k: v for k, v in data.items() if v is not SERVER_TIME}
        out[path] = Version({**(before.data if before else {}), **fields}, done.updated)
        known.put(path, out[path])
    return out


def with_records(verdicts: list[Verdict], written: dict[str, Version]) -> list[Verdict]:
    """Each verdict with its payment's record as the commit left it (for `carry`)."""
    out = []
    for v in verdicts:
        record = written.get(record_path(v.event.payment.payment_id))
        out.append(replace(v, record=record) if record is not None and v.result is not None else v)
    return out


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

    def __init__(
        self, docs: AsyncDocuments, clock: Clock = system_clock, *, attempted: Attempted | None = None
    ) -> None:
        self.docs = docs
        self.clock = clock
        self.known = Known()  # what this process last read or wrote (post_batch)
        self._attempted: Attempted = attempted if attempted is not None else (lambda _attempts, _error: None)

    async def post_batch(self, events: list[PaymentEvent], *, now: dt.datetime | None = None) -> list[Verdict]:
        """Apply a batch of payment steps in one commit (see the module docstring)."""
        at = now or self.clock()
        new_payments, error = True, None
        carried = dict(found for e in events if (found := carried_record(e)) is not None)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                state, verdicts, records = await self._decide(events, new_payments, carried, at)
            except Exception:
                if not carried:
                    raise
                # a carried record this code cannot decide on (not the shape it writes: a
                # newer release's, or a damaged event): decided on the records read instead
                log.warning("a carried ledger record could not be used; reading the records", exc_info=True)
                carried = {}
                state, verdicts, records = await self._decide(events, new_payments, carried, at)
            batch = self.docs.batch()
            writes = save_batch(batch, state, records)
            try:
                written = await batch.commit() if writes else []
            except (Stale, NotFound, AlreadyExists) as exc:  # a document moved since it was read
                self.known.forget([*batch_paths(events), *(hold_path(e.payment.payment_id) for e in events)])
                new_payments = new_payments and not isinstance(exc, AlreadyExists)
                carried, error = {}, exc  # read from now on: a carried record may be what moved
                continue
            fresh = remember(self.known, state, writes, written)
            self._attempted(attempt, None)
            return with_records(verdicts, fresh)
        gave_up = Contention(f"the ledger's documents kept moving ({ATTEMPTS} commits): {error}")
        self._attempted(ATTEMPTS, gave_up)
        raise gave_up from error

    async def _decide(
        self, events: list[PaymentEvent], new_payments: bool, carried: dict[str, Version], at: dt.datetime
    ) -> tuple[BatchState, list[Verdict], dict[str, Record]]:
        """Load and decide the batch; what was decided on a document in doubt (`unsure`) is
        decided again on it as read now (and its carried record, if any, dropped: in place)."""
        state = await load_batch(self.docs, events, self.known, new_payments=new_payments, carried=carried)
        verdicts, records = decide_batch(state, events, now=at)
        while doubt := unsure(state, verdicts, carried):
            self.known.forget(doubt)
            for path in doubt:
                carried.pop(path, None)
            state = await load_batch(self.docs, events, self.known, new_payments=new_payments, carried=carried)
            verdicts, records = decide_batch(state, events, now=at)
        return state, verdicts, records

    # ---- admin path: accounts and deposits ------------------------------------------------
    async def ensure_internal_accounts(self, currency: str = "NOK") -> None:
        """Create each internal account that is missing (one read of them all and, when
        some are missing, one create each); one made meanwhile by another process is left
        as it is."""
        found = await self.docs.get_many([account_path(a) for a in INTERNAL_ACCOUNTS])
        for account_id in INTERNAL_ACCOUNTS:
            if found.get(account_path(account_id)) is not None:
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
        if not items:
            return 0
        repeated = sorted(d for d, times in Counter(d for d, _a, _m in items).items() if times > 1)
        if repeated:  # one id is one deposit: two in one call would both be booked, one posting kept
            raise ValueError(f"deposit ids given more than once: {', '.join(repeated[:5])}")
        world = world_account(items[0][0])
        postings = [Posting.transfer(d, "deposit", world, a, amount, currency) for d, a, amount in items]
        account_ids = {world, *(a for _d, a, _m in items)}

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
