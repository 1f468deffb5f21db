"""Benchmark: payments straight into the pipeline vs. a naive one-transaction-per-payment ledger.

    make bench                       # defaults below; results in artifacts/bench/
    python -m bench.pipeline --payments 20000 --latency-rate 100 --naive-seconds 20

Three measurements in one run, on the same stack and the same machine:

1. throughput: ``--payments`` requests (a realistic mix: internal transfers between
   customers, a share to one hot merchant account, a share to other banks through clearing)
   are published as fast as JetStream takes them; the drain rate of completions between
   10% and 90% done is the sustained end-to-end throughput (requested -> completed).
2. latency: at ``--latency-rate`` payments/s (default: half the throughput just measured,
   so the pipeline is not saturated), p50/p99 of requested -> completed.
3. naive baseline: the same mix posted with one Firestore transaction per payment (read
   both accounts, check funds, write both and the posting) from ``--naive-threads``
   threads for ``--naive-seconds``; the hot account shows what contention does to it.

Writes artifacts/bench/pipeline.json and pipeline.png. Numbers from a noisy shared machine:
compare the ratio, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime as dt
import json
import os
import random
import statistics
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from google.cloud import firestore
from nats.js.api import DeliverPolicy

from devstack import settings as stack_settings
from devstack.stack import Stack
from fjordbank import topology
from fjordbank.adapters import nats_conn
from fjordbank.adapters.documents import AsyncFirestoreDocuments
from fjordbank.adapters.firestore import ACCOUNTS, LEDGER_PAYMENTS, POSTINGS, async_client, sync_client
from fjordbank.config import load_settings
from fjordbank.domain.ledger import Posting
from fjordbank.domain.norway import account_check_digit
from fjordbank.domain.payments import (
    EXTERNAL,
    INTERNAL,
    PaymentEvent,
    PaymentRequested,
    payment_id_for,
    requested_in_app,
)
from fjordbank.runtime.events import encode
from fjordbank.service_layer.ledger import Ledger

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "bench"
EXTERNAL_PAYEE = "15030000002"
FUNDS = 10_000_000  # øre per payer: never the limit in this benchmark


def account_number(prefix: str, n: int, base: int = 0) -> str:
    """The n-th valid account number from ``base`` (each run takes a random base)."""
    for serial in range(base + n * 10, base + n * 10 + 10):
        body = f"{prefix}{serial % 1_000_000:06d}"
        check = account_check_digit(body)
        if check is not None:
            return body + str(check)
    raise ValueError(n)


@dataclass
class Population:
    run: str
    payers: list[tuple[str, str]]  # (uid, account)
    hot: str

    @property
    def owners(self) -> dict[str, str]:
        """account -> its owner: the payers' and the hot merchant's."""
        return {account: uid for uid, account in self.payers} | {self.hot: merchant_uid(self.run)}

    @property
    def uids(self) -> list[str]:
        """Every customer's uid: the payers' and the hot merchant's."""
        return [uid for uid, _ in self.payers] + [merchant_uid(self.run)]

    def mix(self, count: int, rng: random.Random, hot_share: float, external_share: float):
        """(uid, from, to, kind, amount) in a realistic mix."""
        for _ in range(count):
            uid, source = rng.choice(self.payers)
            roll = rng.random()
            if roll < hot_share:
                to, kind = self.hot, INTERNAL
            elif roll < hot_share + external_share:
                to, kind = EXTERNAL_PAYEE, EXTERNAL
            else:
                to = source
                while to == source:
                    to = rng.choice(self.payers)[1]
                kind = INTERNAL
            yield uid, source, to, kind, rng.randint(100, 50_000)


def admin_ledger(db) -> Ledger:
    """The ledger's admin path (accounts, deposits) on the bench's client."""
    return Ledger(AsyncFirestoreDocuments(db))


def merchant_uid(run: str) -> str:
    return f"merchant-{run}"


