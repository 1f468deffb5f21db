"""`make bench`: the whole payment path and the platform's own limits, in one run.

    make bench                                   # needs `make up`; ~20 min on 2 cores
    python -m bench.run --payments 20000 --scale-payments 4000

Every figure is measured on this machine in this run, so the goals are ratios between
them (these machines are noisy; absolute figures move from run to run):

1. calibration (bench/calibrate.py): the emulator's raw capacity (documents/s in batched
   commits) and the smallest Firestore trigger's rate and times, alone and at the
   through-app run's concurrency;
   each path timed at a rate (the no-op trigger, the app's) first runs ``--warmup`` times
   untimed, reported beside it: the Functions emulator starts a function's workers on its
   first invocations, and the first `bankctl load` after `make up` was the slowest of four
   on one stack whatever the code (5.1 payments/s against 6.0-6.6; docs/capacity.md,
   section 7, thirteenth run), so a rate measured cold says more about the start than the path;
2. through the app's surface: `bankctl load` (customers onboarded through the callables,
   payment requests created as the app creates them, each followed to its final status):
   payments/s and time to final, split edge (created -> requested) and pipeline; and the
   payment trigger's own time (the Functions emulator's "Finished in", as the issue measures
   it: its worker's run, not its wait for a worker) against the no-op trigger's, fired now
   and then during the same phase (calibrate.noop_probe) so that both meet the same load:
   each commits a document a client listens to, which the emulator makes wait behind the
   other listened-to commits of the phase (the notifier's status writes among them);
3. the pipeline alone: ``--payments`` published as the edge publishes them; sustained
   payments/s, completions per second over time, the last tenth's rate against the first
   tenth's, the longest run of seconds with no completion while work was pending; then
   the latency at half that rate against a single payment's on the idle stack;
4. the same load with K=1 and K=3 instances of ledger and screening (transaction retries,
   the audit, and with K=3 the time until a killed ledger's partitions are owned again);
5. a hot merchant taking most of the payments;
6. the naive baseline (one Firestore transaction per payment: bench/pipeline.py);
7. Firestore documents per payment kind and step (bench/docops.py).

Writes artifacts/bench/bench.json and bench.png (copy them to docs/benchmarks/ to keep).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import requests

from bench import calibrate, docops
from bench.chaos.checks import wait_drained
from bench.pipeline import (
    Population,
    Tracker,
    admin_ledger,
    drive,
    make_payments,
    naive_baseline,
    percentile,
    setup_population,
    steady_rate,
)
from devstack import settings as stack_settings
from devstack.stack import Stack
from fjordbank import topology
from fjordbank.adapters.firestore import async_client, sync_client

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "bench"
SCALED = ("ledger", "screening")
ATTEMPTS = re.compile(
    r"^fjb_firestore_transaction_attempts_total"
    r'\{operation="(?P<op>[^"]+)",result="(?P<result>[^"]+)"\} (?P<n>[0-9.e+]+)$',
    re.M,
)
OWNED = re.compile(r'^fjb_partitions_owned\{service="(?P<service>[^"]+)"\} (?P<n>[0-9.e+]+)$', re.M)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- the pipeline's figures from one drive ------------------------------------------------------
def series(tracker: Tracker, done_at: list[float] | None = None) -> tuple[list[int], list[int]]:
    """Completions in each second since the first publish, and the payments pending at its
    end; ``done_at``: other completion times than the stream's (the times they were seen)."""
    t0 = min(tracker.sent.values())
    done_at = done_at if done_at is not None else [t for t, _s, _to in tracker.done.values()]
    done = sorted(t - t0 for t in done_at)
    sent = sorted(t - t0 for t in tracker.sent.values())
    seconds = int(done[-1]) + 1 if done else 0
    per_s = [0] * seconds
    for t in done:
        per_s[max(int(t), 0)] += 1
    pending, i, j = [], 0, 0
    for s in range(seconds):
        while i < len(sent) and sent[i] < s + 1:
            i += 1
        while j < len(done) and done[j] < s + 1:
            j += 1
        pending.append(i - j)
    return per_s, pending


def longest_zero_run(per_s: list[int], pending: list[int]) -> int:
    """The longest run of whole seconds with no completion while payments were pending."""
    longest = run = 0
    for count, waiting in zip(per_s, pending, strict=True):
        run = run + 1 if (count == 0 and waiting > 0) else 0
        longest = max(longest, run)
    return longest


