"""Chaos: payments through the app's surface while seeded faults hit the consumer services
and the NATS cluster, then every promise checked.

    make chaos                                  # CHAOS_ARGS="--seed 7 --minutes 10"
    python -m bench.chaos --seed 1 --minutes 2  # the scaled-down run `make test` makes

The load is `bankctl load` batches run in this process (customers onboarded through the
real path, payments written as the app writes them, a share to other banks through
clearing), one after the other until the time is up. Meanwhile a fault every few seconds,
drawn from the seed (the same seed gives the same faults at the same offsets):

- ``kill``: SIGKILL of one consumer service, or two at once; restarted after 1-6 s
- ``stop``: SIGSTOP of a consumer service (a hung process), SIGCONT after 3-8 s
- ``nats-kill``: SIGKILL of one NATS node, leader or not, restarted after 3-15 s
- ``nats-stop``: SIGSTOP of one NATS node (a hung server), SIGCONT after 2-6 s

Never two NATS nodes at once: each fault ends before the next starts. Not here yet (issue
#17 lists them): injected Firestore errors and publish timeouts, the clearing channel down,
a counterparty answering twice, the scheduler's clock across a month end, K instances.

Afterwards, with every process running again, it checks (each failed check is a finding):
every payment final, the ledger audit green, the dead-letter stream unchanged, every
consumer drained (nothing pending, nothing unacknowledged), every component ready, process
counts and memory bounded (bench.soak's verdict), and time to final p99 within
``--max-p99`` seconds (0: report only). Writes artifacts/bench/chaos.json and chaos.png
(completions per second with the faults over time); exit 1 on any finding.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.soak import loaded_functions, sample, verdict
from devstack import settings as stack_settings
from devstack.stack import Stack
from devstack.supervisor import marked_pids
from fjordbank import topology

OUT = Path("artifacts/bench")
KINDS = {"kill": 4, "stop": 2, "nats-kill": 2, "nats-stop": 1}  # relative weights
NOT_FINAL = ("not final (timeout)", "not sent")


@dataclass
class Fault:
    kind: str
    targets: list[str]
    start: float  # seconds from the run's start
    seconds: float  # how long the fault lasts
    end: float | None = None
    error: str | None = None


@dataclass
class Plan:
    """The faults of one seed: what, on which component, after which pause, for how long."""

    rng: random.Random
    consumers: list[str]
    nats: list[str]
    gap: tuple[float, float]

    def next(self) -> tuple[float, str, list[str], float]:
        kind = self.rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
        pause = self.rng.uniform(*self.gap)
        if kind == "kill":
            targets = self.rng.sample(self.consumers, self.rng.choice([1, 1, 2]))
            return pause, kind, targets, self.rng.uniform(1, 6)
        if kind == "stop":
            return pause, kind, [self.rng.choice(self.consumers)], self.rng.uniform(3, 8)
        if kind == "nats-kill":
            return pause, kind, [self.rng.choice(self.nats)], self.rng.uniform(3, 15)
        return pause, kind, [self.rng.choice(self.nats)], self.rng.uniform(2, 6)


@dataclass
class Run:
    started: float = field(default_factory=time.time)
    faults: list[Fault] = field(default_factory=list)
    batches: list[dict] = field(default_factory=list)
    completions: list[float] = field(default_factory=list)  # wall-clock time of each final status
    latencies: list[float] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    current: object | None = None  # the LoadRun in hand, for completions per second
    lock: threading.Lock = field(default_factory=threading.Lock)

    def done(self) -> int:
        """Payments final so far, the batch in hand's included."""
        with self.lock:
            current = len(self.current.finished) if self.current is not None else 0  # type: ignore[attr-defined]
            return len(self.latencies) + current


