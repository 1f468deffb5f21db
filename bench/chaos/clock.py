"""The scheduler's clock across month ends and Europe/Oslo's daylight-saving changes.

The ``clock`` kind makes two customers through the app's surface (bankctl's onboarding,
the ``accounts_open`` and ``standing_orders_create`` callables) with three standing orders,
each paying its own payee account, all due after today:

- ``month-end``: monthly from the next 31st, four due dates (so 31st -> 30th, 28th/29th
  February or the 31st as the months come);
- ``dst-spring``: weekly from the last Sunday of March (02:00 CET -> 03:00 CEST: the hour
  02:00-03:00 does not exist), two due dates;
- ``dst-autumn``: weekly from the last Sunday of October (03:00 CEST -> 02:00 CET: the hour
  02:00-03:00 comes twice), two due dates.

Then it runs the due-payments job through the scheduler's path (Pub/Sub -> the
``on_scheduled_job`` function, as ``bankctl jobs run submit-due-payments --now ...
--customer ...`` does) with the job's clock set to a sequence of instants (``steps``): for
each due date, and each banking day a due date on a weekend or holiday is paid on
(`fjordbank.domain.standing_orders.payment_day`: the change days are Sundays, so their
dates are paid on the Monday), the evening before (23:30 local: nothing may be paid), the
first minute of the day (00:00:30 local, still the day before in UTC: it must be paid now
if it is a banking day), on the change days the instants around the missing or repeated
hour, the clock stepped back to the evening before and the last minute of the day; and at
the end back to the first instant. The change days are Sundays, so since payments are
made on banking days only nothing is paid at the missing or repeated hour: those instants
hold the job to paying nothing early and nothing twice, and the Monday after pays.
Every instant is queued twice at once (two scheduler ticks overlapping), and again while
one of its runs failed (as the next tick would pay what a failed run left). The clock is
scoped to the two customers (fjordbank.service_layer.scheduled.job_overrides:
emulator only), so the other workloads' orders are not paid months early.

After each instant's two runs it compares every order's runs with what the clock has
crossed (``judge``): each due date whose payment day was reached paid exactly once, none
before that day. At the
end it waits for the payments through the pipeline and compares each payee's balance and
transaction feed with the order's amount times its due dates (the ledger's view: a due
date paid twice under two payment ids, or one payment posted twice, shows there). Any
difference is the fault's ``error``, which the run reports as a finding; ``fault.detail``
records how many orders should have paid how many payments and how many each produced.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.chaos.kinds import Context, Fault
from devstack.stack import Stack
from fjordbank.domain import standing_orders as rules

OSLO = ZoneInfo("Europe/Oslo")
UTC = dt.UTC
RUNS_PER_INSTANT = 2
# the scheduled-jobs function's one line per run (functions/main.py on_scheduled_job)
ENDED = {"scheduled job done": "done", "scheduled job failed": "failed"}
JOB_TIMEOUT_S = 60.0
MAX_ROUNDS = 5  # an instant whose run failed is run again, as the next scheduler tick would
PAYMENTS_TIMEOUT_S = 120.0


# ---- the plan (pure) ----------------------------------------------------------------------
@dataclass(frozen=True)
class OrderPlan:
    key: str
    customer: int  # which of the kind's customers pays it
    frequency: str
    start: dt.date
    end: dt.date
    amount: int  # øre

    def due_dates(self) -> list[dt.date]:
        dates: list[dt.date] = []
        day: dt.date | None = self.start
        while day is not None:
            dates.append(day)
            day = rules.next_due(self.frequency, day, anchor_day=self.start.day, end=self.end)
        return dates


@dataclass(frozen=True)
class Step:
    label: str
    at: dt.datetime  # UTC

    @property
    def oslo_date(self) -> dt.date:
        return self.at.astimezone(OSLO).date()


def last_sunday(year: int, month: int) -> dt.date:
    day = rules.add_months(dt.date(year, month, 1), 0, anchor_day=31)  # the month's last day
    return day - dt.timedelta(days=(day.weekday() - 6) % 7)


def next_last_sunday(after: dt.date, month: int) -> dt.date:
    year = after.year
    while last_sunday(year, month) <= after:
        year += 1
    return last_sunday(year, month)


def plan_orders(today: dt.date) -> list[OrderPlan]:
    """The three orders, all due after ``today`` (so a job at the real clock never pays them)."""
    day31 = today + dt.timedelta(days=1)
    while day31.day != 31:
        day31 += dt.timedelta(days=1)
    spring, autumn = next_last_sunday(today, 3), next_last_sunday(today, 10)
    week = dt.timedelta(days=7)
    return [
        OrderPlan("month-end", 0, rules.MONTHLY, day31, rules.add_months(day31, 3, anchor_day=31), 1_100),
        OrderPlan("dst-spring", 0, rules.WEEKLY, spring, spring + week, 2_300),
        OrderPlan("dst-autumn", 1, rules.WEEKLY, autumn, autumn + week, 3_700),
    ]


def local(day: dt.date, hour: int, minute: int, second: int = 0, *, fold: int = 0) -> dt.datetime:
    """Oslo wall-clock time as a UTC instant (``fold=1``: the second 02:xx of October)."""
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=OSLO, fold=fold).astimezone(UTC)


def steps(orders: list[OrderPlan]) -> list[Step]:
    """The clock's instants, in the order the job runs at them (see the module docstring)."""
    days = sorted({d for o in orders for due in o.due_dates() for d in (due, rules.payment_day(due))})
    change_days = {o.start for o in orders if o.key.startswith("dst-")}
    one_day = dt.timedelta(days=1)
    out: list[Step] = []
    for day in days:
        eve = Step(f"{day - one_day} 23:30 Oslo", local(day - one_day, 23, 30))
        out += [eve, Step(f"{day} 00:00:30 Oslo", local(day, 0, 0, 30))]
        if day in change_days:
            if day.month == 3:  # 01:59:59 CET, then 03:00 CEST; "02:30" does not exist
                out += [
                    Step(f"{day} 01:59:59 CET", local(day, 1, 59, 59)),
                    Step(f"{day} 03:00 CEST", local(day, 3, 0)),
                    Step(f"{day} 02:30 (no such time)", local(day, 2, 30)),
                ]
            else:  # 02:30 CEST, then 02:30 CET an hour later
                out += [
                    Step(f"{day} 02:30 CEST", local(day, 2, 30, fold=0)),
                    Step(f"{day} 02:30 CET", local(day, 2, 30, fold=1)),
                ]
            out += [Step(f"{eve.label} again (clock stepped back)", eve.at)]
            out += [Step(f"{day} 23:59:30 Oslo", local(day, 23, 59, 30))]
    if out:
        out.append(Step(f"{out[0].label} again (clock far back)", out[0].at))
    return out


