"""Scheduled jobs, run by the `on_scheduled_job` function (Cloud Scheduler -> Pub/Sub).

submit-due-payments: every payment request that is due (scheduled for today or earlier,
Europe/Oslo; on banking days only: a due date on a weekend, a public holiday, Christmas Eve
or New Year's Eve is paid on the next banking day, `fjordbank.domain.norway`), whose first
publish failed (status "received"), or that has shown "requested" for longer than `STUCK`
(the edge's run ended between its commit and its publish; or the pipeline holds it, and
the publish is stored again: every step answers it from its records) is submitted through
the same path as an immediate payment, the latter again only after twice the wait of the
time before (`republish_due`). Exactly once per due date however often the job runs, even
twice at the same time: a due scheduled request is claimed (moved from "scheduled" to
"requested" in a unit of work) before it is published, so a cancel either comes first and
keeps it unpublished or is refused; the message id (payment id + "requested") lets
JetStream store it once, and the services answer a replay from their records. A due
payment the account cannot cover is tried at every run on its banking day and the three
after it, and fails once they have passed (`fjordbank.domain.standing_orders.last_try_day`);
one made on a later day is booked that day (`released`). Then the standing orders' due dates
(fjordbank.service_layer.standing_orders).

release-expired-holds: asks the card service to release card holds past their expiry.

relay-outbox: publishes customer and card events whose first publish failed.

rescreen-customers: screens every customer again against the sanctions list onboarding
screens against, once per version of the list (fjordbank.service_layer.rescreening: hourly,
each run going on from where the last stopped; a customer the list now names is frozen).

audit-ledger: runs the ledger audit (fjordbank.service_layer.audit) and stores its summary
in ops/ledgerAudit, which the notifier's ops sweep exports as fjb_audit_* metrics. It reads
the whole ledger: hourly, not more often.

The scheduler's clock: a job takes "now" from the machine's clock. On the emulator only, a
job message may set it, and the customers the due-payments and rescreen-customers jobs look
at (`job_overrides`)::

    {"job": "submit-due-payments", "now": "2027-03-28T01:30:00+00:00", "uids": ["uid-1", "uid-2"]}

(`bankctl jobs run submit-due-payments --now 2027-03-28T01:30:00Z --customer UID ...`). Chaos
runs and tests use it to move the clock across month ends and daylight-saving changes
(bench/chaos/clock.py); the scope keeps a clock moved months ahead from paying every other
customer's standing orders and scheduled payments early. Outside the emulator a message
that carries either is refused (ConfigError, the job does not run): whoever may publish on
the jobs topic must not be able to move the bank's clock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from fjordbank import topology
from fjordbank.adapters.firestore import PAYMENT_REQUESTS, is_transient
from fjordbank.domain import standing_orders as orders
from fjordbank.domain.errors import DomainError
from fjordbank.domain.events import ExpireCardHolds
from fjordbank.domain.norway import is_banking_day, today_in_norway
from fjordbank.domain.payments import PaymentEvent, PaymentRejected, PaymentRequested, projection_update
from fjordbank.domain.sanctions import SanctionsList
from fjordbank.errors import ConfigError, PublishError
from fjordbank.service_layer import (
    audit,
    edge,
    outbox,
    request_status,
    rescreening,
    sca,
    seams,
    settling,
    standing_orders,
)
from fjordbank.service_layer.lanes import FailureRow, in_lanes
from fjordbank.service_layer.ports import (
    Clock,
    Contention,
    Doc,
    Documents,
    Publisher,
    UnitOfWork,
    Where,
    system_clock,
)
from fjordbank.service_layer.standing_orders import WORKED, RunFunds, errors_allowed, pages

log = logging.getLogger(__name__)
SUBMIT_DUE_PAYMENTS = "submit-due-payments"
RELEASE_EXPIRED_HOLDS = "release-expired-holds"
RELAY_OUTBOX = "relay-outbox"
AUDIT_LEDGER = "audit-ledger"
RESCREEN_CUSTOMERS = "rescreen-customers"
JOBS = (SUBMIT_DUE_PAYMENTS, RELEASE_EXPIRED_HOLDS, RELAY_OUTBOX, AUDIT_LEDGER, RESCREEN_CUSTOMERS)
# When each job runs: Cloud Scheduler's cron lines, in SCHEDULE_TIME_ZONE. Terraform states
# them once more (terraform/modules/topology, held equal by tests/deploy/test_terraform_names.py)
# and the local stack's scheduler (devstack/scheduler.py) runs the jobs by these.
SCHEDULE_TIME_ZONE = "Europe/Oslo"
SCHEDULES = {
    SUBMIT_DUE_PAYMENTS: "*/15 * * * *",
    RELEASE_EXPIRED_HOLDS: "7 * * * *",
    RELAY_OUTBOX: "*/5 * * * *",
    AUDIT_LEDGER: "23 * * * *",
    RESCREEN_CUSTOMERS: "41 * * * *",
}
MAX_SCOPE = 30  # customers a scoped run may name (Firestore's limit for an `in` filter)
# A request "requested" this long is published again. Internal payments are final within
# seconds and external ones submitted, so only one the edge never published, or one the
# pipeline holds up (whose message is then stored again: every step answers a replay from
# its records), is this old; the FjbPaymentNotFinal alert waits 15 minutes for it.
STUCK = dt.timedelta(minutes=10)
# A request published again and still "requested" waits twice as long as before for the
# next time (STUCK, 20, 40 minutes, ... at most MAX_REPUBLISH_WAIT): a pipeline that holds a
# backlog (a consumer down or catching up) has every such message already, and past
# JetStream's duplicate window each run used to store the whole backlog again.
MAX_REPUBLISH_WAIT = dt.timedelta(hours=6)
# Publishes that failed one after the other before a run leaves the rest of the due payments
# for the next: each failure waits for the publisher's timeout, and a run of failures while
# NATS is away used the whole of the function's 9 minutes before the standing orders' turn.
MAX_UNPUBLISHED_IN_A_ROW = 3
# The part of a run (the function's 540 s) the due payment requests may take: what is left
# of them waits for the next run (every 15 minutes), and the standing orders always get
# their turn. Before, a run that spent its time on the requests (one customer's thousands
# that could not be covered were decided again at every run) never reached the standing
# orders (found in review, 2026-12-06; edge.MAX_SCHEDULED bounds each customer's).
REQUESTS_BUDGET_SECONDS = 240.0
# The whole run, the standing orders after the requests included: the function has 540 s,
# and the run's lease (RUN_LEASE_FOR) 600.
RUN_BUDGET_SECONDS = 480.0
# Due payments (and standing orders) a run works on at a time, each payer's in order on one
# lane (fjordbank/service_layer/lanes.py): one at a time, a run's 240 s paid a few thousand,
# against the payday's 1.44 million scheduled (docs/capacity.md, section 2). The work is
# waiting on round trips (five per payment), so the lanes are many: `python -m bench.due`
# with 8 ms a round trip gave 20 payments/s on one lane, 255 on 16 and 684 on 64.
LANES = 64
REPUBLISHED = request_status.REPUBLISHED  # on the request: {"count", "at"} of its publishes again


def job_overrides(message: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """``now`` and ``uids`` from a job message (see the module docstring); {} when it sets
    neither. Raises ConfigError outside the emulator, ValueError when malformed."""
    wanted = {k: message[k] for k in ("now", "uids") if message.get(k) is not None}
    if not wanted:
        return {}
    if not env.get("FIRESTORE_EMULATOR_HOST"):
        raise ConfigError("a job's clock and scope are set on the emulator only; refused")
    out: dict[str, Any] = {}
    if "now" in wanted:
        now = dt.datetime.fromisoformat(str(wanted["now"]).replace("Z", "+00:00"))
        if now.tzinfo is None:
            raise ValueError("now must carry its offset (an instant)")
        out["now"] = now.astimezone(dt.UTC)
    if "uids" in wanted:
        uids = wanted["uids"]
        if not isinstance(uids, list) or not uids or len(uids) > MAX_SCOPE or not all(isinstance(u, str) for u in uids):
            raise ValueError(f"uids must be a list of 1-{MAX_SCOPE} customer ids")
        out["uids"] = tuple(uids)
    return out


def due_queries(
    docs: Documents, now: dt.datetime, limit: int, uids: tuple[str, ...] | None = None
) -> list[Iterator[Doc]]:
    """The requests whose publish failed, then the scheduled requests due by today (in Norway
    at ``now``), then those "requested" for longer than STUCK: three queries, each read
    lazily, the job running each once the one before's requests are handled.

    The requests whose publish failed come first: their money is counted (`RunFunds`)
    before an account's due payments are decided on what it has left. Read after them, a
    bill due today was decided on money a customer's payment whose publish had failed had
    spent, submitted, and that payment declined for good by the ledger (found in review,
    2026-12-07). A claim of this job whose publish fails is put back to "received" for the
    same reason (`_put_back_unpublished`). Those "requested" for long come last: on a payday
    the pipeline is behind the job, the payments it released minutes ago are still
    "requested" and waiting in NATS, and published again before the due ones a run spent its
    budget on them and released nothing new."""
    today = today_in_norway(now)
    scope = [Where("payment.uid", "in", list(uids))] if uids else []  # a scoped run (emulator only, job_overrides)
    due = [Where("status", "==", "scheduled"), Where("payment.due_date", "<=", today.isoformat())]
    stuck = [Where("status", "==", "requested"), Where("updatedAt", "<=", now - STUCK)]
    return [
        pages(docs, PAYMENT_REQUESTS, [*scope, Where("status", "==", "received")], limit),
        # else what fell due waits for the next banking day; paged: a waiting one stays due
        *([pages(docs, PAYMENT_REQUESTS, [*scope, *due], limit)] if is_banking_day(today) else []),
        pages(docs, PAYMENT_REQUESTS, [*scope, *stuck], limit),
    ]


def submit_due_payments(
    docs: Documents,
    publisher: Publisher,
    *,
    submit: seams.Submit,
    bank_regs: tuple[str, ...] = (),
    clock: Clock = system_clock,
    limit: int = 500,
    uids: tuple[str, ...] | None = None,
    budget_seconds: float = REQUESTS_BUDGET_SECONDS,
    monotonic: Callable[[], float] = time.monotonic,
    lanes: int = LANES,
    run_id: str | None = None,
    wall: Clock = system_clock,
) -> dict[str, Any]:
    """Scheduled payments whose due date has come, then the standing orders' due dates
    (the requests for ``budget_seconds`` at most: the rest are deferred to the next run).
    One run at a time (`RUN_LEASE`): a run that finds another at work leaves it to that one
    ({"busy": 1}); ``run_id`` names this run (its job message), ``wall`` is the lease's
    clock (the machine's, never the job's, which the emulator may move). A scoped run
    (``uids``: the emulator's tests and chaos runs) takes no lease.

    Nothing falls due on a day banks do not settle: a due date on a weekend or holiday is
    paid on the next banking day. A scheduled payment the account cannot cover waits for the
    job's next runs on that banking day and the three after it; once they have passed it
    fails (the customer is told), as a standing order's payment does
    (`fjordbank.domain.standing_orders.decide`).
    ``submit``: edge.submit on its client (fjordbank.service_layer.seams)."""
    run = run_id or uuid.uuid4().hex
    if uids is None and not _take_run_lease(docs, run, wall()):
        log.info("due payments: another run is at work; this one leaves the payments to it", extra={"run": run})
        return {"busy": 1}
    result: dict[str, Any] | None = None
    began = monotonic()
    funds = RunFunds(docs)  # shared with the standing orders' run
    # the accounts the run before paid from, if its payments may still be on their way to
    # the ledger: their due payments wait for a later run (fjordbank/service_layer/settling.py)
    records = settling.read(docs) if uids is None else None
    now = clock()
    try:
        result = _release_due(
            docs,
            publisher,
            submit=submit,
            bank_regs=bank_regs,
            now=now,
            limit=limit,
            uids=uids,
            until=began + budget_seconds,
            monotonic=monotonic,
            lanes=lanes,
            funds=funds,
            settling=(lambda account: records.holds(account, now)) if records is not None else _never_settling,
        )
        return result
    finally:
        paid_from = [account for account, amount in funds.spent.items() if amount > 0]
        if records is not None and paid_from:  # none: the records of the runs before stay
            # on the job's clock, as the next run's start it is compared with (the machine's,
            # but on the emulator when a run is given its clock); an account whose claim was
            # given back is not one paid from (it took a slot, and held the account)
            ended = now + dt.timedelta(seconds=monotonic() - began)
            settling.record(docs, records, run, paid_from, ended)
        if uids is None:
            _end_run_lease(docs, run, wall(), result)


def _never_settling(_account: str) -> bool:
    return False


# The one run of the due payments at a time: each run reckons what every account has left
# in its own memory (RunFunds), and two runs at once both paid from the same money (the
# ledger then declined the second payment for good, where it should have waited for the
# money). The scheduler's run every 15 minutes and a run going on at once in the next
# (`continuation`) would otherwise overlap on a payday (found in review, 2026-12-06). Held
# a little longer than the function's 540 s, so a run that died gives it up by itself.
# The lease's document also says how the runs went, for the ops sweep
# (fjordbank/runtime/ops_sweep.py) and its alerts: ``lastOkAt``, when a run last ended
# well (FjbDuePaymentsNotRun), ``behindSince``, when the first of the runs that have each
# left due payments to the next began, until one ends with none left (FjbDuePaymentsBehind),
# and ``lastResult``, the last run's counts.
RUN_LEASE = "ops/dueRun"
RUN_LEASE_FOR = dt.timedelta(seconds=600)
# what a lease's document keeps from the runs before (the rest is the run holding it)
RUN_RECORD = ("lastOkAt", "behindSince", "lastResult")


def _take_run_lease(docs: Documents, run: str, now: dt.datetime) -> bool:
    def take(uow: UnitOfWork) -> bool:
        held = uow.get(RUN_LEASE)
        # held by any run, this one's message delivered twice included (Pub/Sub delivers at
        # least once): a run that died leaves it to expire; one that ended, at once (whatever
        # its clock said: a run's clock ahead of the others' kept them out)
        if held is not None and not held.data.get("ended") and held.data.get("until", now) > now:
            return False
        kept = {k: held.data[k] for k in RUN_RECORD if held is not None and k in held.data}
        uow.set(RUN_LEASE, {**kept, "run": run, "since": now, "until": now + RUN_LEASE_FOR})
        return True

    return docs.transact(take, operation="due_run_lease_take")


def _end_run_lease(docs: Documents, run: str, now: dt.datetime, result: Mapping[str, Any] | None = None) -> None:
    """Give the lease up and record how the run went (``result``: its counts; None: it
    failed, and only the lease is given up). A failure is logged, never the run's (what it
    did stands, and the lease expires by itself)."""

    def end(uow: UnitOfWork) -> None:
        held = uow.get(RUN_LEASE)
        if held is None or held.data.get("run") != run:
            return
        record: dict[str, Any] = {**held.data, "until": now, "ended": now}
        if result is None:
            record["lastResult"] = {"runFailed": 1}
            uow.set(RUN_LEASE, record)
            return
        counts = _counts_of(result)
        record["lastResult"] = counts
        # ended well: no payment failed with an error and NATS took them (a run whose
        # errors were only logged moved lastOkAt, and a payment failing every run went
        # unseen; found in review, 2026-12-06)
        if not any(counts.get(k) for k in ("errors", "standingOrders.errors", "halted", "standingOrders.runFailed")):
            record["lastOkAt"] = now
        if result.get("deferred"):
            record.setdefault("behindSince", held.data.get("since", now))
        else:
            record.pop("behindSince", None)
        uow.set(RUN_LEASE, record)

    try:
        docs.transact(end, operation="due_run_lease_end")
    except Exception as exc:
        if not is_transient(exc) and not isinstance(exc, Contention):
            raise
        log.warning(
            "due payments: the run's lease was not given up; it expires", extra={"run": run, "error": repr(exc)}
        )


def _counts_of(result: Mapping[str, Any]) -> dict[str, int]:
    """A run's counts, the standing orders' with ``standingOrders.`` before them: one flat map
    of numbers for the record."""
    out: dict[str, int] = {}
    for key, value in result.items():
        if isinstance(value, Mapping):
            out |= {f"standingOrders.{k}": int(v) for k, v in value.items() if isinstance(v, int)}
        elif isinstance(value, int):
            out[key] = value
    return out


def _hand_out(
    queries: Iterable[Iterable[Doc]],
    work: Callable[[Doc], None],
    *,
    lanes: int,
    deadline_passed: Callable[[], bool],
    stop: threading.Event,
) -> tuple[bool, Exception | None]:
    """The due requests of each query handed to ``work`` in lanes, until the time is spent
    or ``stop`` is set. Returns whether some were left for the next run, and the error that
    stopped reading them, if one did: a page not read escaped the run before the standing
    orders, which then waited for the next run (a payday morning's every order), and the
    run's counts were lost (found in review, 2026-12-07); the run fails all the same once
    the standing orders had their turn (`_release_due`), for FjbDuePaymentsNotRun."""
    try:
        for query in queries:
            if in_lanes(query, key=_payer, work=work, lanes=lanes, deadline_passed=deadline_passed, stop=stop):
                return True, None
            if stop.is_set():
                break
    except Exception as exc:
        log.exception("due payments: the due requests could not be read; the rest wait for the next run")
        return True, exc
    return False, None


def _release_due(
    docs: Documents,
    publisher: Publisher,
    *,
    submit: seams.Submit,
    bank_regs: tuple[str, ...],
    now: dt.datetime,
    limit: int,
    uids: tuple[str, ...] | None,
    until: float,
    monotonic: Callable[[], float],
    lanes: int,
    funds: RunFunds,
    settling: Callable[[str], bool],
) -> dict[str, Any]:
    # the whole run's end: the standing orders after the requests too, inside the function's
    # 540 s and so inside the run's lease (a run past its lease overlapped the next one's)
    run_ends = until - REQUESTS_BUDGET_SECONDS + RUN_BUDGET_SECONDS
    today = today_in_norway(now)
    counts = {
        "submitted": 0,
        "waiting": 0,
        "failed": 0,
        "skipped": 0,
        "unpublished": 0,
        "malformed": 0,
        "errors": 0,
        "settling": 0,
    }
    unpublished_in_a_row = 0
    errors = FailureRow(errors_allowed(lanes), WORKED)
    counting = threading.Lock()
    nats_away = threading.Event()
    broken = threading.Event()
    halt = threading.Event()  # either of them: the lanes drop what they have not begun
    started = monotonic()

    def clock_now() -> dt.datetime:
        """The run's clock as it is now, for the claims' stamps: a claim made minutes into
        the run was stamped with the run's start, and a request "requested" since then
        looked STUCK that much sooner to the runs after it (found in review, 2026-12-06).
        What the run decides on stays the run's (``today``, ``now``: a wait's rest)."""
        return now + dt.timedelta(seconds=max(0.0, monotonic() - started))

    def one(request: Doc) -> None:
        try:
            outcome = _submit_due(docs, publisher, submit, request, today, now, funds, bank_regs, clock_now, settling)
        except Exception:  # one payment's failure is that payment's; the others are paid
            # one payment that failed (a Firestore timeout after the client's retries, a
            # claim contended by a cancel, a bug in one document) stopped every lane and the
            # run, standing orders included (found in review, 2026-12-06); it stays due, and
            # the next run decides it again
            log.exception("due payment not decided: left for the next run", extra={"path": request.path})
            outcome = "errors"
        nonlocal unpublished_in_a_row
        with counting:
            counts[outcome] += 1
            unpublished_in_a_row = unpublished_in_a_row + 1 if outcome == "unpublished" else 0
            if unpublished_in_a_row >= MAX_UNPUBLISHED_IN_A_ROW and not nats_away.is_set():
                log.warning("NATS does not take the due payments: the rest wait for the next run", extra=counts)
                nats_away.set()
                halt.set()
            if errors.note(outcome) and not broken.is_set():
                broken.set()  # Firestore away, or a bug in every payment: the run fails
                halt.set()

    deferred, unread = _hand_out(
        due_queries(docs, now, limit, uids), one, lanes=lanes, deadline_passed=lambda: monotonic() > until, stop=halt
    )
    if broken.is_set():
        raise RuntimeError(
            f"due payments: {errors.limit} failed one after the other; the run stops and the rest wait "
            f"for the next (counts {counts})"
        )
    if nats_away.is_set():
        # the payments not looked at wait as a deferred run's do, and the run did not end
        # well: it counted as caught up and FjbDuePaymentsBehind never saw a NATS outage
        # (found in review, 2026-12-06)
        deferred = True
        counts["halted"] = 1
    if deferred:
        counts["deferred"] = 1  # at least: the requests not looked at are not counted
        log.warning("due payments: this run's time for them is spent, the rest wait for the next", extra=counts)
    log.info("due payments submitted", extra=counts)
    standing = _standing_orders(
        lambda: standing_orders.run_due(
            docs,
            publisher,
            bank_regs=bank_regs,
            clock=lambda: now,
            limit=limit,
            uids=uids,
            funds=funds,
            lanes=lanes,
            deadline_passed=lambda: monotonic() > run_ends,
            settling=settling,
        ),
        counts,
    )
    if standing.get("deferred"):
        counts["deferred"] = 1
    if unread is not None:
        raise RuntimeError(
            f"due payments: the due requests could not be read ({type(unread).__name__}); the standing orders ran "
            f"(counts {counts}, standing orders {standing})"
        ) from unread
    return {**counts, "standingOrders": standing}


def _standing_orders(run: Callable[[], dict[str, int]], counts: Mapping[str, int]) -> dict[str, int]:
    """The standing orders' run after the requests'. One that fails leaves the requests'
    counts standing, and the run not ended well (raised, the run's record lost what the
    requests had done and no chain went on: found in review, 2026-12-06); the next run
    tries the orders again."""
    try:
        return run()
    except Exception:
        log.exception("due payments: the standing orders' run failed; the next run tries them", extra=dict(counts))
        return {"runFailed": 1}


def _payer(request: Doc) -> str:
    """The lane key of a due request: its payer's account (one lane decides an account's
    payments, in order, on what the run has left of its money)."""
    payment = request.data.get("payment")
    return str(payment.get("from_account", "")) if isinstance(payment, dict) else ""


def _submit_due(
    docs: Documents,
    publisher: Publisher,
    submit: seams.Submit,
    request: Doc,
    today: dt.date,
    now: dt.datetime,
    funds: RunFunds,
    bank_regs: tuple[str, ...],
    clock_now: Clock | None = None,
    settling: Callable[[str], bool] = _never_settling,
) -> str:
    """One due request: submitted, held back (waiting, failed, skipped), left for the next
    run (unpublished) or malformed. A scheduled one is decided on what ``funds`` says the
    account has left in this run, and fails if the payee's account here has closed or
    gone since it was made, as a standing order's date does (submitted, it was debited,
    refused by the closed account and paid back: found in review, 2026-12-06)."""
    if request.data.get("status") == "requested" and "payment" not in request.data:
        return "skipped"  # requested before the edge kept the payment on it (2026-12-02): published then
    try:
        payment = PaymentRequested.from_json(request.data["payment"])
    except (KeyError, TypeError, DomainError):
        log.error("due request without a valid payment", extra={"path": request.path})
        return "malformed"
    if request.data.get("status") == "requested":
        if not republish_due(request.data, now):
            return "skipped"
        log.warning("payment request requested for long: published again", extra={"path": request.path})
    if request.data.get("status") == "scheduled":
        if orders.tried_lately(request.data, dt.date.fromisoformat(payment.due_date), now):
            return "skipped"  # waited for funds a moment ago: a run a little later tries it again
        if settling(payment.from_account):
            return "settling"  # the run before paid from the account moments ago: a later run decides
        decision = _decide_due(docs, request, payment, today, funds, bank_regs)
        if decision.action != "submit":
            return _hold_back(docs, publisher, request.path, payment, decision, now)
        payment = released(payment, now)
        if not _claim_counted(docs, request.path, payment, funds, clock_now() if clock_now is not None else now):
            return "skipped"  # cancelled, or taken by another run, since the query read it
    else:
        # never published, or published again after it stayed "requested" (its first publish
        # may have failed after the claim, or the job died between them): it will be paid,
        # and what this run decides after it must not count its money. One the ledger had
        # reserved already (its answer not shown yet) is counted twice: another payment then
        # waits for the next run, where counted once too few it was submitted and declined
        # for good by the ledger.
        funds.submitted(payment.from_account, payment.amount)
    if not _published(docs, submit, request, payment):
        return "unpublished"  # "received" (or, if that write failed, "requested"): the next run tries again
    if request.data.get("status") == "requested":
        _note_republished(docs, request, now)
    return "submitted"


def _published(docs: Documents, submit: seams.Submit, request: Doc, payment: PaymentRequested) -> bool:
    """Submit the payment; one this run claimed or publishes again whose publish fails is
    put back to "received" (`_put_back_unpublished`)."""
    try:
        submit(payment)
    except PublishError:
        if request.data.get("status") != "received":
            _put_back_unpublished(docs, request.path, payment)
        return False
    return True


def _claim_counted(docs: Documents, path: str, payment: PaymentRequested, funds: RunFunds, at: dt.datetime) -> bool:
    """`_claim`, its money counted in the run's reckoning before it: a claim whose commit
    landed and whose answer was lost (a timeout) raises, and the payer's next payment was
    then decided as if this one had not been made (found in review, 2026-12-06). Only a
    claim that did not happen (False, or every attempt aborted: a cancel at the same moment
    won) gives the money back."""
    funds.submitted(payment.from_account, payment.amount)
    try:
        claimed = _claim(docs, path, payment, at)
    except Contention:
        claimed = False
    if not claimed:
        funds.submitted(payment.from_account, -payment.amount)
    return claimed


def _decide_due(
    docs: Documents,
    request: Doc,
    payment: PaymentRequested,
    today: dt.date,
    funds: RunFunds,
    bank_regs: tuple[str, ...],
) -> orders.Decision:
    """Submit, wait or fail a scheduled payment on its due date: the funds (what this run
    left), the payee's account as it is now, and the key that confirmed it."""
    available, status = funds.available(payment.from_account)
    due = dt.date.fromisoformat(payment.due_date)
    decision = orders.decide(
        due=due,
        today=today,
        available=available,
        amount=payment.amount,
        account_status=status,
        waited=orders.waited_on(request.data, due),
    )
    try:
        edge.check_payee(docs, payment.to_account, bank_regs)
    except PaymentRejected as exc:
        decision = orders.Decision("fail", exc.code)
    if decision.action == "submit" and not _confirming_key_kept(docs, payment.uid, request.data):
        decision = orders.Decision("fail", "sca_key_revoked")
    return decision


