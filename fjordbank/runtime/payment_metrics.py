"""The payment pipeline's own metrics: each step's results, the time each step took from
the event it consumed, and the time a payment took to become final.

The handlers of screening, ledger and clearing (run_services/) call these after the
results are published (JetStream acknowledged them), once per result: a step the service
answers from its records (a redelivery, a replay after a crash) was counted the first time
and is not counted again. Names, labels and buckets are the metrics catalogue's
(monitoring/metrics.yaml, source `payment_steps`); the rules and SLOs rely on the bucket
bounds 2 s (final) and the per-step ones.
"""

from __future__ import annotations

import datetime as dt

from prometheus_client import Counter, Histogram

from fjordbank.domain.norway import today_in_norway
from fjordbank.domain.payments import PaymentRequested
from fjordbank.runtime.consumer import Delivery

STEPS = Counter("fjb_payment_steps_total", "Payment step results published, by step and outcome", ["step", "outcome"])
STEP_SECONDS = Histogram(
    "fjb_payment_step_seconds",
    "From the consumed event's publish time (JetStream timestamp) to the step's result being published",
    ["step"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
FINAL_SECONDS = Histogram(
    "fjb_payment_final_seconds",
    "From the payment's request at the edge to the ledger making it final (completed or failed)",
    ["kind", "outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)

# step -> the outcomes it publishes (the catalogue's label_values)
OUTCOMES = {
    "screening": ("approved", "rejected"),
    # held: a payment from another bank booked into suspense while it is held for review
    "ledger": ("reserved", "credit", "refund", "completed", "failed", "unapplied", "held"),
    # arrived: a payment from another bank read from a pacs.008; sent_back: its return
    "clearing": ("submitted", "settled", "returned", "arrived", "sent_back"),
}
FINAL = ("completed", "failed")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def published_at(delivery: Delivery) -> dt.datetime | None:
    """The consumed message's time in the stream (its JetStream metadata timestamp)."""
    try:
        return delivery.msg.metadata.timestamp
    except (AttributeError, ValueError):  # not a JetStream message (a test's stand-in)
        return None


def step_result(step: str, outcome: str, consumed: Delivery | None = None, *, now: dt.datetime | None = None) -> None:
    """One result of ``step`` published; ``consumed``: the message it answered, whose
    publish time starts the step's clock (none for a result no message started, e.g. the
    other bank's answer read from a file)."""
    if outcome not in OUTCOMES.get(step, ()):
        raise ValueError(f"unknown payment step result {step}/{outcome}")
    STEPS.labels(step, outcome).inc()
    started = published_at(consumed) if consumed is not None else None
    if started is not None:
        STEP_SECONDS.labels(step).observe(max(0.0, ((now or _now()) - started).total_seconds()))


def payment_final(payment: PaymentRequested, outcome: str, *, now: dt.datetime | None = None) -> None:
    """The ledger made ``payment`` final: the time since it was requested (``requested_at``:
    when the edge accepted it, or when the due-payments job released a scheduled one on the
    day it is made; a payment published before its due date waited on purpose, and is left
    out)."""
    if outcome not in FINAL:
        raise ValueError(f"not a final outcome: {outcome}")
    try:
        requested = dt.datetime.fromisoformat(payment.requested_at)
    except (TypeError, ValueError):
        return
    if requested.tzinfo is None:
        requested = requested.replace(tzinfo=dt.UTC)
    now = now or _now()
    if payment.due_date and payment.due_date > today_in_norway(requested).isoformat():
        return  # a scheduled payment waited for its due date on purpose
    FINAL_SECONDS.labels(payment.kind, outcome).observe(max(0.0, (now - requested).total_seconds()))
