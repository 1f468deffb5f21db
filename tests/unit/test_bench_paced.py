"""bench.paced's arithmetic: per-instance means over a run from two /metrics scrapes."""

from __future__ import annotations

from bench import paced


def test_means_over_the_run_per_instance():
    before = {
        ("ledger", "fjb_batch_size_sum", 'consumer="ledger"'): 100.0,
        ("ledger", "fjb_batch_size_count", 'consumer="ledger"'): 10.0,
        ("ledger", "fjb_firestore_calls_total", ""): 7.0,
        ("ledger", "fjb_payment_step_seconds_sum", 'step="ledger"'): 1.0,
        ("ledger", "fjb_payment_step_seconds_count", 'step="ledger"'): 1.0,
    }
    after = {
        ("ledger", "fjb_batch_size_sum", 'consumer="ledger"'): 160.0,  # 60 messages in 5 batches
        ("ledger", "fjb_batch_size_count", 'consumer="ledger"'): 15.0,
        ("ledger", "fjb_firestore_calls_total", ""): 17.0,
        ("ledger", "fjb_payment_step_seconds_sum", 'step="ledger"'): 31.0,
        ("ledger", "fjb_payment_step_seconds_count", 'step="ledger"'): 61.0,
        ("cards", "fjb_firestore_calls_total", ""): 0.0,  # did nothing: left out
    }
    assert paced.per_instance(before, after) == {"ledger": {"batch_size": 12.0, "firestore_calls": 10.0, "step_s": 0.5}}


def test_percentiles_in_milliseconds():
    assert paced.percentiles([0.001 * i for i in range(1, 101)]) == {"p50_ms": 51.0, "p90_ms": 91.0, "p99_ms": 100.0}
    assert paced.percentiles([]) == {}
