"""The chaos run's checks of its own workloads (bench/chaos/checks.py), on fabricated data:
each push shown exactly once, every feed entry equal to its payment, standing orders paid once,
card authorisations decided to the end. Each check is shown passing on what a correct
bank leaves and failing on what a broken one would. And the broken consumer the run must
catch (`--break ack-before-commit:SERVICE`): it acks before its handler runs."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time

import pytest

from bench.chaos import broken, checks
from bench.chaos.kinds import Fault
from bench.chaos.load import Run
from fjordbank.adapters.faults import FaultSwitch
from fjordbank.config import load_settings
from fjordbank.runtime.consumer import Ack, ConsumerService, Delivery
from fjordbank.service_layer.push import collapse_id

PAYER, PAYEE, OUTSIDE = "12000000011", "12000000022", "15031200007"
TOKENS = {"u1": "tok-1", "u2": "tok-2"}


def payment(pid="p1", status="completed", view="same", *, to=PAYEE, payee_uid="u2", amount=1500, ledger="same"):
    p = {
        "paymentId": pid,
        "uid": "u1",
        "requestId": f"r-{pid}",
        "fromAccount": PAYER,
        "toAccount": to,
        "amount": amount,
        "status": status,
        "view": status if view == "same" else view,
        "payeeUid": payee_uid,
    }
    booked = {"fromAccount": PAYER, "toAccount": to, "amount": amount, "status": status}
    p["ledger"] = (None if status == "rejected" else booked) if ledger == "same" else ledger
    p["entries"] = {a: dict(e) for a, e in checks.expected_entries(p).items()}
    return p


def sink(*pushes: tuple) -> list[dict]:
    """Sink records of (token, payment id, status[, collapse id]); the collapse id is the
    push function's for that payment and status unless given."""
    out = []
    for n, (t, pid, s, *tag) in enumerate(pushes):
        m = {"token": t, "data": {"paymentId": pid, "status": s}}
        collapse = tag[0] if tag else collapse_id(f"{pid}:{s}")
        if collapse is not None:
            m["android"] = {"notification": {"tag": collapse}}
        out.append({"kind": "message", "seq": n, "message": m})
    return out


# ---- each push shown exactly once ------------------------------------------------------------
def test_a_completed_internal_payment_pushes_payer_and_payee_once():
    expected = checks.expected_pushes([payment()], TOKENS)
    assert expected == {("tok-1", "p1", "completed"), ("tok-2", "p1", "received")}
    counts = checks.pushes_of(sink(("tok-1", "p1", "completed"), ("tok-2", "p1", "received")), TOKENS)
    assert checks.push_findings(expected, counts) == []


def test_a_push_missing_twice_or_for_another_state_is_a_finding():
    expected = checks.expected_pushes([payment(), payment("p2", "failed")], TOKENS)
    counts = checks.pushes_of(
        sink(
            ("tok-1", "p1", "completed"),
            ("tok-1", "p1", "completed", "another"),  # twice, under another collapse id: shown twice
            ("tok-1", "p2", "completed"),  # a state p2 never reached; its "failed" never came
            ("tok-9", "p1", "completed"),  # another run's phone: not counted
        ),
        TOKENS,
    )
    findings = checks.push_findings(expected, counts)
    assert len(findings) == 3
    assert "never sent" in findings[0] and "p1 received" in findings[0] and "p2 failed" in findings[0]
    assert "shown more than once" in findings[1] and "p1 completed x2" in findings[1]
    assert "does not show" in findings[2] and "p2 completed" in findings[2]


def test_a_push_sent_again_under_its_collapse_id_is_shown_once_and_without_one_twice():
    expected = checks.expected_pushes([payment()], TOKENS)
    again = sink(("tok-1", "p1", "completed"), ("tok-1", "p1", "completed"), ("tok-2", "p1", "received"))
    assert checks.push_findings(expected, checks.pushes_of(again, TOKENS)) == []
    bare = sink(("tok-1", "p1", "completed", None), ("tok-1", "p1", "completed", None), ("tok-2", "p1", "received"))
    [finding] = checks.push_findings(expected, checks.pushes_of(bare, TOKENS))
    assert "shown more than once" in finding


