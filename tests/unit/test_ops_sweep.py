"""The notifier's ops sweep (fjordbank/runtime/ops_sweep.py) without Firestore: what it
exports from one sweep's readings, the audit gauges appearing only once an audit ran, a
failing sweep that never stops the loop, the success stamp only a sweep that read everything
sets, and the indexes its ordered queries need.
(tests/integration/test_ops_sweep.py reads the emulator.)"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from pathlib import Path

from prometheus_client import REGISTRY, generate_latest

from fjordbank.runtime import ops_sweep
from fjordbank.service_layer import audit, incoming, outbox

REPO = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 11, 30, 12, 0, 0, tzinfo=dt.UTC)


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_age_is_seconds_since_the_oldest_and_zero_without_one():
    assert ops_sweep.age(None, NOW) == 0
    assert ops_sweep.age(NOW - dt.timedelta(minutes=5), NOW) == 300
    assert ops_sweep.age(NOW + dt.timedelta(seconds=2), NOW) == 0  # another clock ahead of ours
    assert ops_sweep.age((NOW - dt.timedelta(seconds=7)).replace(tzinfo=None), NOW) == 7


def test_the_outbox_kinds_are_the_streams_subjects():
    assert ops_sweep.OUTBOX_KINDS == ("cards", "customers", "payments")
    assert outbox.kind_of("cards.commands.issue") == "cards"
    assert outbox.kind_of("customers.approved") == "customers"


def test_one_sweep_sets_every_state_and_kind_and_the_audit_only_once_one_ran():
    snapshot = ops_sweep.Snapshot(
        open_oldest={s: 0.0 for s in ops_sweep.OPEN_STATES} | {"approved": 125.0},
        outbox_pending={"cards": 2, "customers": 0, "payments": 0, "publish_pending": 1},
        outbox_oldest={"cards": 30.0, "customers": 0.0, "payments": 0.0, "publish_pending": 12.0},
        audit=None,
    )
    ops_sweep.export(snapshot)
    assert value("fjb_payments_open_oldest_age_seconds", state="approved") == 125
    assert value("fjb_payments_open_oldest_age_seconds", state="settled") == 0
    assert value("fjb_outbox_pending", kind="cards") == 2
    assert value("fjb_outbox_pending", kind="publish_pending") == 1
    assert value("fjb_outbox_oldest_age_seconds", kind="publish_pending") == 12
    if not ops_sweep._registered:  # no audit read yet in this process: nothing is claimed
        assert b"fjb_audit_last_success" not in generate_latest(REGISTRY)

    report = audit.AuditReport()
    report.add(audit.BALANCE, "account 1: stored balance 1 != replay 0")
    report.add(audit.BALANCE, "account 2: stored balance 2 != replay 0")
    ran = NOW - dt.timedelta(minutes=3)
    snapshot.audit = audit.summary_of(report, ran)
    ops_sweep.export(snapshot)
    assert value("fjb_audit_last_success") == 0
    assert value("fjb_audit_last_run_timestamp_seconds") == ran.timestamp()
    assert value("fjb_audit_problems", kind="balance_mismatch") == 2
    assert value("fjb_audit_problems", kind="conservation") == 0
    assert {k for k in audit.KINDS if value("fjb_audit_problems", kind=k) is not None} == set(audit.KINDS)

    snapshot.audit = audit.summary_of(audit.AuditReport(), NOW)
    ops_sweep.export(snapshot)
    assert value("fjb_audit_last_success") == 1
    assert value("fjb_audit_problems", kind="balance_mismatch") == 0


def test_the_audit_summary_says_ok_problems_by_kind_and_when():
    report = audit.AuditReport(accounts=3, postings=4)
    assert audit.summary_of(report, NOW) | {"problems": None} == {
        "ok": True,
        "problems": None,
        "problemCount": 0,
        "examples": [],
        "accounts": 3,
        "postings": 4,
        "payments": 0,
        "ranAt": NOW,
    }
    report.add(audit.CONSERVATION, "conservation broken: balances sum to 5")
    summary = audit.summary_of(report, NOW)
    assert summary["ok"] is False and summary["problemCount"] == 1
    assert summary["problems"] == {k: int(k == audit.CONSERVATION) for k in audit.KINDS}


def test_a_failing_sweep_is_logged_and_the_next_one_runs(monkeypatch, caplog):
    calls = []
    stopping = asyncio.Event()

    async def take(db, *, now=None):
        calls.append(db)
        if len(calls) == 1:
            raise RuntimeError("firestore away")
        stopping.set()
        return ops_sweep.Snapshot()

    monkeypatch.setattr(ops_sweep, "take", take)
    with caplog.at_level(logging.ERROR, logger=ops_sweep.__name__):
        asyncio.run(asyncio.wait_for(ops_sweep.sweeper("db", period=0.01)(stopping), timeout=5))
    assert calls == ["db", "db"]
    assert "ops sweep failed" in caplog.text


def test_only_a_sweep_that_read_everything_stamps_its_success(monkeypatch):
    """A failing sweep left every gauge at its last value and the alerts on them quiet, with
    nothing to say so (found in review): the stamp moves on only when a sweep read every
    query, so FjbOpsSweepStale sees a sweep that fails, times out or leaves a query out."""
    outcomes = iter(
        [
            ops_sweep.Snapshot(),  # read everything: stamped at 100
            RuntimeError("firestore away"),  # failed: kept
            ops_sweep.Snapshot(failed=["oldest:releases"]),  # one query left out: kept
            ops_sweep.Snapshot(),  # everything again: stamped at 400
        ]
    )
    # the clock is read for a stamp only: the first sweep's and the last one's
    clock = iter([100.0, 400.0])
    stamps: list[float | None] = []
    stopping = asyncio.Event()

    async def take(db, *, now=None):
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def export(snapshot):
        stamps.append(value("fjb_ops_sweep_last_success_timestamp_seconds"))  # before this sweep's stamp

    def tick() -> float:
        now = next(clock)
        if now == 400.0:
            stopping.set()
        return now

    monkeypatch.setattr(ops_sweep, "take", take)
    monkeypatch.setattr(ops_sweep, "export", export)
    ops_sweep.SWEEP_OK.set(0)
    sweep = ops_sweep.sweeper("db", period=0.01, clock=tick)
    asyncio.run(asyncio.wait_for(sweep(stopping), timeout=5))
    assert stamps == [0.0, 100.0, 100.0]  # seen by the 1st, 3rd and 4th sweeps' export
    assert value("fjb_ops_sweep_last_success_timestamp_seconds") == 400.0


def test_a_query_that_fails_is_named_in_the_snapshot(monkeypatch):
    from unittest.mock import AsyncMock, MagicMock

    async def count(query) -> int:
        return 0

    async def oldest(query, time_field: str):
        if time_field == "raisedAt":
            raise RuntimeError("DEADLINE_EXCEEDED")
        return None

    async def newest(query, time_field: str):
        return None

    monkeypatch.setattr(ops_sweep, "_count", count)
    monkeypatch.setattr(ops_sweep, "_oldest", oldest)
    monkeypatch.setattr(ops_sweep, "_newest", newest)
    db = MagicMock()
    db.collection.return_value.document.return_value.get = AsyncMock(return_value=MagicMock(exists=False))
    snapshot = asyncio.run(ops_sweep.take(db, now=NOW))
    assert sorted(snapshot.failed) == ["alert_oldest", "payee_alert_oldest"]
    assert ops_sweep.Snapshot().failed == []


def test_the_sweeps_ordered_queries_have_their_composite_indexes():
    """The emulator does not enforce indexes; production refuses a query without one."""
    indexes = json.loads((REPO / "firestore.indexes.json").read_text())["indexes"]
    have = {
        (i["collectionGroup"], i["queryScope"], tuple((f["fieldPath"], f["order"]) for f in i["fields"]))
        for i in indexes
    }
    need = {
        ("paymentRequests", "COLLECTION_GROUP", (("status", "ASCENDING"), ("updatedAt", "ASCENDING"))),
        (outbox.OUTBOX, "COLLECTION", (("kind", "ASCENDING"), ("stagedAt", "ASCENDING"))),
        (incoming.RETURNS, "COLLECTION", (("status", "ASCENDING"), ("createdAt", "ASCENDING"))),  # returns, held
        (incoming.RETURNS, "COLLECTION", (("status", "ASCENDING"), ("decidedAt", "ASCENDING"))),  # releases
        ("sanctionsAlerts", "COLLECTION", (("status", "ASCENDING"), ("raisedAt", "ASCENDING"))),  # oldest open
        ("payeeAlerts", "COLLECTION", (("status", "ASCENDING"), ("raisedAt", "ASCENDING"))),  # oldest open
    }
    assert need <= have


class _Snap:
    def __init__(self, fields):
        self.exists, self._fields = fields is not None, fields

    def to_dict(self):
        return self._fields


def test_the_rescreen_is_behind_by_its_last_runs_walk_and_its_runs_and_freezes_are_exported():
    started = NOW - dt.timedelta(hours=30)
    assert ops_sweep._behind(_Snap({"walkStartedAt": started, "done": False}), NOW) == 30 * 3600
    assert ops_sweep._behind(_Snap({"walkStartedAt": started, "done": True}), NOW) == 0  # walked to the end
    assert ops_sweep._behind(_Snap({"walkStartedAt": None, "done": False}), NOW) == 0  # failed before a walk
    assert ops_sweep._behind(None, NOW) == ops_sweep._behind(_Snap(None), NOW) == 0
    assert ops_sweep._stamp(_Snap({"lastOkAt": NOW}), "lastOkAt") == NOW.timestamp()
    assert ops_sweep._stamp(_Snap({}), "lastOkAt") == ops_sweep._stamp(None, "lastOkAt") == 0
    ops_sweep.export(
        ops_sweep.Snapshot(
            alerts={"open": 2, "frozen": 1},
            alert_oldest=90.0,
            rescreen_behind=5.0,
            rescreen_ok=NOW.timestamp(),
            last_freeze=NOW.timestamp() - 60,
        )
    )
    assert value("fjb_sanctions_alerts", status="open") == 2 and value("fjb_sanctions_alerts", status="frozen") == 1
    assert value("fjb_sanctions_alert_oldest_open_age_seconds") == 90
    assert value("fjb_rescreen_behind_seconds") == 5
    assert value("fjb_rescreen_last_success_timestamp_seconds") == NOW.timestamp()
    assert value("fjb_sanctions_last_freeze_timestamp_seconds") == NOW.timestamp() - 60
    ops_sweep.export(ops_sweep.Snapshot(rescreen_ok=None))  # not read this sweep: kept
    assert value("fjb_rescreen_last_success_timestamp_seconds") == NOW.timestamp()


def test_the_due_payments_runs_last_success_and_how_long_they_have_been_behind_are_exported():
    """From the due-payments job's run lease (scheduled.RUN_LEASE): FjbDuePaymentsNotRun and
    FjbDuePaymentsBehind read these."""
    since = NOW - dt.timedelta(minutes=40)
    assert ops_sweep._since(_Snap({"behindSince": since}), "behindSince", NOW) == 40 * 60
    assert ops_sweep._since(_Snap({"lastOkAt": NOW}), "behindSince", NOW) == 0  # caught up
    assert ops_sweep._since(None, "behindSince", NOW) == ops_sweep._since(_Snap(None), "behindSince", NOW) == 0
    ops_sweep.export(ops_sweep.Snapshot(due_ok=NOW.timestamp(), due_behind=2400.0))
    assert value("fjb_due_payments_last_success_timestamp_seconds") == NOW.timestamp()
    assert value("fjb_due_payments_behind_seconds") == 2400
    ops_sweep.export(ops_sweep.Snapshot(due_ok=None, due_behind=None))  # not read this sweep: kept
    assert value("fjb_due_payments_last_success_timestamp_seconds") == NOW.timestamp()
    assert value("fjb_due_payments_behind_seconds") == 2400


def test_payees_like_listed_ones_are_exported_by_status_with_the_oldest_open_ones_age():
    ops_sweep.export(ops_sweep.Snapshot(payee_alerts={"open": 3, "confirmed": 1}, payee_alert_oldest=600.0))
    assert value("fjb_payee_alerts", status="open") == 3 and value("fjb_payee_alerts", status="confirmed") == 1
    assert value("fjb_payee_alert_oldest_open_age_seconds") == 600
    ops_sweep.export(ops_sweep.Snapshot(payee_alert_oldest=None))  # not read this sweep: kept
    assert value("fjb_payee_alert_oldest_open_age_seconds") == 600


def test_payments_held_for_review_and_releases_not_yet_published_are_exported():
    snapshot = ops_sweep.Snapshot(
        outbox_pending={ops_sweep.RELEASES: 1}, outbox_oldest={ops_sweep.RELEASES: 40.0}, held=3, held_oldest=7200.0
    )
    ops_sweep.export(snapshot)
    assert value("fjb_incoming_held") == 3
    assert value("fjb_incoming_held_oldest_age_seconds") == 7200
    assert value("fjb_outbox_pending", kind="releases") == 1
    assert value("fjb_outbox_oldest_age_seconds", kind="releases") == 40
    ops_sweep.export(ops_sweep.Snapshot())
    assert value("fjb_incoming_held") == 0 and value("fjb_incoming_held_oldest_age_seconds") == 0


def test_a_query_that_fails_leaves_its_gauge_and_the_others_are_read(monkeypatch, caplog):
    """After a deploy, an index the sweep needs may still be building: that query fails,
    and every other gauge is still read (before, one failure lost the whole sweep)."""
    from unittest.mock import AsyncMock, MagicMock

    async def count(query) -> int:
        return 2

    async def oldest(query, time_field: str):
        if time_field == "decidedAt":  # the releases' (status, decidedAt) index not built yet
            raise RuntimeError("FAILED_PRECONDITION: The query requires an index")
        return NOW - dt.timedelta(seconds=60)

    async def newest(query, time_field: str):
        return None

    monkeypatch.setattr(ops_sweep, "_count", count)
    monkeypatch.setattr(ops_sweep, "_oldest", oldest)
    monkeypatch.setattr(ops_sweep, "_newest", newest)
    db = MagicMock()
    db.collection.return_value.document.return_value.get = AsyncMock(return_value=MagicMock(exists=False))
    with caplog.at_level(logging.WARNING, logger=ops_sweep.__name__):
        snapshot = asyncio.run(ops_sweep.take(db, now=NOW))
    assert ops_sweep.RELEASES not in snapshot.outbox_oldest and snapshot.outbox_pending[ops_sweep.RELEASES] == 2
    assert snapshot.outbox_oldest[ops_sweep.RETURNS] == 60 and snapshot.held == 2 and snapshot.held_oldest == 60
    assert set(snapshot.open_oldest) == set(ops_sweep.OPEN_STATES)
    assert snapshot.payee_alerts == {"open": 2, "confirmed": 2} and snapshot.payee_alert_oldest == 60
    assert "a query failed" in caplog.text
    ops_sweep.export(ops_sweep.Snapshot(outbox_oldest={ops_sweep.RELEASES: 5.0}))
    ops_sweep.export(snapshot)
    assert value("fjb_outbox_oldest_age_seconds", kind="releases") == 5  # kept