def expected_runs(order: OrderPlan, reached: dt.date | None) -> list[str]:
    """The due dates paid once the clock has reached Oslo date ``reached``: those whose
    payment day (the date, or the banking day after a weekend or holiday) it has reached."""
    return [d.isoformat() for d in order.due_dates() if reached is not None and rules.payment_day(d) <= reached]


def judge(orders: list[OrderPlan], runs: dict[str, list[str]], reached: dt.date | None, after: str) -> list[str]:
    """Each order's runs (due dates, in order) against what the clock has crossed."""
    problems = []
    for order in orders:
        got, want = runs.get(order.key, []), expected_runs(order, reached)
        twice = sorted({d for d in got if got.count(d) > 1})
        if twice:
            problems.append(f"{order.key}: paid twice for {', '.join(twice)} (after {after})")
        missing = [d for d in want if d not in got]
        if missing:
            problems.append(f"{order.key}: not paid for {', '.join(missing)} (after {after})")
        early = sorted({d for d in got if d not in want})
        if early:
            problems.append(f"{order.key}: paid for {', '.join(early)} before the clock reached it (after {after})")
    return problems


def judge_payments(orders: list[OrderPlan], received: dict[str, int], entries: dict[str, int]) -> list[str]:
    """The ledger's view: each payee's balance and feed against amount x due dates."""
    problems = []
    for order in orders:
        n = len(order.due_dates())
        if received.get(order.key) != order.amount * n:
            problems.append(
                f"{order.key}: the payee received {received.get(order.key)} øre, "
                f"not {n} x {order.amount} = {order.amount * n}"
            )
        if entries.get(order.key) != n:
            problems.append(f"{order.key}: {entries.get(order.key)} payments in the payee's feed, not {n}")
    return problems


