"""The chaos run's ``clock`` kind on the real stack (bench/chaos/clock.py): standing orders
made through the app's callables, due on month ends and on both daylight-saving change
days in Europe/Oslo; the due-payments job run through Pub/Sub and the scheduled-jobs
function with its clock set (emulator only) to the kind's instants, each twice at once,
some out of order; each order paid exactly once per due date the clock crossed, on that
day and not before, and each payee credited once per due date by the ledger.

The test fails if the job pays twice: the kind compares each order's runs after every
instant with the due dates the clock has reached (a date twice, one missing, one early:
``clock.judge``), and at the end each payee's balance and feed with amount x due dates
(``clock.judge_payments``); any difference becomes the fault's error, asserted None here.
tests/unit/test_chaos_clock.py shows the judge catching a job that pays a date twice,
one that does not move the order on, and one that takes the UTC date for Oslo's.
"""

from __future__ import annotations

import json
import threading

import pytest

from bench.chaos.clock import Clock
from bench.chaos.kinds import Fault

pytestmark = pytest.mark.stack


def test_each_standing_order_pays_once_per_due_date_across_month_ends_and_dst(stack):
    fault = Fault("clock", ["scheduler"], 0.0, 0.0)
    Clock().apply(stack, fault, threading.Event())
    assert fault.error is None, (fault.error, fault.detail)
    detail = fault.detail
    assert detail and detail["all_instants"]
    for key, order in detail["orders"].items():
        n = len(order["due"])
        assert order["should_pay"] == order["runs"] == order["payments"] == n, (key, order)
        assert order["received"] == n * order["amount"], (key, order)
    labels = [label for label, _at in detail["instants"]]
    assert any("CEST" in label for label in labels) and any("again" in label for label in labels)
    assert detail["job_runs"] >= 2 * len(labels)
    print(json.dumps(detail))
