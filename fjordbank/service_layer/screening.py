"""Screening: one state per customer, one recorded decision per payment, on the document
ports (fjordbank.service_layer.ports); the rules are fjordbank.domain.screening.

Documents:
  screeningCustomers/{uid}      the customer's day total, recent approvals and known payees
  screeningDecisions/{paymentId} the decision, recorded once

One commit per batch (counted as ``screening``), with no transaction, as the ledger's
(fjordbank.service_layer.ledger): the customers' states are what this process last read or
wrote of them (`recent.Versions`), and only the ones it does not know are read (`load_batch`); the
batch is decided in order (`decide_batch`, so limits hold however many payments race);
one batch commit writes each customer with a new decision once, on the condition that it is
still the version decided on (a new customer as a create), and each new decision as a
create (`save_batch`). A payer's partition is owned by one instance, so its customers are
almost always known: a batch is one round trip. Every decision, approval or refusal,
writes its customer, so none is ever decided on a state someone else moved: that commit
fails, and the batch is read and decided again (at most `ATTEMPTS` commits, then
``ports.Contention``: NATS delivers it again). The payees' owners, to see whether a payee
is the customer's own account, are read once per process (fjordbank.service_layer.owners).

A payment screened before (redelivery, a crash before the ack) gets its recorded decision
and counts toward the limits only once: its decision's create fails the commit, and the
batch is decided again reading the decisions (so the usual batch reads no decision at all).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from fjordbank.adapters.firestore import SCREENING_CUSTOMERS, SCREENING_DECISIONS
from fjordbank.domain.payments import INTERNAL, PaymentRequested
from fjordbank.domain.screening import CustomerState, Screened, ScreeningPolicy, screen
from fjordbank.service_layer.owners import Owners
from fjordbank.service_layer.ports import (
    SERVER_TIME,
    AlreadyExists,
    AsyncDocuments,
    Clock,
    Contention,
    Data,
    NotFound,
    Stale,
    Writes,
    Written,
    system_clock,
)
from fjordbank.service_layer.recent import Attempted, Version, Versions

ATTEMPTS = 8  # commits of one batch before it is given back to NATS
KNOWN = 20_000  # customers' states a screening process remembers


def customer_path(uid: str) -> str:
    return f"{SCREENING_CUSTOMERS}/{uid}"


def decision_path(payment_id: str) -> str:
    return f"{SCREENING_DECISIONS}/{payment_id}"


# ---- one batch: load -> decide -> save ---------------------------------------------------
@dataclass
class BatchState:
    states: dict[str, CustomerState]  # uid -> state
    decided: dict[str, Screened]  # payment id -> its recorded decision (when read)
    versions: dict[str, Version] = field(default_factory=dict)  # customer path -> the version decided on


@dataclass(frozen=True)
class Decided:
    """A batch decided: [(decision, replayed)] in the payments' order, and the payments
    decided now (to be recorded)."""

    results: list[tuple[Screened, bool]]
    new: dict[str, tuple[PaymentRequested, Screened]]


async def load_batch(
    docs: AsyncDocuments, payments: list[PaymentRequested], known: Versions, *, replays: bool
) -> BatchState:
    """The customers' states (known, else read) and, with ``replays``, the payments'
    recorded decisions: what is not known in one read."""
    uids = sorted({p.uid for p in payments})
    versions = {path: v for u in uids if (v := known.get(path := customer_path(u))) is not None}
    pids = sorted({p.payment_id for p in payments}) if replays else []
    missing = [*(customer_path(u) for u in uids if customer_path(u) not in versions), *map(decision_path, pids)]
    found = await docs.get_many(missing) if missing else {}
    versions |= {
        path: Version(d.data, d.updated)
        for path, d in found.items()
        if d is not None and path.startswith(f"{SCREENING_CUSTOMERS}/")
    }
    states = {u: CustomerState.from_dict(v.data if (v := versions.get(customer_path(u))) else None) for u in uids}
    decided = {
        p: Screened(d.data["approved"], d.data.get("reason"), d.data.get("message"))
        for p in pids
        if (d := found[decision_path(p)]) is not None
    }
    return BatchState(states, decided, versions)


def decide_batch(
    policy: ScreeningPolicy,
    state: BatchState,
    payments: list[PaymentRequested],
    owners: dict[str, str | None],
    *,
    now: dt.datetime,
) -> Decided:
    """Each payment in order: its recorded decision, or a new one (no I/O)."""
    results: list[tuple[Screened, bool]] = []
    new: dict[str, tuple[PaymentRequested, Screened]] = {}
    for p in payments:
        if p.payment_id in state.decided:
            results.append((state.decided[p.payment_id], True))
            continue
        own = p.kind == INTERNAL and owners.get(p.to_account) == p.uid
        decision = screen(policy, state.states[p.uid], p, own_payee=own, now=now)
        state.decided[p.payment_id] = decision
        new[p.payment_id] = (p, decision)
        results.append((decision, False))
    return Decided(results, new)


def decision_record(payment: PaymentRequested, decision: Screened) -> Data:
    return {**decision.to_dict(), "uid": payment.uid, "amount": payment.amount, "decidedAt": SERVER_TIME}


def save_batch(writes: Writes, state: BatchState, decided: Decided) -> list[tuple[str, Data]]:
    """The customers with a new decision, once each, on the condition of the version decided
    on (a new one as a create), and each new decision (a create: one recorded already fails
    the commit). Returns (path, data) of the customers' writes, first and in order."""
    customers: list[tuple[str, Data]] = []
    for uid in sorted({p.uid for p, _ in decided.new.values()}):
        path, data = customer_path(uid), state.states[uid].to_dict()
        if (version := state.versions.get(path)) is not None:
            writes.update(path, data, if_updated=version.updated)
        else:
            writes.create(path, data)
        customers.append((path, data))
    for pid, (p, decision) in decided.new.items():
        writes.create(decision_path(pid), decision_record(p, decision))
    return customers


