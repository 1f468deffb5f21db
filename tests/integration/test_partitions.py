"""Two instances of the ledger and of screening share the payment partitions
(fjordbank/runtime/ownership.py): each works on its own, a killed instance's partitions
move to the other once its leases expire while payments keep arriving, every payment ends
exactly once (the ledger audit), nothing is dead-lettered, and the restarted instance gets
its share back.

`make test` runs the stack with FJB_REPLICAS_LEDGER=2 and FJB_REPLICAS_SCREENING=2; on a
stack started without them, the test starts the second instances itself (and leaves them).
"""

from __future__ import annotations

import re
import threading
import time

import pytest
import requests

from bench.chaos.checks import nats_state
from devstack import settings as stack_settings
from devstack.stack import Stack
from fjordbank import topology

pytestmark = pytest.mark.stack

OWNED = re.compile(r'^fjb_partitions_owned\{service="(?P<service>[^"]+)"\} (?P<n>[0-9.]+)$', re.M)


@pytest.fixture(scope="module")
def scaled(stack):
    env = {"FJB_REPLICAS_LEDGER": "2", "FJB_REPLICAS_SCREENING": "2"}
    import os

    st = Stack(stack_settings.load({**os.environ, **env}), progress=lambda m: print(m, flush=True))
    if any(r.state != "ready" for r in st.status()):
        st.up()
    return st


def owned(st: Stack, instance: str) -> int | None:
    """Partitions the instance holds (its /metrics), None if it does not answer."""
    try:
        text = requests.get(f"http://127.0.0.1:{st.s.service_ports[instance]}/metrics", timeout=2).text
    except requests.RequestException:
        return None
    m = OWNED.search(text)
    return int(float(m["n"])) if m else 0


def lost(st: Stack, instance: str) -> int:
    """Leases the instance lost (renewal refused: it had lapsed and been taken)."""
    text = requests.get(f"http://127.0.0.1:{st.s.service_ports[instance]}/metrics", timeout=2).text
    found = re.search(r'^fjb_partition_moves_total\{[^}]*move="lost"[^}]*\} ([0-9.]+)$', text, re.M)
    return int(float(found[1])) if found else 0


def wait_until(what: str, check, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout}s: {what}")


def split(st: Stack, service: str) -> bool:
    a, b = owned(st, service), owned(st, f"{service}-2")
    return bool(a) and bool(b) and a + b == topology.PAYMENT_PARTITIONS


@pytest.mark.parametrize("service", ["ledger", "screening"])
def test_an_instance_killed_mid_load_hands_its_partitions_over_and_every_payment_ends_once(scaled, service, audit):
    from bankctl.config import load as load_config
    from bankctl.customers import Bank
    from bankctl.load import LoadRun, run_load

    wait_until(f"both {service} instances hold partitions", lambda: split(scaled, service), 60)
    before = nats_state(scaled)
    bank = Bank(load_config())
    run = LoadRun(payments=80, customers=8, concurrency=10, max_amount=50_000, external_share=0.0, timeout=120)
    result: dict = {}
    loader = threading.Thread(target=lambda: result.update(run_load(bank, run, log=lambda _m: None)), daemon=True)
    loader.start()
    wait_until("the load under way", lambda: len(run.finished) >= 15, 120)

    victim = f"{service}-2"
    scaled.sup.kill(victim)  # SIGKILL: no clean hand-over, its leases must expire
    try:
        moved = wait_until(
            f"{service} holding every partition after {victim} was killed",
            lambda: owned(scaled, service) == topology.PAYMENT_PARTITIONS,
            topology.LEASE_SECONDS + 4 * topology.LEASE_RENEW_SECONDS,
        )
        print(f"{service}: partitions moved {moved:.1f}s after the kill")
        loader.join(timeout=300)
        assert not loader.is_alive()
        assert result["statuses"] == {"completed": 80}, (result.get("reasons"), result)

        lost_before = lost(scaled, service)
        scaled.restart(victim)
        wait_until(f"{victim} back with its share", lambda: split(scaled, service), 60)
        # the survivor gave up half its partitions: the ones it kept never lapsed meanwhile
        assert lost(scaled, service) == lost_before
        after = nats_state(scaled)
        assert after["dlq"] == before["dlq"]
        audit()
    finally:
        if scaled.sup.pid(victim) is None:  # a failure above left it down: the later tests need it
            scaled.restart(victim)
