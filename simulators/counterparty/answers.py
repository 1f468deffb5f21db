"""How the simulated counterparty's pain.002 answers reach the bank's inbox.

Normally each answer goes out in the pass that made it, in file order. A chaos run's
``counterparty`` fault (the faults file of fjordbank.adapters.faults, which the simulator's
process reads; local stack only) makes the other bank misbehave as real ones can::

    "counterparty": {"until": 1764500060, "duplicate_rate": 0.5, "reorder": true,
                     "services": ["counterparty"]}

- ``duplicate_rate``: that share of answers is sent a second time (under another file
  name, ``...-status-dup.xml``), up to ``MAX_HOLD`` passes later: before or after the bank
  has handled the first copy;
- ``reorder``: half the answers are held back 1 to ``MAX_HOLD`` passes, so later files'
  answers arrive before earlier ones', and each pass's answers go out shuffled.

Answers held when the fault ends still go out at their time. The random draws come from
the generator given (the simulator's own): the chaos run's seed fixes when the fault is on,
not which answers it hits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

FAULT = "counterparty"  # the fault's name in the faults file
MAX_HOLD = 4  # passes (the simulator passes every 0.5 s)


@dataclass
class AnswerPost:
    rng: random.Random
    passes: int = 0
    # (the pass it goes out in, the outbox file it answers or None for a copy, name, data)
    queue: list[tuple[int, str | None, str, bytes]] = field(default_factory=list)

    def holds(self, source: str) -> bool:
        """An answer to this outbox file is waiting to go out (do not answer it again)."""
        return any(q[1] == source for q in self.queue)

    def add(self, source: str, name: str, data: bytes, fault: dict[str, Any] | None) -> None:
        """The answer ``name`` to outbox file ``source``; ``fault``: the counterparty entry, if on."""
        fault = fault or {}
        hold = 0
        if fault.get("reorder") and self.rng.random() < 0.5:
            hold = self.rng.randint(1, MAX_HOLD)
        self.queue.append((self.passes + hold, source, name, data))
        rate = float(fault.get("duplicate_rate", 0) or 0)
        if rate and self.rng.random() < rate:
            copy = name.removesuffix(".xml") + "-dup.xml"
            self.queue.append((self.passes + self.rng.randint(0, MAX_HOLD), None, copy, data))

    def release(self, fault: dict[str, Any] | None) -> list[tuple[str | None, str, bytes]]:
        """What goes out in this pass, as (source or None, name, data); then the next pass."""
        due = [q for q in self.queue if q[0] <= self.passes]
        self.queue = [q for q in self.queue if q[0] > self.passes]
        self.passes += 1
        out = [(source, name, data) for _at, source, name, data in due]
        if fault and fault.get("reorder"):
            self.rng.shuffle(out)
        return out
