"""The load of a chaos run, through the app's surface, each workload in its own thread
until ``stop``. Payments: `bankctl load` batches (customers onboarded through the real
path, payments written as the app writes them, a share to other banks through clearing).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class Run:
    """What a chaos run has seen so far (threads append under ``lock``)."""

    started: float = field(default_factory=time.time)
    faults: list = field(default_factory=list)
    batches: list[dict] = field(default_factory=list)
    completions: list[float] = field(default_factory=list)  # payments final so far, once a second
    latencies: list[float] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)  # every final payment request
    samples: list[dict] = field(default_factory=list)
    workloads: dict[str, dict] = field(default_factory=dict)  # other workloads' own figures
    current: object | None = None  # the LoadRun in hand, for completions per second
    lock: threading.Lock = field(default_factory=threading.Lock)

    def done(self) -> int:
        """Payments final so far, the batch in hand's included."""
        with self.lock:
            current = len(self.current.finished) if self.current is not None else 0  # type: ignore[attr-defined]
            return len(self.latencies) + current


def payments(bank, run: Run, stop: threading.Event, batch: dict) -> None:
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
            finished = list(lr.finished.items())
        with run.lock:
            run.current = None
            run.latencies.extend(s for _key, (_status, _r, s) in finished)
            run.request_ids.extend(k for k, _v in finished)
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
