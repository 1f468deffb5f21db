"""Load through the app's surface: N payment requests from M new customers, at most C in
flight, each followed to its final status by a listener on its request document (as the
app follows a payment it made: web/src/views/pay.js). Ends with a summary and the ledger
audit.

Until 2026-12-04 each customer's whole collection of requests was listened to: the
Firestore emulator answers a query listener by running its query again at every commit
that touches the collection, and runs every query by scanning all its documents, so the
listeners took most of the emulator's CPU and a through-the-app rate halved as the
emulator's data grew (8.0 payments/s on a fresh stack, 4.7 after 8,000 more payments in
it; the emulator's CPU per payment 80 ms, then 160 ms, 30 ms without those listeners). A
document listener is a key lookup there.

The setup onboards the M customers at most SETUP_CONCURRENCY at a time (whatever C is):
the Functions emulator runs one function call at a time, so more at once only wait in
its queue until they time out. A failure anywhere (in the setup or in a worker sending
payments) ends the run with one line naming the step and the part of the stack."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bankctl.customers import Bank, Made
from bankctl.errors import CommandError, StackUnreachable, Workers, step, transport_error
from bankctl.progress import Progress
from clientkit.ids import unique
from clientkit.session import AppSession
from fjordbank.domain.errors import InvalidAccountNumber
from fjordbank.domain.norway import make_account_number
from fjordbank.domain.payments import TERMINAL

RATE_LIMIT_PER_MINUTE = 60  # payments per customer (fjordbank/domain/ratelimit.py)
SETUP_CONCURRENCY = 4  # onboardings at once in the setup (min(this, --concurrency))
FIRST_NAMES = ("Kari", "Ola", "Ingrid", "Lars", "Nora", "Emil", "Sofie", "Jonas", "Amira", "Henrik", "Maja", "Elias")
LAST_NAMES = ("Nordmann", "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Berg", "Haugen", "Dahl", "Lunde")


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * p // 100))  # ceil(n * p / 100)
    return sorted_values[int(rank) - 1]


@dataclass
class LoadRun:
    payments: int
    customers: int
    concurrency: int
    max_amount: int  # øre
    external_share: float
    timeout: float
    started: dict[str, float] = field(default_factory=dict)  # request id -> monotonic start
    payer: dict[str, str] = field(default_factory=dict)  # request id -> uid
    polled: int = 0  # final statuses the listeners missed and the poller found
    finished: dict[str, tuple[str, str | None, float]] = field(default_factory=dict)  # id -> (status, reason, s)
    # server side, from the request document: created -> requested (the edge function),
    # requested -> final (the NATS pipeline and the notifier writing the document)
    edge: list[float] = field(default_factory=list)
    pipeline: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # request id -> its document's listener, until its final status (then closed by the
    # poller's thread: a listener is not closed from its own callback)
    watches: dict[str, Any] = field(default_factory=dict)
    done_watches: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.slots = threading.Semaphore(self.concurrency)
        self.all_final = threading.Event()

    def finish(
        self, request_id: str, status: str, reason: str | None, stages: tuple[float, float] | None = None
    ) -> None:
        with self.lock:
            start = self.started.get(request_id)
            if start is None or request_id in self.finished:
                return
            self.finished[request_id] = (status, reason, time.monotonic() - start)
            if stages is not None:
                self.edge.append(stages[0])
                self.pipeline.append(stages[1])
            if len(self.finished) >= self.payments:
                self.all_final.set()
            if (watch := self.watches.pop(request_id, None)) is not None:
                self.done_watches.append(watch)
        self.slots.release()

    def close_watches(self, *, every: bool = False) -> None:
        """Close the listeners of finished payments (``every``: all of them)."""
        with self.lock:
            closing, self.done_watches = self.done_watches, []
            if every:
                closing += list(self.watches.values())
                self.watches.clear()
        for watch in closing:
            try:
                watch.unsubscribe()
            except Exception:  # noqa: BLE001, S112 - a listener already gone: nothing to close
                continue

    def counts(self) -> Counter:
        with self.lock:
            return Counter(status for status, _r, _s in self.finished.values())

    def progress_text(self) -> tuple[int, str]:
        counts = self.counts()
        return sum(counts.values()), " ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def other_bank_account(rnd: random.Random) -> str:
    """A valid account in another bank (1503, group 12) that the simulated counterparty settles."""
    while True:
        try:
            return make_account_number("1503", "12", rnd.randrange(10_000))
        except InvalidAccountNumber:
            continue  # MOD11 remainder 1: no check digit for this serial


def make_customers(bank: Bank, count: int, deposit: int, workers: int = SETUP_CONCURRENCY) -> list[Made]:
    """``count`` new customers through the real onboarding path, ``workers`` at a time
    (each call the Functions emulator is busy with is retried by the client), with
    progress on stderr; then funded in one deposit."""
    made: list[Made] = []

    def one(_i: int) -> Made:
        name = f"{random.choice(FIRST_NAMES)} {random.choice(LAST_NAMES)}"
        customer = bank.ensure_customer(name=name, email=f"{unique('load-')}@fjordbank.example")
        made.append(customer)
        return customer

    with (
        Progress(count, lambda: (len(made), ""), label="setup", noun="customers onboarded"),
        Workers(min(workers, count), name="setup") as pool,
    ):
        for i in range(count):
            pool.submit(f"onboarding customer {i + 1} of {count}", one, i)
        customers = pool.results()
    not_approved = [m for m in customers if m.status != "approved" or not m.account]
    if not_approved:
        raise CommandError(f"{len(not_approved)} load customer(s) not approved (e.g. {not_approved[0].status})")
    with step("funding the customers"):
        bank.admin.deposit_many([(f"opening-{m.account}", m.account, deposit) for m in customers])
    return customers


def _stages(created, timeline: dict, status: str) -> tuple[float, float] | None:
    """(created -> requested, requested -> final) in seconds, by the server's clock."""
    requested, final = timeline.get("requested"), timeline.get(status)
    if created is None or requested is None or final is None:
        return None  # refused at the edge: never requested
    return (requested - created).total_seconds(), (final - requested).total_seconds()