async def setup_population(db, ledger: Ledger, payers: int, bank_prefix: str) -> Population:
    """Funded accounts through the ledger's own admin path (so the audit stays exact)."""
    run = uuid.uuid4().hex[:6]
    await ledger.ensure_internal_accounts()
    base = random.Random().randrange(0, 1_000_000, 10)
    # numbers no earlier population on this stack took (a bench run makes several)
    candidates = [account_number(bank_prefix, i, base) for i in range(payers * 2 + 20)]
    taken = set()
    for start in range(0, len(candidates), 500):
        refs = [db.collection(ACCOUNTS).document(a) for a in candidates[start : start + 500]]
        taken |= {snap.id async for snap in db.get_all(refs) if snap.exists}
    free = [a for a in dict.fromkeys(candidates) if a not in taken]
    if len(free) < payers + 1:
        raise SystemExit("no room for the bench's accounts at this base; run it again")
    people = [(f"bench-{run}-{i}", free[i]) for i in range(payers)]
    hot = free[payers]
    sem = asyncio.Semaphore(16)

    async def open_one(uid: str, account: str) -> None:
        async with sem:
            await ledger.open_account(account_id=account, owner_uid=uid, name="Bench")

    await asyncio.gather(open_one(merchant_uid(run), hot), *(open_one(uid, acct) for uid, acct in people))
    for start in range(0, len(people), 200):  # the outside world's account: one write per chunk
        chunk = people[start : start + 200]
        await ledger.deposit_many([(f"bench-{acct}", acct, FUNDS) for _uid, acct in chunk])
    return Population(run, people, hot)


def make_payments(pop: Population, count: int, rng: random.Random, hot_share: float, ext_share: float):
    out = []
    for i, (uid, source, to, kind, amount) in enumerate(pop.mix(count, rng, hot_share, ext_share)):
        request_id = f"bench{pop.run}{i:07d}"
        out.append(
            PaymentRequested(
                payment_id=payment_id_for(uid, request_id),
                uid=uid,
                request_id=request_id,
                kind=kind,
                from_account=source,
                to_account=to,
                amount=amount,
                currency="NOK",
                message=None,
                kid=None,
                due_date=dt.date.today().isoformat(),
                body_hash="bench",
                requested_at="",
            )
        )
    return out


@dataclass
class Tracker:
    """Completions on payments.completed / payments.failed, timed by the stream.

    A completion's time is when JetStream stored its event (the message's stream timestamp,
    on the same machine's clock as ``sent``), not when this process got round to it: while
    the bench publishes thousands of payments its own event loop is busy, and timing
    completions by it made them look bunched (seconds without any, then hundreds at once)
    when the pipeline was not. ``seen`` keeps the time this process saw each one, so a run
    shows how far the two differ."""

    sent: dict[str, float] = field(default_factory=dict)
    done: dict[str, tuple[float, str, str]] = field(default_factory=dict)  # pid -> (t, status, to)
    seen: dict[str, float] = field(default_factory=dict)  # pid -> when this process saw it
    event: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0
    # time.monotonic() - time.time(): converts a stream timestamp (wall clock) to monotonic
    offset: float = field(default_factory=lambda: time.monotonic() - time.time())

    async def on_msg(self, msg) -> None:
        now = time.monotonic()
        data = json.loads(msg.data)
        pid = data["payment"]["payment_id"]
        if pid in self.sent and pid not in self.done:
            self.done[pid] = (self.stored_at(msg, now), data["status"], data["payment"]["to_account"])
            self.seen[pid] = now
            if len(self.done) >= self.expected:
                self.event.set()

    def stored_at(self, msg, now: float) -> float:
        """When the stream stored ``msg`` (monotonic), or ``now`` for a message without
        JetStream metadata."""
        try:
            stamp = msg.metadata.timestamp.timestamp()
        except Exception:  # noqa: BLE001 - not a JetStream message: the time it was seen
            return now
        return stamp + self.offset