def decay(tracker: Tracker) -> dict:
    """The first and last tenth of the completions (by order): their rates, and the longest
    run of whole seconds with no completion while payments were pending: by the stream's
    time of each completion (Tracker), and, to show what the bench's own busy loop did to
    it, by the time the bench saw each."""
    per_s, pending = series(tracker)
    seen_per_s, seen_pending = series(tracker, list(tracker.seen.values()))
    times = sorted(t for t, _s, _to in tracker.done.values())
    n = len(times)
    tenth = max(n // 10, 1)

    def rate(a: int, b: int) -> float:
        return round((b - a - 1) / max(times[b - 1] - times[a], 1e-9), 1) if b - a > 1 else 0.0  # intervals / span

    first, last = rate(0, tenth), rate(n - tenth, n)
    return {
        "first_tenth_per_s": first,
        "last_tenth_per_s": last,
        "last_over_first": round(last / first, 2) if first else None,
        "longest_zero_completion_run_s": longest_zero_run(per_s, pending),
        "longest_zero_completion_run_as_seen_s": longest_zero_run(seen_per_s, seen_pending),
        "completions_per_s": per_s,
        "completions_per_s_as_seen": seen_per_s,
    }


def throughput_of(tracker: Tracker, hot: str) -> dict:
    times = [v[0] for v in tracker.done.values()]
    sustained, a, b = steady_rate(times)
    hot_times = [v[0] for v in tracker.done.values() if v[2] == hot and a <= v[0] <= b]
    statuses = [v[1] for v in tracker.done.values()]
    return {
        "payments": len(tracker.sent),
        "completed": statuses.count("completed"),
        "failed": statuses.count("failed"),
        "unfinished": len(tracker.sent) - len(tracker.done),
        "sustained_per_s": round(sustained, 1),
        "hot_account_credits_per_s": round(len(hot_times) / max(b - a, 1e-9), 1),
    }


def latencies(tracker: Tracker) -> dict:
    lats = [tracker.done[p][0] - tracker.sent[p] for p in tracker.done]
    return {
        "payments": len(tracker.sent),
        "p50_ms": round(percentile(lats, 0.5) * 1000, 1),
        "p90_ms": round(percentile(lats, 0.9) * 1000, 1),
        "p99_ms": round(percentile(lats, 0.99) * 1000, 1),
    }


# ---- instances ------------------------------------------------------------------------------------
def metrics(stack: Stack, service: str) -> dict[str, str]:
    out = {}
    for instance, port in stack.s.service_ports.items():
        if stack_settings.service_of(instance) != service:
            continue
        try:
            out[instance] = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except requests.RequestException:
            continue
    return out


def contention(stack: Stack) -> int:
    """Ledger transaction attempts retried or aborted, all instances."""
    return sum(
        int(float(m["n"]))
        for text in metrics(stack, "ledger").values()
        for m in ATTEMPTS.finditer(text)
        if m["op"] == "ledger_post_batch" and m["result"] in ("retried", "aborted")
    )


def owned(stack: Stack, service: str) -> dict[str, int]:
    return {
        instance: sum(int(float(m["n"])) for m in OWNED.finditer(text))
        for instance, text in metrics(stack, service).items()
    }


def scale(k: int) -> Stack:
    """Run exactly ``k`` instances of ledger and screening (starting or stopping the extra
    ones; the partition leases move to the instances there are)."""
    env = {**os.environ, **{f"FJB_REPLICAS_{s.upper()}": str(k) for s in SCALED}}
    stack = Stack(stack_settings.load(env), progress=lambda _m: None)
    # The extra instances' ports follow from the replica counts (devstack/settings.py), so
    # every extra instance is stopped and the wanted ones started on their ports.
    for path in stack.s.run_dir.glob("*.pid"):
        name = path.stem
        if stack_settings.service_of(name) in SCALED and name not in SCALED:
            stack.sup.stop(name)
    for comp in stack.service_components():
        if stack_settings.service_of(comp.name) in SCALED and stack.sup.pid(comp.name) is None:
            stack._start(comp)
    stack_settings.record_replicas(stack.s)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # every partition owned, by the instances there are
        counts = [owned(stack, s) for s in SCALED]
        if all(len(c) == k and sum(c.values()) == topology.PAYMENT_PARTITIONS for c in counts):
            break
        time.sleep(0.5)
    return stack


def ownership_move(stack: Stack, victim: str, timeout: float = 60) -> float | None:
    """Kill ``victim`` (SIGKILL) and return the seconds until the other instances own every
    partition again."""
    pid = stack.sup.pid(victim)
    if pid is None:
        return None
    os.kill(pid, 9)
    killed = time.monotonic()
    service = stack_settings.service_of(victim)
    while time.monotonic() - killed < timeout:
        counts = owned(stack, service)
        counts.pop(victim, None)
        if sum(counts.values()) == topology.PAYMENT_PARTITIONS:
            return round(time.monotonic() - killed, 2)
        time.sleep(0.2)
    return None


# ---- the run --------------------------------------------------------------------------------------
async def pipeline_phases(stack: Stack, args, result: dict) -> dict[str, Tracker]:
    db = async_client(stack.s.project_id)
    rng = random.Random(args.seed)
    log(f"pipeline: {args.payers} funded payers and a hot merchant ...")
    pop = await setup_population(db, admin_ledger(db), args.payers, "9710")

    async def quiet(s: Stack = stack) -> float:
        """Wait until every consumer (the notifier's and insights' too) has drained what
        the last phase left, so one phase's backlog never slows the next; its seconds."""
        started = time.monotonic()
        await asyncio.to_thread(wait_drained, s, 600)
        return round(time.monotonic() - started, 1)

    def batch(tag: str, n: int, hot_share: float = args.hot_share) -> list:
        return make_payments(Population(pop.run + tag, pop.payers, pop.hot), n, rng, hot_share, args.external_share)

    await quiet()
    log("pipeline: single payments on the idle stack ...")
    idle = await drive(stack, batch("I", 20, 0.0), rate=2.0, timeout=120)
    result["single_payment"] = latencies(idle)

    log(f"pipeline: {args.payments} payments as fast as JetStream takes them ...")
    main = await drive(stack, batch("T", args.payments), rate=None, timeout=args.timeout)
    result["pipeline"] = {**throughput_of(main, pop.hot), "decay": decay(main), "drained_after_s": await quiet()}
    log(f"  {json.dumps({k: v for k, v in result['pipeline'].items() if k != 'decay'})}")

    rate = max(5.0, round(result["pipeline"]["sustained_per_s"] / 2))
    log(f"latency: {args.latency_payments} payments at {rate}/s ...")
    lt = await drive(stack, batch("L", args.latency_payments), rate=rate, timeout=args.timeout)
    result["latency"] = {"rate_per_s": rate, **latencies(lt)}
    await quiet()

    log(f"hot merchant: {args.scale_payments} payments, {args.hot_heavy_share:.0%} to one account ...")
    hot = await drive(stack, batch("H", args.scale_payments, args.hot_heavy_share), rate=None, timeout=args.timeout)
    result["hot_merchant"] = {"hot_share": args.hot_heavy_share, **throughput_of(hot, pop.hot)}
    await quiet()

    scaled = {}
    for k in (1, 3):
        log(f"K={k}: {args.scale_payments} payments with {k} ledger and {k} screening instance(s) ...")
        s = await asyncio.to_thread(scale, k)
        before = contention(s)
        t = await drive(s, batch(f"K{k}", args.scale_payments), rate=None, timeout=args.timeout)
        scaled[k] = {**throughput_of(t, pop.hot), "ledger_commits_retried_or_aborted": contention(s) - before}
        if k == 3:
            scaled[k]["ownership_moved_s"] = await asyncio.to_thread(ownership_move, s, "ledger-3")
        log(f"  {json.dumps(scaled[k])}")
        await quiet(s)
    result["scaled"] = scaled
    s = await asyncio.to_thread(scale, args.replicas)  # as it was
    log(f"naive baseline: {args.naive_seconds} s ...")
    result["naive"] = await asyncio.to_thread(
        naive_baseline, s.s.project_id, pop, args.naive_seconds, args.naive_threads, args.hot_share
    )
    return {"main": main}


def through_app(args, stack: Stack) -> dict:
    """`bankctl load`, with the no-op trigger probing the Functions emulator meanwhile: the
    payment trigger's own time (``ownTimeMs``, the emulator's "Finished in") against a no-op's
    in the same conditions."""

    def load(payments: int) -> list[str]:
        cmd = [sys.executable, "-m", "bankctl", "load", "-n", str(payments), "-m", str(args.app_customers)]
        return [*cmd, "-c", str(args.concurrency), "--json", "--no-audit"]

    log(f"through the app: bankctl load -n {args.app_payments} -c {args.concurrency} ...")
    cmd = load(args.app_payments)
    warmup = None
    if args.warmup:
        out = subprocess.run(load(args.warmup), capture_output=True, text=True, timeout=1800)  # noqa: S603 - our own CLI
        if out.returncode != 0:
            raise SystemExit(f"bankctl load (warm-up) failed: {out.stderr[-2000:]}")
        done = json.loads(out.stdout)
        warmup = {k: done.get(k) for k in ("payments", "final", "seconds", "throughputPerSecond")}
    with calibrate.FunctionTimes(calibrate.emulator_log(stack)) as times, calibrate.noop_probe(stack.s.project_id):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)  # noqa: S603 - our own CLI
    if out.returncode != 0:
        raise SystemExit(f"bankctl load failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout)
    result["warmup"] = warmup
    result["ownTimeMs"] = {
        "edge": times.of(calibrate.PAYMENT_FUNCTION),
        "noopProbe": times.of(calibrate.NOOP_FUNCTION),
    }
    return result


def goals(r: dict) -> dict:
    """Each goal of the issue as measured (value, goal, met)."""
    noop, app, cal = r["calibration"]["noop_trigger"], r["through_app"], r["calibration"]
    own = app["ownTimeMs"]  # the emulator's "Finished in", both in the through-app phase
    pipe, lat, one = r["pipeline"], r["latency"], r["single_payment"]
    internal = r["docops"]["kinds"]["internal"]["total"]["documents"]
    mixed = (
        internal * (1 - r["mix"]["external_share"])
        + r["docops"]["kinds"].get("external", {}).get("total", {}).get("documents", internal)
        * r["mix"]["external_share"]
    )
    k1, k3 = r["scaled"][1], r["scaled"][3]

    def goal(value, target, met) -> dict:
        return {"value": value, "goal": target, "met": bool(met)}

    return {
        "app_rate_over_noop_trigger": goal(
            round(app["throughputPerSecond"] / noop["rate_per_s"], 2),
            ">= 0.7",
            app["throughputPerSecond"] >= 0.7 * noop["rate_per_s"],
        ),
        "edge_own_time_over_noop_own_time": goal(
            round(own["edge"]["p50_ms"] / own["noopProbe"]["p50_ms"], 2),
            "<= 2",
            own["edge"]["p50_ms"] <= 2 * own["noopProbe"]["p50_ms"],
        ),
        "pipeline_documents_over_raw_capacity": goal(
            round(pipe["sustained_per_s"] * mixed / cal["raw"]["documents_per_s"], 2),
            ">= 0.5",
            pipe["sustained_per_s"] * mixed >= 0.5 * cal["raw"]["documents_per_s"],
        ),
        "latency_p50_over_single_payment_p50": goal(
            round(lat["p50_ms"] / one["p50_ms"], 2), "<= 2", lat["p50_ms"] <= 2 * one["p50_ms"]
        ),
        "latency_p99_over_p50": goal(
            round(lat["p99_ms"] / lat["p50_ms"], 2), "<= 4", lat["p99_ms"] <= 4 * lat["p50_ms"]
        ),
        "last_tenth_over_first_tenth": goal(
            pipe["decay"]["last_over_first"], ">= 0.8", (pipe["decay"]["last_over_first"] or 0) >= 0.8
        ),
        "longest_zero_completion_run_s": goal(
            pipe["decay"]["longest_zero_completion_run_s"], "< 2", pipe["decay"]["longest_zero_completion_run_s"] < 2
        ),
        "k3_contended_commits": goal(
            k3["ledger_commits_retried_or_aborted"], "0", k3["ledger_commits_retried_or_aborted"] == 0
        ),
        "k3_over_k1_throughput": goal(
            round(k3["sustained_per_s"] / max(k1["sustained_per_s"], 1e-9), 2),
            ">= 1",
            k3["sustained_per_s"] >= k1["sustained_per_s"],
        ),
        "k3_ownership_moved_s": goal(k3.get("ownership_moved_s"), "<= 10", (k3.get("ownership_moved_s") or 99) <= 10),
        "pipeline_over_naive": goal(
            round(pipe["sustained_per_s"] / max(r["naive"]["throughput_per_s"], 1e-9), 1),
            ">= 10",
            pipe["sustained_per_s"] >= 10 * r["naive"]["throughput_per_s"],
        ),
        "hot_merchant_over_pipeline_rate": goal(
            round(r["hot_merchant"]["hot_account_credits_per_s"] / max(pipe["sustained_per_s"], 1e-9), 2),
            ">= 0.5",
            r["hot_merchant"]["hot_account_credits_per_s"] >= 0.5 * pipe["sustained_per_s"],
        ),
        "internal_documents_per_payment": goal(internal, "<= 12", internal <= 12),
        "external_documents_per_payment": goal(
            r["docops"]["kinds"].get("external", {}).get("total", {}).get("documents"),
            "<= 20",
            r["docops"]["kinds"].get("external", {}).get("total", {}).get("documents", 99) <= 20,
        ),
        "edge_round_trips": goal(
            r["docops"]["kinds"]["internal"]["per_step"]["edge"]["calls"],
            "<= 3",
            r["docops"]["kinds"]["internal"]["per_step"]["edge"]["calls"] <= 3,
        ),
    }


def figures(r: dict) -> dict:
    """Ratios reported beside the goals, to read them by: the edge against the no-op in the
    other ways it can be measured (neither is the issue's "own time")."""
    noop, app = r["calibration"]["noop_trigger"], r["through_app"]
    return {
        # created -> status, each in its own phase: mostly the wait for a free worker, which
        # follows the emulator's pace in that phase (it swung 147 -> 818 ms between runs)
        "edge_created_to_requested_over_noop_created_to_seen": round(
            app["edgeSeconds"]["p50"] * 1000 / noop["created_to_seen_p50_ms"], 2
        ),
        # own times, but the no-op's in the calibration phase: no payments in the emulator's
        # write queue then, so its one commit waited for none
        "edge_own_time_over_calibration_noop_own_time": round(
            app["ownTimeMs"]["edge"]["p50_ms"] / noop["finished_in"]["p50_ms"], 2
        ),
    }


def plot(path: Path, r: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    ax = axes[0][0]
    per_s = r["pipeline"]["decay"]["completions_per_s"]
    ax.plot(range(len(per_s)), per_s, label="pipeline completions/s")
    ax.axhline(r["naive"]["throughput_per_s"], color="red", linestyle="--", label="naive (tx per payment)")
    ax.set_xlabel("seconds since the first publish")
    ax.set_title(
        f"{r['pipeline']['payments']} payments: {r['pipeline']['sustained_per_s']}/s sustained, "
        f"last/first tenth {r['pipeline']['decay']['last_over_first']}"
    )
    ax.legend()
    ax = axes[0][1]
    names = ["no-op trigger", "through app", "pipeline K=1", f"pipeline K={r['replicas']}", "pipeline K=3", "naive"]
    values = [
        r["calibration"]["noop_trigger"]["rate_per_s"],
        r["through_app"]["throughputPerSecond"],
        r["scaled"][1]["sustained_per_s"],
        r["pipeline"]["sustained_per_s"],
        r["scaled"][3]["sustained_per_s"],
        r["naive"]["throughput_per_s"],
    ]
    ax.bar(names, values)
    ax.set_ylabel("payments (triggers) / s")
    ax.set_title("rates in this run")
    ax.tick_params(axis="x", rotation=20)
    docops.draw_steps(axes[1][0], r["docops"]["kinds"])
    ax = axes[1][1]
    g = r["goals"]
    ax.axis("off")
    lines = [f"{'met ' if v['met'] else 'MISS'}  {k}: {v['value']} (goal {v['goal']})" for k, v in g.items()]
    lines += ["", "beside them:"] + [f"      {k}: {v}" for k, v in r.get("figures", {}).items()]
    ax.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=8)
    ax.set_title("goals (ratios within this run)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--payments", type=int, default=20_000, help="the pipeline's main (no-decay) run")
    parser.add_argument("--payers", type=int, default=2_000)
    parser.add_argument("--hot-share", type=float, default=0.3)
    parser.add_argument("--hot-heavy-share", type=float, default=0.6)
    parser.add_argument("--external-share", type=float, default=0.1)
    parser.add_argument("--latency-payments", type=int, default=2_000)
    parser.add_argument("--scale-payments", type=int, default=4_000)
    parser.add_argument("--app-payments", type=int, default=300)
    parser.add_argument("--app-customers", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=16, help="through the app, and the no-op trigger's")
    parser.add_argument(
        "--warmup", type=int, default=32, help="untimed runs of the no-op trigger and payments through the app first"
    )
    parser.add_argument("--docops-payments", type=int, default=200)
    parser.add_argument("--naive-seconds", type=float, default=20)
    parser.add_argument("--naive-threads", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=ARTIFACTS)
    args = parser.parse_args(argv)
    stack = Stack(stack_settings.load(), progress=lambda _m: None)
    if not all(r.state == "ready" for r in stack.status()):
        raise SystemExit("the stack is not running: start it with `make up` (or make up-detached)")
    stack.jobs_by_hand()
    for key, value in stack.emulator_hosts().items():
        os.environ[key] = value
    args.replicas = max(1, sum(1 for n in stack.s.service_ports if stack_settings.service_of(n) == "ledger"))
    result: dict = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "command": "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "replicas": args.replicas,
        "mix": {"hot_share": args.hot_share, "external_share": args.external_share, "payers": args.payers},
    }
    args.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every phase: a run that fails late keeps what it measured
        (args.out / "bench.json").write_text(json.dumps(result, indent=2, default=str))

    def phase(name: str, measure) -> None:
        try:
            result[name] = measure()
        except Exception as exc:  # noqa: BLE001 - one phase failing must not lose the others
            log(f"{name} failed: {exc!r}")
            result[name] = {"error": repr(exc)}
        save()

    log("calibration: raw capacity and the smallest trigger ...")
    phase(
        "calibration",
        lambda: {
            "raw": calibrate.raw_capacity(stack.s.project_id),
            "noop_warmup": (
                calibrate.noop_trigger(stack.s.project_id, count=args.warmup, concurrency=args.concurrency)
                if args.warmup
                else None
            ),
            "noop_trigger": calibrate.noop_trigger_timed(stack, concurrency=args.concurrency),
            "noop_trigger_alone": calibrate.noop_trigger_timed(stack, count=20, concurrency=1),
        },
    )
    phase("through_app", lambda: through_app(args, stack))
    # Before the pipeline's phases: their tens of thousands of payments queue as many pushes,
    # which keep the Functions emulator (and so the callables card issuing needs) busy for
    # many minutes after the pipeline itself has finished.
    phase("docops", lambda: docops.measure(stack, ["internal", "external", "card"], args.docops_payments))

    def pipeline() -> dict:
        asyncio.run(pipeline_phases(stack, args, result))
        return {"done": True}

    phase("pipeline_phases", pipeline)

    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.service_layer.audit import audit_ledger

    report = audit_ledger(FirestoreDocuments(sync_client(stack.s.project_id)))
    result["audit"] = {"ok": report.ok, "problems": report.problems[:20]}
    try:
        result["goals"] = goals(result)
        result["figures"] = figures(result)
    except (KeyError, TypeError, ZeroDivisionError) as exc:
        result["goals"] = result.get("goals", {})
        log(f"goals not computed (a phase failed): {exc!r}")
    save()
    try:
        plot(args.out / "bench.png", result)
    except (KeyError, TypeError, ValueError) as exc:
        log(f"no plot (a phase failed): {exc!r}")
    for name, g in result["goals"].items():
        print(f"{'met ' if g['met'] else 'MISS'}  {name}: {g['value']} (goal {g['goal']})")
    for name, value in result.get("figures", {}).items():
        print(f"      {name}: {value}")
    print(f"audit: {'ok' if report.ok else report.problems[:5]}")
    print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.png'}")
    failed = [name for name, value in result.items() if isinstance(value, dict) and "error" in value]
    if failed:
        print(f"phases that failed: {', '.join(failed)}")
    return 0 if report.ok and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