def _quantiles(values: list[float]) -> dict:
    values = sorted(values)
    out = {f"p{p}": percentile(values, p) for p in (50, 95, 99)}
    out["max"] = values[-1] if values else None
    return {k: (round(v, 3) if v is not None else None) for k, v in out.items()}


def _poll_missed(bank: Bank, run: LoadRun, stop: threading.Event, after: float = 5.0) -> None:
    """A safety net for the listeners: every second, read the requests unfinished for more
    than ``after`` seconds; a final one the listener did not report is counted (and its
    time is then only known to within the polling interval)."""
    from fjordbank.adapters.firestore import request_path

    db = bank.admin.db
    while not stop.wait(1.0):
        run.close_watches()
        now = time.monotonic()
        with run.lock:
            overdue = [r for r, t in run.started.items() if r not in run.finished and now - t > after]
            paths = [request_path(run.payer[r], r) for r in overdue[:300]]
        if not paths:
            continue
        try:
            snaps = list(db.get_all([db.document(p) for p in paths]))
        except Exception:  # noqa: BLE001, S112 - a safety net: the next round tries again
            continue
        for snap in snaps:
            doc = snap.to_dict() if snap.exists else {}
            status = doc.get("status")
            if status in TERMINAL and snap.id not in run.finished:
                reason = doc.get("reason")
                with run.lock:
                    run.polled += 1
                run.finish(
                    snap.id,
                    status,
                    reason.get("code") if isinstance(reason, dict) else reason,
                    _stages(snap.create_time, doc.get("timeline") or {}, status),
                )


def setup_concurrency(concurrency: int) -> int:
    """Onboardings at once in the setup: min(SETUP_CONCURRENCY, --concurrency)."""
    return max(1, min(SETUP_CONCURRENCY, concurrency))


