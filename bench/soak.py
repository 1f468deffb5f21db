"""Soak: load through the app's surface for a long time while every component's process
count and resident memory are recorded, then a verdict on whether they stayed flat.

    make soak                                   # 30 minutes, a sample a minute
    python -m bench.soak --minutes 2 --interval 10   # the scaled-down run the tests make

The load is `bankctl load` batches (payments created as the app creates them, through
Auth, the rules and the payment trigger; a share to other banks through clearing) one
after the other until the time is up. Each sample counts, per component of the running
stack, every process of its tree (the supervisor's marker, so the Functions emulator's
Python workers count as the emulators') and the sum of their resident memory.

Flat means: after the first quarter (warm-up: workers start, caches fill), no component's
process count goes above what it had at the end of the warm-up plus a small margin, the
Python runtime workers never exceed the configured bound, and no component's memory grows
by more than ``--max-growth`` (fraction, and more than NOISE_MB) between the first and the
last third of the run.
The in-memory Firestore emulator is judged the same way with a wider margin: it holds the
data the load creates.

Writes artifacts/bench/soak.json and soak.png; exit 1 when not flat or the load failed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from devstack import settings as stack_settings
from devstack.stack import FUNCTIONS_LOADED, Stack
from devstack.supervisor import marked_pids

OUT = Path("artifacts/bench")
PAGE = os.sysconf("SC_PAGE_SIZE")
# Python processes per Functions emulator worker: the gunicorn master and its worker.
PROCESSES_PER_WORKER = 2
NOISE_MB = 64  # memory growth below this is noise (allocator arenas, caches warming up)


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def runtime_workers(pids: list[int]) -> list[int]:
    """The Functions emulator's Python runtime processes among ``pids``."""
    found = []
    for pid in pids:
        try:
            if b"functions-framework" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def loaded_functions(log: Path) -> int:
    """How many functions the Functions emulator loaded last (its log says which)."""
    text = log.read_text(errors="replace")
    line = text[text.rfind(FUNCTIONS_LOADED) :].split("\n", 1)[0]
    return len([name for name in line.split(":", 1)[-1].split(",") if name.strip()])


def sample(stack: Stack) -> dict:
    """Per component: process count and resident memory (MB) of its whole tree."""
    out = {"t": time.time(), "components": {}}
    for comp in stack.components():
        pids = marked_pids(stack.sup.marker(comp.name))
        entry = {"processes": len(pids), "rss_mb": round(sum(rss_bytes(p) for p in pids) / 2**20, 1)}
        if comp.name == "emulators":  # the Python workers apart from the in-memory database
            workers = runtime_workers(pids)
            entry["runtime_workers"] = len(workers)
            entry["runtime_workers_rss_mb"] = round(sum(rss_bytes(p) for p in workers) / 2**20, 1)
        out["components"][comp.name] = entry
    return out