def test_no_push_is_expected_for_a_request_refused_at_the_edge_or_an_external_payee():
    edge = payment("p3", "rejected", view=None)  # the notifier never saw it
    screened = payment("p4", "rejected")
    external = payment("p5", to=OUTSIDE, payee_uid=None)
    assert checks.expected_pushes([edge, screened, external], TOKENS) == {
        ("tok-1", "p4", "rejected"),
        ("tok-1", "p5", "completed"),
    }


def test_sink_messages_reads_the_store_file_and_skips_a_torn_line(tmp_path):
    class Stack:
        class s:
            state_dir = tmp_path

    lines = [
        json.dumps({"kind": "message", "seq": 1, "message": {"token": "tok-1", "data": {"paymentId": "p1"}}}),
        json.dumps({"kind": "unregister", "token": "x"}),
        '{"kind": "message", "seq": 2, "mess',
    ]
    (tmp_path / "fcm-sink.jsonl").write_text("\n".join(lines))
    assert [m["seq"] for m in checks.sink_messages(Stack)] == [1]


# ---- every feed entry equal to its payment ---------------------------------------------------
def test_feed_entries_equal_to_their_payments_pass():
    payments = [
        payment(),
        payment("p2", "failed"),
        payment("p3", "rejected", view=None),
        payment("p5", to=OUTSIDE, payee_uid=None),
    ]
    assert payments[0]["entries"] == {
        PAYER: {"amount": -1500, "status": "posted", "counterpartyAccount": PAYEE},
        PAYEE: {"amount": 1500, "status": "posted", "counterpartyAccount": PAYER},
    }
    assert payments[1]["entries"] == {PAYER: {"amount": -1500, "status": "cancelled", "counterpartyAccount": PAYEE}}
    assert payments[2]["entries"] == {} and set(payments[3]["entries"]) == {PAYER}
    assert checks.feed_findings(payments) == []


@pytest.mark.parametrize(
    ("spoil", "found"),
    [
        (lambda p: p["entries"][PAYER].update(amount=-1600), "amount -1600 != -1500"),
        (lambda p: p["entries"][PAYEE].update(status="pending"), "status 'pending' != 'posted'"),
        (lambda p: p["entries"][PAYER].update(counterpartyAccount=OUTSIDE), "counterpartyAccount"),
        (lambda p: p["entries"].pop(PAYEE), f"no entry on {PAYEE}"),
        (lambda p: p.update(view="failed"), "the notifier's view 'failed'"),
        (lambda p: p["ledger"].update(status="reserved"), "the ledger's record is 'reserved'"),
        (lambda p: p["ledger"].update(amount=1), "the ledger booked another payment"),
    ],
)
def test_a_feed_entry_or_ledger_record_unequal_to_its_payment_is_a_finding(spoil, found):
    p = payment()
    spoil(p)
    findings = checks.feed_findings([p])
    assert findings and found in " ".join(findings)


def test_an_entry_for_a_payment_that_shows_none_is_a_finding():
    p = payment("p3", "rejected")
    p["entries"] = {PAYER: {"amount": -1500, "status": "cancelled", "counterpartyAccount": PAYEE}}
    assert "should not be there" in checks.feed_findings([p])[0]


# ---- standing orders paid exactly once --------------------------------------------------------
DAY = "2026-11-30"
W = {"payer": PAYER, "payee": PAYEE, "deposit": 100_000, "payee_deposit": 0}


def order(oid: str, amount: int, kind: str = "internal") -> dict:
    return {"orderId": oid, "paymentId": f"p-{oid}", "amount": amount, "kind": kind, "day": DAY}


def paid(o: dict) -> tuple[dict, dict]:
    steps = ["debit", "credit"] if o["kind"] == "internal" else ["settle"]
    doc = {"runs": [{"date": DAY, "status": "submitted", "paymentId": o["paymentId"]}], "nextDue": "2026-12-30"}
    posted = [f"{o['paymentId']}:{s}" for s in steps]
    pay = {"view": "completed", "ledger": {"status": "completed", "postingIds": posted}}
    return doc, pay


def orders_state(orders):
    docs, pays = {}, {}
    for o in orders:
        docs[o["orderId"]], pays[o["paymentId"]] = paid(o)
    return docs, pays