def run_load(bank: Bank, run: LoadRun, *, log) -> dict:
    """Drive the load; returns the summary (the audit is the caller's)."""
    if run.payments / run.customers > RATE_LIMIT_PER_MINUTE:
        log(
            f"note: {run.payments / run.customers:.0f} payments per customer: above {RATE_LIMIT_PER_MINUTE} a minute "
            "the per-customer rate limit rejects them (rate_limited); use more --customers"
        )
    setup_started = time.monotonic()
    deposit = run.max_amount * run.payments * 2 // run.customers + 100_000
    sessions: list[AppSession] = []
    try:
        with step("load setup"):
            made = make_customers(bank, run.customers, deposit, setup_concurrency(run.concurrency))
            with step("signing in the customers"):
                sessions.extend(bank.session(m.uid) for m in made)
        setup_seconds = time.monotonic() - setup_started
        with step("load"):
            elapsed, not_sent = _send_all(bank, run, sessions, [m.account for m in made], log)
    finally:
        run.close_watches(every=True)
        for session in sessions:
            session.close()
    return _summary(run, setup_seconds, elapsed, not_sent)


def _watch(session: AppSession, run: LoadRun, request_id: str):
    """A listener on one payment request's document (as the app follows the payment it
    made) reporting its final status; opened before the request is made."""

    def on_snapshot(docs, _changes, _read_time) -> None:
        for snap in docs:
            doc = (snap.to_dict() or {}) if snap.exists else {}
            status = doc.get("status")
            if status in TERMINAL:
                reason = doc.get("reason")
                run.finish(
                    snap.id,
                    status,
                    reason.get("code") if isinstance(reason, dict) else reason,
                    _stages(snap.create_time, doc.get("timeline") or {}, status),
                )

    with session.errors("listening to a payment request"):
        watch = session.requests().document(request_id).on_snapshot(on_snapshot)
    with run.lock:
        if request_id in run.finished:  # (final before the listener was kept: closed at once)
            run.done_watches.append(watch)
        else:
            run.watches[request_id] = watch


def _error_reason(exc: Exception) -> str:
    return str(exc)[:80] if isinstance(exc, CommandError) else type(exc).__name__


def _sender(run: LoadRun, sessions: list[AppSession], accounts: list[str]):
    """``send(i)``: the i-th payment request. A refusal is counted and the run goes on; the
    stack not answering ends the run (the worker's error becomes the command's)."""
    rnd = random.Random()

    def payee_for(payer: str) -> str:
        if rnd.random() < run.external_share:
            return other_bank_account(rnd)
        return rnd.choice([a for a in accounts if a != payer]) if len(accounts) > 1 else payer

    def send(i: int) -> None:
        session = sessions[i % len(sessions)]
        payer = accounts[i % len(sessions)]
        payee = payee_for(payer)
        request_id = unique("load-")
        with run.lock:
            run.started[request_id] = time.monotonic()
            run.payer[request_id] = session.uid
        try:
            _watch(session, run, request_id)
            session.request_payment(
                from_account=payer,
                to_account=payee,
                amount=rnd.randint(100, run.max_amount),
                message=f"load {i + 1}",
                request_id=request_id,
            )
        except Exception as exc:  # counted in the summary; the stack not answering ends the run
            run.finish(request_id, "error", _error_reason(exc))
            if isinstance(exc, StackUnreachable) or (
                not isinstance(exc, CommandError) and transport_error(exc) is not None
            ):
                raise

    return send


def _free_slot(run: LoadRun, pool: Workers) -> bool:
    """Wait until fewer than ``run.concurrency`` are unfinished; False if none finished in
    ``run.timeout`` seconds or a worker failed (the run ends)."""
    deadline = time.monotonic() + run.timeout
    while not pool.failed.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if run.slots.acquire(timeout=min(0.5, left)):
            return True
    return False


