"""Failures the pipeline must survive: crashes at the worst moment, poison messages,
messages that keep failing. Every payment still completes exactly once, and the audit
passes after each scenario."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from devstack.settings import service_of
from fjordbank import topology
from tests.support import natsclients
from tests.support.app import new_customer
from tests.support.clients import unique, wait_for

pytestmark = pytest.mark.stack


def _dlq_messages(stack, consumer: str) -> list[tuple[dict, bytes]]:
    """Every message in dlq.<consumer>, as (headers, data), read by the admin identity."""

    async def read():
        nc = await natsclients.connect(stack, "admin")
        try:
            js = nc.jetstream()
            sub = await js.subscribe(topology.dlq_subject(consumer), ordered_consumer=True)
            out = []
            while True:
                try:
                    msg = await sub.next_msg(timeout=1)
                except Exception:  # nats TimeoutError: no more messages
                    return out
                out.append(({**(msg.headers or {}), "_seq": msg.metadata.sequence.stream}, msg.data))
        finally:
            await nc.close()

    return asyncio.run(read())


def _wait_dead(stack, name: str, timeout: float = 60) -> None:
    wait_for(lambda: stack.sup.pid(name) is None, timeout=timeout, what=f"{name} to crash")


def test_ledger_killed_after_its_commit_and_before_the_ack_posts_every_payment_once(
    stack, auth, as_user, ledger_admin, audit
):
    alice = new_customer(auth, as_user, ledger_admin, 100_000, 0)
    # every instance armed: alice's partition is with one of them (make test runs two)
    ledgers = [n for n in stack.s.service_ports if service_of(n) == "ledger"]
    for name in ledgers:
        stack.restart(name, env={"FJB_CRASH_POINT": "ledger.after_commit"})
    try:
        ids = [alice.request_payment(alice.accounts[1], 1_000 + i) for i in range(5)]
        ids.append(alice.request_payment("15030000002", 2_000))  # an external one too
        wait_for(
            lambda: any(stack.sup.pid(n) is None for n in ledgers), timeout=60, what="the ledger holding it to crash"
        )
    finally:
        for name in ledgers:
            stack.restart(name, env={"FJB_CRASH_POINT": ""})
    docs = [alice.wait_final(i, timeout=120) for i in ids]
    assert [d["status"] for d in docs] == ["completed"] * 6
    expected_out = sum(1_000 + i for i in range(5)) + 2_000
    assert alice.balance(alice.accounts[0]) == 100_000 - expected_out
    assert alice.balance(alice.accounts[1]) == expected_out - 2_000
    audit()


def test_clearing_killed_between_recording_and_writing_a_file_sends_it_on_restart(
    stack, auth, as_user, ledger_admin, audit
):
    alice = new_customer(auth, as_user, ledger_admin, 30_000)
    stack.restart("clearing", env={"FJB_CRASH_POINT": "clearing.after_claim"})
    try:
        request_id = alice.request_payment("15030000002", 7_000)
        _wait_dead(stack, "clearing")
    finally:
        stack.restart("clearing", env={"FJB_CRASH_POINT": ""})
    doc = alice.wait_final(request_id, timeout=120)
    assert doc["status"] == "completed"
    sent = stack.s.state_dir / "clearing" / "sent"
    assert sum(doc["paymentId"].encode() in f.read_bytes() for f in sent.glob("*.xml")) == 1
    assert alice.balance() == 23_000
    audit()


def test_poison_message_is_dead_lettered_while_other_payments_complete(stack, auth, as_user, ledger_admin, audit):
    marker = unique("poison")
    SUBJECT = f"{topology.SUBJECT_PAYMENT_REQUESTED}.5"

    async def publish_poison():
        nc = await natsclients.connect(stack, "edge")
        try:
            await nc.jetstream().publish(SUBJECT, json.dumps({"marker": marker}).encode())
        finally:
            await nc.close()

    asyncio.run(publish_poison())
    alice = new_customer(auth, as_user, ledger_admin, 5_000, 0)
    assert alice.wait_final(alice.request_payment(alice.accounts[1], 1_000))["status"] == "completed"

    found = wait_for(
        lambda: [h for h, d in _dlq_messages(stack, "screening") if marker.encode() in d],
        timeout=30,
        what="the poison message in dlq.screening",
    )
    assert "malformed" in found[0]["Fjb-Reason"]
    assert found[0]["Fjb-Original-Subject"] == SUBJECT
    audit()


def test_a_message_that_kills_its_process_each_time_is_dead_lettered_alone_and_the_payments_behind_it_complete(
    stack, auth, as_user, ledger_admin, audit
):
    """An OOM kill's pattern (fjordbank/runtime/in_hand.py): every screening instance kills
    itself whenever it handles a batch holding one message, and comes back as Cloud Run or
    Kubernetes would bring it back. The payments published behind it, on its partition,
    were its batch each time; they complete, and only it is dead-lettered."""
    alice = new_customer(auth, as_user, ledger_admin, 50_000, 0)
    marker = unique("stops")
    subject = f"{topology.SUBJECT_PAYMENT_REQUESTED}.{topology.partition_of(alice.accounts[0])}"
    armed = {"FJB_CRASH_POINT": f"screening.handling:{marker}"}
    instances = [n for n in stack.s.service_ports if service_of(n) == "screening"]
    for name in instances:
        stack.restart(name, env=armed)

    async def publish_stopper():
        nc = await natsclients.connect(stack, "edge")
        try:
            await nc.jetstream().publish(subject, json.dumps({"marker": marker}).encode())
        finally:
            await nc.close()

    def dead_lettered():
        for name in instances:  # the platform's part: an instance that stopped is started again
            if stack.sup.pid(name) is None:
                stack.restart(name, env=armed)
        return [h for h, d in _dlq_messages(stack, "screening") if marker.encode() in d]

    try:
        asyncio.run(publish_stopper())
        ids = [alice.request_payment(alice.accounts[1], 1_000 + i) for i in range(4)]
        found = wait_for(dead_lettered, timeout=240, interval=1, what="the message that kills screening in its DLQ")
    finally:
        for name in instances:
            stack.restart(name, env={"FJB_CRASH_POINT": ""})
    assert "stopped 2 times while it was handled alone" in found[0]["Fjb-Reason"], found[0]
    docs = [alice.wait_final(i, timeout=120) for i in ids]
    assert [d["status"] for d in docs] == ["completed"] * 4
    assert alice.balance(alice.accounts[1]) == sum(1_000 + i for i in range(4))
    letters = _dlq_messages(stack, "screening")
    assert not [h for h, d in letters if any(i.encode() in d for i in ids)], "none of the payments behind it"
    audit()


def test_a_message_that_keeps_failing_is_dead_lettered_after_max_deliver_and_others_flow(
    stack, auth, as_user, ledger_admin, admin_db, audit, broken_account
):
    alice = new_customer(auth, as_user, ledger_admin, 5_000, 0)
    # A corrupt account document (no balance): the ledger fails on every delivery.
    make_broken, mend = broken_account
    broken = make_broken(alice.uid)
    stuck = alice.request_payment(alice.accounts[1], 100, from_account=broken)
    fine = alice.request_payment(alice.accounts[1], 1_000)
    assert alice.wait_final(fine)["status"] == "completed"

    spec = topology.consumer("ledger")
    found = wait_for(
        lambda: [h for h, d in _dlq_messages(stack, "ledger") if stuck.encode() in d],
        timeout=120,
        interval=2,
        what="the failing message in dlq.ledger",
    )
    assert found[0]["Fjb-Deliveries"] == str(spec.max_deliver)
    assert "KeyError" in found[0]["Fjb-Reason"]
    # The payment is stuck (approved, never posted) for operators to resolve. The app shows
    # it as in the bank's hands: "approved" is shown only with the ledger's answer
    # (fjordbank.domain.payments.UNSHOWN); bankctl shows where it stopped.
    assert alice.request(stuck)["status"] == "requested"
    listed = subprocess.run(
        [sys.executable, "-m", "bankctl", "dlq", "list", "--consumer", "ledger"],
        capture_output=True,
        text=True,
        cwd=stack.s.repo,
        timeout=60,
    )
    assert listed.returncode == 0 and "KeyError" in listed.stdout

    # An operator mends the account and replays the dead letter: the payment finishes.
    mend(broken)
    sequence = next(h["_seq"] for h in found)
    replayed = subprocess.run(
        [sys.executable, "-m", "bankctl", "dlq", "replay", str(sequence), "--by", "Test Operator", "--note", "mended"],
        capture_output=True,
        text=True,
        cwd=stack.s.repo,
        timeout=60,
    )
    assert replayed.returncode == 0, replayed.stderr
    doc = alice.wait_final(stuck, timeout=60)
    assert doc["status"] == "failed" and doc["reason"]["code"] == "insufficient_funds"
    audit()