async def drive(
    stack: Stack,
    payments: list[PaymentRequested],
    *,
    rate: float | None,
    timeout: float,
    on_request: bool = False,
    owners: Mapping[str, str] | None = None,
) -> Tracker:
    """Publish ``payments`` as the edge does (``rate`` per second, or all at once) and
    track their completions. ``on_request``: each has the app's request document (made by
    the caller), and its events say so as the edge's do (fjordbank.domain.payments.ON_REQUEST),
    with an internal payment's payee from ``owners`` (account -> uid) as the edge tells it;
    else the bank started them (no request document: the notifier keeps a view of each)."""
    admin = load_settings({**os.environ, **stack.nats_env("admin")})
    edge = load_settings({**os.environ, **stack.nats_env("edge")})
    watcher = await nats_conn.connect(admin.nats, name="bench-watch")
    nc = await nats_conn.connect(edge.nats, name="bench-edge")
    tracker = Tracker(expected=len(payments))
    watch = watcher.jetstream()
    subs = []
    for subject in (topology.SUBJECT_PAYMENT_COMPLETED, topology.SUBJECT_PAYMENT_FAILED):
        # Ordered consumers (ephemeral, flow-controlled): each message carries its stream
        # timestamp (Tracker). Only events stored from now on.
        sub = await watch.subscribe(
            topology.every_partition(subject),
            cb=tracker.on_msg,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
            pending_msgs_limit=1_000_000,
        )
        subs.append(sub)
    await watcher.flush()
    js = nc.jetstream(publish_async_max_pending=4000)
    start = time.monotonic()
    try:
        for i, p in enumerate(payments):
            if rate:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            tracker.sent[p.payment_id] = time.monotonic()
            event = PaymentEvent(p, "requested")
            if on_request:
                payee = (owners or {}).get(p.to_account) if p.kind == "internal" else None
                event = requested_in_app(event, payee_uid=payee)
            await js.publish_async(event.subject, encode(event), headers={"Nats-Msg-Id": event.msg_id})
        await js.publish_async_completed()
        await asyncio.wait_for(tracker.event.wait(), timeout=timeout)
    except TimeoutError:
        print(f"  timed out with {len(tracker.done)}/{len(payments)} done")
    finally:
        await nc.close()
        for sub in subs:  # the ephemeral consumers deleted now, not when they time out
            await sub.unsubscribe()
        await watcher.close()
    return tracker


