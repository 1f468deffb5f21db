"""Fault kinds: what a chaos run can do to the stack.

A kind draws its targets and duration from the run's seeded random generator
(``choose``) and applies the fault, holds it for its time and undoes it (``apply``,
blocking; it returns early, with the fault undone, when ``stop`` is set). Each module of
this package that defines kinds lists them in its ``KINDS``; ``registry()`` collects them:
``process`` (kill, stop, nats-kill, nats-stop), ``partitions`` (owner-kill), ``injected``
(firestore-errors, publish-timeouts), ``clearing`` (clearing-down, counterparty), ``clock``.
The seed fixes the sequence of kinds, targets, durations and pauses.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Protocol

from devstack.stack import Stack


@dataclass
class Fault:
    kind: str
    targets: list[str]
    start: float  # seconds from the run's start
    seconds: float  # how long the fault lasts
    end: float | None = None
    error: str | None = None
    detail: dict | None = None  # what the kind recorded (e.g. orders created, answers sent twice)


@dataclass(frozen=True)
class Context:
    """What kinds choose from: the consumer services (every instance), the NATS nodes."""

    consumers: list[str]
    nats: list[str]


class FaultKind(Protocol):
    name: str
    weight: float  # relative chance of being drawn
    colour: str  # in the plot

    def choose(self, rng: random.Random, ctx: Context) -> tuple[list[str], float]: ...

    def apply(self, stack: Stack, fault: Fault, stop: threading.Event) -> None: ...


def registry() -> dict[str, FaultKind]:
    from bench.chaos import clearing, clock, injected, partitions, process

    families = (process, partitions, injected, clearing, clock)
    kinds: list[FaultKind] = [kind for family in families for kind in family.KINDS]
    return {k.name: k for k in kinds}