def remember(known: Versions, state: BatchState, customers: list[tuple[str, Data]], written: list[Written]) -> None:
    """The customers' versions now: those read, and those this commit wrote."""
    for path, version in state.versions.items():
        known.put(path, version)
    for (path, data), done in zip(customers, written, strict=False):  # the customers come first
        if done.updated is not None:
            known.put(path, Version(data, done.updated))


class Screening:
    """Screening's use case on a document database, a policy and a clock."""

    def __init__(
        self,
        docs: AsyncDocuments,
        policy: ScreeningPolicy,
        clock: Clock = system_clock,
        *,
        attempted: Attempted | None = None,
    ) -> None:
        self.docs = docs
        self.policy = policy
        self.clock = clock
        self.owners = Owners(docs)
        self.known = Versions(KNOWN)  # the customers' states this process read or wrote last
        self._attempted: Attempted = attempted if attempted is not None else (lambda _attempts, _error: None)

    async def screen_batch(
        self,
        payments: list[PaymentRequested],
        *,
        now: dt.datetime | None = None,
        told: Mapping[str, str] | None = None,
    ) -> list[tuple[Screened, bool]]:
        """[(decision, replayed)] in the order of ``payments``; ``told``: payees' owners the
        events told (fjordbank.domain.payments.told_owners)."""
        at = now or self.clock()
        # the payees' owners, once per process
        owners = await self.owners.of(sorted({p.to_account for p in payments if p.kind == INTERNAL}), told=told)
        # First without reading the decisions: a payment seen for the first time (nearly
        # every one) has none, and creating its decision fails the commit if it had one.
        # Then (a redelivery in the batch) again, reading them.
        replays, error = False, None
        for attempt in range(1, ATTEMPTS + 1):
            state = await load_batch(self.docs, payments, self.known, replays=replays)
            decided = decide_batch(self.policy, state, payments, owners, now=at)
            batch = self.docs.batch()
            customers = save_batch(batch, state, decided)
            try:
                written = await batch.commit() if decided.new else []
            except (AlreadyExists, Stale, NotFound) as exc:  # recorded already, or a customer moved
                self.known.forget(customer_path(p.uid) for p in payments)
                replays = replays or isinstance(exc, AlreadyExists)
                error = exc
                continue
            remember(self.known, state, customers, written)
            self._attempted(attempt, None)
            return decided.results
        gave_up = Contention(f"screening's customers kept moving ({ATTEMPTS} commits): {error}")
        self._attempted(ATTEMPTS, gave_up)
        raise gave_up from error
