"""Diagnosis: where a payment's time goes at a steady rate.

    python -m bench.paced                       # needs `make up`; 1,500 payments at 50/s
    python -m bench.paced --rate 50 --payments 1500 --no-triggers

Sends ``--payments`` payments (30 % to one merchant) at ``--rate`` per second, as
bench.pipeline's latency run does, and reports in the same run:

- requested -> completed, p50 and p90;
- the Firestore emulator's answer time for one document, read every 50 ms from a side
  project during the run, against the same read on the idle emulator first: how loaded
  the emulator is;
- per service instance, from its /metrics: Firestore calls, messages per batch, handler
  time per message, and time per step (publish of the consumed event -> result published).

``--no-triggers`` turns the Functions emulator's background triggers off for the run (the
push function does not run; its messages wait in Pub/Sub until they are on again), which
tells the push function's share of the load. With it this tool found, on 2026-12-01, that
one query per customer in the push function was the emulator's largest load (a read took
90-140 ms at p50 under load; 3.5 ms with the triggers off). Writes
``artifacts/bench/paced.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import threading
import time
from collections import defaultdict
from pathlib import Path

import requests

from bench.docops import background_triggers
from bench.pipeline import admin_ledger, drive, make_payments, setup_population
from devstack import settings as stack_settings
from devstack.stack import Stack
from fjordbank.adapters.firestore import async_client, sync_client

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "bench"
SAMPLE = re.compile(
    r"^(fjb_(?:payment_step_seconds|processing_seconds|batch_size)_(?:sum|count)|fjb_firestore_calls_total)"
    r"\{([^}]*)\} ([0-9.e+]+)$",
    re.M,
)


def scrape(stack: Stack) -> dict[tuple[str, str, str], float]:
    """(instance, sample name, labels) -> value, from every service instance's /metrics."""
    out: dict[tuple[str, str, str], float] = defaultdict(float)
    for instance, port in stack.s.service_ports.items():
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except requests.RequestException:
            continue
        for m in SAMPLE.finditer(text):
            out[(instance, m[1], "" if m[1] == "fjb_firestore_calls_total" else m[2])] += float(m[3])
    return out


def per_instance(before: dict, after: dict) -> dict[str, dict[str, float]]:
    """instance -> {firestore_calls, batch_size, handler_s_per_message, step_s}: means over the run."""
    sums: dict[tuple[str, str, str], float] = defaultdict(float)
    for key, value in after.items():
        sums[key] = value - before.get(key, 0.0)
    out: dict[str, dict[str, float]] = defaultdict(dict)
    names = {"fjb_batch_size": "batch_size", "fjb_processing_seconds": "handler_s_per_message"}
    names["fjb_payment_step_seconds"] = "step_s"
    for (instance, name, labels), value in sums.items():
        if name == "fjb_firestore_calls_total":
            out[instance]["firestore_calls"] = out[instance].get("firestore_calls", 0.0) + value
            continue
        base, part = name.rsplit("_", 1)
        if part == "count" and value:
            mean = sums.get((instance, f"{base}_sum", labels), 0.0) / value
            out[instance][names[base]] = round(mean, 4)
    return {k: v for k, v in sorted(out.items()) if v.get("firestore_calls") or len(v) > 1}


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    return {q: round(ordered[min(len(ordered) - 1, int(f * len(ordered)))] * 1000, 1) for q, f in PCTS}


PCTS = (("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99))


class Probe:
    """One document read every ``period`` seconds from a side project, timed."""

    def __init__(self, project_id: str, period: float = 0.05) -> None:
        self.ref = sync_client(f"{project_id}-probe").document("probe/x")
        self.period, self.times = period, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)

    def once(self) -> float:
        started = time.perf_counter()
        self.ref.get()
        return time.perf_counter() - started

    def _run(self) -> None:
        while not self._stop.is_set():
            self.times.append(self.once())
            time.sleep(self.period)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


async def run(args) -> dict:
    stack = Stack(stack_settings.load())
    os.environ.update(stack.emulator_hosts())
    if not all(r.state == "ready" for r in stack.status()):
        raise SystemExit("the stack is not running: start it with `make up` (or make up-detached)")
    stack.jobs_by_hand()
    db = async_client(stack.s.project_id)
    pop = await setup_population(db, admin_ledger(db), args.payers, "9730")
    payments = make_payments(pop, args.payments, random.Random(args.seed), 0.3, 0.0)
    probe = Probe(stack.s.project_id)
    idle = [probe.once() for _ in range(40)]
    if args.no_triggers:
        await asyncio.to_thread(background_triggers, stack, on=False)
    before = await asyncio.to_thread(scrape, stack)
    try:
        with probe:
            tracker = await drive(stack, payments, rate=args.rate, timeout=args.timeout)
    finally:
        if args.no_triggers:
            await asyncio.to_thread(background_triggers, stack, on=True)
    after = await asyncio.to_thread(scrape, stack)
    return {
        "rate_per_s": args.rate,
        "payments": args.payments,
        "completed": len(tracker.done),
        "triggers": not args.no_triggers,
        "requested_to_completed": percentiles([tracker.done[p][0] - tracker.sent[p] for p in tracker.done]),
        "emulator_read_idle": percentiles(idle),
        "emulator_read_during_run": percentiles(probe.times),
        "instances": per_instance(before, after),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.paced", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=50, help="payments/s offered")
    parser.add_argument("--payments", type=int, default=1_500)
    parser.add_argument("--payers", type=int, default=2_000)
    parser.add_argument("--no-triggers", action="store_true", help="the Functions emulator's triggers off meanwhile")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "paced.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"wrote {ARTIFACTS / 'paced.json'}")


if __name__ == "__main__":
    main()
