"""python -m bench.chaos: see the package's docstring."""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import bench.chaos as package
from bench.chaos import checks, load
from bench.chaos.kinds import Context, Fault, FaultKind, registry
from bench.soak import sample
from devstack import settings as stack_settings
from devstack.stack import Stack
from fjordbank import topology

OUT = Path("artifacts/bench")


@dataclass
class Plan:
    """The faults of one seed: which kind, on what, after which pause, for how long."""

    rng: random.Random
    kinds: dict[str, FaultKind]
    ctx: Context
    gap: tuple[float, float]

    def next(self) -> tuple[float, str, list[str], float]:
        names = sorted(self.kinds)
        kind = self.rng.choices(names, weights=[self.kinds[n].weight for n in names])[0]
        pause = self.rng.uniform(*self.gap)
        targets, seconds = self.kinds[kind].choose(self.rng, self.ctx)
        return pause, kind, targets, seconds


def run_faults(stack: Stack, plan: Plan, run: load.Run, stop: threading.Event) -> None:
    while not stop.is_set():
        pause, kind, targets, seconds = plan.next()
        if stop.wait(pause):
            return
        fault = Fault(kind, targets, round(time.time() - run.started, 2), round(seconds, 2))
        print(f"chaos: +{fault.start:6.1f}s {kind} {', '.join(targets)} for {seconds:.1f}s", flush=True)
        with run.lock:
            run.faults.append(fault)
        try:
            plan.kinds[kind].apply(stack, fault, stop)
        except Exception as exc:  # noqa: BLE001 - a fault that could not be applied or undone is a finding
            fault.error = f"{type(exc).__name__}: {exc}"
        fault.end = round(time.time() - run.started, 2)


def plot(run: load.Run, kinds: dict[str, FaultKind], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.5))
    per_second = [b - a for a, b in zip(run.completions, run.completions[1:], strict=False)]
    ax.plot(range(1, len(per_second) + 1), per_second, lw=0.8, color="tab:blue", label="payments final per second")
    for f in run.faults:
        colour = kinds[f.kind].colour if f.kind in kinds else "tab:gray"
        ax.axvspan(f.start, f.end or f.start + f.seconds, color=colour, alpha=0.2)
        ax.text(f.start, ax.get_ylim()[1] * 0.95, f"{f.kind}\n{','.join(f.targets)}", fontsize=6, va="top")
    ax.set_xlabel("seconds")
    ax.set_ylabel("payments final per second")
    legend = ", ".join(f"{k.colour.removeprefix('tab:')} {n}" for n, k in sorted(kinds.items()))
    ax.set_title(f"Chaos: completions per second; shaded: faults ({legend})", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv: list[str] | None, kinds: dict[str, FaultKind]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=(package.__doc__ or "").split("\n\n")[0])
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
    parser.add_argument(
        "--kinds",
        default=",".join(sorted(kinds)),
        help=f"fault kinds to draw from (default all: {','.join(sorted(kinds))})",
    )
    parser.add_argument("--payments", type=int, default=120, help="payments per load batch")
    parser.add_argument("--customers", type=int, default=12, help="new customers per load batch")
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--external", type=int, default=40, help="percent of payments to other banks")
    parser.add_argument("--max-p99", type=float, default=10.0, help="seconds; 0: report only")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    unknown = set(args.kinds.split(",")) - set(kinds)
    if unknown:
        parser.error(f"unknown fault kinds: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    all_kinds = registry()
    args = parse_args(argv, all_kinds)
    kinds = {n: all_kinds[n] for n in args.kinds.split(",")}

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
    before = checks.nats_state(stack)
    ctx = Context(consumers=list(topology.SERVICES), nats=[n.name for n in settings.nats_nodes])
    plan = Plan(random.Random(args.seed), kinds, ctx, tuple(args.gap))
    run = load.Run()
    stop_faults, stop_load, stop_count = threading.Event(), threading.Event(), threading.Event()
    batch = {
        "payments": args.payments,
        "customers": args.customers,
        "concurrency": args.concurrency,
        "external": args.external,
        "timeout": 180.0,
    }
    fault_thread = threading.Thread(target=run_faults, args=(stack, plan, run, stop_faults), daemon=True)
    load_threads = [threading.Thread(target=load.payments, args=(bank, run, stop_load, batch), daemon=True)]
    count_thread = threading.Thread(target=load.count_completions, args=(run, stop_count), daemon=True)
    for t in (fault_thread, *load_threads, count_thread):
        t.start()
    run.samples.append(sample(stack))
    deadline = time.monotonic() + args.minutes * 60
    while time.monotonic() < deadline:
        time.sleep(min(30.0, max(0.0, deadline - time.monotonic())))
        run.samples.append(sample(stack))
    stop_faults.set()
    fault_thread.join(timeout=120)  # the fault in hand is undone
    stop_load.set()
    for t in load_threads:
        t.join(timeout=600)  # the batch in hand finishes
    stop_count.set()
    after = checks.wait_drained(stack, 120)
    audit = audit_ledger(bank.admin.db)
    run.samples.append(sample(stack))
    findings = (
        checks.load_findings(run)
        + checks.stack_findings(
            run, before=before, after=after, audit=audit, stack=stack, max_workers=settings.functions_max_workers
        )
        + checks.latency_findings(run, args.max_p99)
    )

    lat = run.latencies
    result = {
        "seed": args.seed,
        "minutes": args.minutes,
        "faults": [f.__dict__ for f in run.faults],
        "fault_kinds": sorted({f.kind for f in run.faults}),
        "batches": run.batches,
        "workloads": run.workloads,
        "payments_final": len(lat),
        "time_to_final_s": {
            "p50": checks.quantile(lat, 0.5),
            "p95": checks.quantile(lat, 0.95),
            "p99": checks.quantile(lat, 0.99),
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
    plot(run, kinds, args.out / "chaos.png")
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