def _signal_component(stack: Stack, name: str, sig: int) -> None:
    for pid in marked_pids(stack.sup.marker(name)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def inject(stack: Stack, fault: Fault, stop: threading.Event) -> None:
    """Apply one fault and undo it after its time (also when the run is stopping)."""
    try:
        if fault.kind in ("kill", "nats-kill"):
            for name in fault.targets:
                stack.sup.kill(name)
            stop.wait(fault.seconds)
            for name in fault.targets:
                stack.restart(name)
        else:
            for name in fault.targets:
                _signal_component(stack, name, signal.SIGSTOP)
            try:
                stop.wait(fault.seconds)
            finally:
                for name in fault.targets:
                    _signal_component(stack, name, signal.SIGCONT)
    except Exception as exc:  # noqa: BLE001 - a fault that could not be undone is a finding
        fault.error = f"{type(exc).__name__}: {exc}"


def run_faults(stack: Stack, plan: Plan, run: Run, stop: threading.Event) -> None:
    while not stop.is_set():
        pause, kind, targets, seconds = plan.next()
        if stop.wait(pause):
            return
        fault = Fault(kind, targets, round(time.time() - run.started, 2), round(seconds, 2))
        print(f"chaos: +{fault.start:6.1f}s {kind} {', '.join(targets)} for {seconds:.1f}s", flush=True)
        with run.lock:
            run.faults.append(fault)
        inject(stack, fault, stop)
        fault.end = round(time.time() - run.started, 2)


def run_load(bank, run: Run, stop: threading.Event, batch: dict) -> None:
    """bankctl load batches until ``stop``; every final status's time kept."""
    from bankctl.load import LoadRun
    from bankctl.load import run_load as load_batch

    while not stop.is_set():
        lr = LoadRun(
            payments=batch["payments"],
            customers=batch["customers"],
            concurrency=batch["concurrency"],
            max_amount=50_000,
            external_share=batch["external"] / 100,
            timeout=batch["timeout"],
        )
        started = time.time()
        with run.lock:
            run.current = lr
        try:
            summary = load_batch(bank, lr, log=lambda _m: None)
            error = None
        except Exception as exc:  # noqa: BLE001 - kept as the batch's result, judged below
            summary, error = {}, f"{type(exc).__name__}: {exc}"
        with lr.lock:
            finished = list(lr.finished.values())
        with run.lock:
            run.current = None
            run.latencies.extend(s for _status, _r, s in finished)
            run.batches.append(
                {
                    "started": round(started - run.started, 1),
                    "seconds": round(time.time() - started, 1),
                    "statuses": summary.get("statuses", {}),
                    "error": error,
                }
            )
        print(f"chaos: batch {len(run.batches)}: {summary.get('statuses') or error}", flush=True)


def count_completions(run: Run, stop: threading.Event) -> None:
    """Payments final so far, once a second (completions per second for the plot)."""
    while not stop.wait(1.0):
        run.completions.append(run.done())


async def _nats_state(stack: Stack) -> dict:
    """Per consumer: pending and unacknowledged; the DLQ stream's message count."""
    from fjordbank.adapters import nats_conn
    from fjordbank.config import load_settings

    settings = load_settings({**os.environ, **stack.nats_env("admin")})
    nc = await nats_conn.connect(settings.nats, name="chaos-check", max_reconnect_attempts=3)
    try:
        js = nc.jetstream()
        consumers = {}
        for spec in topology.CONSUMERS:
            info = await js.consumer_info(spec.stream, spec.durable)
            consumers[spec.durable] = {"pending": info.num_pending, "ack_pending": info.num_ack_pending}
        dlq = (await js.stream_info(topology.STREAM_DLQ)).state.messages
        return {"consumers": consumers, "dlq": dlq}
    finally:
        await nc.close()


def nats_state(stack: Stack) -> dict:
    return asyncio.run(_nats_state(stack))


def wait_drained(stack: Stack, deadline_s: float) -> dict:
    end = time.monotonic() + deadline_s
    while True:
        state = nats_state(stack)
        busy = {k: v for k, v in state["consumers"].items() if v["pending"] or v["ack_pending"]}
        if not busy or time.monotonic() > end:
            return state
        time.sleep(1)


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def checks(run: Run, *, before: dict, after: dict, audit, stack: Stack, args, max_workers: int) -> list[str]:
    findings = []
    for b in run.batches:
        if b["error"]:
            findings.append(f"load batch at +{b['started']}s failed: {b['error']}")
        bad = {k: v for k, v in b["statuses"].items() if k in NOT_FINAL}
        if bad:
            findings.append(f"load batch at +{b['started']}s: payments not final: {bad}")
    if not run.latencies:
        findings.append("no payment finished")
    if not audit.ok:
        findings.append(f"the ledger audit found {len(audit.problems)} problem(s), e.g. {audit.problems[:2]}")
    if after["dlq"] != before["dlq"]:
        findings.append(f"the dead-letter stream grew from {before['dlq']} to {after['dlq']} messages")
    busy = {k: v for k, v in after["consumers"].items() if v["pending"] or v["ack_pending"]}
    if busy:
        findings.append(f"consumers not drained: {busy}")
    not_ready = [f"{r.component} ({r.state})" for r in stack.status() if r.state != "ready"]
    if not_ready:
        findings.append(f"components not ready afterwards: {', '.join(not_ready)}")
    for fault in run.faults:
        if fault.error:
            findings.append(f"{fault.kind} {fault.targets} at +{fault.start}s: {fault.error}")
    # processes and memory (bench.soak's verdict): the workers' bound and memory growth;
    # a killed component's restart changes its process count for a moment, so not that
    functions = loaded_functions(stack.sup.log_file("emulators"))
    findings += [
        f
        for f in verdict(run.samples, max_workers=max_workers, functions=functions, max_growth=0.5)
        if "processes grew" not in f
    ]
    p99 = quantile(run.latencies, 0.99)
    if args.max_p99 and p99 is not None and p99 > args.max_p99:
        findings.append(f"time to final p99 {p99}s is above {args.max_p99}s")
    return findings


def plot(run: Run, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.5))
    per_second = [b - a for a, b in zip(run.completions, run.completions[1:], strict=False)]
    ax.plot(range(1, len(per_second) + 1), per_second, lw=0.8, color="tab:blue", label="payments final per second")
    colours = {"kill": "tab:red", "stop": "tab:orange", "nats-kill": "tab:purple", "nats-stop": "tab:brown"}
    for f in run.faults:
        ax.axvspan(f.start, f.end or f.start + f.seconds, color=colours[f.kind], alpha=0.2)
        ax.text(f.start, ax.get_ylim()[1] * 0.95, f"{f.kind}\n{','.join(f.targets)}", fontsize=6, va="top")
    ax.set_xlabel("seconds")
    ax.set_ylabel("payments final per second")
    ax.set_title(
        "Chaos: completions per second; shaded: faults (red kill, orange stop, purple NATS kill, brown NATS stop)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument(
        "--gap",
        type=float,
        nargs=2,
        default=(4.0, 12.0),
        metavar=("MIN", "MAX"),
        help="seconds between one fault's end and the next one's start",
    )
    parser.add_argument("--payments", type=int, default=120, help="payments per load batch")
    parser.add_argument("--customers", type=int, default=12, help="new customers per load batch")
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--external", type=int, default=40, help="percent of payments to other banks")
    parser.add_argument("--max-p99", type=float, default=10.0, help="seconds; 0: report only")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    from bankctl.config import load as load_config
    from bankctl.customers import Bank
    from fjordbank.service_layer.audit import audit_ledger

    settings = stack_settings.load()
    stack = Stack(settings, progress=lambda _m: None)
    not_ready = [r.component for r in stack.status() if r.state != "ready"]
    if not_ready:
        print(f"chaos: error: not running: {', '.join(not_ready)} (run `make up`)", file=sys.stderr)
        return 1
    bank = Bank(load_config())
    before = nats_state(stack)
    plan = Plan(
        random.Random(args.seed), list(topology.SERVICES), [n.name for n in settings.nats_nodes], tuple(args.gap)
    )
    run = Run()
    stop_faults, stop_load, stop_count = threading.Event(), threading.Event(), threading.Event()
    batch = {
        "payments": args.payments,
        "customers": args.customers,
        "concurrency": args.concurrency,
        "external": args.external,
        "timeout": 180.0,
    }
    threads = [
        threading.Thread(target=run_faults, args=(stack, plan, run, stop_faults), daemon=True),
        threading.Thread(target=run_load, args=(bank, run, stop_load, batch), daemon=True),
        threading.Thread(target=count_completions, args=(run, stop_count), daemon=True),
    ]
    for t in threads:
        t.start()
    run.samples.append(sample(stack))
    deadline = time.monotonic() + args.minutes * 60
    while time.monotonic() < deadline:
        time.sleep(min(30.0, max(0.0, deadline - time.monotonic())))
        run.samples.append(sample(stack))
    stop_faults.set()
    threads[0].join(timeout=60)  # the fault in hand is undone
    stop_load.set()
    threads[1].join(timeout=600)  # the batch in hand finishes
    stop_count.set()
    after = wait_drained(stack, 120)
    audit = audit_ledger(bank.admin.db)
    run.samples.append(sample(stack))
    findings = checks(
        run, before=before, after=after, audit=audit, stack=stack, args=args, max_workers=settings.functions_max_workers
    )

    lat = run.latencies
    result = {
        "seed": args.seed,
        "minutes": args.minutes,
        "faults": [f.__dict__ for f in run.faults],
        "fault_kinds": sorted({f.kind for f in run.faults}),
        "batches": run.batches,
        "payments_final": len(lat),
        "time_to_final_s": {
            "p50": quantile(lat, 0.5),
            "p95": quantile(lat, 0.95),
            "p99": quantile(lat, 0.99),
            "max": round(max(lat), 3) if lat else None,
        },
        "dlq_before": before["dlq"],
        "dlq_after": after["dlq"],
        "consumers_after": after["consumers"],
        "audit": {
            "ok": audit.ok,
            "accounts": audit.accounts,
            "postings": audit.postings,
            "problems": audit.problems[:20],
        },
        "samples": run.samples,
        "findings": findings,
        "ok": not findings,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "chaos.json").write_text(json.dumps(result, indent=1, default=str))
    plot(run, args.out / "chaos.png")
    t = result["time_to_final_s"]
    print(
        f"chaos: seed {args.seed}, {args.minutes} min: {len(run.faults)} faults ({', '.join(result['fault_kinds'])}), "
        f"{len(lat)} payments final, time to final p50 {t['p50']}s p95 {t['p95']}s p99 {t['p99']}s max {t['max']}s; "
        f"results in {args.out}/chaos.json and chaos.png"
    )
    for line in findings:
        print(f"chaos: FINDING: {line}")
    print("chaos: ok" if not findings else "chaos: failed")
    return 0 if not findings else 1


if __name__ == "__main__":
    sys.exit(main())
