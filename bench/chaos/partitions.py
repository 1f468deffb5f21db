"""Partition faults: SIGKILL of a service instance that holds payment partitions.

``owner-kill`` picks, among the instances of the partitioned services that hold at least
one partition right now (their ``fjb_partitions_owned`` on /metrics), one at random from
the seed and kills it; it is restarted after 1-8 s. Its unacknowledged messages come back
after the consumers' ack wait; its partitions go to the service's other instances once the
leases expire (fjordbank/runtime/ownership.py), unless the restarted process, which has the
same instance name, takes them back first. The fault records which partitions the victim
held and how long until every partition of the service was held again (by anybody).
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass

import requests

from bench.chaos.kinds import Context, Fault
from devstack.settings import service_of
from devstack.stack import Stack
from fjordbank import topology

OWNED = re.compile(r'^fjb_partitions_owned\{service="[^"]+"\} (?P<n>[0-9.]+)$', re.M)


def owned(stack: Stack, instance: str) -> int:
    try:
        text = requests.get(f"http://127.0.0.1:{stack.s.service_ports[instance]}/metrics", timeout=2).text
    except (requests.RequestException, KeyError):
        return 0
    m = OWNED.search(text)
    return int(float(m["n"])) if m else 0


def partitioned_services() -> set[str]:
    return {i.name for i in topology.IDENTITIES for c in i.consumes if topology.consumer(c).partitioned}


@dataclass(frozen=True)
class OwnerKill:
    name: str = "owner-kill"
    weight: float = 2
    colour: str = "tab:pink"

    def choose(self, rng: random.Random, ctx: Context) -> tuple[list[str], float]:
        # the victim is drawn when the fault starts (who holds what changes); here only
        # the draw's number, so the seed fixes the choice among the holders then
        return [f"#{rng.randrange(1_000_000)}"], rng.uniform(1, 8)

    def apply(self, stack: Stack, fault: Fault, stop: threading.Event) -> None:
        services = partitioned_services()
        holders = sorted(
            (n for n in stack.s.service_ports if service_of(n) in services and owned(stack, n) > 0),
        )
        if not holders:
            fault.error = "no instance holds a partition"
            return
        victim = holders[int(fault.targets[0][1:]) % len(holders)]
        service = service_of(victim)
        peers = [n for n in stack.s.service_ports if service_of(n) == service]
        fault.targets = [victim]
        fault.detail = {"held": owned(stack, victim), "instances": len(peers)}
        stack.sup.kill(victim)
        killed = time.monotonic()
        stop.wait(fault.seconds)
        stack.restart(victim)
        # until the service's partitions are all held again (by the survivors or the restarted
        # one), for the whole minute even if the run's time ran out meanwhile: a restart on a
        # loaded machine can outlast the rest of the run, and the check must still be made
        # (it used to end at once then and report the partitions as not held)
        while time.monotonic() - killed < 60:
            if sum(owned(stack, n) for n in peers) >= topology.PAYMENT_PARTITIONS:
                fault.detail["all_held_after_s"] = round(time.monotonic() - killed, 2)
                return
            time.sleep(0.25)
        fault.error = f"{service}'s partitions not all held again 60 s after {victim} was killed"


KINDS = (OwnerKill(),)
