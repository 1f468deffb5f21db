"""The chaos run's clearing faults on the real stack (bench/chaos/clearing.py), each applied
by its kind as the run applies it:

- the clearing channel down for ~20 s while external payments are made: none completes
  while it is down, none is sent while it is down, every one completes once it is back,
  each exactly once (the payer's balance, the audit), nothing dead-lettered;
- the counterparty answering twice and out of order: every answer sent twice is handled
  and each payment settles once.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from bench.chaos.clearing import ClearingDown, Counterparty
from bench.chaos.kinds import Fault
from fjordbank import topology
from tests.support import natsclients
from tests.support.app import new_customer
from tests.support.clients import wait_for

pytestmark = pytest.mark.stack
EXTERNAL_OK = "15030000002"  # another bank (15xx): the simulated counterparty settles it


def dlq_count(stack) -> int:
    async def read() -> int:
        nc = await natsclients.connect(stack, "admin")
        try:
            return (await nc.jetstream().stream_info(topology.STREAM_DLQ)).state.messages
        finally:
            await nc.close()

    return asyncio.run(read())


def start_fault(kind, stack, seconds: float) -> tuple[Fault, threading.Thread, threading.Event]:
    fault = Fault(kind.name, ["clearing"], 0.0, seconds)
    stop = threading.Event()
    thread = threading.Thread(target=kind.apply, args=(stack, fault, stop), daemon=True)
    thread.start()
    return fault, thread, stop


def files_naming(directory, ids: list[str]) -> list[str]:
    return [f.name for f in directory.glob("*.xml*") if any(i.encode() in f.read_bytes() for i in ids)]


def payment_ids(customer, request_ids: list[str]) -> list[str]:
    return [customer.request(r)["paymentId"] for r in request_ids]


def test_payments_wait_out_a_clearing_outage_and_complete_once_it_is_back(stack, auth, as_user, ledger_admin, audit):
    payers = [new_customer(auth, as_user, ledger_admin, 100_000) for _ in range(2)]
    dlq_before = dlq_count(stack)
    clearing = stack.s.state_dir / "clearing"
    fault, thread, stop = start_fault(ClearingDown(), stack, 20)
    checked = False
    try:
        time.sleep(1.5)  # the services read the faults file within half a second
        sent = {c.uid: [c.request_payment(EXTERNAL_OK, 1_000 + 100 * i) for i in range(5)] for c in payers}
        # held: reserved and handed to clearing, but no file goes out and nothing completes.
        # A request the edge's trigger has not stamped yet has no status (a CI run met one).
        wait_for(
            lambda: all(
                (c.request(r) or {}).get("status") in ("reserved", "submitted") for c in payers for r in sent[c.uid]
            ),
            timeout=30,
            what="the payments to reach clearing",
        )
        ids = [p for c in payers for p in payment_ids(c, sent[c.uid])]
        time.sleep(3)
        assert thread.is_alive(), "the outage ended before the check"
        assert [c.request(r)["status"] for c in payers for r in sent[c.uid]].count("completed") == 0
        assert files_naming(clearing / "outbox", ids) == [] and files_naming(clearing / "sent", ids) == []
        checked = True
    finally:
        if not checked:
            stop.set()  # the fault is undone at once
        thread.join(timeout=60)
    assert fault.detail and fault.detail["window"][1] - fault.detail["window"][0] >= 19
    docs = [c.wait_final(r, timeout=90) for c in payers for r in sent[c.uid]]
    assert [d["status"] for d in docs] == ["completed"] * 10
    for c in payers:
        assert c.balance() == 100_000 - sum(1_000 + 100 * i for i in range(5))  # each paid once
    assert len(files_naming(clearing / "sent", ids)) >= 1
    assert dlq_count(stack) == dlq_before
    audit()


def test_answers_sent_twice_and_out_of_order_settle_each_payment_once(stack, auth, as_user, ledger_admin, audit):
    payer = new_customer(auth, as_user, ledger_admin, 100_000)
    dlq_before = dlq_count(stack)
    processed = stack.s.state_dir / "clearing" / "processed"
    fault, thread, stop = start_fault(Counterparty(), stack, 20)
    try:
        time.sleep(1.5)
        sent = []
        for wave in range(4):  # several files, so answers can overtake each other
            sent += [payer.request_payment(EXTERNAL_OK, 2_000 + 10 * wave + i) for i in range(3)]
            time.sleep(1.5)
        docs = [payer.wait_final(r, timeout=90) for r in sent]
    finally:
        stop.set()
        thread.join(timeout=60)
    assert [d["status"] for d in docs] == ["completed"] * 12
    ids = [d["paymentId"] for d in docs]
    copies = wait_for(
        lambda: [f for f in files_naming(processed, ids) if "-dup.xml" in f] or None,
        timeout=30,
        what="an answer sent twice to be handled",
    )
    assert copies, fault.detail
    time.sleep(3)  # copies still on their way are handled too
    assert payer.balance() == 100_000 - sum(2_000 + 10 * w + i for w in range(4) for i in range(3))
    assert [payer.request(r)["status"] for r in sent] == ["completed"] * 12
    assert dlq_count(stack) == dlq_before
    audit()
