"""The ops sweep: what only Firestore knows, exported as gauges by the notifier.

Every ``FJB_OPS_SWEEP_SECONDS`` (30 s) a background task of the notifier service
(run_services/notifier.py) reads, with cheap queries only (a count aggregation, or one
document of an ordered query; never a scan of a collection):

* per open state of a payment request (OPEN_STATES): the age of the request that has been
  in that state longest, from its ``updatedAt`` (the time it entered the state: every move
  of a request stamps it, nothing else writes an open request) -> fjb_payments_open_oldest_age_seconds{state}
  (0 when none is in that state). A payment the bank starts itself (no request document)
  is not seen here;
* the outbox (fjordbank/service_layer/outbox.py) per kind (OUTBOX_KINDS): documents not yet
  published and the oldest one's age -> fjb_outbox_pending{kind}, fjb_outbox_oldest_age_seconds{kind};
  likewise the card service's own outbox (``cardOutbox``: its decisions' events, which it
  relays itself) as kind ``card_decisions``, and the payment requests left in status
  ``received`` (reason publish_pending, fjordbank/service_layer/edge.py) as kind
  ``publish_pending``, and the returns of payments from other banks recorded and not yet
  delivered to the clearing house (``clearingReturns``, status pending,
  fjordbank/service_layer/incoming.py) as kind ``returns``, and the payments held for
  sanctions review a compliance officer released and the clearing service has not yet
  published (status release, from its ``decidedAt``) as kind ``releases``;
* the payments from other banks held for sanctions review, waiting for a compliance
  officer's decision (``clearingReturns``, status held) -> fjb_incoming_held and
  fjb_incoming_held_oldest_age_seconds (from its ``createdAt``);
* the customers the sanctions list names since they were taken on
  (fjordbank/service_layer/rescreening.py, ``sanctionsAlerts``): alerts open (a name like a
  listed one, nothing frozen) and frozen (the customer's accounts) -> fjb_sanctions_alerts{status},
  the oldest open one's age (from its ``raisedAt``) -> fjb_sanctions_alert_oldest_open_age_seconds,
  the newest freeze (``frozenAt``) -> fjb_sanctions_last_freeze_timestamp_seconds; from the
  rescreen's last run (``ops/rescreenRun``), how long the walk of its list has taken (0 once
  done: a list replaced is not waited for) -> fjb_rescreen_behind_seconds, and when a run
  last ended well -> fjb_rescreen_last_success_timestamp_seconds (0 before any);
* the payees at other banks whose name is like a listed one
  (fjordbank.domain.payee_screening, ``payeeAlerts``): alerts open (every payment to the
  payee refused until compliance decides) and confirmed (a listed party) ->
  fjb_payee_alerts{status}, the oldest open one's age (from its ``raisedAt``) ->
  fjb_payee_alert_oldest_open_age_seconds;
* the due-payments job's runs (``ops/dueRun``, its run lease: fjordbank/service_layer/
  scheduled.py): when a run last ended well -> fjb_due_payments_last_success_timestamp_seconds
  (0 before any), and how long the runs have each left due payments to the next (from the
  first such run's start, ``behindSince``; 0 once one ended with none left) ->
  fjb_due_payments_behind_seconds;
* the last scheduled ledger audit's summary (ops/ledgerAudit, written by the audit-ledger
  job) -> fjb_audit_last_success, fjb_audit_last_run_timestamp_seconds, fjb_audit_problems{kind}.
  These three appear once a summary exists: before the first audit nothing says whether
  the ledger is sound, and a 0 would read as a failed audit.

Indexes (firestore.indexes.json; the emulator does not enforce them, production does):
paymentRequests collection group (status, updatedAt), outbox (kind, stagedAt),
clearingReturns (status, createdAt) and (status, decidedAt), sanctionsAlerts (status,
raisedAt), payeeAlerts (status, raisedAt); the counts
use the single-field indexes on paymentRequests.status and outbox.kind, and cardOutbox
needs none beyond its single-field stagedAt.

The notifier is the service that sees every payment state, so it runs the sweep; with
several instances each exports the same values (rules take max). A failed sweep is logged
and the gauges keep their last values until the next one. A gauge kept at its last value
silences the alerts that read it, so each sweep that read everything (no query failed)
stamps fjb_ops_sweep_last_success_timestamp_seconds, and FjbOpsSweepStale pages when it is
old (monitoring/rules/payments.rules.yaml).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.async_aggregation import AsyncAggregationQuery
from google.cloud.firestore_v1.async_collection import AsyncCollectionReference
from google.cloud.firestore_v1.async_query import AsyncQuery
from google.cloud.firestore_v1.base_query import FieldFilter
from prometheus_client import REGISTRY, Gauge

from fjordbank import topology
from fjordbank.adapters.firestore import OPS, PAYEE_ALERTS, PAYMENT_REQUESTS, SANCTIONS_ALERTS
from fjordbank.domain import payee_screening as payee_rules
from fjordbank.domain import rescreening as rescreening_rules
from fjordbank.service_layer import incoming, rescreening
from fjordbank.service_layer.audit import KINDS as AUDIT_KINDS
from fjordbank.service_layer.audit import SUMMARY_DOC
from fjordbank.service_layer.outbox import CARD_OUTBOX, OUTBOX, kind_of
from fjordbank.service_layer.scheduled import RUN_LEASE as DUE_RUN

log = logging.getLogger(__name__)

# A payment request's states that are neither final (completed, failed, rejected, cancelled)
# nor waiting on purpose (scheduled): a request should not stay in one of these for long.
# Approved, reserved, settled and returned are no longer shown as they happen
# (fjordbank.domain.payments.UNSHOWN); requests from before 2026-12-01 may still be in them.
OPEN_STATES = ("received", "requested", "approved", "reserved", "submitted", "settled", "returned")
PUBLISH_PENDING = "publish_pending"  # the outbox kind of requests left in status "received"
CARD_DECISIONS = "card_decisions"  # the outbox kind of the card service's own outbox (CARD_OUTBOX)
RETURNS = "returns"  # the outbox kind of the returns clearing has not delivered (incoming.RETURNS)
RELEASES = "releases"  # the outbox kind of the held payments released and not yet published
# the kinds of events staged in the outbox: the streams' subjects (customers, cards, payments)
OUTBOX_KINDS = tuple(
    sorted({kind_of(s) for spec in topology.STREAMS if spec.name != topology.STREAM_DLQ for s in spec.subjects})
)

OPEN_OLDEST = Gauge(
    "fjb_payments_open_oldest_age_seconds",
    "Age of the payment request longest in each open state (0: none)",
    ["state"],
)
OUTBOX_PENDING = Gauge("fjb_outbox_pending", "Outbox documents not yet published, by kind", ["kind"])
OUTBOX_OLDEST = Gauge("fjb_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox document", ["kind"])
HELD = Gauge("fjb_incoming_held", "Payments from other banks held for sanctions review, not yet decided")
HELD_OLDEST = Gauge("fjb_incoming_held_oldest_age_seconds", "Age of the oldest payment held for sanctions review")
ALERTS = Gauge(
    "fjb_sanctions_alerts", "Customers the sanctions list names since onboarding, by alert status", ["status"]
)
ALERT_OLDEST = Gauge(
    "fjb_sanctions_alert_oldest_open_age_seconds", "Age of the oldest open sanctions alert on a customer"
)
RESCREEN_BEHIND = Gauge(
    "fjb_rescreen_behind_seconds", "How long the newest sanctions list has waited to be screened against every customer"
)
RESCREEN_OK = Gauge(
    "fjb_rescreen_last_success_timestamp_seconds", "Unix time of the rescreen's last run that ended well (0: none yet)"
)
LAST_FREEZE = Gauge(
    "fjb_sanctions_last_freeze_timestamp_seconds", "Unix time of the newest freeze of a customer under sanctions"
)
ALERT_STATUSES = (rescreening_rules.OPEN, rescreening_rules.FROZEN)
PAYEE_ALERTS_GAUGE = Gauge(
    "fjb_payee_alerts", "Payees at other banks whose name is like a listed one, by alert status", ["status"]
)
PAYEE_ALERT_OLDEST = Gauge(
    "fjb_payee_alert_oldest_open_age_seconds", "Age of the oldest open alert on a payee like a listed one"
)
PAYEE_ALERT_STATUSES = (payee_rules.OPEN, payee_rules.CONFIRMED)
DUE_OK = Gauge(
    "fjb_due_payments_last_success_timestamp_seconds",
    "Unix time of the due-payments job's last run that ended well (0: none yet)",
)
DUE_BEHIND = Gauge(
    "fjb_due_payments_behind_seconds",
    "How long the due-payments job's runs have each left due payments to the next (0: the last had none left)",
)
# not registered until a first audit summary is read (see the module docstring)
AUDIT_OK = Gauge(
    "fjb_audit_last_success", "1 if the last scheduled ledger audit found no problem, else 0", registry=None
)
AUDIT_RAN = Gauge("fjb_audit_last_run_timestamp_seconds", "Unix time of the last scheduled ledger audit", registry=None)
AUDIT_PROBLEMS = Gauge("fjb_audit_problems", "Problems the last ledger audit found, by kind", ["kind"], registry=None)
_AUDIT_GAUGES = (AUDIT_OK, AUDIT_RAN, AUDIT_PROBLEMS)
# 0 until a sweep has read everything: a notifier whose sweeps all fail says so from its
# start, and the alert gives a new process its first sweeps (process_start_time_seconds)
SWEEP_OK = Gauge(
    "fjb_ops_sweep_last_success_timestamp_seconds",
    "Unix time of the last ops sweep that read every query and set the gauges (0: none yet)",
)


@dataclass
class Snapshot:
    """One sweep's readings: ages in seconds, counts, and the audit summary (None: no audit yet)."""

    open_oldest: dict[str, float] = field(default_factory=dict)
    outbox_pending: dict[str, int] = field(default_factory=dict)
    outbox_oldest: dict[str, float] = field(default_factory=dict)
    held: int | None = 0  # None: not read this sweep (the gauge keeps its value)
    held_oldest: float | None = 0.0
    alerts: dict[str, int] = field(default_factory=dict)  # by status
    alert_oldest: float | None = 0.0
    payee_alerts: dict[str, int] = field(default_factory=dict)  # by status
    payee_alert_oldest: float | None = 0.0
    rescreen_behind: float | None = 0.0
    rescreen_ok: float | None = 0.0  # Unix time
    due_ok: float | None = 0.0  # Unix time
    due_behind: float | None = 0.0
    last_freeze: float | None = 0.0  # Unix time
    audit: dict[str, Any] | None = None
    failed: list[str] = field(default_factory=list)  # the reads that failed ("gauge:label"), kept at their values