def test_standing_orders_each_paid_once_pass():
    orders = [order("a", 10_000), order("b", 20_000, "external"), order("c", 5_000)]
    docs, pays = orders_state(orders)
    balances = {PAYER: 100_000 - 35_000, PAYEE: 15_000}
    assert checks.standing_order_findings(orders, docs, pays, W, balances) == []


def test_a_standing_order_paid_twice_or_not_at_all_is_a_finding():
    orders = [order("a", 10_000), order("b", 20_000)]
    docs, pays = orders_state(orders)
    docs["a"]["runs"].append({"date": DAY, "status": "submitted"})  # claimed twice
    pays["p-b"] = {"view": "approved", "ledger": None}  # never paid
    findings = checks.standing_order_findings(orders, docs, pays, W, {PAYER: 90_000, PAYEE: 10_000})
    assert len(findings) == 1
    assert "a: 2 runs on 2026-11-30" in findings[0] and "b: its payment is 'approved'" in findings[0]


def test_a_second_payment_under_another_id_shows_in_the_balances():
    orders = [order("a", 10_000)]
    docs, pays = orders_state(orders)
    findings = checks.standing_order_findings(orders, docs, pays, W, {PAYER: 80_000, PAYEE: 20_000})
    assert len(findings) == 2
    assert "payer's balance is 80000, not 90000" in findings[0] and "payee's balance is 20000" in findings[1]


def test_a_standing_order_workload_that_did_not_start_is_a_finding():
    assert "did not start" in checks.standing_order_findings([], {}, {}, {"setup_error": "boom"}, {})[0]


# ---- card authorisations decided to the end --------------------------------------------------
def auth(ref: str, outcome: str | None, **kw) -> dict:
    return {"reference": ref, "amount": 1000, "outcome": outcome, **kw}


def test_card_authorisations_decided_to_the_end_pass():
    auths = [
        auth("a", "approved", captured=True),
        auth("d", "declined", reason="over_daily_limit"),
        auth("e", "error", reversal="reversed"),
        auth("t", "timeout", reversal="sent"),
        auth("n", "error", reversal="refused"),  # never reached the service: no record
    ]
    records = {
        "a": {"status": "captured", "capturedAmount": 1000},
        "d": {"status": "declined"},
        "e": {"status": "reversed"},
        "t": {"status": "reversed"},
        "n": None,
    }
    assert checks.card_findings(auths, records, {}) == []


def test_a_hold_left_behind_or_a_lost_capture_is_a_finding():
    auths = [
        auth("a", "approved", captured=True),
        auth("b", "approved", captured=False, capture_answer=None),
        auth("e", "error", reversal="reversed"),
        auth("x", "error"),  # its reversal never delivered
        auth("d", "declined"),
    ]
    records = {
        "a": {"status": "approved"},  # answered captured, still holding
        "b": {"status": "approved"},
        "e": {"status": "approved"},  # reversed, still holding
        "x": None,
        "d": {"status": "approved"},  # declined to the merchant, approved in the bank
    }
    (finding,) = checks.card_findings(auths, records, {})
    assert finding.startswith("5 card authorisation(s) not decided")


def test_card_figures_count_outcomes_and_decision_times():
    from bench.chaos.load import card_figures

    auths = [
        auth("a", "approved", captured=True, seconds=0.02),
        auth("d", "declined", seconds=0.04),
        auth("e", "error"),
        auth("t", "timeout"),
    ]
    assert card_figures(auths) == {
        "authorizations": 4,
        "decided": 2,
        "approved": 1,
        "declined": 1,
        "captured": 1,
        "errors": 2,
        "decision_p50_ms": 40.0,
        "decision_p99_ms": 40.0,
    }


# ---- the broken consumer the chaos run must catch --------------------------------------------
class Msg:
    def __init__(self, log: list[str]):
        self.subject, self.data, self.headers, self.log, self.is_acked = "payments.approved", b"{}", {}, log, False
        self.metadata = type("M", (), {"num_delivered": 1, "sequence": type("S", (), {"stream": 1})})()

    async def ack(self):
        assert not self.is_acked, "acked twice"
        self.is_acked = True
        self.log.append("ack")

    async def in_progress(self):
        self.log.append("wpi")


