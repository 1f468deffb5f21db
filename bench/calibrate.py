"""The platform's own limits on this machine, in this run: the yardsticks of `make bench`.

- ``raw_capacity``: documents/s the Firestore emulator commits in batched writes (what the
  ledger's group commit does), from a few concurrent writers, nothing read. The pipeline's
  payments/s times its document operations per payment is compared with this.
- ``noop_trigger``: the smallest observable Firestore trigger (functions/main.py
  ``on_calibration_document``, defined on the emulator only: no read, one write) fired by
  ``--count`` documents created at once: its rate, and its own time (the document's create
  time to the trigger's server timestamp), which the payment trigger is compared with.

    python -m bench.calibrate          # needs `make up`; prints both as JSON
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import threading
import time
import uuid

from google.cloud.firestore_v1.base_query import FieldFilter

from fjordbank.adapters.firestore import async_client, sync_client

RAW = "benchRaw"
TRIGGERS = "benchTriggers"  # functions/main.py CALIBRATION_TRIGGERS


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def raw_capacity(project_id: str, *, seconds: float = 10.0, writers: int = 8, batch: int = 50) -> dict:
    """Documents/s in batched commits of ``batch`` documents shaped like the ledger's."""

    async def run() -> dict:
        db = async_client(project_id)
        run_id = uuid.uuid4().hex[:6]
        stop = time.monotonic() + seconds
        written = 0

        async def writer(w: int) -> None:
            nonlocal written
            n = 0
            while time.monotonic() < stop:
                b = db.batch()
                for _ in range(batch):
                    b.set(
                        db.collection(RAW).document(f"{run_id}-{w}-{n}"),
                        {"balance": n, "available": n, "held": 0, "currency": "NOK", "ownerUid": f"u{w}", "v": 1},
                    )
                    n += 1
                await b.commit()
                written += batch

        started = time.monotonic()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        elapsed = time.monotonic() - started
        return {
            "documents_per_s": round(written / elapsed, 1),
            "documents": written,
            "seconds": round(elapsed, 2),
            "writers": writers,
            "batch": batch,
        }

    return asyncio.run(run())


def noop_trigger(project_id: str, *, count: int = 200, concurrency: int = 16, timeout: float = 60) -> dict:
    """Fire the calibration trigger ``count`` times, at most ``concurrency`` unfinished (as
    `bankctl load -c` sends payments: each worker creates a document and waits for its
    trigger before the next); the trigger's rate and own time."""
    db = sync_client(project_id)
    run_id = uuid.uuid4().hex[:6]
    seen: dict[str, threading.Event] = {}
    own: dict[str, float] = {}
    finished: list[float] = []
    lock = threading.Lock()

    def on_snapshot(_docs, changes, _read_time) -> None:
        for change in changes:
            data = change.document.to_dict() or {}
            if "seenAt" not in data:
                continue
            with lock:
                doc_id = change.document.id
                if doc_id in own:
                    continue
                own[doc_id] = data["seenAt"].timestamp() - change.document.create_time.timestamp()
                finished.append(time.monotonic())
                event = seen.setdefault(doc_id, threading.Event())
            event.set()

    query = db.collection(TRIGGERS).where(filter=FieldFilter("run", "==", run_id))
    watch = query.on_snapshot(on_snapshot)
    time.sleep(1.0)  # the listener's first snapshot
    started = time.monotonic()

    def worker(w: int) -> None:
        for i in range(w, count, concurrency):
            doc_id = f"{run_id}-{i:05d}"
            with lock:
                event = seen.setdefault(doc_id, threading.Event())
            db.collection(TRIGGERS).document(doc_id).create({"run": run_id})
            event.wait(timeout)

    try:
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(worker, range(concurrency)))
    finally:
        watch.unsubscribe()
    elapsed = (max(finished) - started) if finished else float("nan")
    lat = list(own.values())
    return {
        "triggers": count,
        "concurrency": concurrency,
        "fired": len(own),
        "rate_per_s": round(len(own) / elapsed, 2) if finished else 0.0,
        "own_time_p50_ms": round(percentile(lat, 0.5) * 1000, 1),
        "own_time_p90_ms": round(percentile(lat, 0.9) * 1000, 1),
        "seconds": round(elapsed, 2),
    }


def main() -> int:
    from devstack import settings as stack_settings
    from devstack.stack import Stack

    stack = Stack(stack_settings.load(), progress=lambda _m: None)
    for key, value in stack.emulator_hosts().items():
        os.environ[key] = value
    print(json.dumps({"raw": raw_capacity(stack.s.project_id), "noop_trigger": noop_trigger(stack.s.project_id)}))
    print(json.dumps({"noop_trigger_alone": noop_trigger(stack.s.project_id, count=20, concurrency=1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
