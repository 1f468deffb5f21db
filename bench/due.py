"""The due-payments job's rate: its payments one at a time against several at once, with
each database and NATS round trip as long as production's.

    python -m bench.due [--payers 400] [--per-payer 5] [--round-trip-ms 8] [--lanes 16]

The payday (docs/capacity.md, section 2) releases 1.44 million scheduled payments in the
morning, through the job's due-payments run (`fjordbank.service_layer.scheduled.
submit_due_payments`: 240 s of every 15-minute run). Its rate is set by round trips, not
CPU: each payment reads its payer's funds and its payee's account, claims the request in a
transaction and publishes (with the edge's `submit`). This local machine's emulator, on two
cores shared with the whole stack, answers in tens of milliseconds when busy and cannot
show what waiting on production's round trips costs. So the job's own code runs here on the
in-memory documents (the unit tests' fake) with every call held for ``--round-trip-ms``
(a transaction two: its start and its commit) and a publisher that takes as long, once one
payment at a time (``lanes=1``, the job before 2026-12-06) and once with ``--lanes``. It
reports payments released per second, their ratio, and the payday's arithmetic at each.
The JSON lands in artifacts/bench/due.json (a copy of a reported run in docs/benchmarks/).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from bench.pipeline import ARTIFACTS
from fjordbank.domain.payments import PaymentRequested, payment_id_for
from fjordbank.service_layer import scheduled, seams
from tests.support.memory import MemoryDocuments
from tests.support.use_cases import account_numbers, customer_account, fixed_clock, seed

# A banking day's morning (a Wednesday), the job's clock.
MORNING = dt.datetime(2027, 3, 10, 5, 0, tzinfo=dt.UTC)
PAYDAY_SCHEDULED = 1_440_000  # docs/capacity.md, section 2: 60 % of the payday's 2.4 M external payments
RUN_EVERY_S = 15 * 60


class Latent:
    """The document ports with every round trip held for ``seconds``."""

    def __init__(self, inner: MemoryDocuments, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds
        self.calls = 0
        self._lock = threading.Lock()

    def _wait(self, trips: int = 1) -> None:
        with self._lock:
            self.calls += trips
        time.sleep(self.seconds * trips)

    def get(self, path: str):
        self._wait()
        return self.inner.get(path)

    def get_many(self, paths):
        self._wait()
        return self.inner.get_many(paths)

    def query(self, *a: Any, **k: Any):
        self._wait()
        return self.inner.query(*a, **k)

    def query_group(self, *a: Any, **k: Any):
        self._wait()
        return self.inner.query_group(*a, **k)

    def count(self, *a: Any, **k: Any):
        self._wait()
        return self.inner.count(*a, **k)

    def transact(self, fn, *, operation: str):
        self._wait(2)  # its start (with its reads) and its commit
        return self.inner.transact(fn, operation=operation)

    def batch(self):
        batch = self.inner.batch()
        commit = batch.commit

        def held() -> Any:
            self._wait()
            return commit()

        batch.commit = held  # type: ignore[method-assign]
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class LatentPublisher:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.published = 0
        self._lock = threading.Lock()

    def publish_json(self, subject: str, body: dict[str, Any], *, msg_id: str, stream: str | None = None) -> None:
        time.sleep(self.seconds)
        with self._lock:
            self.published += 1


def population(payers: int, per_payer: int) -> MemoryDocuments:
    """Funded payers, each with ``per_payer`` scheduled payments due this morning to the next."""
    docs = MemoryDocuments(fixed_clock(MORNING))
    accounts = list(itertools.islice(account_numbers(), payers))
    day = MORNING.date().isoformat()
    writes: dict[str, dict[str, Any]] = {}
    for n, account in enumerate(accounts):
        uid = f"payer-{n:05d}"
        writes[f"accounts/{account}"] = customer_account(uid, account, balance=10_000_000)
        for i in range(per_payer):
            request_id = f"due-{n:05d}-{i:03d}"
            payment = PaymentRequested(
                payment_id=payment_id_for(uid, request_id),
                uid=uid,
                request_id=request_id,
                kind="internal",
                from_account=account,
                to_account=accounts[(n + 1) % payers],
                amount=100 + i,
                currency="NOK",
                message=None,
                kid=None,
                due_date=day,
                body_hash="bench",
                requested_at=MORNING.isoformat(),
            )
            writes[f"users/{uid}/paymentRequests/{request_id}"] = {
                "status": "scheduled",
                "statusRank": 1,
                "payment": payment.to_json(),
            }
    seed(docs, writes)
    return docs


def release(args: argparse.Namespace, lanes: int) -> dict[str, Any]:
    trip = args.round_trip_ms / 1000
    docs = Latent(population(args.payers, args.per_payer), trip)
    publisher = LatentPublisher(trip)
    began = time.monotonic()
    counts = scheduled.submit_due_payments(
        docs,  # type: ignore[arg-type]
        publisher,
        submit=seams.bound(docs, publisher).submit,  # type: ignore[arg-type]
        clock=fixed_clock(MORNING),
        lanes=lanes,
    )
    seconds = time.monotonic() - began
    released = counts["submitted"]
    per_s = released / seconds
    per_run = per_s * scheduled.REQUESTS_BUDGET_SECONDS
    runs = PAYDAY_SCHEDULED / per_run
    return {
        "lanes": lanes,
        "released": released,
        "counts": {k: v for k, v in counts.items() if v and k != "standingOrders"},
        "seconds": round(seconds, 2),
        "per_s": round(per_s, 1),
        "round_trips_per_payment": round(docs.calls / max(released, 1), 1),
        "payday": {
            "scheduled": PAYDAY_SCHEDULED,
            "per_run": round(per_run),
            "runs": round(runs, 1),
            "hours_at_one_run_every_15_min": round(runs * RUN_EVERY_S / 3600, 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.due", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--payers", type=int, default=400)
    parser.add_argument("--per-payer", type=int, default=5)
    parser.add_argument("--round-trip-ms", type=float, default=8.0, help="one Firestore or NATS round trip")
    parser.add_argument(
        "--lanes", type=int, default=scheduled.LANES, help="the job's lanes (measured against 1 and 16 too)"
    )
    args = parser.parse_args()
    runs = []
    for lanes in sorted({1, 16, args.lanes}):
        print(
            f"lanes={lanes}: {args.payers} payers x {args.per_payer} due payments, "
            f"{args.round_trip_ms} ms a round trip ...",
            flush=True,
        )
        runs.append(release(args, lanes))
        print(f"  {runs[-1]}", flush=True)
    one, many = runs[0], runs[-1]
    result = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "command": (
            f"python -m bench.due --payers {args.payers} --per-payer {args.per_payer} "
            f"--round-trip-ms {args.round_trip_ms} --lanes {args.lanes}"
        ),
        "runs": runs,
        "lanes_over_one": round(many["per_s"] / one["per_s"], 2),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / "due.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(ARTIFACTS / "due.png", result)
    print(json.dumps({k: result[k] for k in ("command", "lanes_over_one")}))
    print(f"written to {out} and {out.with_suffix('.png')}")


def plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    labels = [f"{r['lanes']} lane{'s' if r['lanes'] > 1 else ''}" for r in runs]
    ax1.bar(labels, [r["per_s"] for r in runs])
    ax1.set_ylabel("due payments released per second")
    ax1.set_title(f"The due-payments run ({result['lanes_over_one']:.1f}x one lane)")
    ax2.bar(labels, [r["payday"]["runs"] * scheduled.REQUESTS_BUDGET_SECONDS / 3600 for r in runs])
    ax2.set_ylabel("hours of runs for the payday's 1.44 M")
    ax2.set_title("Runs back to back (a deferred run goes on at once)")
    fig.suptitle(result["command"], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