def _confirming_key_kept(docs: Documents, uid: str, request: Mapping[str, Any]) -> bool:
    """Whether the device key that confirmed a scheduled payment (the request's ``sca``, as
    the app sent it) is still the customer's. The edge checked the signature when the
    request came, and nothing again on the due date: a payment a thief confirmed on a
    stolen phone for next week was paid after the customer had the phone removed, or the
    bank reset every key (found in review, 2026-12-06). A revoked key's document is gone
    (fjordbank/service_layer/sca.py, revoke_key, reopen_enrolment), so the payment fails
    and the customer is told to confirm it again. One that needed no confirmation has no
    key to keep."""
    confirmation = request.get("sca")
    if not isinstance(confirmation, dict) or not isinstance(confirmation.get("keyId"), str):
        return True
    return docs.get(sca.key_path(uid, confirmation)) is not None


def republish_due(request: Mapping[str, Any], now: dt.datetime) -> bool:
    """Whether a request "requested" for longer than STUCK is published again now: the
    first time at once, then after twice the wait of the time before."""
    noted = request.get(REPUBLISHED)
    if not isinstance(noted, dict) or not isinstance(noted.get("at"), dt.datetime):
        return True
    count = request_status.republished_count(request) or 1
    wait = min(STUCK * 2 ** min(count, 10), MAX_REPUBLISH_WAIT)
    return bool(now - noted["at"] >= wait)