# ---- on the stack -------------------------------------------------------------------------
class RunLog:
    """How each run of the scheduled-jobs function ended, by its Pub/Sub message id: the
    function's one "scheduled job done" / "scheduled job failed" line per run in the
    Functions emulator's log, read from where it was last read. (Counting the emulator's
    "Finished" lines was wrong: other workloads' job runs finish too, and a run cut short by
    an injected fault finishes without having paid.)"""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.offset = log.stat().st_size if log.exists() else 0
        self.ended: dict[str, str] = {}  # message id -> "done" | "failed"
        self._partial = b""

    def poll(self) -> dict[str, str]:
        if self.log.stat().st_size < self.offset:  # a new log (the emulators restarted)
            self.offset, self._partial = 0, b""
        with self.log.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        self.offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # a line not yet written to its end is read next time
        for line in lines:
            if b"scheduled job " not in line or b"{" not in line:
                continue
            try:
                entry = json.loads(line[line.index(b"{") :])
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("message") in ENDED and entry.get("run") is not None:
                self.ended[str(entry["run"])] = ENDED[entry["message"]]
        return self.ended


@dataclass
class Customer:
    uid: str
    identity: object
    device: object
    payer: str


class ClockRun:
    def __init__(self, stack: Stack, stop: threading.Event) -> None:
        from bankctl.config import apply_environ
        from bankctl.config import load as load_config
        from bankctl.customers import Bank
        from fjordbank.adapters.pubsub import JOBS_TOPIC, TopicPublisher

        self.stack, self.stop = stack, stop
        config = load_config()
        apply_environ(config)
        self.bank = Bank(config)
        self.topic = TopicPublisher(config.project_id, JOBS_TOPIC)
        self.topic.ensure_topic()
        self.run_log = RunLog(stack.sup.log_file("emulators"))
        self.rounds = 0  # job rounds queued (more than the instants when a run failed)
        self.db = self.bank.admin.db

    def customer(self, tag: str, deposit: int) -> Customer:
        from clientkit.device import Device
        from clientkit.ids import unique

        made = self.bank.ensure_customer(
            name="Klokke Kunde", email=f"{unique(f'clock-{tag}-')}@fjordbank.example", deposit=deposit
        )
        if made.status != "approved" or not made.account:
            raise RuntimeError(f"clock customer not approved ({made.status})")
        identity, _new = self.bank.sign_up_or_in(made.email, made.password)
        return Customer(made.uid, identity, Device.load(self.bank.config.devices_dir, made.uid), made.account)

    def make_orders(self, orders: list[OrderPlan], tag: str) -> tuple[list[Customer], dict[str, tuple[str, str]]]:
        """The customers and, per order, (payer uid, payee account), through the callables."""
        count = max(o.customer for o in orders) + 1
        customers = [
            self.customer(f"{tag}{i}", sum(o.amount * 10 for o in orders if o.customer == i) + 10_000)
            for i in range(count)
        ]
        made: dict[str, tuple[str, str]] = {}
        for order in orders:
            c = customers[order.customer]
            payee = self.bank.callables.call(
                "accounts_open", {"kind": "savings", "name": f"Klokke {order.key}"}, c.identity
            )["accountId"]
            order_id = f"clock-{tag}-{order.key}"
            body = {
                "orderId": order_id,
                "fromAccount": c.payer,
                "toAccount": payee,
                "amount": order.amount,
                "message": f"Klokke {order.key}",
                "frequency": order.frequency,
                "startDate": order.start.isoformat(),
                "endDate": order.end.isoformat(),
                "sca": c.device.confirm_order(  # type: ignore[attr-defined]
                    order_id,
                    order.amount,
                    "NOK",
                    payee,
                    order.frequency,
                    order.start.isoformat(),
                    from_account=c.payer,
                    end_date=order.end.isoformat(),
                ),
            }
            self.bank.callables.call("standing_orders_create", body, c.identity)
            made[order.key] = (c.uid, payee)
        return customers, made

    def run_job(self, at: dt.datetime, uids: list[str]) -> None:
        """The job at instant ``at``, RUNS_PER_INSTANT times at once; back when all of them
        have ended. A run that failed (an injected Firestore fault, say) leaves its due date
        to the next tick: the instant is run again, up to MAX_ROUNDS times."""
        message = {"job": "submit-due-payments", "now": at.isoformat(), "uids": uids}
        for _ in range(MAX_ROUNDS):
            self.rounds += 1
            ids = [asyncio.run(self.topic.publish_json(message)) for _ in range(RUNS_PER_INSTANT)]
            deadline = time.monotonic() + JOB_TIMEOUT_S
            while not all(i in self.run_log.poll() for i in ids):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the due-payments job at {at.isoformat()} did not end in {JOB_TIMEOUT_S:.0f}s")
                time.sleep(0.1)
            if all(self.run_log.ended[i] == "done" for i in ids):
                return
        raise RuntimeError(f"the due-payments job at {at.isoformat()} failed {MAX_ROUNDS} rounds running")

    def runs(self, made: dict[str, tuple[str, str]], tag: str) -> dict[str, list[str]]:
        out = {}
        for key, (uid, _payee) in made.items():
            doc = self.db.document(f"users/{uid}/standingOrders/clock-{tag}-{key}").get().to_dict() or {}
            out[key] = [r["date"] for r in doc.get("runs", []) if r.get("status") == "submitted"]
        return out

    def ledger_view(self, made: dict[str, tuple[str, str]]) -> tuple[dict[str, int], dict[str, int]]:
        received, entries = {}, {}
        for key, (_uid, payee) in made.items():
            account = self.db.collection("accounts").document(payee)
            received[key] = (account.get().to_dict() or {}).get("balance", 0)
            entries[key] = sum(1 for _ in account.collection("transactions").stream())
        return received, entries


