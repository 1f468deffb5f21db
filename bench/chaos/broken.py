"""A service broken on purpose for one chaos run (``--break NAME:SERVICE``), to show that
the run catches what it is there to catch.

    python -m bench.chaos --seed 5 --minutes 1 --kinds kill --targets ledger \
        --break ack-before-commit:ledger          # must exit 1: payments are lost

``ack-before-commit``: the consumer runtime acks each delivery before its handler runs and
commits (fjordbank/runtime/consumer.py ``_ack_before_commit``), the classic broken
consumer: a kill between the ack and the commit loses the message, so its payment is never
final. The entry goes into the services' faults file (fjordbank/adapters/faults.py) for the
run (``faults.update``: the other entries are kept) and is removed afterwards; its
``until`` switches it off by itself should the run die. The service is restarted first so
that it runs the code of this checkout with the faults file set (every instance of it).

The payments such a run loses stay lost on that stack, as they would in production; later
runs check only their own payments.
"""

from __future__ import annotations

import time

from devstack.settings import service_of
from devstack.stack import Stack
from fjordbank import topology
from fjordbank.adapters import faults

BREAKS = {"ack-before-commit": "ack_before_commit"}  # --break name -> the faults-file entry


def parse(spec: str) -> tuple[str, str]:
    """``NAME:SERVICE`` -> (faults-file entry, service); ValueError when unknown."""
    name, _, service = spec.partition(":")
    if name not in BREAKS:
        raise ValueError(f"unknown break {name!r}; known: {', '.join(BREAKS)}")
    if service not in topology.SERVICES:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(topology.SERVICES)}")
    return BREAKS[name], service


def switch_on(stack: Stack, spec: str, seconds: float) -> tuple[str, str]:
    """Break ``SERVICE`` for ``seconds`` (at most); returns (entry, service)."""
    entry, service = parse(spec)
    faults.update(stack.faults_file, entry, {"until": time.time() + seconds, "services": [service]})
    for component in stack.s.service_ports:  # every instance (ledger, ledger-2 ...)
        if service_of(component) == service:
            stack.restart(component)
    return entry, service


def switch_off(stack: Stack, entry: str) -> None:
    if entry in faults.read(stack.faults_file):
        faults.update(stack.faults_file, entry, None)