def _note_republished(docs: Documents, request: Doc, now: dt.datetime) -> None:
    """Note the publish on the request (request_status.mark_republished: on the condition
    that it is the version read; one that moved on needs no note); a note that fails only
    means the next run publishes it again sooner."""
    try:
        if request_status.mark_republished(docs, request, now) is None:
            log.info("republish not noted: the request moved on", extra={"path": request.path})
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.info("republish not noted", extra={"path": request.path, "error": type(exc).__name__})


def released(payment: PaymentRequested, now: dt.datetime) -> PaymentRequested:
    """The payment as the job releases it: requested now, so that it is booked (the feed's
    date, the month of my economy) and sent for execution (pain.001) on the day it is made.
    That is its payment day, or a later banking day when it waited for funds
    (`fjordbank.domain.standing_orders.last_try_day`) or the job was away; the time it was
    asked for stays on the request document (its ``timeline``)."""
    return dataclasses.replace(payment, requested_at=now.isoformat())


def _put_back_unpublished(docs: Documents, path: str, payment: PaymentRequested) -> None:
    """A payment this run claimed, or published again, whose publish failed: back to
    "received" (as the edge puts back its own), unless something moved it since. Left
    "requested", the next run found it only with the requests "requested" for long, after
    the due ones: at midnight a bill due the new day was decided on the money of a payment
    claimed at 23:45 and not yet published, both were submitted, and the ledger declined
    one for good (found in review, 2026-12-07). If its publish went through after all, the
    publish again is answered as a repeat and the notifier moves it on. A write that fails
    leaves it "requested", where the run for those finds it."""
    try:
        found = docs.get(path)
        if found is None or found.data.get("status") != "requested":
            return
        if found.data.get("paymentId") != payment.payment_id:
            return
        request_status.put_back(
            docs,
            found,
            "received",
            reason="publish_pending",
            message=edge.PUBLISH_PENDING_MESSAGE,
            extra={"payment": payment.to_json()},
        )
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.warning("unpublished payment left requested", extra={"path": path, "error": type(exc).__name__})


