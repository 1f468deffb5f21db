"""Process faults: consumers and NATS nodes killed (SIGKILL) or hung (SIGSTOP/SIGCONT).

Never two NATS nodes at once: the run applies one fault at a time."""

from __future__ import annotations

import os
import random
import signal
import threading
from dataclasses import dataclass

from bench.chaos.kinds import Context, Fault
from devstack.stack import Stack
from devstack.supervisor import marked_pids


def signal_component(stack: Stack, name: str, sig: int) -> None:
    for pid in marked_pids(stack.sup.marker(name)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _kill_and_restart(stack: Stack, fault: Fault, stop: threading.Event) -> None:
    for name in fault.targets:
        stack.sup.kill(name)
    stop.wait(fault.seconds)
    for name in fault.targets:
        stack.restart(name)


def _stop_and_continue(stack: Stack, fault: Fault, stop: threading.Event) -> None:
    for name in fault.targets:
        signal_component(stack, name, signal.SIGSTOP)
    try:
        stop.wait(fault.seconds)
    finally:
        for name in fault.targets:
            signal_component(stack, name, signal.SIGCONT)


@dataclass(frozen=True)
class Kill:
    """SIGKILL of one consumer service instance, or two at once; restarted after 1-6 s."""

    name: str = "kill"
    weight: float = 4
    colour: str = "tab:red"

    def choose(self, rng: random.Random, ctx: Context) -> tuple[list[str], float]:
        # (min: a run may restrict the targets to one service, --targets)
        return rng.sample(ctx.consumers, min(len(ctx.consumers), rng.choice([1, 1, 2]))), rng.uniform(1, 6)

    def apply(self, stack: Stack, fault: Fault, stop: threading.Event) -> None:
        _kill_and_restart(stack, fault, stop)


@dataclass(frozen=True)
class Stop:
    """SIGSTOP of a consumer service instance (a hung process), SIGCONT after 3-8 s."""

    name: str = "stop"
    weight: float = 2
    colour: str = "tab:orange"

    def choose(self, rng: random.Random, ctx: Context) -> tuple[list[str], float]:
        return [rng.choice(ctx.consumers)], rng.uniform(3, 8)

    def apply(self, stack: Stack, fault: Fault, stop: threading.Event) -> None:
        _stop_and_continue(stack, fault, stop)


@dataclass(frozen=True)
class NatsKill:
    """SIGKILL of one NATS node, leader or not, restarted after 3-15 s."""

    name: str = "nats-kill"
    weight: float = 2
    colour: str = "tab:purple"

    def choose(self, rng: random.Random, ctx: Context) -> tuple[list[str], float]:
        return [rng.choice(ctx.nats)], rng.uniform(3, 15)

    def apply(self, stack: Stack, fault: Fault, stop: threading.Event) -> None:
        _kill_and_restart(stack, fault, stop)


@dataclass(frozen=True)
class NatsStop:
    """SIGSTOP of one NATS node (a hung server), SIGCONT after 2-6 s."""

    name: str = "nats-stop"
    weight: float = 1
    colour: str = "tab:brown"

    def choose(self, rng: random.Random, ctx: Context) -> tuple[list[str], float]:
        return [rng.choice(ctx.nats)], rng.uniform(2, 6)

    def apply(self, stack: Stack, fault: Fault, stop: threading.Event) -> None:
        _stop_and_continue(stack, fault, stop)


KINDS = (Kill(), Stop(), NatsKill(), NatsStop())