def steady_rate(times: list[float], low: float = 0.1, high: float = 0.9) -> tuple[float, float, float]:
    """Completions/s between the low and high fractions of all completions."""
    times = sorted(times)
    if len(times) < 10:
        return 0.0, 0.0, 0.0
    a, b = times[int(len(times) * low)], times[int(len(times) * high) - 1]
    return (int(len(times) * high) - int(len(times) * low)) / max(b - a, 1e-9), a, b


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def naive_baseline(project: str, pop: Population, seconds: float, threads: int, hot_share: float) -> dict:
    """One Firestore transaction per payment (internal transfers only: the ledger part)."""
    db = sync_client(project)
    rng = random.Random(7)
    stop = time.monotonic() + seconds
    lock = threading.Lock()
    stats = {"committed": 0, "failed": 0, "hot_committed": 0, "hot_failed": 0, "latencies": []}

    @firestore.transactional
    def pay(tx, source: str, to: str, amount: int, pid: str) -> None:
        a, b = db.collection(ACCOUNTS).document(source), db.collection(ACCOUNTS).document(to)
        snaps = {s.id: s.to_dict() for s in db.get_all([a, b], transaction=tx)}
        if snaps[source]["balance"] - snaps[source].get("held", 0) < amount:
            raise RuntimeError("insufficient funds")
        posting = Posting.transfer(pid, "transfer", source, to, amount, "NOK")
        for ref, acct, delta in ((a, source, -amount), (b, to, amount)):
            bal = snaps[acct]["balance"] + delta
            tx.update(ref, {"balance": bal, "available": bal - snaps[acct].get("held", 0)})
        tx.create(db.collection(POSTINGS).document(posting.posting_id), posting.to_dict())
        tx.create(
            db.collection(LEDGER_PAYMENTS).document(pid),  # the same record the real ledger keeps
            {
                "paymentId": pid,
                "status": "completed",
                # what the audit reads of a record: without them it is malformed (found in review, 2026-12-07)
                "kind": "internal",
                "fromAccount": source,
                "toAccount": to,
                "amount": amount,
                "currency": "NOK",
                "postingIds": [posting.posting_id],
                "steps": {},
            },
        )

    def worker(seed: int) -> None:
        local = random.Random(seed)
        n = 0
        while time.monotonic() < stop:
            _uid, source, to, _kind, amount = next(pop.mix(1, local, hot_share, 0.0))
            pid = f"naive-{pop.run}-{seed}-{n}"
            n += 1
            t0 = time.monotonic()
            try:
                pay(db.transaction(), source, to, amount, pid)
                ok = True
            except Exception:  # noqa: BLE001 - contention: retried out
                ok = False
            with lock:
                stats["committed" if ok else "failed"] += 1
                if to == pop.hot:
                    stats["hot_committed" if ok else "hot_failed"] += 1
                if ok:
                    stats["latencies"].append(time.monotonic() - t0)

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, [rng.randint(0, 1 << 30) for _ in range(threads)]))
    elapsed = time.monotonic() - t0
    lat = stats.pop("latencies")
    return {
        **stats,
        "seconds": round(elapsed, 2),
        "threads": threads,
        "throughput_per_s": round(stats["committed"] / elapsed, 1),
        "hot_credits_per_s": round(stats["hot_committed"] / elapsed, 1),
        "latency_p50_ms": round(percentile(lat, 0.5) * 1000, 1),
        "latency_p99_ms": round(percentile(lat, 0.99) * 1000, 1),
    }