def _claim(docs: Documents, path: str, payment: PaymentRequested, now: dt.datetime) -> bool:
    """Move a due scheduled request to "requested" before it is published (one unit of
    work), so that a cancel from then on is refused ("not_scheduled") and one that came
    first keeps it from being published. Without it, a cancel between the query's read and
    the publish left the request showing "cancelled" while the payment went through. Stamped
    with the job's clock, as its other writes are (so this run's query for requests
    "requested" too long does not find it). A publish that fails after the claim puts the
    request back to "received" (`_put_back_unpublished`), where the next run publishes it.
    False: it is no longer scheduled."""

    def run(uow: UnitOfWork) -> bool:
        found = uow.get(path)
        current = {} if found is None else found.data
        if current.get("status") != "scheduled":
            return False
        # the payment as released: what a republish of a request "requested" too long sends
        extra = {"paymentId": payment.payment_id, "bodyHash": payment.body_hash, "payment": payment.to_json()}
        update = projection_update(current, "requested", extra=extra) or {}  # never None from scheduled
        uow.update(path, {**update, "updatedAt": now, "timeline.requested": now})
        return True

    return docs.transact(run, operation="scheduled_claim")


def _hold_back(
    docs: Documents,
    publisher: Publisher,
    path: str,
    payment: PaymentRequested,
    decision: orders.Decision,
    now: dt.datetime,
) -> str:
    """Wait (note the attempt on the request) or fail (the request fails, and its event is
    staged in the same unit of work so the customer is told)."""
    event = PaymentEvent(payment, "failed", reason=decision.reason, message="the scheduled payment could not be paid")
    staged = outbox.Event(event.subject, event.to_json(), event.msg_id)

    def run(uow: UnitOfWork) -> str:
        found = uow.get(path)
        current = {} if found is None else found.data
        if current.get("status") != "scheduled":
            return "skipped"
        if decision.action == "wait":
            due = dt.date.fromisoformat(payment.due_date)
            uow.update(path, {"waiting": orders.waiting(current, due, decision.reason, at=now)})
            return "waiting"
        # never None: a scheduled request may always fail
        update = projection_update(current, "failed", reason=decision.reason, message=event.message) or {}
        uow.update(path, {**update, "updatedAt": now, "timeline.failed": now})
        outbox.stage(uow, staged)  # stagedAt: the machine's time
        return "failed"

    outcome = docs.transact(run, operation="scheduled_hold_back")
    if outcome == "failed":
        outbox.deliver(docs, publisher, [staged])
    return outcome