def handled(faults_file, entries: dict) -> list[str]:
    log: list[str] = []

    async def handler(batch):
        log.append("commit")
        return [Ack() for _ in batch]

    svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=handler)
    svc.faults = FaultSwitch(faults_file, "ledger", poll_seconds=0)
    faults_file.write_text(json.dumps(entries))
    asyncio.run(svc.process([Delivery(Msg(log))]))
    return log


def test_a_sound_consumer_acks_after_its_commit(tmp_path):
    assert handled(tmp_path / "faults.json", {}) == ["commit", "ack"]
    other = {"ack_before_commit": {"until": time.time() + 60, "services": ["clearing"]}}
    assert handled(tmp_path / "faults.json", other) == ["commit", "ack"]


def test_the_broken_consumer_acks_before_its_commit(tmp_path):
    on = {"ack_before_commit": {"until": time.time() + 60, "services": ["ledger"]}}
    assert handled(tmp_path / "faults.json", on) == ["ack", "commit"]
    expired = {"ack_before_commit": {"until": time.time() - 1, "services": ["ledger"]}}
    assert handled(tmp_path / "faults2.json", expired) == ["commit", "ack"]


def test_break_specs_are_checked():
    assert broken.parse("ack-before-commit:ledger") == ("ack_before_commit", "ledger")
    for bad in ("ack-before-commit:nobody", "lose-everything:ledger", "ack-before-commit"):
        with pytest.raises(ValueError):
            broken.parse(bad)


class _Snap:
    def __init__(self, rid: str, created: dt.datetime, timeline: dict) -> None:
        self.id, self.exists, self.create_time, self._data = rid, True, created, {"timeline": timeline}

    def to_dict(self) -> dict:
        return self._data


class _Db:
    def __init__(self, snaps: dict) -> None:
        self.snaps = snaps

    def document(self, path: str):
        return path

    def get_all(self, refs):
        return [self.snaps[r.rsplit("/", 1)[-1]] for r in refs if r.rsplit("/", 1)[-1] in self.snaps]


def test_the_slowest_payments_are_reported_with_where_their_time_went_and_the_faults_meanwhile():
    t0 = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    run = Run(started=t0.timestamp())
    run.faults = [Fault("kill", ["screening-2"], 10.0, 3.0, end=14.0), Fault("stop", ["ledger"], 40.0, 2.0)]
    for i, (sent, seconds) in enumerate([(11.0, 8.5), (30.0, 1.0), (12.0, 2.0)]):
        rid = f"r{i}"
        run.latencies.append(seconds)
        run.intervals.append((t0.timestamp() + sent, t0.timestamp() + sent + seconds))
        run.request_ids.append(rid)
        run.payers[rid] = "u1"
    created = t0 + dt.timedelta(seconds=11)
    steps = {"approved": created + dt.timedelta(seconds=7.5), "requested": created + dt.timedelta(seconds=0.5)}
    [first, second] = checks.slowest(_Db({"r0": _Snap("r0", created, steps)}), run, n=2)
    assert (first["request"], first["sent_s"], first["seconds"]) == ("r0", 11.0, 8.5)
    assert list(first["timeline"].items()) == [("requested", 0.5), ("approved", 7.5)]
    assert first["faults"] == ["kill screening-2"]
    assert (second["request"], second["timeline"], second["faults"]) == ("r2", {}, ["kill screening-2"])


def test_a_plan_draws_every_kind_once_before_any_twice_in_an_order_the_seed_fixes():
    import random

    from bench.chaos.__main__ import Plan
    from bench.chaos.kinds import Context, registry

    kinds = registry()
    ctx = Context(consumers=["ledger", "ledger-2", "screening"], nats=["nats-1", "nats-2", "nats-3"])

    def first(seed: int, n: int) -> list[str]:
        plan = Plan(random.Random(seed), kinds, ctx, (1.0, 2.0))
        return [plan.next()[1] for _ in range(n)]

    assert sorted(first(21, len(kinds))) == sorted(kinds)
    assert first(21, 2 * len(kinds)) == first(21, 2 * len(kinds))  # reproducible
    assert first(21, len(kinds)) != first(22, len(kinds))
