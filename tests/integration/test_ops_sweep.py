"""The ops sweep against the real stack: its queries over the Firestore emulator, and the
scheduled audit's result reaching the notifier's gauges through the real path
(`bankctl jobs run audit-ledger` -> Pub/Sub -> on_scheduled_job -> ops/ledgerAudit -> the
notifier's sweep -> /metrics).

Planted documents live outside users/ (a paymentRequests collection under opsSweepTest/,
which the collection-group queries see and no trigger fires on), are a few minutes old
only (no local alert threshold) and are deleted at the end."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import time

import pytest
import requests

from fjordbank.adapters.firestore import OPS, async_client
from fjordbank.runtime import ops_sweep
from fjordbank.service_layer import audit, incoming, outbox
from tests.monitoring import catalogue as mon
from tests.support.clients import unique, wait_for

pytestmark = pytest.mark.stack
AGE = 200  # seconds: old enough to stand out, far below any alert threshold


def notifier_samples(stack) -> dict[tuple[str, tuple], float]:
    text = requests.get(f"http://127.0.0.1:{stack.s.service_ports['notifier']}/metrics", timeout=10).text
    return {(name, tuple(sorted(labels.items()))): value for name, labels, value in mon.samples(text)}


def test_the_sweep_reads_the_oldest_open_request_per_state_and_the_outbox_backlog(stack, admin_db):
    now = dt.datetime.now(dt.UTC)
    stale = now - dt.timedelta(seconds=AGE)
    request = admin_db.document(f"opsSweepTest/{unique('u')}/paymentRequests/{unique('req')}")
    staged = admin_db.collection(outbox.OUTBOX).document(unique("ops-sweep-test"))
    # the card service's own outbox: a subject the card service may not publish, so its relay
    # (every 30 s) leaves it where it is
    decided = admin_db.collection(outbox.CARD_OUTBOX).document(unique("ops-sweep-test"))
    # a return recorded and not delivered: written now, so no clearing process takes it for
    # one another process left behind (it looks for those a minute old)
    kept = admin_db.collection(incoming.RETURNS).document(unique("ops-sweep-test"))
    # a payment held for sanctions review: the clearing service leaves it for an officer
    held = admin_db.collection(incoming.RETURNS).document(unique("ops-sweep-test"))
    try:
        request.set({"status": "approved", "updatedAt": stale})
        staged.set({"subject": "cards.ops-sweep-test", "kind": "cards", "body": {}, "stagedAt": stale})
        decided.set({"subject": "cards.ops-sweep-test", "kind": "cards", "body": {}, "stagedAt": stale})
        kept.set({"status": incoming.PENDING, "order": {}, "createdAt": stale})
        held.set({"status": incoming.HELD, "amount": 1, "createdAt": stale})

        async def sweep():
            return await ops_sweep.take(async_client(stack.s.project_id), now=now)

        snapshot = asyncio.run(sweep())
        assert set(snapshot.open_oldest) == set(ops_sweep.OPEN_STATES)
        assert snapshot.open_oldest["approved"] >= AGE
        assert snapshot.outbox_pending["cards"] >= 1
        assert snapshot.outbox_oldest["cards"] >= AGE
        assert snapshot.outbox_pending[ops_sweep.CARD_DECISIONS] >= 1
        assert snapshot.outbox_oldest[ops_sweep.CARD_DECISIONS] >= AGE
        assert snapshot.outbox_pending[ops_sweep.RETURNS] >= 1
        assert snapshot.outbox_oldest[ops_sweep.RETURNS] >= AGE
        assert snapshot.held >= 1 and snapshot.held_oldest >= AGE
        assert set(snapshot.outbox_pending) == {
            *ops_sweep.OUTBOX_KINDS,
            ops_sweep.CARD_DECISIONS,
            ops_sweep.RETURNS,
            ops_sweep.RELEASES,
            ops_sweep.PUBLISH_PENDING,
        }
        assert set(snapshot.outbox_oldest) == set(snapshot.outbox_pending)
    finally:
        request.delete()
        staged.delete()
        decided.delete()
        kept.delete()
        held.delete()


def test_the_scheduled_audit_reaches_the_notifiers_gauges(stack, admin_db):
    started = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "bankctl", "jobs", "run", "audit-ledger"],
        cwd=stack.s.repo,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr

    def summary():
        snap = admin_db.collection(OPS).document(audit.SUMMARY_DOC).get()
        data = snap.to_dict() if snap.exists else None
        return data if data and data["ranAt"].timestamp() >= started - 1 else None

    doc = wait_for(summary, timeout=120, interval=1, what="the audit-ledger job's summary")
    assert set(doc["problems"]) == set(audit.KINDS)
    assert doc["ok"] is (doc["problemCount"] == 0)

    def exported():
        samples = notifier_samples(stack)
        ran = samples.get(("fjb_audit_last_run_timestamp_seconds", ()))
        return samples if ran is not None and ran >= doc["ranAt"].timestamp() - 0.001 else None

    # the notifier reads it at its next sweep (every 30 s, the default the stack runs with)
    samples = wait_for(exported, timeout=75, interval=1, what="the notifier's audit gauges")
    assert samples[("fjb_audit_last_success", ())] == (1 if doc["ok"] else 0)
    for kind in audit.KINDS:
        assert samples[("fjb_audit_problems", (("kind", kind),))] == doc["problems"][kind]