def _send_all(bank: Bank, run: LoadRun, sessions: list[AppSession], accounts: list[str], log) -> tuple[float, int]:
    """Send every payment, at most ``run.concurrency`` unfinished; (seconds, not sent)."""
    send = _sender(run, sessions, accounts)
    stop = threading.Event()
    poller = threading.Thread(target=_poll_missed, args=(bank, run, stop), name="poller", daemon=True)
    started = time.monotonic()
    not_sent = 0
    try:
        poller.start()
        with (
            Progress(run.payments, run.progress_text, label="load"),
            Workers(min(run.concurrency, 32), name="load") as pool,
        ):
            for i in range(run.payments):
                if not _free_slot(run, pool):
                    if not pool.failed.is_set():  # nothing finished for that long
                        not_sent = run.payments - i
                        log(f"no payment finished in {run.timeout:.0f} s: {not_sent} not sent")
                    break
                pool.submit(f"sending payment {i + 1} of {run.payments}", send, i)
            pool.results()
            if not not_sent:
                run.all_final.wait(run.timeout)
    finally:
        stop.set()
    return time.monotonic() - started, not_sent


def _summary(run: LoadRun, setup_seconds: float, elapsed: float, not_sent: int) -> dict:
    with run.lock:
        finished = dict(run.finished)
        unfinished = [r for r in run.started if r not in finished]
    counts = Counter(status for status, _r, _s in finished.values())
    if unfinished:
        counts["not final (timeout)"] = len(unfinished)
    if not_sent:
        counts["not sent"] = not_sent
    reasons = Counter(f"{status}:{reason}" for status, reason, _s in finished.values() if reason)
    latencies = [s for status, _r, s in finished.values() if status in TERMINAL]
    final = sum(1 for status, _r, _s in finished.values() if status in TERMINAL)
    return {
        "payments": run.payments,
        "customers": run.customers,
        "concurrency": run.concurrency,
        "setupConcurrency": min(setup_concurrency(run.concurrency), run.customers),
        "externalShare": run.external_share,
        "setupSeconds": round(setup_seconds, 2),
        "seconds": round(elapsed, 3),
        "final": final,
        "throughputPerSecond": round(final / elapsed, 1) if elapsed > 0 else None,
        "statuses": dict(sorted(counts.items())),
        "reasons": dict(sorted(reasons.items())),
        "missedByListenersFoundByPolling": run.polled,
        "timeToFinalSeconds": _quantiles(latencies),
        "edgeSeconds": _quantiles(run.edge),
        "pipelineSeconds": _quantiles(run.pipeline),
    }


def render(summary: dict) -> str:
    lines = [
        f"load: {summary['payments']} payments from {summary['customers']} customers, "
        f"at most {summary['concurrency']} in flight"
        + (f", {summary['externalShare']:.0%} to other banks" if summary["externalShare"] else ""),
        f"  setup (onboarding the customers, {summary['setupConcurrency']} at a time): {summary['setupSeconds']:.1f} s",
    ]
    for status, n in summary["statuses"].items():
        lines.append(f"  {status:<20} {n:>6}")
    for reason, n in summary["reasons"].items():
        lines.append(f"    reason {reason:<26} {n:>4}")
    lines.append(
        f"  throughput           {summary['throughputPerSecond']} payments/s "
        f"({summary['final']} final in {summary['seconds']:.2f} s)"
    )
    if summary["missedByListenersFoundByPolling"]:
        lines.append(
            f"  (final status of {summary['missedByListenersFoundByPolling']} found by polling, not listening)"
        )
    t = summary["timeToFinalSeconds"]
    if t["p50"] is not None:
        lines.append(
            f"  time to final status p50 {t['p50']:.3f} s  p95 {t['p95']:.3f} s  "
            f"p99 {t['p99']:.3f} s  max {t['max']:.3f} s"
        )
    for key, label in (("edgeSeconds", "edge (created->requested)"), ("pipelineSeconds", "pipeline (->final)")):
        t = summary[key]
        if t["p50"] is not None:
            lines.append(f"    {label:<26} p50 {t['p50']:.3f} s  p95 {t['p95']:.3f} s  p99 {t['p99']:.3f} s")
    return "\n".join(lines)
