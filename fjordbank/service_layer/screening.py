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
list (`Screening.sanctions`, read again when its file changes, off the event loop): the
findings are kept per process by name and list (a bank's customers pay the same payees
again and again), a name not seen before is screened off the event loop. Only a name like
a listed one costs a document: its payee's alert is read in the batch's one read, and
created (or opened again, or given the list's new entries) in the batch's commit, on the
condition of the version read, so a compliance decision made meanwhile has the batch
decided again; an alert that stays as it is is not written (who tried is on each
decision: ``payeeAccount``). The accounts with an open or confirmed alert are refused under
any name: a process reads the open and confirmed alerts at its start, then every
`ACCOUNTS_SECONDS` the alerts written since (``updatedAt``: one query of what changed), and
knows the alerts it raises itself the moment it decides them (a payer's payments are one
partition's, screened by one process; a batch in flight beside it decides knowing them,
and the batch itself refuses every payment to the account, before the name or after),
kept for `RAISED_SECONDS` beside what it reads and taken back when their commit fails.
Other processes learn of an alert within `ACCOUNTS_SECONDS`. A payee compliance cleared is
paid under its name at once while the list still names something like it (its alert is
read in the batch), else once the process has read the clearance; other names for its
account likewise, and in the process that raised it up to `RAISED_SECONDS` after the last
refusal there. A redelivered payment keeps its recorded decision, made under the list of
its day.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    AsyncBatch,
    AsyncDocuments,
    Clock,
    Contention,
    Data,
    NotFound,
    OrderBy,
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
ACCOUNTS_SECONDS = 30.0  # how often a process reads the accounts with an open or confirmed payee alert
RAISED_SECONDS = 60.0  # how long a process keeps the alerts it raised beside what it read

Sanctions = Callable[[], SanctionsList]  # the list as it is now (fjordbank.adapters.sanctions_file)
PayeeFindings = Mapping[str, tuple[str, payees.Finding]]  # payment id -> (payee key, what its name resembles)
AlertedAccounts = Mapping[str, Mapping[str, str]]  # account -> {payee key: status} of its open and confirmed alerts

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
    by_payee: frozenset[str] = frozenset()  # the payments refused for their payee (fjordbank.domain.payee_screening)
    raising: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (account, key) -> status its own name set


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


def payee_key_of(p: PaymentRequested) -> str:
    """The payee's key, "" for a payment with no payee name."""
    return payees.payee_key(p.to_account, p.payee_name) if p.payee_name else ""


def decide_batch(
    policy: ScreeningPolicy,
    state: BatchState,
    payments: list[PaymentRequested],
    owners: dict[str, str | None],
    *,
    now: dt.datetime,
    findings: PayeeFindings | None = None,
    alerted: AlertedAccounts | None = None,
) -> Decided:
    """Each payment in order: its recorded decision, or a new one (no I/O); ``findings``:
    the payees' names like listed ones, decided with their alerts (`BatchState.alerts`);
    ``alerted``: the accounts with an open or confirmed payee alert (any name's: a name
    changed, or one the list no longer names, does not make another payee of the account)."""
    findings = findings or {}
    # A payee's name refused in this batch counts for every payment of the batch to its
    # account, before it or after (a burst is one moment): the batch's own alerts join the
    # alerted accounts before anything is decided.
    around = {account: dict(keys) for account, keys in (alerted or {}).items()}
    raising: dict[tuple[str, str], str] = {}
    for p in payments:
        if (
            p.payment_id in state.decided  # a replay keeps its recorded decision, made under the list of its day
            or p.kind != EXTERNAL
            or p.to_account in policy.blocked_accounts  # refused before its payee is looked at
            or (found := findings.get(p.payment_id)) is None
        ):
            continue
        read = state.alerts.get(found[0])
        if (refused := payees.refusal(found[1], read.data if read is not None else None)) is not None:
            status = payees.CONFIRMED if refused[0] == payees.BLOCKED else payees.OPEN
            around.setdefault(p.to_account, {})[found[0]] = status
            raising[(p.to_account, found[0])] = status
    results: list[tuple[Screened, bool]] = []
    new: dict[str, tuple[PaymentRequested, Screened]] = {}
    by_payee: set[str] = set()
    for p in payments:
        if p.payment_id in state.decided:
            results.append((state.decided[p.payment_id], True))
            continue
        own = p.kind == INTERNAL and owners.get(p.to_account) == p.uid
        payee = None
        if p.kind == EXTERNAL and p.to_account not in policy.blocked_accounts:
            key, finding = findings.get(p.payment_id) or (payee_key_of(p), None)
            alert = state.alerts.get(key)
            # the payee's own alert is left to `refusal` only when it was read just now
            others = [
                status for k, status in around.get(p.to_account, {}).items() if k != key or key not in state.alerts
            ]
            payee = payees.refusal(finding, alert.data if alert is not None else None, others=others)
        decision = screen(policy, state.states[p.uid], p, own_payee=own, now=now, payee=payee)
        state.decided[p.payment_id] = decision
        new[p.payment_id] = (p, decision)
        results.append((decision, False))
        if payee is not None:
            by_payee.add(p.payment_id)
    return Decided(results, new, frozenset(by_payee), raising)


def decision_record(payment: PaymentRequested, decision: Screened, *, by_payee: bool = False) -> Data:
    """The decision as recorded; one refused for its payee names the payee's account (who
    tried to pay it, for compliance: fjordbank.service_layer.payee_alerts)."""
    record = {**decision.to_dict(), "uid": payment.uid, "amount": payment.amount, "decidedAt": SERVER_TIME}
    return {**record, "payeeAccount": payment.to_account} if by_payee else record


def save_batch(
    writes: Writes,
    state: BatchState,
    decided: Decided,
    findings: PayeeFindings | None = None,
    *,
    now: dt.datetime | None = None,
) -> tuple[list[tuple[str, Data]], dict[str, Data]]:
    """The customers with a new decision, once each, on the condition of the version decided
    on (a new one as a create), and each new decision (a create: one recorded already fails
    the commit); then each payee alert a refusal for its name raises or changes, once (on
    the condition of the version read; a new one as a create). Returns (path, data) of the
    customers' writes, first and in order, and the payee alerts written (key -> data)."""
    customers: list[tuple[str, Data]] = []
    for uid in sorted({p.uid for p, _ in decided.new.values()}):
        path, data = customer_path(uid), state.states[uid].to_dict()
        if (version := state.versions.get(path)) is not None:
            writes.update(path, data, if_updated=version.updated)
        else:
            writes.create(path, data)
        customers.append((path, data))
    for pid, (p, decision) in decided.new.items():
        writes.create(decision_path(pid), decision_record(p, decision, by_payee=pid in decided.by_payee))
    alerts: dict[str, Data] = {}
    for pid, (p, _decision) in decided.new.items():
        found = (findings or {}).get(pid)
        if pid not in decided.by_payee or found is None or (p.to_account, found[0]) not in decided.raising:
            continue  # refused for another alert on its account (its own may be cleared): that one says so
        key, finding = found
        if key in alerts:
            continue  # one write per payee per batch
        alert = state.alerts.get(key)
        current = alert.data if alert is not None else None
        changed = payees.raised(
            current, finding, to_account=p.to_account, name=p.payee_name or "", now=now or dt.datetime.now(dt.UTC)
        )
        if changed is None:
            continue
        stamped = {**changed, "updatedAt": SERVER_TIME}  # what the screening processes read again by
        if alert is None:
            writes.create(payee_alert_path(key), stamped)
        else:
            writes.update(payee_alert_path(key), stamped, if_updated=alert.updated)
        alerts[key] = {**(current or {}), **changed}
    return customers, alerts


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
        self._alerted: dict[str, dict[str, str]] = {}  # account -> {payee key: status}, open and confirmed
        self._alerted_at: float | None = None  # time.monotonic() when their query started
        self._alerted_seen: dt.datetime | None = None  # the newest updatedAt of an alert read
        self._raised: dict[str, dict[str, tuple[str, float]]] = {}  # what this process raised: (status, when)
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
        external = any(p.kind == EXTERNAL for p in payments)
        if external:
            await self.read_alerted_accounts()
        # First without reading the decisions: a payment seen for the first time (nearly
        # every one) has none, and creating its decision fails the commit if it had one.
        # Then (a redelivery in the batch) again, reading them.
        replays, error = False, None
        for attempt in range(1, ATTEMPTS + 1):
            state = await load_batch(self.docs, payments, self.known, replays=replays, alerts=alerts)
            # the accounts alerted as this process knows them now, and this batch's alerts
            # known the moment they are decided: no await between the two, so a batch in
            # flight beside this one decides either before it or knowing its alerts
            alerted = self.alerted_accounts({p.to_account for p in payments if p.kind == EXTERNAL})
            decided = decide_batch(self.policy, state, payments, owners, now=at, findings=findings, alerted=alerted)
            undo = self._register(decided.raising)
            batch = self.docs.batch()
            customers, _raised = save_batch(batch, state, decided, findings, now=at)
            try:
                written = await self._commit(batch, decided, undo)
            except (AlreadyExists, Stale, NotFound) as exc:  # recorded already, or a customer moved
                self.known.forget(customer_path(p.uid) for p in payments)
                replays = replays or isinstance(exc, AlreadyExists)
                error = exc
                continue
            remember(self.known, state, customers, written)
            self._attempted(attempt, None)
            for pid in sorted(decided.by_payee):
                p, decision = decided.new[pid]
                log.warning(
                    "payment refused for its payee",
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
        name is like a listed one (fjordbank.domain.payee_screening.find). Two batches may
        be here at once (a partition's batches in flight): each answers from the names it
        found and the dict of the list it started with, and only that list's dict learns them."""
        named = [(p, p.payee_name) for p in payments if p.kind == EXTERNAL and p.payee_name]
        if self.sanctions is None or not named:  # a batch with no payee name to screen reads no list
            return {}
        listed = await asyncio.to_thread(self.sanctions)  # a new file is read and indexed off the loop
        if listed is not self._listed:  # a new list: every name is screened again
            self._listed, self._names = listed, {}
        names = self._names
        new = sorted({name for _, name in named if name not in names})
        if len(names) + len(new) > NAMES:  # forget them all, and screen this batch's again
            names, new = {}, sorted({name for _, name in named})
            self._names = names
        found: dict[str, payees.Finding | None] = {}
        if new:
            found = dict(zip(new, await asyncio.to_thread(lambda: [payees.find(listed, n) for n in new]), strict=True))
            if self._listed is listed:
                names.update(found)
        return {
            p.payment_id: (payees.payee_key(p.to_account, name), finding)
            for p, name in named
            if (finding := found[name] if name in found else names[name]) is not None
        }

    async def read_alerted_accounts(self) -> None:
        """Read the payee alerts again when the last read is `ACCOUNTS_SECONDS` old (without a
        list to screen against there are none): the open and confirmed ones the first time,
        then only those written since the newest seen (``updatedAt``; every write of an alert
        stamps it), so a read costs the alerts that changed, not every alert there is."""
        if self.sanctions is None:
            return
        started = time.monotonic()
        if self._alerted_at is not None and started - self._alerted_at < ACCOUNTS_SECONDS:
            return
        if self._alerted_seen is None:
            found = await self.docs.query(PAYEE_ALERTS, where=[Where("status", "in", [payees.OPEN, payees.CONFIRMED])])
            alerted: dict[str, dict[str, str]] = {}
        else:
            found = await self.docs.query(
                PAYEE_ALERTS, where=[Where("updatedAt", ">=", self._alerted_seen)], order_by=[OrderBy("updatedAt")]
            )
            alerted = {account: dict(keys) for account, keys in self._alerted.items()}
        seen = self._alerted_seen
        for d in found:
            account, status, stamp = d.data.get("toAccount"), d.data.get("status"), d.data.get("updatedAt")
            if isinstance(stamp, dt.datetime) and (seen is None or stamp > seen):
                seen = stamp
            if not isinstance(account, str):
                continue
            keys = alerted.setdefault(account, {})
            if status in (payees.OPEN, payees.CONFIRMED):
                keys[d.id] = str(status)
            else:  # cleared
                keys.pop(d.id, None)
                if not keys:
                    del alerted[account]
        self._alerted, self._alerted_at, self._alerted_seen = alerted, started, seen
        # what this process raised is kept until a query begun well after it has seen it
        # committed (a commit retried for a while included)
        keep = started - RAISED_SECONDS
        self._raised = {
            account: kept
            for account, keys in self._raised.items()
            if (kept := {k: v for k, v in keys.items() if v[1] >= keep})
        }

    def _register(self, raising: Mapping[tuple[str, str], str]) -> Callable[[], None]:
        """Know the alerts a batch raises the moment it decides them (before its commit);
        returns what takes them back, for a commit that fails."""
        before = {(a, k): self._raised.get(a, {}).get(k) for a, k in raising}
        now = time.monotonic()
        for (account, key), status in raising.items():
            self._raised.setdefault(account, {})[key] = (status, now)

        def undo() -> None:
            for (account, key), was in before.items():
                keys = self._raised.get(account, {})
                if keys.get(key) != (raising[(account, key)], now):
                    continue  # registered again since, by a batch beside this one: its own
                if was is None:
                    keys.pop(key, None)
                else:
                    keys[key] = was
                if not keys:
                    self._raised.pop(account, None)

        return undo

    async def _commit(self, batch: AsyncBatch, decided: Decided, undo: Callable[[], None]) -> list[Written]:
        """The batch's commit; one known not to have gone through takes back what it raised.
        One whose answer was lost (a timeout, the service unavailable, the handler's deadline)
        may have written the alert: the registration stays (it lapses after `RAISED_SECONDS`,
        and the batch decided again is a replay that raises nothing), else this process
        approved payments to the account under another name until it read the alerts again."""
        try:
            return await batch.commit() if decided.new else []
        except (AlreadyExists, Stale, NotFound):
            undo()
            raise

    def alerted_accounts(self, accounts: Iterable[str]) -> dict[str, dict[str, str]]:
        """account -> {payee key: status} for these ``accounts``: the open and confirmed
        alerts as last read, and the ones this process raised since (a status read wins over
        its own)."""
        merged: dict[str, dict[str, str]] = {}
        for account in accounts:
            keys = dict(self._alerted.get(account, {}))
            for key, (status, _when) in self._raised.get(account, {}).items():
                keys.setdefault(key, status)
            if keys:
                merged[account] = keys
        return merged