def age(oldest: dt.datetime | None, now: dt.datetime) -> float:
    """Seconds since ``oldest`` (0 when there is none; never negative: clocks differ)."""
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.UTC)
    return max(0.0, (now - oldest).total_seconds())


async def _count(query: AsyncQuery) -> int:
    # what query.count() builds; its annotation says it returns the class, not an instance
    result = await AsyncAggregationQuery(query).count(alias="n").get()
    return int(result[0][0].value) if result and result[0] else 0


async def _oldest(query: AsyncQuery | AsyncCollectionReference, time_field: str) -> dt.datetime | None:
    snaps = await query.order_by(time_field).limit(1).get()
    for snap in snaps:
        value = snap.get(time_field)
        return value if isinstance(value, dt.datetime) else None
    return None


async def _newest(query: AsyncQuery | AsyncCollectionReference, time_field: str) -> Any:
    """The document with the latest ``time_field`` (a snapshot), or None."""
    snaps = await query.order_by(time_field, direction=firestore.Query.DESCENDING).limit(1).get()
    return snaps[0] if snaps else None


def _stamp(snap: Any, time_field: str) -> float:
    """Unix time of a snapshot's ``time_field`` (0: no such document or field)."""
    value = (snap.to_dict() or {}).get(time_field) if snap is not None and snap.exists else None
    return value.timestamp() if isinstance(value, dt.datetime) else 0.0