def release_expired_holds(publisher: Publisher, *, clock: Clock = system_clock) -> dict[str, int]:
    """Card holds are the card service's: the job hands it the command. Releasing is
    idempotent, so two runs (or two deliveries) release each hold once."""
    now = clock()
    publisher.publish_json(
        topology.SUBJECT_CARD_EXPIRE_HOLDS,
        ExpireCardHolds(as_of=now.isoformat()).to_json(),
        msg_id=f"expire-holds:{now.isoformat()}",
    )
    return {"requested": 1}


# Runs one chain of `continuation` goes on for at most: about four hours of runs back to
# back, twice the payday morning's (docs/capacity.md, section 2); the scheduler's runs every
# 15 minutes go on after it.
MAX_CHAIN = 60


def continuation(job: str, result: Mapping[str, Any], *, scoped: bool, chain: int = 0) -> dict[str, Any] | None:
    """The job message of the run that goes on at once where this one stopped, or None. A
    due-payments run whose time for the due requests was spent (``deferred``) leaves the
    rest to a next run now, not in 15 minutes: the payday's morning (docs/capacity.md,
    section 2) is then released run after run, each as fast as its lanes go. The chain ends
    with the first run that is not deferred, or that paid or failed nothing (a run that
    only found payments waiting for funds, or resting after their wait: `orders.tried_lately`;
    the scheduler's next run tries those again), or after MAX_CHAIN runs (``chain``: this
    run's place in it). A run given its clock or its
    customers (the emulator's tests and chaos runs) is never continued: its caller decides
    its runs. ``chain`` comes from the job's message: one that is not a place in a chain (a
    negative one went on for ever; found in review, 2026-12-07) counts as the first."""
    if type(chain) is not int or chain < 0:
        chain = 0
    if job != SUBMIT_DUE_PAYMENTS or scoped or not result.get("deferred") or chain + 1 >= MAX_CHAIN:
        return None
    if result.get("halted"):
        # NATS did not take the payments: the scheduler's next run tries again, not a run at
        # once after another (while NATS came and went, runs seconds apart each wrote a
        # settling record over one still needed; found in review, 2026-12-06)
        return None
    standing = result.get("standingOrders")
    standing = standing if isinstance(standing, Mapping) else {}
    # the standing orders' payments count too: a run whose requests were all done and whose
    # time ran out on the orders ended the chain (found in review, 2026-12-06)
    if not any(counts.get(k) for counts in (result, standing) for k in ("submitted", "failed")):
        return None
    return {"job": SUBMIT_DUE_PAYMENTS, "chain": chain + 1}


