"""Clearing faults: the channel to the clearing house down, the counterparty misbehaving.

Both go through the faults file (fjordbank/adapters/faults.py), each entry naming the one
process that obeys it:

- ``clearing-down`` (30-60 s): ``clearing_channel_down`` for the clearing service: it can
  neither deliver pain.001 files nor read pain.002 answers (fjordbank/adapters/clearing_store.py).
  External payments wait (reserved / submitted) and complete once the channel is back.
- ``counterparty`` (20-40 s): ``counterparty`` for the simulated other bank, the stack's
  ``counterparty`` component (simulators/counterparty/bank.py): it sends some answers twice
  and holds some back so later files' answers come first (simulators/counterparty/answers.py).
  Each payment must still settle or return exactly once (the run's checks: every payment
  final, the audit green, the dead-letter stream unchanged).

Payments caught by an outage of the other bank legitimately take longer than the run's
time-to-final goal: ``fault.detail["window"]`` holds the outage's epoch seconds (start,
end), so the run can report time to final with and without the payments in it.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.chaos.kinds import Context, Fault
from devstack.stack import Stack
from fjordbank.adapters import faults
from fjordbank.adapters.clearing_store import CHANNEL_DOWN
from simulators.counterparty.answers import FAULT as COUNTERPARTY
from simulators.counterparty.bank import NAME as COUNTERPARTY_BANK

MARGIN_S = 30  # the entry's `until` lies this far past the fault's end: a dead run leaves it off soon
DUPLICATE_RATE = 0.5


def hold_fault(stack: Stack, fault: Fault, stop: threading.Event, name: str, entry: dict) -> tuple[float, float]:
    """Switch fault ``name`` on for ``fault.seconds`` (less if ``stop``); (start, end) epoch."""
    path = stack.faults_file
    started = time.time()
    faults.update(path, name, {**entry, "until": started + fault.seconds + MARGIN_S})
    try:
        stop.wait(fault.seconds)
    finally:
        faults.update(path, name, None)
    return round(started, 3), round(time.time(), 3)


def clearing_dir(stack: Stack) -> Path:
    return stack.s.clearing_dir


def count(directory: Path, pattern: str) -> int:
    return sum(1 for _ in directory.glob(pattern)) if directory.is_dir() else 0


@dataclass(frozen=True)
class ClearingDown:
    """The clearing channel down for 30-60 s."""

    name: str = "clearing-down"
    weight: float = 1
    colour: str = "tab:olive"

    def choose(self, rng: random.Random, ctx: Context) -> tuple[list[str], float]:
        return ["clearing"], rng.uniform(30, 60)

    def apply(self, stack: Stack, fault: Fault, stop: threading.Event) -> None:
        files = clearing_dir(stack)
        start, end = hold_fault(stack, fault, stop, CHANNEL_DOWN, {"services": ["clearing"]})
        fault.detail = {
            # epoch seconds: the payments submitted or answered in it waited for the other bank
            "window": [start, end],
            "answers_waiting_at_end": count(files / "inbox", "*.xml"),
            "files_unanswered_at_end": count(files / "outbox", "*.xml"),
        }


@dataclass(frozen=True)
class Counterparty:
    """The other bank answering twice (half the answers) and out of order for 20-40 s."""

    name: str = "counterparty"
    weight: float = 1
    colour: str = "tab:cyan"

    def choose(self, rng: random.Random, ctx: Context) -> tuple[list[str], float]:
        return [COUNTERPARTY_BANK], rng.uniform(20, 40)

    def apply(self, stack: Stack, fault: Fault, stop: threading.Event) -> None:
        rate = DUPLICATE_RATE
        processed = clearing_dir(stack) / "processed"
        dups_before = count(processed, "*-dup.xml*")
        entry = {"services": [COUNTERPARTY_BANK], "duplicate_rate": rate, "reorder": True}
        start, end = hold_fault(stack, fault, stop, COUNTERPARTY, entry)
        fault.detail = {
            "window": [start, end],
            "duplicate_rate": rate,
            "reorder": True,
            # copies the bank had handled by the fault's end (more may still be on their way)
            "answers_sent_twice": count(processed, "*-dup.xml*") - dups_before,
        }


KINDS = (ClearingDown(), Counterparty())
