"""The clock kind's pure parts (bench/chaos/clock.py): the orders and the instants it steps
the job's clock over, and the judge, which must catch a job that pays a due date twice,
not at all, or before its day. The job's own rule is replayed here in memory (one due date
per order per run, when the order's next due date has come in Europe/Oslo) with and
without planted bugs; the stack test (tests/integration/test_chaos_clock.py) runs the
real job."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest

from bench.chaos import clock
from fjordbank.domain import standing_orders as rules
from fjordbank.domain.norway import is_banking_day, today_in_norway
from fjordbank.errors import ConfigError
from fjordbank.service_layer.scheduled import job_overrides

TODAY = dt.date(2026, 11, 30)
UTC = dt.UTC


def test_the_orders_fall_due_on_month_ends_and_on_both_changes_of_daylight_saving():
    orders = {o.key: o for o in clock.plan_orders(TODAY)}
    assert orders["month-end"].due_dates() == [
        dt.date(2026, 12, 31),
        dt.date(2027, 1, 31),
        dt.date(2027, 2, 28),
        dt.date(2027, 3, 31),
    ]
    assert orders["dst-spring"].due_dates() == [dt.date(2027, 3, 28), dt.date(2027, 4, 4)]
    assert orders["dst-autumn"].due_dates() == [dt.date(2027, 10, 31), dt.date(2027, 11, 7)]
    for order in orders.values():
        assert order.start > TODAY  # a job at the real clock never pays them
    assert clock.plan_orders(dt.date(2027, 3, 28))[1].start == dt.date(2028, 3, 26)  # strictly after today


def test_the_instants_cross_the_missing_and_the_repeated_hour_and_step_back():
    steps = clock.steps(clock.plan_orders(TODAY))
    at = {s.label: s.at for s in steps}
    # March: 01:59:59 CET is 00:59:59Z, the next second is 03:00 CEST (01:00Z)
    assert at["2027-03-28 01:59:59 CET"] == dt.datetime(2027, 3, 28, 0, 59, 59, tzinfo=UTC)
    assert at["2027-03-28 03:00 CEST"] == dt.datetime(2027, 3, 28, 1, 0, tzinfo=UTC)
    # October: 02:30 twice, an hour apart
    assert at["2027-10-31 02:30 CEST"] == dt.datetime(2027, 10, 31, 0, 30, tzinfo=UTC)
    assert at["2027-10-31 02:30 CET"] == dt.datetime(2027, 10, 31, 1, 30, tzinfo=UTC)
    # the first minute of a day in Oslo is still the day before in UTC
    first = at["2027-10-31 00:00:30 Oslo"]
    assert first.date() == dt.date(2027, 10, 30) and today_in_norway(first) == dt.date(2027, 10, 31)
    assert at["2027-03-27 23:30 Oslo"] == dt.datetime(2027, 3, 27, 22, 30, tzinfo=UTC)
    backwards = [b for a, b in itertools.pairwise(steps) if b.at < a.at]
    assert len(backwards) >= 3  # out of order: the clock steps back
    assert clock.RUNS_PER_INSTANT >= 2


class FakeJob:
    """The due-payments job's rule for standing orders, in memory (run_due and _claim):
    each run on a banking day pays an active order's next due date once the Oslo date has
    reached it and moves it on. ``bug`` plants a fault the judge must catch."""

    def __init__(self, orders: list[clock.OrderPlan], bug: str | None = None) -> None:
        self.orders = orders
        self.bug = bug
        self.next_due = {o.key: o.start for o in orders}
        self.runs: dict[str, list[str]] = {o.key: [] for o in orders}

    def run(self, now: dt.datetime) -> None:
        today = now.astimezone(UTC).date() if self.bug == "utc" else today_in_norway(now)
        if self.bug != "weekends" and not is_banking_day(today):
            return
        for order in self.orders:
            due = self.next_due[order.key]
            if due is None or due > today:
                continue
            self.runs[order.key].append(due.isoformat())
            if self.bug == "twice" and due.month == 2:
                self.runs[order.key].append(due.isoformat())
            if self.bug != "stuck":
                self.next_due[order.key] = rules.next_due(
                    order.frequency, due, anchor_day=order.start.day, end=order.end
                )


def replay(job: FakeJob) -> list[str]:
    problems, reached = [], None
    for step in clock.steps(job.orders):
        for _ in range(clock.RUNS_PER_INSTANT):
            job.run(step.at)
        reached = max(reached or step.oslo_date, step.oslo_date)
        problems += clock.judge(job.orders, job.runs, reached, step.label)
    return problems


def test_the_jobs_rule_pays_each_due_date_once_across_the_sequence():
    for today in (TODAY, dt.date(2027, 1, 15), dt.date(2027, 5, 2), dt.date(2028, 1, 30)):  # 2028: 29 Feb
        job = FakeJob(clock.plan_orders(today))
        assert replay(job) == []
        assert all(len(job.runs[o.key]) == len(o.due_dates()) for o in job.orders)


@pytest.mark.parametrize(
    ("bug", "finding"),
    [
        ("twice", "paid twice for 2027-02-28"),
        ("stuck", "paid twice"),  # the order does not move on: the next run pays the date again
        ("utc", "not paid for"),  # 00:00:30 in Oslo is the day before in UTC
        ("weekends", "before the clock reached it"),  # the change days are Sundays: paid on Monday
    ],
)
def test_the_judge_catches_a_job_that_pays_twice_not_at_all_or_late(bug, finding):
    problems = replay(FakeJob(clock.plan_orders(TODAY), bug))
    assert any(finding in p for p in problems), problems


def test_the_judge_catches_a_payment_before_its_day_and_the_ledgers_view_a_double_posting():
    orders = clock.plan_orders(TODAY)
    early = clock.judge(orders, {"month-end": ["2026-12-31"]}, dt.date(2026, 12, 30), "x")
    assert any("before the clock reached it" in p for p in early)
    # New Year's Eve is no banking day: its date is paid on Monday 4 January, not before
    assert clock.expected_runs(orders[0], dt.date(2027, 1, 3)) == []
    assert clock.expected_runs(orders[0], dt.date(2027, 1, 4)) == ["2026-12-31"]
    month_end = orders[0]
    n = len(month_end.due_dates())
    good_received = {o.key: o.amount * len(o.due_dates()) for o in orders}
    good_entries = {o.key: len(o.due_dates()) for o in orders}
    assert clock.judge_payments(orders, good_received, good_entries) == []
    twice = clock.judge_payments(
        orders, {**good_received, "month-end": month_end.amount * (n + 1)}, {**good_entries, "month-end": n + 1}
    )
    assert len(twice) == 2 and all(p.startswith("month-end") for p in twice)


def test_the_jobs_clock_and_scope_are_the_emulators_only():
    message = {"job": "submit-due-payments", "now": "2027-03-28T01:30:00Z", "uids": ["u1", "u2"]}
    emulator = {"FIRESTORE_EMULATOR_HOST": "127.0.0.1:8080"}
    assert job_overrides(message, emulator) == {
        "now": dt.datetime(2027, 3, 28, 1, 30, tzinfo=UTC),
        "uids": ("u1", "u2"),
    }
    assert job_overrides({"job": "submit-due-payments"}, {}) == {}  # production: the real clock
    with pytest.raises(ConfigError):
        job_overrides(message, {})  # refused in production
    with pytest.raises(ConfigError):
        job_overrides({"job": "x", "now": "2027-03-28T01:30:00Z"}, {})
    with pytest.raises(ValueError):
        job_overrides({"now": "2027-03-28T01:30:00"}, emulator)  # no offset: not an instant
    with pytest.raises(ValueError):
        job_overrides({"uids": "u1"}, emulator)
    with pytest.raises(ValueError):
        job_overrides({"uids": [f"u{i}" for i in range(31)]}, emulator)


def test_each_job_run_s_end_is_read_from_the_emulators_log_by_its_message_id(tmp_path):
    def line(message: str, run: str) -> str:
        entry = {"severity": "INFO", "message": message, "job": "submit-due-payments", "run": run}
        return ">  " + json.dumps(entry) + "\n"

    log = tmp_path / "emulators.log"
    log.write_text(line("scheduled job done", "1"))
    runs = clock.RunLog(log)  # what was there before does not count
    assert runs.poll() == {}
    other = 'i  functions: Finished "europe-west1-on_scheduled_job" in 18ms\n'  # any run's, not ours
    with log.open("a") as fh:
        fh.write(other + line("scheduled job done", "7") + line("scheduled job failed", "8")[:30])
    assert runs.poll() == {"7": "done"}  # the second line is not written to its end yet
    with log.open("a") as fh:
        fh.write(line("scheduled job failed", "8")[30:] + '>  {"message": "scheduled job done"}\n')
    assert runs.poll() == {"7": "done", "8": "failed"}
    log.write_text(line("scheduled job done", "9"))  # a new, shorter log
    assert runs.poll() == {"7": "done", "8": "failed", "9": "done"}


def test_the_chaos_runs_standing_orders_are_paid_on_a_day_banks_do_not_settle_too():
    """The load's standing orders start today and the job must pay them in the run: for
    the payer only (no ten-minute settling hold after the run that paid the first), and on
    a Saturday as of noon on Monday."""
    from bench.chaos.load import job_messages

    friday = dt.datetime(2027, 4, 30, 10, tzinfo=UTC)
    assert job_messages("submit-due-payments", "u1", friday) == [
        {"job": "submit-due-payments"},
        {"job": "submit-due-payments", "uids": ["u1"]},  # no settling hold: paid in the run
    ]
    saturday = dt.datetime(2027, 5, 1, 10, tzinfo=UTC)  # 1 May, a Saturday
    plain, shifted = job_messages("submit-due-payments", "u1", saturday)
    assert plain == {"job": "submit-due-payments"}  # publishes what other workloads left unpublished
    assert shifted == {"job": "submit-due-payments", "now": "2027-05-03T10:00:00+00:00", "uids": ["u1"]}
    assert job_overrides(shifted, {"FIRESTORE_EMULATOR_HOST": "x"})["now"] == dt.datetime(2027, 5, 3, 10, tzinfo=UTC)
    assert job_messages("relay-outbox", "u1", saturday) == [{"job": "relay-outbox"}]
