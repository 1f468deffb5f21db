"""python -m bench.chaos: see the package's docstring."""

from __future__ import annotations

import argparse
import atexit
import json
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import bench.chaos as package
from bench.chaos import broken, checks, load
from bench.chaos.kinds import Context, Fault, FaultKind, registry
from bench.soak import sample
from devstack import settings as stack_settings
from devstack.stack import Stack
from fjordbank import topology

OUT = Path("artifacts/bench")
WORKLOADS = ("payments", "cards", "standing-orders")  # load.payments, load.cards, load.standing_orders


@dataclass
class Plan:
    """The faults of one seed: which kind, on what, after which pause, for how long. Every
    kind comes once, in an order the seed shuffles, before any comes again (so a run long
    enough for one round shows every kind); after that they are drawn by weight."""

    rng: random.Random
    kinds: dict[str, FaultKind]
    ctx: Context
    gap: tuple[float, float]
    first_round: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.first_round = sorted(self.kinds)
        self.rng.shuffle(self.first_round)

    def next(self) -> tuple[float, str, list[str], float]:
        names = sorted(self.kinds)
        if self.first_round:
            kind = self.first_round.pop()
        else:
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
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"load besides the faults (default all: {','.join(WORKLOADS)}; payments always run)",
    )
    parser.add_argument(
        "--targets",
        default="",
        help="consumer services (each with all its instances) or instances the process kinds draw from (default: all)",
    )
    parser.add_argument(
        "--break",
        dest="break_",
        default="",
        metavar="NAME:SERVICE",
        help=f"break a service on purpose for the run, to show the run catches it ({', '.join(broken.BREAKS)})",
    )
    parser.add_argument(
        "--final-timeout", type=float, default=180.0, help="seconds a load batch waits for its payments to be final"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    unknown = set(args.kinds.split(",")) - set(kinds)
    if unknown:
        parser.error(f"unknown fault kinds: {', '.join(sorted(unknown))}")
    if set(args.workloads.split(",")) - set(WORKLOADS):
        parser.error(f"unknown workloads: {args.workloads} (known: {', '.join(WORKLOADS)})")
    if args.targets and {stack_settings.service_of(t) for t in args.targets.split(",")} - set(topology.SERVICES):
        parser.error(f"unknown targets: {args.targets} (consumer services: {', '.join(topology.SERVICES)})")
    if args.break_:
        try:
            broken.parse(args.break_)
        except ValueError as exc:
            parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    all_kinds = registry()
    args = parse_args(argv, all_kinds)
    kinds = {n: all_kinds[n] for n in args.kinds.split(",")}

    from bankctl.config import load as load_config
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.service_layer.audit import audit_ledger

    settings = stack_settings.load()
    stack = Stack(settings, progress=lambda _m: None)
    not_ready = [r.component for r in stack.status() if r.state != "ready"]
    if not_ready:
        print(f"chaos: error: not running: {', '.join(not_ready)} (run `make up`)", file=sys.stderr)
        return 1
    stack.jobs_by_hand()  # the clock fault runs the due-payments job at its own instants
    run = load.Run()
    bank = load.device_bank(load_config(), run)  # its customers' phones get the pushes
    # every instance of every consumer service (ledger, ledger-2 ... with FJB_REPLICAS_*)
    targets = list(settings.service_ports)
    if args.targets:  # a service's name stands for all its instances
        chosen = set(args.targets.split(","))
        targets = [c for c in targets if c in chosen or stack_settings.service_of(c) in chosen]
    ctx = Context(consumers=targets, nats=[n.name for n in settings.nats_nodes])
    plan = Plan(random.Random(args.seed), kinds, ctx, tuple(args.gap))
    broken_entry = None
    if args.break_:  # on for the run (and a little longer at most), off once the faults stop
        broken_entry, service = broken.switch_on(stack, args.break_, args.minutes * 60 + 900)
        atexit.register(broken.switch_off, stack, broken_entry)
        print(f"chaos: {service} broken on purpose: {args.break_}", flush=True)
    before = checks.nats_state(stack)
    stop_faults, stop_load, stop_count = threading.Event(), threading.Event(), threading.Event()
    batch = {
        "payments": args.payments,
        "customers": args.customers,
        "concurrency": args.concurrency,
        "external": args.external,
        "timeout": args.final_timeout,
    }
    fault_thread = threading.Thread(target=run_faults, args=(stack, plan, run, stop_faults), daemon=True)
    load_threads = [threading.Thread(target=load.payments, args=(bank, run, stop_load, batch), daemon=True)]
    load_threads += [
        threading.Thread(target=getattr(load, name), args=(bank, run, stop_load), daemon=True)
        for name in ("cards", "standing_orders")
        if name.replace("_", "-") in args.workloads.split(",")
    ]
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
    if broken_entry:
        broken.switch_off(stack, broken_entry)
    stop_load.set()
    for t in load_threads:
        t.join(timeout=600)  # the batch in hand finishes
    stop_count.set()
    after = checks.wait_drained(stack, 120)
    audit = audit_ledger(FirestoreDocuments(bank.admin.db))
    run.samples.append(sample(stack))
    findings = (
        checks.load_findings(run)
        + checks.stack_findings(
            run, before=before, after=after, audit=audit, stack=stack, max_workers=settings.functions_max_workers
        )
        + checks.latency_findings(run, args.max_p99)
    )
    # the run's own payments (lost ones named), each push once, the feed, standing orders, cards
    workload_findings, checked = checks.workload_findings(stack, bank.admin.db, run)
    findings += workload_findings

    lat = run.latencies
    outside = checks.latencies_outside_outages(run)
    result = {
        "seed": args.seed,
        "minutes": args.minutes,
        "faults": [f.__dict__ for f in run.faults],
        "fault_kinds": sorted({f.kind for f in run.faults}),
        "batches": run.batches,
        "workloads": run.workloads,
        "checked": checked,
        "broken": args.break_ or None,
        "payments_final": len(lat),
        "time_to_final_s": {
            "p50": checks.quantile(lat, 0.5),
            "p95": checks.quantile(lat, 0.95),
            "p99": checks.quantile(lat, 0.99),
            "max": round(max(lat), 3) if lat else None,
        },
        # the p99 goal's population: without the payments a clearing outage held (see checks)
        "time_to_final_outside_clearing_outages_s": {
            "payments": len(outside),
            "p50": checks.quantile(outside, 0.5),
            "p95": checks.quantile(outside, 0.95),
            "p99": checks.quantile(outside, 0.99),
            "max": round(max(outside), 3) if outside else None,
        },
        "slowest": checks.slowest(bank.admin.db, run),
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
    o = result["time_to_final_outside_clearing_outages_s"]
    if o["payments"] != len(lat):
        held = len(lat) - o["payments"]
        print(f"chaos: without the {held} payments in flight during a clearing outage: p99 {o['p99']}s")
    for line in findings:
        print(f"chaos: FINDING: {line}")
    print("chaos: ok" if not findings else "chaos: failed")
    return 0 if not findings else 1


if __name__ == "__main__":
    sys.exit(main())