def run_job(
    docs: Documents,
    publisher: Publisher,
    job: str,
    *,
    collaborators: seams.Collaborators,
    bank_regs: tuple[str, ...] = (),
    now: dt.datetime | None = None,
    uids: tuple[str, ...] | None = None,
    sanctions: Callable[[], SanctionsList] | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """``now`` and ``uids``: `job_overrides` (the emulator's clock); None: the real one.
    ``run_id``: the run's name (its job message), on the due payments' run lease.
    ``collaborators``: edge.submit and outbox.relay bound to the documents
    (fjordbank.service_layer.seams). ``sanctions``: the list onboarding screens against
    (read when a job needs it)."""
    clock: Clock = system_clock if now is None else (lambda: now)
    if job == SUBMIT_DUE_PAYMENTS:
        return submit_due_payments(
            docs, publisher, submit=collaborators.submit, bank_regs=bank_regs, clock=clock, uids=uids, run_id=run_id
        )
    if job == RELEASE_EXPIRED_HOLDS:
        return release_expired_holds(publisher, clock=clock)
    if job == RELAY_OUTBOX:
        return collaborators.relay()
    if job == AUDIT_LEDGER:
        summary = audit.run_and_record(docs)
        return {"ok": summary["ok"], "problems": summary["problemCount"]}
    if job == RESCREEN_CUSTOMERS:
        if sanctions is None:
            raise ValueError("the rescreen-customers job needs the sanctions list")
        try:
            listed = sanctions()
        except Exception as exc:
            if uids is None:  # an unscoped run: recorded, failed, where the ops sweep reads it
                rescreening.not_loaded(docs, exc)
            raise
        return rescreening.run(docs, listed, uids=uids, clock=clock).summary()
    raise ValueError(f"unknown job {job!r}; known: {', '.join(JOBS)}")