def run_clock(stack: Stack, fault: Fault, stop: threading.Event, today: dt.date | None = None) -> None:
    from fjordbank.domain.norway import today_in_norway

    orders = plan_orders(today or today_in_norway())
    sequence = steps(orders)
    tag = f"{int(time.time())}{random.randrange(1000):03d}"
    clock = ClockRun(stack, stop)
    _customers, made = clock.make_orders(orders, tag)
    uids = sorted({uid for uid, _payee in made.values()})
    problems: list[str] = []
    reached: dt.date | None = None
    done = 0
    for step in sequence:
        if stop.is_set():
            break
        clock.run_job(step.at, uids)
        done += 1
        reached = max(reached or step.oslo_date, step.oslo_date)
        problems += judge(orders, clock.runs(made, tag), reached, step.label)
        if problems:
            break
    runs = clock.runs(made, tag)
    all_crossed = done == len(sequence)
    received, entries = clock.ledger_view(made)
    if all_crossed and not problems:
        deadline = time.monotonic() + PAYMENTS_TIMEOUT_S
        while judge_payments(orders, received, entries) and time.monotonic() < deadline:
            time.sleep(1)
            received, entries = clock.ledger_view(made)
        problems += judge_payments(orders, received, entries)
    fault.detail = {
        "orders": {
            o.key: {
                "due": [d.isoformat() for d in o.due_dates()],
                "should_pay": len(expected_runs(o, reached)),
                "runs": len(runs.get(o.key, [])),
                "payments": entries.get(o.key),
                "received": received.get(o.key),
                "amount": o.amount,
            }
            for o in orders
        },
        "instants": [[s.label, s.at.isoformat()] for s in sequence[:done]],
        "job_runs": clock.rounds * RUNS_PER_INSTANT,
        "all_instants": all_crossed,
        "customers": uids,
    }
    if problems:
        fault.error = "; ".join(problems[:5])


@dataclass(frozen=True)
class Clock:
    """Standing orders across month ends and DST changes, the job's clock stepped over them."""

    name: str = "clock"
    weight: float = 1
    colour: str = "tab:pink"

    def choose(self, rng: random.Random, ctx: Context) -> tuple[list[str], float]:
        return ["scheduler"], 0.0  # it takes as long as its sequence of instants

    def apply(self, stack: Stack, fault: Fault, stop: threading.Event) -> None:
        run_clock(stack, fault, stop)


KINDS = (Clock(),)
