"""The payment step metrics (fjordbank/runtime/payment_metrics.py): counted per result,
step time from the consumed message's JetStream timestamp, final time from the request."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY

from fjordbank.domain.payments import PaymentRequested
from fjordbank.runtime import payment_metrics
from fjordbank.runtime.consumer import Delivery

NOW = dt.datetime(2026, 11, 30, 12, 0, 0, tzinfo=dt.UTC)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def delivery(published: dt.datetime) -> Delivery:
    return Delivery(SimpleNamespace(metadata=SimpleNamespace(timestamp=published)))


def payment(kind: str = "internal", requested: dt.datetime = NOW, due: dt.date | None = None) -> PaymentRequested:
    return PaymentRequested(
        payment_id="p1",
        uid="u1",
        request_id="r1",
        kind=kind,
        from_account="97100000001",
        to_account="97100000002",
        amount=100,
        currency="NOK",
        message=None,
        kid=None,
        due_date=(due or requested.date()).isoformat(),
        body_hash="h",
        requested_at=requested.isoformat(),
    )


def test_a_step_result_is_counted_and_timed_from_the_consumed_message():
    before = value("fjb_payment_steps_total", step="ledger", outcome="reserved")
    le_05 = value("fjb_payment_step_seconds_bucket", step="ledger", le="0.5")
    le_025 = value("fjb_payment_step_seconds_bucket", step="ledger", le="0.25")
    payment_metrics.step_result("ledger", "reserved", delivery(NOW - dt.timedelta(milliseconds=300)), now=NOW)
    assert value("fjb_payment_steps_total", step="ledger", outcome="reserved") == before + 1
    assert value("fjb_payment_step_seconds_bucket", step="ledger", le="0.5") == le_05 + 1
    assert value("fjb_payment_step_seconds_bucket", step="ledger", le="0.25") == le_025  # 0.3 s is above it


def test_a_result_no_message_started_is_counted_without_a_step_time():
    count = value("fjb_payment_step_seconds_count", step="clearing")
    before = value("fjb_payment_steps_total", step="clearing", outcome="settled")
    payment_metrics.step_result("clearing", "settled")
    assert value("fjb_payment_steps_total", step="clearing", outcome="settled") == before + 1
    assert value("fjb_payment_step_seconds_count", step="clearing") == count


def test_an_outcome_a_step_does_not_have_is_a_bug():
    with pytest.raises(ValueError):
        payment_metrics.step_result("screening", "completed")


def test_final_time_runs_from_the_request_at_the_edge():
    le_2 = value("fjb_payment_final_seconds_bucket", kind="internal", outcome="completed", le="2.0")
    le_1 = value("fjb_payment_final_seconds_bucket", kind="internal", outcome="completed", le="1.0")
    payment_metrics.payment_final(payment(requested=NOW - dt.timedelta(seconds=1.5)), "completed", now=NOW)
    assert value("fjb_payment_final_seconds_bucket", kind="internal", outcome="completed", le="2.0") == le_2 + 1
    assert value("fjb_payment_final_seconds_bucket", kind="internal", outcome="completed", le="1.0") == le_1


def test_a_scheduled_payment_is_left_out_of_the_final_time():
    count = value("fjb_payment_final_seconds_count", kind="external", outcome="failed")
    requested = NOW - dt.timedelta(days=3)
    payment_metrics.payment_final(payment("external", requested, due=NOW.date()), "failed", now=NOW)
    assert value("fjb_payment_final_seconds_count", kind="external", outcome="failed") == count
    with pytest.raises(ValueError):
        payment_metrics.payment_final(payment(), "reserved", now=NOW)