def _since(snap: Any, time_field: str, now: dt.datetime) -> float:
    """Seconds since a snapshot's ``time_field`` (0: no such document or field)."""
    value = (snap.to_dict() or {}).get(time_field) if snap is not None and snap.exists else None
    return age(value if isinstance(value, dt.datetime) else None, now)


def _behind(snap: Any, now: dt.datetime) -> float:
    """How long the walk of the list the rescreen's last run used has taken, from the
    run's record (0 once the walk is done, or none was needed)."""
    fields = (snap.to_dict() or {}) if snap is not None and snap.exists else {}
    if not fields or fields.get("done") is True:
        return 0.0
    started = fields.get("walkStartedAt")
    return age(started if isinstance(started, dt.datetime) else None, now)


async def take(db: firestore.AsyncClient, *, now: dt.datetime | None = None) -> Snapshot:
    """Read everything one sweep exports (an async Firestore client), queries concurrently.
    A query that fails (an index still building after a deploy, a timeout) is logged and
    left out: its gauge keeps its value, and every other one is read."""
    now = now or dt.datetime.now(dt.UTC)
    requests = db.collection_group(PAYMENT_REQUESTS)
    outbox = db.collection(OUTBOX)
    cards = db.collection(CARD_OUTBOX)

    def in_state(state: str) -> AsyncQuery:
        return requests.where(filter=FieldFilter("status", "==", state))

    def of_kind(kind: str) -> AsyncQuery:
        return outbox.where(filter=FieldFilter("kind", "==", kind))

    def clearing_in(status: str) -> AsyncQuery:
        return db.collection(incoming.RETURNS).where(filter=FieldFilter("status", "==", status))

    def alerts_in(status: str) -> AsyncQuery:
        return db.collection(SANCTIONS_ALERTS).where(filter=FieldFilter("status", "==", status))

    def payees_in(status: str) -> AsyncQuery:
        return db.collection(PAYEE_ALERTS).where(filter=FieldFilter("status", "==", status))

    returns, releases, held = clearing_in(incoming.PENDING), clearing_in(incoming.RELEASE), clearing_in(incoming.HELD)
    # what is read, by (gauge, label): a count aggregates a query, not a collection (the
    # card outbox's is ordered by the field indexed anyway)
    reads: dict[tuple[str, str], Awaitable[Any]] = {
        **{("open", s): _oldest(in_state(s), "updatedAt") for s in OPEN_STATES},
        **{("pending", k): _count(of_kind(k)) for k in OUTBOX_KINDS},
        **{("oldest", k): _oldest(of_kind(k), "stagedAt") for k in OUTBOX_KINDS},
        ("pending", CARD_DECISIONS): _count(cards.order_by("stagedAt")),
        ("oldest", CARD_DECISIONS): _oldest(cards, "stagedAt"),
        ("pending", RETURNS): _count(returns),
        ("oldest", RETURNS): _oldest(returns, "createdAt"),
        ("pending", RELEASES): _count(releases),
        ("oldest", RELEASES): _oldest(releases, "decidedAt"),
        ("pending", PUBLISH_PENDING): _count(in_state("received")),
        ("held", ""): _count(held),
        ("held_oldest", ""): _oldest(held, "createdAt"),
        **{("alerts", status): _count(alerts_in(status)) for status in ALERT_STATUSES},
        ("alert_oldest", ""): _oldest(alerts_in(rescreening_rules.OPEN), "raisedAt"),
        ("last_freeze", ""): _newest(db.collection(SANCTIONS_ALERTS), "frozenAt"),
        **{("payee_alerts", status): _count(payees_in(status)) for status in PAYEE_ALERT_STATUSES},
        ("payee_alert_oldest", ""): _oldest(payees_in(payee_rules.OPEN), "raisedAt"),
        ("rescreen_run", ""): db.collection(OPS).document(rescreening.LAST_RUN.split("/")[1]).get(),
        ("audit", ""): db.collection(OPS).document(SUMMARY_DOC).get(),
        ("due_run", ""): db.collection(OPS).document(DUE_RUN.split("/")[1]).get(),
    }
    results = dict(zip(reads, await asyncio.gather(*reads.values(), return_exceptions=True), strict=True))
    for (gauge, label), result in results.items():
        if isinstance(result, Exception):
            log.warning(
                "ops sweep: a query failed; its gauge keeps its value",
                extra={"gauge": gauge, "label": label, "error": repr(result)},
            )
    read = {key: r for key, r in results.items() if not isinstance(r, BaseException)}

    def of(gauge: str) -> dict[str, Any]:
        return {label: r for (g, label), r in read.items() if g == gauge}

    summary = read.get(("audit", ""))
    snapshot = Snapshot(
        open_oldest={state: age(t, now) for state, t in of("open").items()},
        outbox_pending=of("pending"),
        outbox_oldest={kind: age(t, now) for kind, t in of("oldest").items()},
        held=read.get(("held", "")),
        held_oldest=age(read[("held_oldest", "")], now) if ("held_oldest", "") in read else None,
        alerts=of("alerts"),
        alert_oldest=age(read[("alert_oldest", "")], now) if ("alert_oldest", "") in read else None,
        payee_alerts=of("payee_alerts"),
        payee_alert_oldest=(age(read[("payee_alert_oldest", "")], now) if ("payee_alert_oldest", "") in read else None),
        rescreen_behind=_behind(read[("rescreen_run", "")], now) if ("rescreen_run", "") in read else None,
        rescreen_ok=_stamp(read[("rescreen_run", "")], "lastOkAt") if ("rescreen_run", "") in read else None,
        last_freeze=_stamp(read[("last_freeze", "")], "frozenAt") if ("last_freeze", "") in read else None,
        due_ok=_stamp(read[("due_run", "")], "lastOkAt") if ("due_run", "") in read else None,
        due_behind=_since(read[("due_run", "")], "behindSince", now) if ("due_run", "") in read else None,
        audit=summary.to_dict() if summary is not None and summary.exists else None,
        failed=[f"{gauge}:{label}" if label else gauge for (gauge, label) in results if (gauge, label) not in read],
    )
    # the oldest request in "received" is the oldest publish_pending one
    if "received" in snapshot.open_oldest:
        snapshot.outbox_oldest[PUBLISH_PENDING] = snapshot.open_oldest["received"]
    return snapshot


