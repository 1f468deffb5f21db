"""Screening: one state per customer, one recorded decision per payment, on the document
ports (fjordbank.service_layer.ports); the rules are fjordbank.domain.screening.

Documents:
  screeningCustomers/{uid}      the customer's day total, recent approvals and known payees
  screeningDecisions/{paymentId} the decision, recorded once
  payeeAlerts/{payee key}       a payee at another bank whose name is like a listed one
                                (fjordbank.domain.payee_screening), for compliance

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

A payment to another bank with a payee name has the name screened against the sanctions
list (`Screening.sanctions`, read again when its file changes): the findings are kept per
process by name (a bank's customers pay the same payees again and again), a name not seen
before is screened off the event loop. Only a name like a listed one costs a document: its
payee's alert is read in the batch's one read, and a refusal for it is written to the alert
in the batch's commit (one write per payee per batch, on the condition of the version
read, so a compliance decision made meanwhile has the batch decided again). The accounts
of payees compliance confirmed are refused under any name: a process reads them again
every `CONFIRMED_SECONDS` (one query; a confirmation takes that long to reach every
instance).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from fjordbank.adapters.firestore import PAYEE_ALERTS, SCREENING_CUSTOMERS, SCREENING_DECISIONS
from fjordbank.domain import payee_screening as payees
from fjordbank.domain.payments import EXTERNAL, INTERNAL, PaymentRequested
from fjordbank.domain.sanctions import SanctionsList
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
    Where,
    Writes,
    Written,
    system_clock,
)
from fjordbank.service_layer.recent import Attempted, Version, Versions

ATTEMPTS = 8  # commits of one batch before it is given back to NATS
KNOWN = 20_000  # customers' states a screening process remembers
NAMES = 50_000  # payee names whose findings a screening process remembers (per list)
CONFIRMED_SECONDS = 30.0  # how often a process reads the accounts of payees compliance confirmed

Sanctions = Callable[[], SanctionsList]  # the list as it is now (fjordbank.adapters.sanctions_file)
PayeeFindings = Mapping[str, tuple[str, payees.Finding]]  # payment id -> (payee key, what its name resembles)

log = logging.getLogger("screening")


def customer_path(uid: str) -> str:
    return f"{SCREENING_CUSTOMERS}/{uid}"


def decision_path(payment_id: str) -> str:
    return f"{SCREENING_DECISIONS}/{payment_id}"


def payee_alert_path(key: str) -> str:
    return f"{PAYEE_ALERTS}/{key}"


# ---- one batch: load -> decide -> save ---------------------------------------------------
@dataclass
class BatchState:
    states: dict[str, CustomerState]  # uid -> state
    decided: dict[str, Screened]  # payment id -> its recorded decision (when read)
    versions: dict[str, Version] = field(default_factory=dict)  # customer path -> the version decided on
    alerts: dict[str, Version | None] = field(default_factory=dict)  # payee key -> its alert (None: none)


@dataclass(frozen=True)
class Decided:
    """A batch decided: [(decision, replayed)] in the payments' order, and the payments
    decided now (to be recorded)."""

    results: list[tuple[Screened, bool]]
    new: dict[str, tuple[PaymentRequested, Screened]]


async def load_batch(
    docs: AsyncDocuments,
    payments: list[PaymentRequested],
    known: Versions,
    *,
    replays: bool,
    alerts: Sequence[str] = (),
) -> BatchState:
    """The customers' states (known, else read), with ``replays`` the payments' recorded
    decisions, and the ``alerts`` of these payee keys: what is not known in one read."""
    uids = sorted({p.uid for p in payments})
    versions = {path: v for u in uids if (v := known.get(path := customer_path(u))) is not None}
    pids = sorted({p.payment_id for p in payments}) if replays else []
    keys = sorted(set(alerts))
    missing = [
        *(customer_path(u) for u in uids if customer_path(u) not in versions),
        *map(decision_path, pids),
        *map(payee_alert_path, keys),
    ]
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
    alerts_read = {k: Version(d.data, d.updated) if (d := found[payee_alert_path(k)]) else None for k in keys}
    return BatchState(states, decided, versions, alerts_read)


def decide_batch(
    policy: ScreeningPolicy,
    state: BatchState,
    payments: list[PaymentRequested],
    owners: dict[str, str | None],
    *,
    now: dt.datetime,
    findings: PayeeFindings | None = None,
    confirmed: frozenset[str] | None = None,
) -> Decided:
    """Each payment in order: its recorded decision, or a new one (no I/O); ``findings``:
    the payees' names like listed ones, decided with their alerts (`BatchState.alerts`);
    ``confirmed``: the accounts of payees compliance confirmed listed."""
    findings = findings or {}
    confirmed = confirmed or frozenset()
    results: list[tuple[Screened, bool]] = []
    new: dict[str, tuple[PaymentRequested, Screened]] = {}
    for p in payments:
        if p.payment_id in state.decided:
            results.append((state.decided[p.payment_id], True))
            continue
        own = p.kind == INTERNAL and owners.get(p.to_account) == p.uid
        payee = None
        if p.kind == EXTERNAL:
            key, finding = findings.get(p.payment_id) or ("", None)
            alert = state.alerts.get(key)
            payee = payees.refusal(
                finding, alert.data if alert is not None else None, account_confirmed=p.to_account in confirmed
            )
        decision = screen(policy, state.states[p.uid], p, own_payee=own, now=now, payee=payee)
        state.decided[p.payment_id] = decision
        new[p.payment_id] = (p, decision)
        results.append((decision, False))
    return Decided(results, new)


def decision_record(payment: PaymentRequested, decision: Screened) -> Data:
    return {**decision.to_dict(), "uid": payment.uid, "amount": payment.amount, "decidedAt": SERVER_TIME}


def save_batch(
    writes: Writes, state: BatchState, decided: Decided, findings: PayeeFindings | None = None, *, now: str = ""
) -> list[tuple[str, Data]]:
    """The customers with a new decision, once each, on the condition of the version decided
    on (a new one as a create), and each new decision (a create: one recorded already fails
    the commit); then each payee alert a new refusal for its payee adds to, once (on the
    condition of the version read; a new one as a create). Returns (path, data) of the
    customers' writes, first and in order."""
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
    tried: dict[str, list[PaymentRequested]] = {}
    for pid, (p, decision) in decided.new.items():
        if (found := (findings or {}).get(pid)) is not None and decision.reason in (payees.IN_REVIEW, payees.BLOCKED):
            tried.setdefault(found[0], []).append(p)
    for key, attempts in tried.items():
        last = attempts[-1]
        alert = state.alerts.get(key)
        data = payees.raised(
            alert.data if alert is not None else None,
            (findings or {})[last.payment_id][1],
            to_account=last.to_account,
            name=last.payee_name or "",
            attempts=[(p.uid, p.payment_id) for p in attempts],
            now=now,
        )
        if alert is None:
            writes.create(payee_alert_path(key), data)
        else:
            writes.update(payee_alert_path(key), data, if_updated=alert.updated)
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
        sanctions: Sanctions | None = None,
        attempted: Attempted | None = None,
    ) -> None:
        """``sanctions``: the list payees' names are screened against (the service always
        has one; None only where a test screens limits alone)."""
        self.docs = docs
        self.policy = policy
        self.clock = clock
        self.sanctions = sanctions
        self._listed: SanctionsList | None = None  # the list the names below were screened against
        self._names: dict[str, payees.Finding | None] = {}  # payee name -> what it resembles
        self._confirmed: frozenset[str] = frozenset()  # accounts of payees compliance confirmed listed
        self._confirmed_at: float | None = None  # time.monotonic() when they were read
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
        findings = await self.payee_findings(payments)
        alerts = sorted({key for key, _ in findings.values()})
        confirmed = await self.confirmed_accounts() if any(p.kind == EXTERNAL for p in payments) else frozenset()
        # First without reading the decisions: a payment seen for the first time (nearly
        # every one) has none, and creating its decision fails the commit if it had one.
        # Then (a redelivery in the batch) again, reading them.
        replays, error = False, None
        for attempt in range(1, ATTEMPTS + 1):
            state = await load_batch(self.docs, payments, self.known, replays=replays, alerts=alerts)
            decided = decide_batch(self.policy, state, payments, owners, now=at, findings=findings, confirmed=confirmed)
            batch = self.docs.batch()
            customers = save_batch(batch, state, decided, findings, now=at.isoformat())
            try:
                written = await batch.commit() if decided.new else []
            except (AlreadyExists, Stale, NotFound) as exc:  # recorded already, or a customer moved
                self.known.forget(customer_path(p.uid) for p in payments)
                replays = replays or isinstance(exc, AlreadyExists)
                error = exc
                continue
            remember(self.known, state, customers, written)
            self._attempted(attempt, None)
            for pid, (p, decision) in decided.new.items():
                if (pid in findings or p.to_account in confirmed) and decision.reason in (
                    payees.IN_REVIEW,
                    payees.BLOCKED,
                ):
                    log.warning(
                        "payment refused for its payee: a name like a listed one, or a listed party's account",
                        extra={
                            "payment_id": pid,
                            "uid": p.uid,
                            "payee": findings[pid][0] if pid in findings else None,
                            "reason": decision.reason,
                        },
                    )
            return decided.results
        gave_up = Contention(f"screening's customers kept moving ({ATTEMPTS} commits): {error}")
        self._attempted(ATTEMPTS, gave_up)
        raise gave_up from error

    async def payee_findings(self, payments: Sequence[PaymentRequested]) -> dict[str, tuple[str, payees.Finding]]:
        """payment id -> (payee key, finding) for the payments to another bank whose payee's
        name is like a listed one (fjordbank.domain.payee_screening.find)."""
        if self.sanctions is None:
            return {}
        listed = self.sanctions()
        if listed is not self._listed:  # a new list: every name is screened again
            self._listed, self._names = listed, {}
        named = [(p, p.payee_name) for p in payments if p.kind == EXTERNAL and p.payee_name]
        new = sorted({name for _, name in named if name not in self._names})
        if len(self._names) + len(new) > NAMES:  # forget them all, and screen this batch's again
            self._names, new = {}, sorted({name for _, name in named})
        if new:
            found = await asyncio.to_thread(lambda: [payees.find(listed, name) for name in new])
            self._names.update(zip(new, found, strict=True))
        return {
            p.payment_id: (payees.payee_key(p.to_account, name), finding)
            for p, name in named
            if (finding := self._names[name]) is not None
        }

    async def confirmed_accounts(self) -> frozenset[str]:
        """The accounts of payees compliance confirmed listed, read again every
        `CONFIRMED_SECONDS` (without a list to screen against there are none)."""
        if self.sanctions is None:
            return frozenset()
        now = time.monotonic()
        if self._confirmed_at is None or now - self._confirmed_at >= CONFIRMED_SECONDS:
            found = await self.docs.query(PAYEE_ALERTS, where=[Where("status", "==", payees.CONFIRMED)])
            self._confirmed = frozenset(a for d in found if isinstance(a := d.data.get("toAccount"), str))
            self._confirmed_at = now
        return self._confirmed
