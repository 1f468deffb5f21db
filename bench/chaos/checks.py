"""What a chaos run checks afterwards; each failed check is a finding (a line of text)."""

from __future__ import annotations

import asyncio
import os
import time

from bench.chaos.load import Run
from bench.soak import loaded_functions, verdict
from devstack.stack import Stack
from fjordbank import topology

NOT_FINAL = ("not final (timeout)", "not sent")


async def _nats_state(stack: Stack) -> dict:
    """Per consumer: pending and unacknowledged; the DLQ stream's message count."""
    from fjordbank.adapters import nats_conn
    from fjordbank.config import load_settings

    settings = load_settings({**os.environ, **stack.nats_env("admin")})
    nc = await nats_conn.connect(settings.nats, name="chaos-check", max_reconnect_attempts=3)
    try:
        js = nc.jetstream()
        consumers = {}
        for spec in topology.CONSUMERS:
            info = await js.consumer_info(spec.stream, spec.durable)
            consumers[spec.durable] = {"pending": info.num_pending, "ack_pending": info.num_ack_pending}
        dlq = (await js.stream_info(topology.STREAM_DLQ)).state.messages
        return {"consumers": consumers, "dlq": dlq}
    finally:
        await nc.close()


def nats_state(stack: Stack) -> dict:
    return asyncio.run(_nats_state(stack))


def wait_drained(stack: Stack, deadline_s: float) -> dict:
    end = time.monotonic() + deadline_s
    while True:
        state = nats_state(stack)
        busy = {k: v for k, v in state["consumers"].items() if v["pending"] or v["ack_pending"]}
        if not busy or time.monotonic() > end:
            return state
        time.sleep(1)


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def load_findings(run: Run) -> list[str]:
    findings = []
    for b in run.batches:
        if b["error"]:
            findings.append(f"load batch at +{b['started']}s failed: {b['error']}")
        bad = {k: v for k, v in b["statuses"].items() if k in NOT_FINAL}
        if bad:
            findings.append(f"load batch at +{b['started']}s: payments not final: {bad}")
    if not run.latencies:
        findings.append("no payment finished")
    return findings


def stack_findings(run: Run, *, before: dict, after: dict, audit, stack: Stack, max_workers: int) -> list[str]:
    findings = []
    if not audit.ok:
        findings.append(f"the ledger audit found {len(audit.problems)} problem(s), e.g. {audit.problems[:2]}")
    if after["dlq"] != before["dlq"]:
        findings.append(f"the dead-letter stream grew from {before['dlq']} to {after['dlq']} messages")
    busy = {k: v for k, v in after["consumers"].items() if v["pending"] or v["ack_pending"]}
    if busy:
        findings.append(f"consumers not drained: {busy}")
    not_ready = [f"{r.component} ({r.state})" for r in stack.status() if r.state != "ready"]
    if not_ready:
        findings.append(f"components not ready afterwards: {', '.join(not_ready)}")
    for fault in run.faults:
        if fault.error:
            findings.append(f"{fault.kind} {fault.targets} at +{fault.start}s: {fault.error}")
    # processes and memory (bench.soak's verdict): the workers' bound and memory growth;
    # a killed component's restart changes its process count for a moment, so not that
    functions = loaded_functions(stack.sup.log_file("emulators"))
    findings += [
        f
        for f in verdict(run.samples, max_workers=max_workers, functions=functions, max_growth=0.5)
        if "processes grew" not in f
    ]
    return findings


def latency_findings(run: Run, max_p99: float) -> list[str]:
    p99 = quantile(run.latencies, 0.99)
    if max_p99 and p99 is not None and p99 > max_p99:
        return [f"time to final p99 {p99}s is above {max_p99}s"]
    return []
