"""A trace per payment on the real stack, read back with `bankctl trace`: a completed
internal payment (continuing the app's own traceparent), an external one the other bank
returned, and one dead-lettered by the ledger and replayed, each with its steps, its
deliveries and its end. Also: a malformed traceparent from the app starts a new trace and
is never a refusal, and the edge's log lines carry the trace id."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

from tests.support.app import new_customer
from tests.support.clients import wait_for

WHO = ("--by", "Test Operator", "--note", "the account document mended")  # a replay's who and why

pytestmark = pytest.mark.stack

EXTERNAL_CLOSED = "15030000010"  # the simulated counterparty answers AC04 (closed)


def bankctl_trace(stack, ident: str, *, as_json: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bankctl", "trace", ident, *(["--json"] if as_json else [])],
        capture_output=True,
        text=True,
        cwd=stack.s.repo,
        timeout=60,
        env={**os.environ, "FJB_STATE_DIR": str(stack.s.state_dir)},
    )


def wait_trace(stack, ident: str, ready, what: str, timeout: float = 60) -> dict:
    """`bankctl trace ID --json` once ``ready(timeline)`` (spans are exported within a
    second of their end; a timeline read earlier can miss the last ones)."""

    def read():
        out = bankctl_trace(stack, ident)
        assert out.returncode == 0, out.stderr
        timeline = json.loads(out.stdout)
        return ready(timeline) and timeline

    return wait_for(read, timeout=timeout, interval=0.5, what=what)


def steps(timeline: dict) -> list[tuple[str, str]]:
    return [(r["service"], r["name"]) for r in timeline["steps"] if r["step"]]


def step(timeline: dict, service: str, name: str) -> dict:
    return next(r for r in timeline["steps"] if r["step"] and (r["service"], r["name"]) == (service, name))


def test_a_completed_internal_payment_is_one_trace_from_the_apps_traceparent(stack, auth, as_user, ledger_admin):
    alice = new_customer(auth, as_user, ledger_admin, 10_000, 0)
    trace_id = secrets.token_hex(16)
    request_id = alice.request_payment(alice.accounts[1], 1_500, traceparent=f"00-{trace_id}-{secrets.token_hex(8)}-01")
    doc = alice.wait_final(request_id)
    assert doc["status"] == "completed"
    assert doc["traceId"] == trace_id  # the edge continued the app's trace and wrote its id

    expected = [
        ("edge", "on_payment_request"),
        ("screening", "payments.requested"),
        ("ledger", "payments.approved"),
        ("ledger", "payments.credit"),
        ("notifier", "payments.completed"),
        ("edge", "on_push (1 push(es): no_devices 1)"),
    ]
    timeline = wait_trace(
        stack,
        doc["paymentId"],
        lambda t: all(s in steps(t) for s in expected),
        "the completed payment's steps in its trace",
    )
    assert timeline["traceIds"] == [trace_id]
    assert timeline["requestId"] == request_id and timeline["uid"] == alice.uid
    assert step(timeline, "edge", "on_payment_request")["published"] == ["payments.requested"]
    assert step(timeline, "screening", "payments.requested")["published"] == ["payments.approved"]
    ledger = step(timeline, "ledger", "payments.approved")
    assert ledger["attempt"] == 1 and ledger["outcome"] == "ack" and ledger["published"] == ["payments.credit"]
    # the credit leg, in the payee's partition: completed to the payer's, credited to the payee's
    credit = step(timeline, "ledger", "payments.credit")
    assert credit["outcome"] == "ack" and credit["published"] == ["payments.completed", "payments.credited"]
    names = [r["name"] for r in timeline["steps"]]
    assert "firestore ledger_post_batch (batch of 1)" in names or any(
        n.startswith("firestore ledger_post_batch") for n in names
    )
    offsets = [r["offsetMs"] for r in timeline["steps"] if r["step"]]
    assert offsets == sorted(offsets) and offsets[0] == 0
    assert timeline["end"]["final"] and timeline["end"]["summary"] == "completed"

    # the same by request id, as text
    text = bankctl_trace(stack, request_id, as_json=False)
    assert text.returncode == 0, text.stderr
    print(text.stdout)  # shown with -s, and on a failure
    assert (
        trace_id in text.stdout
        and "ledger" in text.stdout
        and text.stdout.rstrip().splitlines()[-1].startswith("end: completed")
    )
    # the edge's log lines carry the trace id
    log = (stack.s.log_dir / "emulators.log").read_text(errors="replace")
    assert f'"trace_id": "{trace_id}"' in log


def test_a_malformed_traceparent_from_the_app_starts_a_new_trace_and_is_no_refusal(stack, auth, as_user, ledger_admin):
    alice = new_customer(auth, as_user, ledger_admin, 10_000, 0)
    bogus = "00-" + "A" * 32 + "-" + "0" * 16 + "-01"  # upper case, zero span id
    doc = alice.wait_final(alice.request_payment(alice.accounts[1], 700, traceparent=bogus))
    assert doc["status"] == "completed"
    assert len(doc["traceId"]) == 32 and doc["traceId"] not in bogus.lower()


def test_an_external_payment_returned_by_the_other_bank(stack, auth, as_user, ledger_admin):
    alice = new_customer(auth, as_user, ledger_admin, 20_000)
    request_id = alice.request_payment(EXTERNAL_CLOSED, 5_000)
    doc = alice.wait_final(request_id, timeout=90)
    assert doc["status"] == "failed" and doc["reason"]["code"] == "AC04"

    expected = [
        ("edge", "on_payment_request"),
        ("screening", "payments.requested"),
        ("ledger", "payments.approved"),
        ("clearing", "payments.reserved"),
        ("clearing", "pain.002"),
        ("ledger", "payments.returned"),
        ("notifier", "payments.failed"),
    ]
    timeline = wait_trace(
        stack,
        f"{alice.uid}/{request_id}",
        lambda t: all(s in steps(t) for s in expected),
        "the returned payment's steps",
        timeout=90,
    )
    assert timeline["traceIds"] == [doc["traceId"]]
    assert step(timeline, "ledger", "payments.approved")["published"] == ["payments.reserved"]
    assert step(timeline, "clearing", "payments.reserved")["published"] == ["payments.submitted"]
    answer = step(timeline, "clearing", "pain.002")
    assert answer["published"] == ["payments.returned"] and answer["reason"] == "AC04"
    assert step(timeline, "ledger", "payments.returned")["published"] == ["payments.failed"]
    assert timeline["end"]["final"] and timeline["end"]["summary"].startswith("failed: AC04")
    text = bankctl_trace(stack, request_id, as_json=False)
    assert text.returncode == 0 and "end: failed: AC04" in text.stdout, text.stderr
    print(text.stdout)


def test_a_dead_lettered_payment_shows_its_retries_and_a_replay_continues_its_trace(
    stack, auth, as_user, ledger_admin, admin_db, audit, broken_account
):
    alice = new_customer(auth, as_user, ledger_admin, 5_000, 0)
    # A corrupt account document (no balance): the ledger fails on every delivery.
    make_broken, mend = broken_account
    broken = make_broken(alice.uid)
    request_id = alice.request_payment(alice.accounts[1], 100, from_account=broken)
    payment_id = wait_for(lambda: (alice.request(request_id) or {}).get("paymentId"), what="the payment id")

    timeline = wait_trace(
        stack,
        payment_id,
        lambda t: t["end"].get("deadLettered"),
        "the payment dead-lettered by the ledger",
        timeout=150,
    )
    ledger = [r for r in timeline["steps"] if r["step"] and r["service"] == "ledger"]
    assert [r["attempt"] for r in ledger] == list(range(1, len(ledger) + 1)) and len(ledger) == 6
    assert [r["outcome"] for r in ledger] == ["nak"] * 5 + ["dead_lettered"]
    assert all("KeyError" in r["reason"] for r in ledger)
    dead = timeline["end"]["deadLettered"]
    assert dead["consumer"] == "ledger" and dead["subject"] == "payments.approved" and dead["deliveries"] == 6
    # screening approved it, but "approved" is shown only with the ledger's answer
    # (fjordbank.domain.payments.UNSHOWN): the request still shows it in the bank's hands
    assert timeline["status"] == "requested" and not timeline["end"]["final"]
    text = bankctl_trace(stack, payment_id, as_json=False).stdout
    assert "stopped: dead-lettered at ledger (payments.approved) after 6 deliveries" in text
    print(text)
    # the ledger's log line of the dead letter carries the payment's trace id (in the log
    # of the ledger instance holding the payer's partition: ledger.log, ledger-2.log ...)
    ledger_log = "\n".join(p.read_text(errors="replace") for p in sorted(stack.s.log_dir.glob("ledger*.log")))
    assert any(
        '"message dead-lettered"' in line and timeline["traceIds"][0] in line for line in ledger_log.splitlines()
    )

    # mended and replayed: the replay continues the same trace to the end
    mend(broken)
    replayed = subprocess.run(
        [sys.executable, "-m", "bankctl", "dlq", "replay", str(dead["dlqSequence"]), *WHO],
        capture_output=True,
        text=True,
        cwd=stack.s.repo,
        timeout=60,
    )
    assert replayed.returncode == 0, replayed.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "bankctl", "dlq", "list", "--consumer", "ledger", "--json"],
        capture_output=True,
        text=True,
        cwd=stack.s.repo,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    letter = next(r for r in json.loads(listed.stdout) if r["sequence"] == dead["dlqSequence"])
    assert letter["replayed"] is not None, replayed.stderr + replayed.stdout
    assert letter["replayed"]["times"] == 1 and letter["replayed"]["subject"].startswith("payments.approved.")
    assert (letter["replayed"]["by"], letter["replayed"]["paymentId"]) == ("Test Operator", payment_id)
    # production's way (the admin identity from the environment): the same letter again is
    # refused as replayed already; --again would publish it once more
    import os

    def production_replay(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "fjordbank.runtime.dead_letters", "replay", str(dead["dlqSequence"]), *WHO, *extra],
            capture_output=True,
            text=True,
            cwd=stack.s.repo,
            env={**os.environ, **stack.nats_env("admin")},
            timeout=60,
        )

    again = production_replay()
    assert again.returncode == 1 and "was replayed already (1 time(s)" in again.stderr, again.stderr
    doc = alice.wait_final(request_id, timeout=60)
    assert doc["status"] == "failed" and doc["reason"]["code"] == "insufficient_funds"
    after = wait_trace(
        stack,
        payment_id,
        lambda t: t["end"].get("final") and len([r for r in t["steps"] if r["service"] == "ledger" and r["step"]]) == 7,
        "the replayed delivery in the same trace",
    )
    assert after["traceIds"] == timeline["traceIds"]
    assert after["end"]["summary"].startswith("failed: insufficient_funds")
    print(bankctl_trace(stack, payment_id, as_json=False).stdout)
    # asked for once more: published again (a new message id) and answered from the record
    once_more = production_replay("--again")
    assert once_more.returncode == 0 and f"#{dead['dlqSequence']} on payments." in once_more.stdout, once_more.stderr
    wait_trace(
        stack,
        payment_id,
        lambda t: len([r for r in t["steps"] if r["service"] == "ledger" and r["step"]]) == 8,
        "the second replay's delivery in the same trace",
    )
    assert alice.request(request_id)["status"] == "failed"
    audit()
