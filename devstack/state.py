"""The bank's state across `make down` and `make up`: both halves come back, or neither.

Firestore and Auth live in the emulators' memory; NATS keeps its streams on disk. On a
clean stop the emulators export into ``.stack/emulator-data`` (firebase-tools'
``--export-on-exit``) and the stack records that here; the next start imports that export
and keeps NATS's streams. If the emulators did not stop cleanly (killed, e.g. by the kernel
for memory, or the machine went down) their data is gone: the next start then empties
NATS's streams, the clearing folders, the card vault and the CLI's device keys too, and
says so, rather than start a ledger that has forgotten what the streams still carry.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

RUNNING = "running"  # the emulators hold the state in memory; no export of it yet
EXPORTED = "exported"  # the emulators stopped cleanly and exported it
LOST = "lost"  # the emulators stopped without a fresh export

RESUME = "resume"  # import the export, keep NATS's streams
FRESH = "fresh"  # nothing to keep: start empty, nothing lost
RESET = "reset"  # the emulators' data is lost: empty NATS and the rest too, and say so

EXPORT_METADATA = "firebase-export-metadata.json"


@dataclass(frozen=True)
class Paths:
    state_dir: Path

    @property
    def record(self) -> Path:
        return self.state_dir / "bank-state.json"

    @property
    def export_dir(self) -> Path:
        return self.state_dir / "emulator-data"

    @property
    def nats_stores(self) -> list[Path]:
        """Each NATS node's JetStream store (the configs beside them stay)."""
        nats = self.state_dir / "nats"
        return sorted(p for p in nats.glob("nats-*") if p.is_dir()) if nats.is_dir() else []

    @property
    def derived(self) -> list[Path]:
        """What refers to Firestore's data and goes with it: clearing files, the card vault,
        the CLI's device keys of customers that no longer exist."""
        return [self.state_dir / name for name in ("clearing", "vault", "bankctl")]


def decide(recorded: str | None, export_exists: bool, nats_has_data: bool) -> str:
    """What a start of the emulators does with the state it finds."""
    if recorded == EXPORTED and export_exists and nats_has_data:
        return RESUME
    if nats_has_data or export_exists:
        return RESET
    return FRESH


def recorded(paths: Paths) -> dict:
    try:
        return json.loads(paths.record.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def record(paths: Paths, status: str, **extra) -> None:
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    tmp = paths.record.with_suffix(".tmp")
    tmp.write_text(json.dumps({"status": status, "at": time.time(), **extra}))
    tmp.replace(paths.record)


def export_exists(paths: Paths) -> bool:
    return (paths.export_dir / EXPORT_METADATA).is_file()


def nats_has_data(paths: Paths) -> bool:
    return any(any(store.rglob("*")) for store in paths.nats_stores)


def plan(paths: Paths) -> str:
    return decide(recorded(paths).get("status"), export_exists(paths), nats_has_data(paths))


def lost_message(paths: Paths) -> str:
    """What a RESET start says about what was lost."""
    before = recorded(paths)
    started = (
        f"started at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(before['at']))}"
        if "at" in before
        else "last ran"
    )
    return (
        f"the emulators that {started} did not stop cleanly (killed?), so Firestore's and Auth's "
        "data is lost; NATS's streams, the clearing files, the card vault and the CLI's device "
        "keys are emptied too, so that the bank starts empty as a whole"
    )


def reset(paths: Paths) -> None:
    """Empty every part of the bank's state (the stack's keys and certificates stay)."""
    for path in [*paths.nats_stores, paths.export_dir, *paths.derived]:
        shutil.rmtree(path, ignore_errors=True)


def after_stop(paths: Paths, stop_began: float, *, vault_kept: bool = True) -> str:
    """Record whether the stop just made left a fresh export (and the card vault's, which
    the stack keeps itself: devstack/vault_state.py); returns the status."""
    meta = paths.export_dir / EXPORT_METADATA
    fresh = meta.is_file() and meta.stat().st_mtime >= stop_began - 1
    status = EXPORTED if fresh and vault_kept else LOST
    record(paths, status)
    return status
