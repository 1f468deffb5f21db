"""The chaos run's injected faults on the real stack (bench/chaos/injected.py), each applied
by its kind as the run applies it, at a high rate (30 %) for 20 s while `bankctl load`
sends payments through the app's surface (a share to other banks, through clearing):

- Firestore errors (ABORTED, UNAVAILABLE, DEADLINE_EXCEEDED) in every consumer service;
- payment steps' publishes timing out (half of them after JetStream stored the message).

Afterwards every payment is final, the ledger audit is green, nothing was dead-lettered,
every consumer is drained and every service ready (none crashed), and the services'
fjb_faults_injected_total grew: the faults did happen, and the services retried them.
"""

from __future__ import annotations

import threading
import time

import pytest

from bench.chaos import checks
from bench.chaos.injected import FirestoreErrors, PublishTimeouts, injected_counts
from bench.chaos.kinds import Fault
from fjordbank import topology
from fjordbank.adapters import faults

pytestmark = pytest.mark.stack
RATE = 0.3
SECONDS = 20.0


@pytest.fixture(scope="module")
def bank(stack):
    from bankctl.config import load as load_config
    from bankctl.customers import Bank

    return Bank(load_config())


def load_under_fault(stack, bank, kind, targets: list[str]) -> tuple[dict, Fault]:
    """30 payments (40 % to other banks) from 3 new customers; the fault is switched on
    once the first payment is sent (the customers' onboarding before it runs without)."""
    from bankctl.load import LoadRun, run_load

    run = LoadRun(payments=30, customers=3, concurrency=6, max_amount=50_000, external_share=0.4, timeout=150)
    fault = Fault(kind.name, [*targets, f"rate={RATE}"], 0.0, SECONDS)
    stop, loaded = threading.Event(), threading.Event()
    applied = threading.Thread(target=kind.apply, args=(stack, fault, stop), daemon=True)

    def start_with_the_payments() -> None:
        while not run.started and not loaded.is_set():
            time.sleep(0.05)
        if run.started:
            applied.start()

    starter = threading.Thread(target=start_with_the_payments, daemon=True)
    starter.start()
    try:
        summary = run_load(bank, run, log=lambda _m: None)
    finally:
        loaded.set()
        starter.join(timeout=5)
        if applied.ident is not None:
            applied.join(timeout=SECONDS + 60)  # the fault ends on its own after SECONDS
    assert applied.ident is not None, "no payment was sent"
    assert not applied.is_alive(), "the fault was not undone"
    return summary, fault


def services(injected: dict) -> set[str]:
    """The services of the instances that injected faults (``ledger-2`` is a ledger)."""
    return {name if name in topology.SERVICES else name.rsplit("-", 1)[0] for name in injected}


def assert_every_promise_kept(stack, audit, summary: dict, dlq_before: int) -> None:
    bad = {k: v for k, v in summary["statuses"].items() if k in checks.NOT_FINAL}
    assert not bad, summary
    assert summary["final"] == 30, summary
    after = checks.wait_drained(stack, 90)
    assert after["dlq"] == dlq_before, f"dead-lettered: {after['dlq'] - dlq_before} message(s)"
    busy = {k: v for k, v in after["consumers"].items() if v["pending"] or v["ack_pending"]}
    assert not busy, busy
    audit()
    not_ready = [f"{r.component} ({r.state})" for r in stack.status() if r.state != "ready"]
    assert not not_ready, not_ready
    assert faults.read(stack.faults_file).keys().isdisjoint({faults.FIRESTORE, faults.PUBLISH_TIMEOUT})


def test_payments_complete_exactly_once_through_firestore_errors_in_every_service(stack, bank, audit):
    assert set(injected_counts(stack)) >= set(topology.SERVICES), "a service does not answer /metrics"
    dlq_before = checks.nats_state(stack)["dlq"]
    summary, fault = load_under_fault(stack, bank, FirestoreErrors(), list(topology.SERVICES))
    print({"statuses": summary["statuses"], "detail": fault.detail})
    assert_every_promise_kept(stack, audit, summary, dlq_before)
    injected = fault.detail["injected"]
    assert fault.detail["injected_total"] > 0, fault.detail
    # the services on every payment's path failed calls, with more than one of the codes
    assert {"screening", "ledger", "notifier"} <= services(injected), injected
    codes = {f for per_service in injected.values() for f in per_service}
    assert len(codes & set(faults.FIRESTORE_FAULTS.values())) >= 2, codes


def test_payments_complete_exactly_once_through_publish_timeouts(stack, bank, audit):
    dlq_before = checks.nats_state(stack)["dlq"]
    summary, fault = load_under_fault(stack, bank, PublishTimeouts(), ["screening", "ledger", "clearing"])
    print({"statuses": summary["statuses"], "detail": fault.detail})
    assert_every_promise_kept(stack, audit, summary, dlq_before)
    injected = fault.detail["injected"]
    assert {"screening", "ledger"} <= services(injected), injected
    kinds = {f for per_service in injected.values() for f in per_service}
    # both: timed out before sending, and after JetStream stored the message (ack lost)
    assert kinds == {faults.PUBLISH_NOT_SENT, faults.PUBLISH_ACK_LOST}, injected