def export(snapshot: Snapshot) -> None:
    """Set the gauges from one sweep."""
    for state, seconds in snapshot.open_oldest.items():
        OPEN_OLDEST.labels(state).set(seconds)
    for kind, n in snapshot.outbox_pending.items():
        OUTBOX_PENDING.labels(kind).set(n)
    for kind, seconds in snapshot.outbox_oldest.items():
        OUTBOX_OLDEST.labels(kind).set(seconds)
    for status, n in snapshot.alerts.items():
        ALERTS.labels(status).set(n)
    for status, n in snapshot.payee_alerts.items():
        PAYEE_ALERTS_GAUGE.labels(status).set(n)
    # a reading left out this sweep (None: its query failed) keeps its gauge's value
    for gauge, value in (
        (HELD, snapshot.held),
        (HELD_OLDEST, snapshot.held_oldest),
        (ALERT_OLDEST, snapshot.alert_oldest),
        (PAYEE_ALERT_OLDEST, snapshot.payee_alert_oldest),
        (RESCREEN_BEHIND, snapshot.rescreen_behind),
        (RESCREEN_OK, snapshot.rescreen_ok),
        (LAST_FREEZE, snapshot.last_freeze),
        (DUE_OK, snapshot.due_ok),
        (DUE_BEHIND, snapshot.due_behind),
    ):
        if value is not None:
            gauge.set(value)
    audit = snapshot.audit
    if audit is None or not isinstance(audit.get("ranAt"), dt.datetime):
        return
    found = audit.get("problems")
    problems: dict[str, Any] = found if isinstance(found, dict) else {}
    AUDIT_OK.set(1 if audit.get("ok") is True else 0)
    AUDIT_RAN.set(audit["ranAt"].timestamp())
    for kind in sorted(set(AUDIT_KINDS) | set(problems)):
        AUDIT_PROBLEMS.labels(kind).set(int(problems.get(kind) or 0))
    _register_audit_gauges()


_registered: list[bool] = []


def _register_audit_gauges() -> None:
    if not _registered:
        for gauge in _AUDIT_GAUGES:
            REGISTRY.register(gauge)
        _registered.append(True)


def sweeper(
    db: firestore.AsyncClient, period: float, *, clock: Callable[[], float] = time.time
) -> Callable[[asyncio.Event], Awaitable[None]]:
    """A background task for ConsumerService: sweep now and then every ``period`` seconds
    until the service stops. A sweep that fails is logged; the next one runs on time. A
    sweep that read everything stamps SWEEP_OK with ``clock()``; one that failed, timed out
    or left a query out (its gauge kept) does not."""

    async def run(stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                snapshot = await asyncio.wait_for(take(db), timeout=max(period, 5))
                export(snapshot)
                if not snapshot.failed:
                    SWEEP_OK.set(clock())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ops sweep failed; the gauges keep their last values")
            try:
                await asyncio.wait_for(stopping.wait(), timeout=period)
            except TimeoutError:
                pass

    return run
