"""The platform's own limits on this machine, in this run: the yardsticks of `make bench`.

- ``raw_capacity``: documents/s the Firestore emulator commits in batched writes (what the
  ledger's group commit does), from a few concurrent writers, nothing read. The pipeline's
  payments/s times its document operations per payment is compared with this.
- ``noop_trigger``: the smallest observable Firestore trigger (functions/main.py
  ``on_calibration_document``, defined on the emulator only: no read, one write) fired by
  ``--count`` documents created at once: its rate, and its time from the document's
  creation to the trigger's server timestamp (its wait for a worker included).
- ``FunctionTimes``: each invocation's own time, as the Functions emulator logs it
  ("Finished "<function>" in N ms": its worker's run, from the request handed to the worker
  to the answer, without the wait for a free worker), over a block of the bench.
- ``noop_probe``: the no-op trigger fired now and then in the background while a block
  runs, so its own time is measured in the same conditions as the block's triggers (the
  same CPU, and the emulator's queue of commits to documents a client listens to).

    python -m bench.calibrate          # needs `make up`; prints both as JSON
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

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
        "created_to_seen_p50_ms": round(percentile(lat, 0.5) * 1000, 1),
        "created_to_seen_p90_ms": round(percentile(lat, 0.9) * 1000, 1),
        "seconds": round(elapsed, 2),
    }


NOOP_FUNCTION = "on_calibration_document"
PAYMENT_FUNCTION = "on_payment_request"  # functions/main.py
FINISHED = re.compile(rb'Finished "[^"]*?-(?P<function>[A-Za-z0-9_]+)" in (?P<ms>[0-9.]+)ms')


class FunctionTimes:
    """The invocations the Functions emulator logged as finished while the block ran:

    with FunctionTimes(log) as times:
        ...
    times.of("on_payment_request")  # {"invocations", "p50_ms", "p90_ms"}
    """

    def __init__(self, log: Path) -> None:
        self.log = log
        self.start = self.end = 0

    def _size(self) -> int:
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0

    def __enter__(self) -> FunctionTimes:
        self.start = self._size()
        return self

    def __exit__(self, *_exc: object) -> None:
        time.sleep(0.5)  # the emulator's last lines of the block
        self.end = self._size()

    def of(self, function: str) -> dict:
        with self.log.open("rb") as f:
            f.seek(self.start)
            text = f.read(max(0, self.end - self.start))
        ms = [float(m["ms"]) for m in FINISHED.finditer(text) if m["function"].decode() == function]
        return {
            "invocations": len(ms),
            "p50_ms": round(percentile(ms, 0.5), 1),
            "p90_ms": round(percentile(ms, 0.9), 1),
        }


@contextlib.contextmanager
def noop_probe(project_id: str, *, interval: float = 0.5) -> Iterator[None]:
    """Create a calibration document every ``interval`` seconds (one at a time, not waiting
    for its trigger) while the block runs; `FunctionTimes` then gives the no-op's own time
    under the block's load. Its documents are listened to, as `noop_trigger`'s are and as
    the app listens to its payment requests: the emulator's commit of a document somebody
    listens to waits while it serves the listeners (about 15 ms idle, measured here; a
    commit nobody listens to takes 2), so a probe nobody listened to would be the faster
    yardstick for no reason of its own."""
    db = sync_client(project_id)
    run_id = uuid.uuid4().hex[:6]
    stop = threading.Event()
    watch = db.collection(TRIGGERS).where(filter=FieldFilter("run", "==", run_id)).on_snapshot(lambda *_a: None)

    def fire() -> None:
        n = 0
        while not stop.wait(interval):
            try:
                db.collection(TRIGGERS).document(f"{run_id}-probe-{n:05d}").create({"run": run_id})
            except Exception as exc:  # noqa: BLE001 - a probe missed is a sample fewer, not a failed bench
                print(f"  no-op probe {n}: {exc!r}", flush=True)
            n += 1

    thread = threading.Thread(target=fire, name="noop-probe", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
        watch.unsubscribe()


def emulator_log(stack) -> Path:
    """The Functions emulator's log of a running devstack (devstack.stack.Stack)."""
    return Path(stack.sup.log_file("emulators"))


def noop_trigger_timed(stack, **kwargs) -> dict:
    """`noop_trigger` and the own time of its invocations (``finished_in``)."""
    with FunctionTimes(emulator_log(stack)) as times:
        result = noop_trigger(stack.s.project_id, **kwargs)
    return {**result, "finished_in": times.of(NOOP_FUNCTION)}


def main() -> int:
    from devstack import settings as stack_settings
    from devstack.stack import Stack

    stack = Stack(stack_settings.load(), progress=lambda _m: None)
    stack.jobs_by_hand()
    for key, value in stack.emulator_hosts().items():
        os.environ[key] = value
    print(json.dumps({"raw": raw_capacity(stack.s.project_id), "noop_trigger": noop_trigger_timed(stack)}))
    print(json.dumps({"noop_trigger_alone": noop_trigger_timed(stack, count=20, concurrency=1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