def run_load(stop: threading.Event, results: list, batch: list[str]) -> None:
    """`bankctl load` batches until ``stop``; each batch's exit code and last lines kept."""
    while not stop.is_set():
        started = time.time()
        proc = subprocess.run(  # noqa: S603 - our own CLI, argv without a shell
            [sys.executable, "-m", "bankctl", "load", *batch],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        results.append(
            {
                "started": started,
                "seconds": round(time.time() - started, 1),
                "exit": proc.returncode,
                "tail": (proc.stdout + proc.stderr).strip().splitlines()[-8:],
            }
        )


def verdict(samples: list[dict], *, max_workers: int, functions: int, max_growth: float) -> list[str]:
    """What was not flat (empty: flat)."""
    findings = []
    if len(samples) < 4:
        return [f"only {len(samples)} samples: run longer or sample more often"]
    warm = samples[len(samples) // 4 :]
    third = max(1, len(warm) // 3)
    worker_bound = max_workers * functions * PROCESSES_PER_WORKER
    for name in samples[0]["components"]:
        counts = [s["components"][name]["processes"] for s in warm]
        # the emulators start a function's workers as its load first comes: bounded below
        if name != "emulators" and max(counts) > counts[0] + 2:
            findings.append(f"{name}: processes grew from {counts[0]} to {max(counts)} after the warm-up")
        rss = [s["components"][name]["rss_mb"] for s in warm]
        first, last = statistics.mean(rss[:third]), statistics.mean(rss[-third:])
        allowed = max_growth * (3 if name == "emulators" else 1)  # the in-memory database holds the data
        # growth counts beyond a noise floor: a small process warming up is not a leak
        if first > 0 and (last - first) / first > allowed and last - first > NOISE_MB:
            findings.append(f"{name}: memory grew {100 * (last - first) / first:.0f}% ({first:.0f} -> {last:.0f} MB)")
    workers = max(s["components"].get("emulators", {}).get("runtime_workers", 0) for s in samples)
    if workers > worker_bound:
        findings.append(f"emulators: {workers} Python runtime processes, above the bound {worker_bound}")
    return findings


def plot(samples: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = samples[0]["t"]
    minutes = [(s["t"] - t0) / 60 for s in samples]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8), sharex=True)
    for name in samples[0]["components"]:
        top.plot(minutes, [s["components"][name]["processes"] for s in samples], label=name)
        bottom.plot(minutes, [s["components"][name]["rss_mb"] for s in samples], label=name)
    top.set_ylabel("processes")
    bottom.set_ylabel("resident memory (MB)")
    bottom.set_xlabel("minutes under load")
    top.legend(fontsize=7, ncol=3)
    top.set_title("Soak: every component's processes and memory under load")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--interval", type=float, default=60, help="seconds between samples")
    parser.add_argument("--max-growth", type=float, default=0.25, help="memory growth allowed (fraction)")
    parser.add_argument("--batch", default="-n 200 -m 10 -c 16 --external 30", help="arguments of each bankctl load")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    settings = stack_settings.load()
    stack = Stack(settings, progress=lambda _m: None)
    not_ready = [r.component for r in stack.status() if r.state != "ready"]
    if not_ready:
        print(f"soak: error: not running: {', '.join(not_ready)} (run `make up`)", file=sys.stderr)
        return 1
    # The scheduler is not paused: a long run of the bank's use is watched with its jobs
    # running as they run in production (every 5 and 15 minutes, the hourly ones).
    functions = loaded_functions(stack.sup.log_file("emulators"))
    stop, loads, samples = threading.Event(), [], [sample(stack)]
    loader = threading.Thread(target=run_load, args=(stop, loads, args.batch.split()), daemon=True)
    loader.start()
    deadline = time.monotonic() + args.minutes * 60
    while time.monotonic() < deadline:
        time.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))
        samples.append(sample(stack))
        emu = samples[-1]["components"]["emulators"]
        print(
            f"soak: {(samples[-1]['t'] - samples[0]['t']) / 60:5.1f} min  batches {len(loads)}  "
            f"emulators {emu['processes']} processes ({emu['runtime_workers']} runtime, "
            f"{emu['runtime_workers_rss_mb']:.0f} MB) {emu['rss_mb']:.0f} MB",
            flush=True,
        )
    stop.set()
    loader.join(timeout=1800)
    samples.append(sample(stack))
    findings = verdict(
        samples, max_workers=settings.functions_max_workers, functions=functions, max_growth=args.max_growth
    )
    failed = [b for b in loads if b["exit"] != 0]
    if failed:
        findings.append(f"{len(failed)} of {len(loads)} load batches failed, e.g. {failed[0]['tail'][-1:]}")
    if not loads:
        findings.append("no load batch finished")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "minutes": args.minutes,
        "interval_s": args.interval,
        "batch": args.batch,
        "functions_max_workers": settings.functions_max_workers,
        "functions": functions,  # loaded by the Functions emulator: the worker bound is per function
        "batches": loads,
        "samples": samples,
        "findings": findings,
        "flat": not findings,
    }
    (args.out / "soak.json").write_text(json.dumps(result, indent=1))
    plot(samples, args.out / "soak.png")
    print(f"soak: {len(loads)} load batches, {len(samples)} samples; results in {args.out}/soak.json and soak.png")
    for line in findings:
        print(f"soak: NOT FLAT: {line}")
    print("soak: flat" if not findings else "soak: failed")
    return 0 if not findings else 1


if __name__ == "__main__":
    sys.exit(main())
