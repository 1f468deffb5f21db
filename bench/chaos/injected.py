"""Injected faults: Firestore errors and NATS publish timeouts inside the services.

Both go through the faults file (fjordbank/adapters/faults.py) every service reads:

- ``firestore-errors`` (10-30 s, at a rate drawn from 5-25 %): the ``firestore`` entry. The
  services' Firestore clients fail their RPCs with ABORTED (only inside a transaction, as
  contention does), UNAVAILABLE or DEADLINE_EXCEEDED, on one consumer service or on all.
- ``publish-timeouts`` (10-30 s, rate 10-30 %): the ``publish_timeout`` entry. A payment
  step's publish (screening, ledger, clearing) times out: half before the message went out,
  half after JetStream stored it (the ack lost; the retry's Nats-Msg-Id is a duplicate).

The seed fixes the rate with the targets: it is the last of the fault's targets
(``rate=0.17``; shown in the run's output and plot), read back by ``apply``. The services
must treat every such error as transient (a transaction retried, a message naked and
redelivered), so the run's checks hold: every payment final, the audit green, nothing
dead-lettered. ``fault.detail`` holds what each service injected in the window (its
fjb_faults_injected_total, read from its /metrics before and after).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.chaos.kinds import Context, Fault
from devstack.stack import Stack
from fjordbank import topology
from fjordbank.adapters import faults

MARGIN_S = 30  # the entry's `until` lies this far past the fault's end: a dead run leaves it off soon
CODES = ["ABORTED", "UNAVAILABLE", "DEADLINE_EXCEEDED"]
PUBLISHERS = ["screening", "ledger", "clearing"]  # the services that publish payment steps
RATE = "rate="


def injected_counts(stack: Stack) -> dict[str, dict[str, float]]:
    """Per service (every instance the stack runs): fjb_faults_injected_total by fault. A
    service that does not answer (killed by another fault) is left out."""
    out: dict[str, dict[str, float]] = {}
    for name, port in stack.s.service_ports.items():
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except requests.RequestException:
            continue
        out[name] = {
            s.labels["fault"]: s.value
            for family in text_string_to_metric_families(text)
            if family.name == "fjb_faults_injected"
            for s in family.samples
            if s.name == "fjb_faults_injected_total"
        }
    return out


def injected_between(before: dict, after: dict) -> dict[str, dict[str, int]]:
    """What each service injected between two readings (a service restarted meanwhile
    counts from zero again: its later reading alone)."""
    diff: dict[str, dict[str, int]] = {}
    for service, counts in after.items():
        earlier = before.get(service, {})
        grown = {}
        for fault, value in counts.items():
            start = earlier.get(fault, 0.0)
            grown[fault] = int(value - start if value >= start else value)
        grown = {k: v for k, v in grown.items() if v}
        if grown:
            diff[service] = grown
    return diff


def rate_of(fault: Fault) -> float:
    return next(float(t.removeprefix(RATE)) for t in fault.targets if t.startswith(RATE))


def services_of(fault: Fault) -> list[str]:
    return [t for t in fault.targets if not t.startswith(RATE)]


def hold(stack: Stack, fault: Fault, stop: threading.Event, name: str, entry: dict) -> None:
    """Switch entry ``name`` on for ``fault.seconds`` (less if ``stop``), then off; the
    injected counts go to ``fault.detail``."""
    before = injected_counts(stack)
    started = time.time()
    faults.update(stack.faults_file, name, {**entry, "until": started + fault.seconds + MARGIN_S})
    try:
        stop.wait(fault.seconds)
    finally:
        faults.update(stack.faults_file, name, None)
    injected = injected_between(before, injected_counts(stack))
    fault.detail = {
        **{k: v for k, v in entry.items() if k != "until"},
        "window": [round(started, 3), round(time.time(), 3)],
        "injected": injected,
        "injected_total": sum(sum(v.values()) for v in injected.values()),
    }


@dataclass(frozen=True)
class FirestoreErrors:
    """Firestore RPCs failing (ABORTED, UNAVAILABLE, DEADLINE_EXCEEDED) at 5-25 % for
    10-30 s, in one consumer service or in all of them."""

    name: str = "firestore-errors"
    weight: float = 1
    colour: str = "tab:green"

    def choose(self, rng: random.Random, ctx: Context) -> tuple[list[str], float]:
        services = list(topology.SERVICES)
        targets = services if rng.random() < 0.5 else [rng.choice(services)]
        rate = round(rng.uniform(0.05, 0.25), 2)
        return [*targets, f"{RATE}{rate}"], rng.uniform(10, 30)

    def apply(self, stack: Stack, fault: Fault, stop: threading.Event) -> None:
        entry = {"rate": rate_of(fault), "codes": CODES, "services": services_of(fault)}
        hold(stack, fault, stop, faults.FIRESTORE, entry)


@dataclass(frozen=True)
class PublishTimeouts:
    """A payment step's publish timing out at 10-30 % for 10-30 s in every service that
    publishes them (half before sending, half with the ack lost)."""

    name: str = "publish-timeouts"
    weight: float = 1
    colour: str = "teal"

    def choose(self, rng: random.Random, ctx: Context) -> tuple[list[str], float]:
        rate = round(rng.uniform(0.10, 0.30), 2)
        return [*PUBLISHERS, f"{RATE}{rate}"], rng.uniform(10, 30)

    def apply(self, stack: Stack, fault: Fault, stop: threading.Event) -> None:
        entry = {"rate": rate_of(fault), "services": services_of(fault)}
        hold(stack, fault, stop, faults.PUBLISH_TIMEOUT, entry)


KINDS = (FirestoreErrors(), PublishTimeouts())
