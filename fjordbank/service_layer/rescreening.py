"""Every customer screened again against each new sanctions list, and compliance's decisions
on the alerts that raises (the rules: fjordbank.domain.rescreening).

Run by the ``rescreen-customers`` job (fjordbank.service_layer.scheduled; hourly), with the
list onboarding screens against (the functions' FJB_SANCTIONS_LIST, its `version` naming what
it says). Documents (backend only)::

    rescreening/{listVersion}   how far the customers are screened against that list:
                                cursor (the last kyc record screened), screened, alerts,
                                startedAt, completedAt (None until every customer is)
    sanctionsAlerts/{uid}       the customer's alert: status (open | frozen | cleared), the
                                list's entries found (matches) and every one ever raised
                                (seen), the accounts frozen by it, compliance's decisions

    ops/rescreenBaseline        the list last screened against every customer: its version,
                                one key per entry (`SanctionsList.entry_keys`), its walk's
                                startedAt, and the entries delisted still to forget
    ops/rescreenRun             the last run: its summary, ranAt, lastOkAt (the last that
                                ended well), walkStartedAt (the ops sweep's gauges)

One run walks the customers' ``kyc`` records in pages of `PAGE` from the cursor, for at most
`BUDGET` (the function's own limit is 9 minutes), and moves the cursor after each page in a
unit of work that finds it where the page began: a second run at the same time (a retried
schedule) stops there, and a run that stops half-way leaves the rest to the next. A new list
starts from the first customer; a list screened to the end is not walked again, and becomes
the baseline: the next list is screened only by its entries new or changed since
(`SanctionsList.since`; every customer was screened against the rest, here or at their
onboarding), so a walk costs a read per customer and little CPU (a name screened against a
whole list of the EU's size costs milliseconds, against a day's changes microseconds). A list
that only removes entries is done without a walk. The first list is screened whole. A walk
that completes after a walk begun later (an instance still on an older list) does not take
the baseline back; a list walked before and replaced is walked again when it is back (a
rollback) by what it has that the baseline has not. Entries the new baseline no longer has
(delisted) leave the alerts' ``seen``: listed again, even as before, they alert again.
New screening rules (`sanctions.RULES`, part of a list's version) walk the whole list again:
a customer clear under the old rules may not be under the new. A list with no entries, or
under half the baseline's (`sanctions.shrunk_too_far`: a truncated export, a wrong file), is
refused (`ListRefused`, the run's error): taken, it would have become the baseline in one run
and every decision compliance took on an entry it lacks would have been forgotten, so the
right file deployed again froze cleared customers again (found in review, 2026-12-06). A
list that really shrank so is taken once ``acceptShrunk`` on `BASELINE` names its version.

Every run first screens the customers who applied in the last `RECENT` (before the last run
that ended well) against the whole list: during a deploy's rollout an instance may still
onboard with the list before, and such a customer may be behind the cursor or apply after
the walk ended.

What is found is raised in one unit of work per customer (`raise_alert`): the alert, and
for a ``hit`` the freeze of every open account of theirs and of the customer (``frozen`` on
``customers/{uid}``: no account opened, no card issued). The ledger and the card service
write an account only where it is still the version they read, so a payment racing the
freeze is decided on the frozen account (fjordbank.domain.ledger: ``account_frozen``); a card
hold placed before the freeze is still captured (the money was reserved before), and an
external payment reserved before it still leaves. Approved customers and applicants in
review are screened (a rejected one has nothing to freeze); an applicant frozen in review
gets a frozen first account when approved (fjordbank.service_layer.onboarding).

Compliance decides with `decide` (``bankctl sanctions``, ``python -m
fjordbank.runtime.sanctions_alerts``): ``freeze`` an open alert or confirm a freeze the
rescreen made (once per freeze), or ``clear`` one (a frozen customer's accounts open again:
only those the alert froze). The customer is not told why:
the app shows the accounts as frozen; what to tell them, and the report to the authority
(in Norway, the Financial Supervisory Authority), are compliance's, outside this system.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fjordbank.adapters.firestore import ACCOUNTS, CUSTOMERS, OPS, RESCREEN_BASELINE, SANCTIONS_ALERTS
from fjordbank.domain import rescreening as rules
from fjordbank.domain.ledger import FROZEN as ACCOUNT_FROZEN
from fjordbank.domain.ledger import OPEN as ACCOUNT_OPEN
from fjordbank.domain.sanctions import RULES, InvalidSanctionsList, SanctionsList
from fjordbank.service_layer.onboarding import KYC
from fjordbank.service_layer.ports import (
    SERVER_TIME,
    Clock,
    Doc,
    Documents,
    OrderBy,
    UnitOfWork,
    Where,
    system_clock,
)

log = logging.getLogger(__name__)

SCREENED = ("approved", "review")  # a rejected applicant has nothing to freeze
RESCREENING = "rescreening"
PAGE = 300  # kyc records per query
ADVANCE_SECONDS = 1.0  # the walk's cursor moves at most this often (one document's write rate)
BUDGET = 360.0  # seconds a run walks for (the function stops at 540)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
RECENT = dt.timedelta(hours=2)  # customers who applied this lately are screened against the whole list
RECENT_MAX = dt.timedelta(days=30)  # however long the runs failed, not further back than this
LAST_RUN = f"{OPS}/rescreenRun"  # the last unscoped run's summary (the ops sweep: fjb_rescreen_*)
# the list last screened against every customer: its version and its `entry_keys`
BASELINE = RESCREEN_BASELINE  # also read by onboarding (load_sanctions)


class ListRefused(InvalidSanctionsList):
    """A new list shrunk too far against the baseline (`sanctions.shrunk_too_far`): not
    walked, not made the baseline; the run fails with this, said in its record."""


def alert_path(uid: str) -> str:
    return f"{SANCTIONS_ALERTS}/{uid}"


def state_path(version: str) -> str:
    return f"{RESCREENING}/{version}"


@dataclass
class Run:
    """What one run did: customers screened, alerts raised (new findings), customers frozen."""

    list_version: str
    against: int = 0  # the list's entries the customers were screened against (new or changed ones)
    screened: int = 0
    recent: int = 0  # customers who applied since the walk began, screened against the whole list at its end
    alerts: int = 0
    frozen: int = 0
    skipped: int = 0  # a finding on a customer not approved, or raised already by another run
    unscreenable: int = 0  # a kyc record with no name (logged)
    done: bool = False  # the list is screened against every customer
    stopped: str | None = None  # why the walk stopped before the end: budget, another_run
    started: dt.datetime | None = None  # when this list's walk began (None: no walk needed)

    def summary(self) -> dict[str, Any]:
        return {
            "list": self.list_version,
            "against": self.against,
            "screened": self.screened,
            "recent": self.recent,
            "alerts": self.alerts,
            "frozen": self.frozen,
            "skipped": self.skipped,
            "unscreenable": self.unscreenable,
            "done": self.done,
            "stopped": self.stopped,
        }


def run(
    docs: Documents,
    sanctions: SanctionsList,
    *,
    uids: Sequence[str] | None = None,
    budget: float = BUDGET,
    page: int = PAGE,
    clock: Clock = system_clock,
    monotonic: Callable[[], float] = time.monotonic,
) -> Run:
    """Screen the customers against ``sanctions``: the customers who applied lately against
    the whole list, then the walk from where the last run against this list stopped; or
    (``uids``: the emulator's scoped job, a test's customers) just those, with no cursor
    moved. Every unscoped run is recorded (`LAST_RUN`), whether it ended well or not."""
    done = Run(sanctions.version)
    if uids is not None:
        found = docs.get_many([f"{KYC}/{uid}" for uid in uids])
        done.against = len(sanctions)
        records = [d for d in found.values() if d is not None]
        _screen_page(docs, sanctions, records, done, list_version=sanctions.version)
        return done
    try:
        _forget_delisted(docs)
        _recent(docs, sanctions, _recent_since(docs, clock()), done)
        _walk(docs, sanctions, done, budget=budget, page=page, clock=clock, monotonic=monotonic)
    except Exception as exc:
        _record(docs, done, error=exc)
        raise
    _record(docs, done, error=None)
    return done


def not_loaded(docs: Documents, error: BaseException) -> None:
    """A run whose list could not be loaded (unreadable, empty, or under half the
    baseline's entries: fjordbank.service_layer.onboarding.load_sanctions), recorded as a run
    that failed, with its error, as `run` records one that refuses a list: the loader refuses
    a shrunk list before `run` sees it (for onboarding, found in review, 2026-12-07), and the
    refusal was then in the job's error only, not in the record the ops sweep reads."""
    _record(docs, Run(list_version="(not loaded)"), error=error)


def _record(docs: Documents, done: Run, *, error: BaseException | None) -> None:
    """The run's summary where the ops sweep reads it: ``lastOkAt`` moves only with a run
    that ended well (`FjbRescreenNotRun`), ``walkStartedAt`` says how long this list's walk
    has taken (`FjbRescreenBehind`); a run that failed leaves what the last one said of the
    walk and adds its error. Never raises: the run's own error is the one to see."""
    fields: dict[str, Any] = {"ranAt": SERVER_TIME, "error": repr(error)[:500] if error else None}
    if error is None:
        fields |= {**done.summary(), "lastOkAt": SERVER_TIME, "walkStartedAt": done.started}
    try:
        batch = docs.batch()
        batch.set(LAST_RUN, fields, merge=True)
        batch.commit()
    except Exception:
        log.exception("the rescreen's run could not be recorded", extra={"list": done.list_version})


def _walk(
    docs: Documents,
    sanctions: SanctionsList,
    done: Run,
    *,
    budget: float,
    page: int,
    clock: Clock,
    monotonic: Callable[[], float],
) -> None:
    found = docs.get_many([state_path(sanctions.version), BASELINE])
    state, baseline = found[state_path(sanctions.version)], found[BASELINE]
    base = baseline.data if baseline is not None else {}
    if base.get("acceptShrunk") not in (None, sanctions.version):
        _lapse_acceptance(docs, base["acceptShrunk"])
    if base.get("version") == sanctions.version:
        done.done = True  # every customer is screened against this list
        return
    if (refused := rules.list_refused(base, sanctions, where=BASELINE)) is not None:
        raise ListRefused(refused)
    state = _started(docs, sanctions.version, state, clock)  # the ops sweep sees it from here
    if state is None:
        done.done = True
        return
    done.started = state.data["startedAt"]
    # every customer was screened against the list last walked to the end: only what is new
    # or changed since is screened again; the whole list the first time, and under rules
    # other than the baseline's (sanctions.RULES: what was clear under them may not be now)
    same_rules = base.get("rules") == RULES
    screened_before = base.get("entries")
    if isinstance(screened_before, list) and same_rules:
        against = sanctions.since(frozenset(screened_before))
    else:
        against = sanctions
    done.against = len(against)
    cursor = position = state.data.get("cursor")  # the cursor as last moved; the last record screened
    counted = (done.screened, done.alerts)
    moved = monotonic()  # when the cursor last moved
    deadline = moved + budget
    while True:
        after = Doc(position, {}, EPOCH) if isinstance(position, str) else None
        records = docs.query(KYC, limit=page, start_after=after) if len(against) else []
        _screen_page(docs, against, records, done, list_version=sanctions.version)
        position = records[-1].path if records else position
        finished = len(records) < page
        # the cursor moves at most every ADVANCE_SECONDS (and at the end, and before the
        # budget runs out): a walk of a million customers moved it nine times a second,
        # over Firestore's sustained write rate for one document (found in review,
        # 2026-12-06); a run that stops between two moves leaves its pages since to the next
        now = monotonic()
        if finished or now - moved >= ADVANCE_SECONDS or now >= deadline:
            if not _advance(docs, sanctions, state, cursor, position, done, counted, finished=finished):
                done.stopped = "another_run"
                return
            cursor, counted, moved = position, (done.screened, done.alerts), now
        if finished:
            done.done = True
            log.warning("customers screened against the new sanctions list", extra=done.summary())
            _forget_delisted(docs)
            return
        if now >= deadline:
            done.stopped = "budget"
            return


def _lapse_acceptance(docs: Documents, accepted: object) -> None:
    """Compliance's acceptance of a shrunk list lapses when another list runs (a rollback,
    a newer list): the same truncated file deployed again later is refused again, not taken
    on a decision made for another time (found in review, 2026-12-06)."""

    def lapse(uow: UnitOfWork) -> None:
        found = uow.get(BASELINE)
        if found is not None and found.data.get("acceptShrunk") == accepted:
            uow.update(BASELINE, {"acceptShrunk": None})

    docs.transact(lapse, operation="rescreen_acceptance")
    log.warning("acceptance of a shrunk sanctions list lapsed: another list runs", extra={"accepted": accepted})


def _started(docs: Documents, version: str, state: Doc | None, clock: Clock) -> Doc | None:
    """The walk of this list, begun now if it is not under way: a list walked before and
    then replaced by another (rolled back to, or an instance still on it) is walked again,
    by what it has that the list walked since has not."""
    if (
        state is not None
        and state.data.get("completedAt") is None
        and isinstance(state.data.get("startedAt"), dt.datetime)
    ):
        return state
    path, now = state_path(version), clock()

    def start(uow: UnitOfWork) -> Doc | None:
        both = uow.get_many([path, BASELINE])
        found, baseline = both[path], both[BASELINE]
        if baseline is not None and baseline.data.get("version") == version:
            return None  # walked to the end by another run since this one looked
        if (
            found is not None
            and found.data.get("completedAt") is None
            and isinstance(found.data.get("startedAt"), dt.datetime)
        ):
            return found  # another run began it just now
        fields: dict[str, Any] = {"listVersion": version, "cursor": None, "screened": 0, "alerts": 0}
        fields |= {"completedAt": None, "startedAt": now, "updatedAt": SERVER_TIME}
        uow.set(path, fields)
        return Doc(path, fields, now)

    return docs.transact(start, operation="rescreen_start")


def _recent(docs: Documents, sanctions: SanctionsList, since: dt.datetime, done: Run) -> None:
    """The customers who applied since ``since``, screened against the whole list: one
    onboarded by an instance that still had the list before (a deploy rolls out over
    minutes) was never screened against what is new, and may be behind the walk's cursor or
    have applied after the walk ended. Every run looks `RECENT` back from the last run that
    ended well (`_recent_since`): hourly runs overlap."""
    after: Doc | None = None
    while True:
        page = docs.query(
            KYC, where=[Where("appliedAt", ">=", since)], order_by=[OrderBy("appliedAt")], limit=PAGE, start_after=after
        )
        counted = done.screened
        _screen_page(docs, sanctions, page, done, list_version=sanctions.version)
        done.recent += done.screened - counted
        done.screened = counted
        if len(page) < PAGE:
            return
        after = page[-1]


def _recent_since(docs: Documents, now: dt.datetime) -> dt.datetime:
    """From when to screen the customers who applied lately: `RECENT` before the last run
    that ended well (so runs that failed for hours leave nobody out), at most `RECENT_MAX`."""
    last = docs.get(LAST_RUN)
    ok_at = last.data.get("lastOkAt") if last is not None else None
    since = now - RECENT
    if isinstance(ok_at, dt.datetime):
        since = min(since, ok_at - RECENT)
    return max(since, now - RECENT_MAX)


def _forget_delisted(docs: Documents) -> None:
    """Entries the baseline no longer has (delisted; ``forget`` on `BASELINE`, written with
    it) leave the alerts' ``seen``: a person listed again later, even as before, is raised
    again. Each entry leaves the list of those to forget once its alerts are done, so a run
    that stops half-way leaves the rest to the next."""
    baseline = docs.get(BASELINE)
    pending = baseline.data.get("forget") if baseline is not None else None
    for entry in sorted(pending) if isinstance(pending, list) else ():
        for alert in docs.query(SANCTIONS_ALERTS, where=[Where("seenEntries", "array_contains", entry)]):

            def drop(uow: UnitOfWork, path: str = alert.path, entry: str = entry) -> None:
                found = uow.get(path)
                if found is None:
                    return
                seen = [k for k in found.data.get("seen") or () if not str(k).endswith(f":{entry}")]
                entries = [e for e in found.data.get("seenEntries") or () if e != entry]
                uow.update(path, {"seen": seen, "seenEntries": entries, "updatedAt": SERVER_TIME})

            docs.transact(drop, operation="rescreen_forget")

        def done(uow: UnitOfWork, entry: str = entry) -> None:
            found = uow.get(BASELINE)
            if found is not None:
                left = [e for e in found.data.get("forget") or () if e != entry]
                uow.update(BASELINE, {"forget": left})

        docs.transact(done, operation="rescreen_forgotten")


def _advance(
    docs: Documents,
    sanctions: SanctionsList,
    walk: Doc,
    began: object,
    cursor: object,
    done: Run,
    counted: tuple[int, int],
    *,
    finished: bool,
) -> bool:
    """Move the list's cursor past the page screened, if it is still where the page began
    in this walk (else another run walks this list: False). The last page makes the list
    the baseline the next list is screened against (`BASELINE`), unless a walk begun later
    made its list the baseline first (an instance still on an older list)."""
    screened, alerts, version = done.screened - counted[0], done.alerts - counted[1], sanctions.version

    def move(uow: UnitOfWork) -> bool:
        path = state_path(version)
        found = uow.get_many([path, BASELINE])
        state, baseline = found[path], found[BASELINE]
        data = state.data if state is not None else {}
        if data.get("cursor") != began or data.get("completedAt") is not None:
            return False
        if data.get("startedAt") != walk.data.get("startedAt"):
            return False  # this list's walk begun again by another run
        uow.set(
            path,
            {
                **data,
                "cursor": cursor,
                "screened": int(data.get("screened") or 0) + screened,
                "alerts": int(data.get("alerts") or 0) + alerts,
                "against": done.against,
                "updatedAt": SERVER_TIME,
                "completedAt": SERVER_TIME if finished else None,
            },
        )
        base = baseline.data if baseline is not None else {}
        newer = isinstance(base.get("startedAt"), dt.datetime) and base["startedAt"] > data["startedAt"]
        if finished and not newer:
            keys = sanctions.entry_keys()
            # delisted since the baseline taken back (`_forget_delisted`), with any not yet done
            before: list[Any] = base["entries"] if isinstance(base.get("entries"), list) else []
            forget = sorted({*(base.get("forget") or ()), *(set(before) - keys)} - keys)
            fields = {"version": version, "rules": RULES, "entries": sorted(keys), "forget": forget}
            uow.set(BASELINE, {**fields, "startedAt": data["startedAt"], "completedAt": SERVER_TIME})
        return True

    return docs.transact(move, operation="rescreen_cursor")


def _screen_page(
    docs: Documents, sanctions: SanctionsList, records: list[Doc], done: Run, *, list_version: str
) -> None:
    for kyc in records:
        done.screened += 1
        if kyc.data.get("decision") == "rejected":
            continue  # refused at onboarding: nothing of theirs to freeze
        try:
            finding = rules.screen_customer(
                kyc.data, sanctions, rules.decided_keys(kyc.data.get("screening") or (), ())
            )
        except ValueError:
            done.unscreenable += 1
            log.error("a customer's record has no name to screen", extra={"uid": kyc.id})
            continue
        if finding is None:
            continue
        outcome = raise_alert(docs, kyc.id, finding, list_version=list_version)
        if outcome == "skipped":
            done.skipped += 1
            continue
        done.alerts += 1
        done.frozen += outcome == rules.FROZEN


def raise_alert(docs: Documents, uid: str, finding: rules.Finding, *, list_version: str) -> str:
    """Raise what screening found on the customer's alert, in one unit of work with the
    freeze it calls for. Returns the alert's status, or "skipped" (not a customer, approved
    or in review, or every entry raised before: another run was first). An alert still open
    or frozen keeps what it found before and when it was first raised; a cleared one opens
    again with the new finding alone."""
    frozen_now: list[str] = []

    def write(uow: UnitOfWork) -> str:
        frozen_now.clear()
        found = uow.get_many([f"{CUSTOMERS}/{uid}", f"{KYC}/{uid}", alert_path(uid)])
        customer, kyc, alert = found[f"{CUSTOMERS}/{uid}"], found[f"{KYC}/{uid}"], found[alert_path(uid)]
        if customer is None or customer.data.get("status") not in SCREENED or kyc is None:
            return "skipped"
        current = alert.data if alert is not None else {}
        new = finding.undecided(rules.decided_keys(kyc.data.get("screening") or (), current.get("seen") or ()))
        if new is None:
            return "skipped"
        status = rules.raised(current.get("status"), new)
        accounts = _open_accounts(uow, uid) if status == rules.FROZEN else []
        pending = current.get("status") in (rules.OPEN, rules.FROZEN)  # undecided: add to it
        before = [m for m in current.get("matches") or () if isinstance(m, dict)] if pending else []
        record: dict[str, Any] = {
            "uid": uid,
            "status": status,
            "matches": [*before, *new.records()],
            "seen": sorted({*(current.get("seen") or ()), *new.keys}),
            # the entries' contents raised (`_forget_delisted` finds the alerts of a delisted one)
            "seenEntries": sorted({*(current.get("seenEntries") or ()), *new.entries}),
            "listVersion": list_version,
            "lastRaisedAt": SERVER_TIME,
            "updatedAt": SERVER_TIME,
        }
        if not pending:  # waiting for a decision from now
            record["raisedAt"] = SERVER_TIME
        if status == rules.FROZEN:
            frozen_now[:] = _freeze(uow, accounts, customer)
            record["frozenAccounts"] = sorted({*(current.get("frozenAccounts") or ()), *frozen_now})
            if current.get("status") != rules.FROZEN:
                record["frozenAt"] = SERVER_TIME
                record["confirmed"] = False  # compliance confirms this freeze (`decide`)
        uow.set(alert_path(uid), record, merge=True)
        return status

    status = docs.transact(write, operation="sanctions_alert")
    if status != "skipped":
        log.warning(
            "a customer matches the sanctions list",
            extra={
                "uid": uid,
                "status": status,
                "entries": [m.entity_id for m in finding.matches],
                "accounts_frozen": len(frozen_now),
            },
        )
    return status


def _open_accounts(uow: UnitOfWork, uid: str) -> list[Doc]:
    owned = uow.query(ACCOUNTS, where=[Where("ownerUid", "==", uid)])
    return [a for a in owned if a.data.get("status") == ACCOUNT_OPEN]


def _freeze(uow: UnitOfWork, accounts: list[Doc], customer: Doc) -> list[str]:
    """Freeze the customer and their open accounts (read in the unit of work); the ids frozen."""
    for account in accounts:
        uow.update(account.path, {"status": ACCOUNT_FROZEN, "frozenAt": SERVER_TIME, "updatedAt": SERVER_TIME})
    if not customer.data.get("frozen"):
        uow.update(customer.path, {"frozen": True, "frozenAt": SERVER_TIME, "updatedAt": SERVER_TIME})
    return [a.id for a in accounts]


def decide(
    docs: Documents,
    uid: str,
    action: str,
    *,
    by: object,
    note: object,
    seen: object = None,
    clock: Clock = system_clock,
) -> dict[str, Any]:
    """Compliance's decision on a customer's alert: ``freeze`` an open one (their open
    accounts frozen now) or confirm the freeze the rescreen made (the first decision on a
    frozen one), ``clear`` an open or frozen one (the accounts the alert froze, and still
    frozen, open again). Who and why are kept with it, in the alert's ``decisions``.
    ``seen``: the alert's version as the officer listed it (`rules.seen`: refused when it
    was written since).
    Raises `fjordbank.domain.rescreening.AlertRefused`. Returns the alert as decided."""
    who, why = rules.checked_note(by, note)
    if not isinstance(uid, str) or not 1 <= len(uid) <= 128 or "/" in uid:
        raise rules.AlertRefused("invalid_request", "no such customer id")
    changed: list[str] = []

    def write(uow: UnitOfWork) -> dict[str, Any]:
        changed.clear()
        found = uow.get_many([f"{CUSTOMERS}/{uid}", alert_path(uid)])
        customer, alert = found[f"{CUSTOMERS}/{uid}"], found[alert_path(uid)]
        if alert is None or customer is None:
            raise rules.AlertRefused("alert_not_open", f"no sanctions alert on {uid}")
        rules.seen(seen, alert.updated)
        current = alert.data.get("status")
        status = rules.decided(current, action, confirmed=alert.data.get("confirmed") is True)
        frozen_by_alert = list(alert.data.get("frozenAccounts") or ())
        extra: dict[str, Any] = {}
        if status == rules.FROZEN:
            changed[:] = _freeze(uow, _open_accounts(uow, uid), customer)
            frozen_by_alert = sorted({*frozen_by_alert, *changed})
            if current != rules.FROZEN:
                extra["frozenAt"] = SERVER_TIME
        else:  # cleared
            accounts = uow.get_many([f"{ACCOUNTS}/{a}" for a in frozen_by_alert])
            for account in accounts.values():
                if account is not None and account.data.get("status") == ACCOUNT_FROZEN:
                    uow.update(
                        account.path, {"status": ACCOUNT_OPEN, "unfrozenAt": SERVER_TIME, "updatedAt": SERVER_TIME}
                    )
                    changed.append(account.id)
            if customer.data.get("frozen"):
                uow.update(customer.path, {"frozen": False, "updatedAt": SERVER_TIME})
            frozen_by_alert = []
        decision = {"action": action, "by": who, "note": why, "at": clock().isoformat()}
        decided = {
            "status": status,
            "frozenAccounts": frozen_by_alert,
            "decisions": [*(alert.data.get("decisions") or ()), decision],
            "decidedBy": who,
            "decidedAt": SERVER_TIME,
            "updatedAt": SERVER_TIME,
            "confirmed": status == rules.FROZEN,  # a freeze decided (or confirmed) by compliance
            **extra,
        }
        uow.update(alert.path, decided)
        return {**alert.data, **decided, "uid": uid}

    result = docs.transact(write, operation="sanctions_decide")
    log.warning(
        "sanctions alert decided",
        extra={"uid": uid, "action": action, "status": result["status"], "decided_by": who, "accounts": len(changed)},
    )
    return result


ALERTS_LISTED = 200  # sanctions alerts listed at once (the oldest first)


def alerts(docs: Documents, *, status: str = rules.OPEN, limit: int = ALERTS_LISTED) -> list[Doc]:
    """The customers' alerts in ``status``, oldest raised first."""
    if status not in rules.STATUSES:
        raise rules.AlertRefused("invalid_request", f"status is one of {', '.join(rules.STATUSES)}")
    return docs.query(
        SANCTIONS_ALERTS, where=[Where("status", "==", status)], order_by=[OrderBy("raisedAt")], limit=limit
    )