def plot(path: Path, tracker: Tracker, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = min(tracker.sent.values())
    done = sorted(t - t0 for t, _s, _to in tracker.done.values())
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    buckets: dict[int, int] = {}
    for t in done:
        buckets[int(t)] = buckets.get(int(t), 0) + 1
    xs = sorted(buckets)
    ax1.plot(xs, [buckets[x] for x in xs], label="pipeline completions/s")
    ax1.axhline(result["naive"]["throughput_per_s"], color="red", linestyle="--", label="naive baseline (tx/payment)")
    ax1.set_xlabel("seconds since first publish")
    ax1.set_ylabel("payments/s")
    ax1.set_title(
        f"Throughput: {result['throughput']['sustained_per_s']:.0f}/s sustained, {result['ratio_vs_naive']:.1f}x naive"
    )
    ax1.legend()
    lat = result["latency"]
    ax2.bar(["p50", "p90", "p99"], [lat["p50_ms"], lat["p90_ms"], lat["p99_ms"]])
    ax2.set_ylabel("ms, requested -> completed")
    ax2.set_title(f"Latency at {lat['rate_per_s']}/s offered")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


async def run(args) -> tuple[dict, Tracker]:
    stack = Stack(stack_settings.load(), progress=lambda m: print(m, flush=True))
    for key, value in stack.emulator_hosts().items():
        os.environ[key] = value
    if not all(r.state == "ready" for r in stack.status()):
        raise SystemExit("the stack is not running: start it with `make up` (or make up-detached)")
    stack.jobs_by_hand()
    db = async_client(stack.s.project_id)
    ledger = admin_ledger(db)
    rng = random.Random(args.seed)
    print(f"setting up {args.payers} funded payers and a hot merchant account ...", flush=True)
    pop = await setup_population(db, ledger, args.payers, "9710")

    payments = make_payments(pop, args.payments, rng, args.hot_share, args.external_share)
    latency_payments = make_payments(
        Population(pop.run + "L", pop.payers, pop.hot), args.latency_payments, rng, args.hot_share, args.external_share
    )
    # No app request documents are made first: creating them would fire the edge trigger
    # for each (the edge is not what this measures). The notifier projects every state
    # anyway (paymentViews, the request documents, the accounts' transaction feeds).

    print(f"throughput: publishing {len(payments)} payments as fast as JetStream takes them ...", flush=True)
    t = await drive(stack, payments, rate=None, timeout=args.timeout)
    times = [v[0] for v in t.done.values()]
    sustained, a, b = steady_rate(times)
    hot_times = [v[0] for v in t.done.values() if v[2] == pop.hot and a <= v[0] <= b]
    statuses = [v[1] for v in t.done.values()]
    throughput = {
        "payments": len(payments),
        "completed": statuses.count("completed"),
        "failed": statuses.count("failed"),
        "unfinished": len(payments) - len(t.done),
        "sustained_per_s": round(sustained, 1),
        "hot_account_credits_per_s": round(len(hot_times) / max(b - a, 1e-9), 1),
        "wall_seconds": round(max(times) - min(t.sent.values()), 2) if times else None,
    }
    print(f"  {throughput}", flush=True)

    rate = args.latency_rate or max(10.0, round(sustained / 2))
    print(f"latency: {len(latency_payments)} payments at {rate}/s ...", flush=True)
    lt = await drive(stack, latency_payments, rate=rate, timeout=args.timeout)
    lats = [lt.done[p][0] - lt.sent[p] for p in lt.done]
    latency = {
        "rate_per_s": rate,
        "payments": len(latency_payments),
        "p50_ms": round(percentile(lats, 0.5) * 1000, 1),
        "p90_ms": round(percentile(lats, 0.9) * 1000, 1),
        "p99_ms": round(percentile(lats, 0.99) * 1000, 1),
        "mean_ms": round(statistics.fmean(lats) * 1000, 1) if lats else None,
    }
    print(f"  {latency}", flush=True)

    print(
        f"naive baseline: one transaction per payment, {args.naive_threads} threads, {args.naive_seconds}s ...",
        flush=True,
    )
    naive = await asyncio.to_thread(
        naive_baseline, stack.s.project_id, pop, args.naive_seconds, args.naive_threads, args.hot_share
    )
    print(f"  {naive}", flush=True)

    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.service_layer.audit import audit_ledger

    report = await asyncio.to_thread(audit_ledger, FirestoreDocuments(sync_client(stack.s.project_id)))
    result = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "mix": {"hot_share": args.hot_share, "external_share": args.external_share, "payers": args.payers},
        "throughput": throughput,
        "latency": latency,
        "naive": naive,
        "ratio_vs_naive": round(throughput["sustained_per_s"] / max(naive["throughput_per_s"], 1e-9), 2),
        "audit_ok": report.ok,
        "audit_problems": report.problems[:20],
        "command": "make bench",
    }
    return result, t


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--payments", type=int, default=20_000)
    parser.add_argument("--payers", type=int, default=2_000)
    parser.add_argument("--hot-share", type=float, default=0.3, help="share of payments to the hot merchant")
    parser.add_argument("--external-share", type=float, default=0.1, help="share of payments to other banks")
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=0,
        help="offered payments/s for the latency run; 0 = half the measured throughput",
    )
    parser.add_argument("--latency-payments", type=int, default=3_000)
    parser.add_argument("--naive-seconds", type=float, default=20)
    parser.add_argument("--naive-threads", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    result, tracker = asyncio.run(run(args))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "pipeline.json").write_text(json.dumps(result, indent=2))
    plot(ARTIFACTS / "pipeline.png", tracker, result)
    print(json.dumps(result, indent=2))
    print(f"wrote {ARTIFACTS / 'pipeline.json'} and {ARTIFACTS / 'pipeline.png'}")


if __name__ == "__main__":
    main()
