"""The accounts the last due-payments run paid from (fjordbank/service_layer/settling.py):
what the filter holds, for how long, and the run after a run that ran out of time not
paying a payer's second bill from the money the first took before the ledger reserved it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

from fjordbank.service_layer import scheduled, settling
from tests.support.memory import MemoryDocuments
from tests.support.use_cases import RecordingPublisher, account_numbers, customer_account, data, fixed_clock, seed
from tests.unit.test_scheduled_use_case import (
    NOW,
    SAVINGS,
    SPENDING,
    TODAY,
    UID,
    Submit,
    payment,
    request_path,
    scheduled_request,
)

ENDED = dt.datetime(2027, 3, 10, 7, 0, tzinfo=dt.UTC)


def test_an_account_paid_from_waits_until_settle_has_passed_and_others_mostly_do_not():
    paid = list(itertools.islice(account_numbers(), 10_000))
    others = list(itertools.islice(account_numbers(), 10_000, 20_000))
    record = settling.Settling.of(paid, ENDED)
    assert len(record.filter) == 10_000 * settling.BITS_PER_ACCOUNT // 8
    assert all(record.holds(a, ENDED + dt.timedelta(minutes=1)) for a in paid)
    assert not any(record.holds(a, ENDED + settling.SETTLE) for a in paid)  # settled
    assert record.holds(paid[0], ENDED - dt.timedelta(seconds=1))  # another instance's clock, a little behind
    assert not record.holds(paid[0], ENDED - settling.SETTLE)
    false = sum(record.holds(a, ENDED) for a in others)
    assert false < 300  # about 1 %: each leaves one payment to a later run
    assert not settling.Settling.of([], ENDED).holds(paid[0], ENDED)


def test_a_payday_runs_accounts_fit_in_a_document(monkeypatch):
    """Past MAX_BYTES the filter keeps its size (more false positives, never a document
    too large to write)."""
    assert settling.MAX_BYTES < 1024 * 1024  # Firestore's limit per document
    monkeypatch.setattr(settling, "MAX_BYTES", 1_000)
    many = [f"{n:011d}" for n in range(5_000)]
    record = settling.Settling.of(many, ENDED)
    assert len(record.filter) == 1_000 and all(record.holds(a, ENDED) for a in many)


def test_the_records_are_kept_in_turn_read_back_together_and_a_damaged_one_is_none():
    docs = MemoryDocuments(fixed_clock())
    assert not settling.read(docs).settling
    for n, account in enumerate(("12345678903", "12345678904", "12345678905")):
        settling.record(docs, settling.read(docs), f"run-{n}", [account], ENDED + dt.timedelta(minutes=n))
    back = settling.read(docs)
    assert len(back.settling) == 3
    at = ENDED + dt.timedelta(minutes=3)
    assert all(back.holds(a, at) for a in ("12345678903", "12345678904", "12345678905"))
    # a fourth within SETTLE of all three: added to the newest, none written over (found in
    # review, 2026-12-06: runs seconds apart wrote over a record still needed)
    settling.record(docs, back, "run-3", ["12345678906"], at)
    now = settling.read(docs)
    assert len(now.settling) == 3 and all(now.holds(a, at) for a in ("12345678903", "12345678906"))
    # once the oldest has settled, its slot takes the next
    later = ENDED + settling.SETTLE + dt.timedelta(minutes=1)
    settling.record(docs, now, "run-4", ["12345678907"], later)
    assert settling.read(docs).holds("12345678907", later) and not settling.read(docs).holds("12345678903", later)
    # records on a clock moved a year ahead (runs given their clock on the emulator) are not
    # kept for good: outside their window too, they are written over
    ahead = settling.Settling.of(["12345678908"], ENDED + dt.timedelta(days=400))
    for slot in settling.SLOTS:
        seed(docs, {slot: {"run": "run-ahead", "ended": ahead.ended, "filter": ahead.filter, "bits": ahead.bits}})
    settling.record(docs, settling.read(docs), "run-5", ["12345678909"], later)
    assert settling.read(docs).holds("12345678909", later)
    seed(docs, {settling.SLOTS[1]: {"filter": "not bytes", "bits": 8, "ended": ENDED}})
    assert len(settling.read(docs).settling) == 2  # a damaged record holds nothing: its slot is free


def test_a_slot_that_could_not_be_read_is_never_written_over(monkeypatch):
    """It may hold the record still needed (found in review, 2026-12-06)."""
    docs = MemoryDocuments(fixed_clock())
    for n in range(3):
        settling.record(docs, settling.read(docs), f"run-{n}", [f"1234567890{n}"], ENDED)
    real = docs.get

    def get(path, *a, **k):
        if path == settling.SLOTS[0]:
            raise RuntimeError("timed out")
        return real(path, *a, **k)

    monkeypatch.setattr(docs, "get", get)
    records = settling.read(docs)
    assert settling.SLOTS[0] not in records.slots
    slot, _kept = records.placed(["12345678999"], ENDED + settling.SETTLE)
    assert slot != settling.SLOTS[0]
    monkeypatch.setattr(docs, "get", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("down")))
    assert settling.read(docs).placed(["12345678999"], ENDED) is None  # nothing read: nothing written


def test_the_run_after_one_that_ran_out_of_time_does_not_pay_from_money_on_its_way():
    """Found in review, 2026-12-06: run 1's time ran out between a payer's two bills of
    8 000 (10 000 available); run 2, going on at once, read 10 000 (the ledger had not yet
    reserved run 1's payment) and paid the second: the ledger declined it for good, where
    it should have waited for the money. Run 2 now leaves the payer to a later run, which
    decides on what the ledger has reserved by then."""
    docs = MemoryDocuments(fixed_clock())
    publisher = RecordingPublisher()
    seed(
        docs,
        {
            f"accounts/{SPENDING}": customer_account(UID, SPENDING, balance=10_000),
            f"accounts/{SAVINGS}": customer_account(UID, SAVINGS),
        },
    )
    scheduled_request(docs, "req-rent-0001", 8_000, TODAY)
    scheduled_request(docs, "req-bill-0001", 8_000, TODAY)
    submit = Submit(docs, publisher)

    def run(run_id, now, monotonic=lambda: 0.0):
        return scheduled.submit_due_payments(
            docs, publisher, submit=submit, clock=fixed_clock(now), lanes=1, run_id=run_id, monotonic=monotonic
        )

    spent = scheduled.REQUESTS_BUDGET_SECONDS + 1  # the run's time, spent once the first bill is paid
    first = run("run-1", NOW, monotonic=lambda: spent if submit.submitted else 0.0)
    assert first["submitted"] == 1 and first["deferred"] == 1
    assert scheduled.continuation(scheduled.SUBMIT_DUE_PAYMENTS, first, scoped=False) is not None
    second = run("run-2", NOW + dt.timedelta(seconds=spent + 1))  # at once; nothing reserved yet
    assert second["settling"] == 1 and len(submit.submitted) == 1
    # the pipeline books run 1's payment; the scheduler's run after SETTLE decides on it
    account, (paid,) = f"accounts/{SPENDING}", submit.submitted
    seed(docs, {account: {**data(docs, account), "available": 2_000, "balance": 2_000}})
    seed(docs, {request_path(paid): {**data(docs, request_path(paid)), "status": "completed"}})
    later = run("run-3", NOW + dt.timedelta(seconds=spent) + settling.SETTLE + dt.timedelta(minutes=1))
    assert (later["waiting"], later["settling"]) == (1, 0) and submit.submitted == [paid]  # waits for the money


def test_the_third_run_of_a_chain_does_not_pay_from_money_the_first_sent():
    """One record only: run 2 held the payer run 1 paid from, wrote its own accounts over run
    1's, and run 3, minutes after run 1's end, paid the payer's second bill from money still
    on its way (found in review, 2026-12-06)."""
    a, a2, b, b2 = itertools.islice(account_numbers(), 20, 24)
    docs = MemoryDocuments(fixed_clock())
    publisher = RecordingPublisher()
    for uid, frm, to in (("alice", a, a2), ("bob", b, b2)):
        seed(docs, {f"accounts/{frm}": customer_account(uid, frm, balance=10_000)})
        seed(docs, {f"accounts/{to}": customer_account(uid, to)})
    for uid, rid, frm, to, amount in (
        ("alice", "req-a-0001", a, a2, 8_000),
        ("alice", "req-a-0002", a, a2, 8_000),
        ("bob", "req-b-0001", b, b2, 1_000),
        ("bob", "req-b-0002", b, b2, 1_000),
    ):
        p = dataclasses.replace(payment(rid, amount, TODAY, uid=uid), from_account=frm, to_account=to)
        seed(docs, {request_path(rid, uid): {"status": "scheduled", "statusRank": 1, "payment": p.to_json()}})
    submit = Submit(docs, publisher)
    spent = scheduled.REQUESTS_BUDGET_SECONDS + 1

    def run(run_id, now, paid_before):  # each run's time is spent once it has paid one
        return scheduled.submit_due_payments(
            docs, publisher, submit=submit, clock=fixed_clock(now), lanes=1, run_id=run_id,
            monotonic=lambda: spent if len(submit.submitted) > paid_before else 0.0,
        )  # fmt: skip

    assert run("run-1", NOW, 0)["deferred"] == 1 and submit.submitted == ["req-a-0001"]
    ended = NOW + dt.timedelta(seconds=spent)
    second = run("run-2", ended + dt.timedelta(seconds=5), 1)
    assert second["settling"] == 1 and submit.submitted[-1] == "req-b-0001"
    third = run("run-3", ended + dt.timedelta(seconds=2 * spent + 10), 2)  # within SETTLE of run 1's end
    assert "req-a-0002" not in submit.submitted and third["settling"] >= 1
