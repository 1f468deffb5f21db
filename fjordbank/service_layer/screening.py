"""Screening: one state per customer, one recorded decision per payment, on the document
ports (fjordbank.service_layer.ports); the rules are fjordbank.domain.screening.

Documents:
  screeningCustomers/{uid}      the customer's day total, recent approvals and known payees
  screeningDecisions/{paymentId} the decision, recorded once

One unit of work per batch (operation ``screening``) reads the customers it needs
(`load_batch`), decides the batch in order (`decide_batch`, so limits hold however many
payments race) and writes each customer once and each new decision (`save_batch`). The
payees' owners, to see whether a payee is the customer's own account, are read outside it,
once per process (fjordbank.service_layer.owners).

A payment screened before (redelivery, a crash before the ack) gets its recorded decision
and counts toward the limits only once: its decision's create fails the commit, and the
batch is decided again reading the decisions (so the usual batch reads no decision at all).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fjordbank.adapters.firestore import SCREENING_CUSTOMERS, SCREENING_DECISIONS
from fjordbank.domain.payments import INTERNAL, PaymentRequested
from fjordbank.domain.screening import CustomerState, Screened, ScreeningPolicy, screen
from fjordbank.service_layer.owners import Owners
from fjordbank.service_layer.ports import (
    SERVER_TIME,
    AlreadyExists,
    AsyncDocuments,
    AsyncUnitOfWork,
    Clock,
    Data,
    Writes,
    system_clock,
)


def customer_path(uid: str) -> str:
    return f"{SCREENING_CUSTOMERS}/{uid}"


def decision_path(payment_id: str) -> str:
    return f"{SCREENING_DECISIONS}/{payment_id}"


# ---- one batch: load -> decide -> save ---------------------------------------------------
@dataclass
class BatchState:
    states: dict[str, CustomerState]  # uid -> state
    decided: dict[str, Screened]  # payment id -> its recorded decision (when read)


@dataclass(frozen=True)
class Decided:
    """A batch decided: [(decision, replayed)] in the payments' order, and the payments
    decided now (to be recorded)."""

    results: list[tuple[Screened, bool]]
    new: dict[str, tuple[PaymentRequested, Screened]]


async def load_batch(uow: AsyncUnitOfWork, payments: list[PaymentRequested], *, replays: bool) -> BatchState:
    """The customers' states and, with ``replays``, the payments' recorded decisions."""
    uids = sorted({p.uid for p in payments})
    pids = sorted({p.payment_id for p in payments}) if replays else []
    found = await uow.get_many([*(customer_path(u) for u in uids), *(decision_path(p) for p in pids)])
    states = {u: CustomerState.from_dict(d.data if (d := found[customer_path(u)]) is not None else None) for u in uids}
    decided = {
        p: Screened(d.data["approved"], d.data.get("reason"), d.data.get("message"))
        for p in pids
        if (d := found[decision_path(p)]) is not None
    }
    return BatchState(states, decided)


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


def save_batch(writes: Writes, state: BatchState, decided: Decided) -> None:
    """The customers with a new decision, once each, and each new decision (a create: one
    recorded already fails the commit)."""
    for uid in {p.uid for p, _ in decided.new.values()}:
        writes.set(customer_path(uid), state.states[uid].to_dict())
    for pid, (p, decision) in decided.new.items():
        writes.create(decision_path(pid), decision_record(p, decision))


class Screening:
    """Screening's use case on a document database, a policy and a clock."""

    def __init__(self, docs: AsyncDocuments, policy: ScreeningPolicy, clock: Clock = system_clock) -> None:
        self.docs = docs
        self.policy = policy
        self.clock = clock
        self.owners = Owners(docs)

    async def screen_batch(
        self, payments: list[PaymentRequested], *, now: dt.datetime | None = None
    ) -> list[tuple[Screened, bool]]:
        """[(decision, replayed)] in the order of ``payments``."""
        at = now or self.clock()
        # the payees' owners outside the unit of work (read there, they locked the payees'
        # accounts against the ledger's credits), and once per process
        owners = await self.owners.of(sorted({p.to_account for p in payments if p.kind == INTERNAL}))
        # First without reading the decisions: a payment seen for the first time (nearly
        # every one) has none, and creating its decision fails the commit if it had one.
        # Then (a redelivery in the batch) once more, reading them.
        try:
            return await self._decide(payments, owners, at, replays=False)
        except AlreadyExists:
            return await self._decide(payments, owners, at, replays=True)

    async def _decide(
        self, payments: list[PaymentRequested], owners: dict[str, str | None], at: dt.datetime, *, replays: bool
    ) -> list[tuple[Screened, bool]]:
        """One unit of work: load, decide, save (``replays``: read the recorded decisions)."""

        async def run(uow: AsyncUnitOfWork) -> list[tuple[Screened, bool]]:
            state = await load_batch(uow, payments, replays=replays)
            decided = decide_batch(self.policy, state, payments, owners, now=at)
            save_batch(uow, state, decided)
            return decided.results

        return await self.docs.transact(run, operation="screening")
