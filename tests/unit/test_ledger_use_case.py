"""The ledger's use case (fjordbank.service_layer.ledger) on the in-memory fake.

What tests/integration/test_payment_pipeline.py, test_hot_payee.py, test_partitions.py and
test_failures.py promise of the ledger, checked here in milliseconds: many payments from
one account never take it below its limit (the 50-payment race, in batches and with
batches racing), a redelivered step or a replayed batch changes nothing and gets the
recorded answer, an internal payment's credit and refund legs, an external payment's hold
settled or returned, a hot payee's account written once per batch; at most one read and
one commit per batch (no read of what the process knows, a refusal only on what it read),
a document another writer moved read and decided again; money only ever moved.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import random
from dataclasses import replace

import pytest

from fjordbank.domain.errors import InvalidAccountNumber
from fjordbank.domain.ledger import (
    INTERNAL_ACCOUNTS,
    settlement_account,
    transit_in_account,
    transit_out_account,
    world_account,
)
from fjordbank.domain.norway import make_account_number
from fjordbank.domain.payment_ledger import StepResult, published
from fjordbank.domain.payments import EXTERNAL, INTERNAL, PaymentEvent, PaymentRequested
from fjordbank.service_layer.ledger import (
    ATTEMPTS,
    CARRIED,
    Ledger,
    Verdict,
    account_path,
    carried_record,
    carry,
    hold_path,
    record_path,
)
from fjordbank.service_layer.ports import AlreadyExists, Contention
from fjordbank.topology import CREDIT, CREDITED, REFUND
from tests.support.recording import RecordingDocuments

NOW = dt.datetime(2025, 3, 14, 12, 0, tzinfo=dt.UTC)


def number(bank_reg: str, serial: int) -> str:
    """A valid account number at ``serial`` or the next one that has a check digit."""
    while True:
        try:
            return make_account_number(bank_reg, "05", serial)
        except InvalidAccountNumber:
            serial += 1


ALICE, ALICE_SAVINGS, BOB, MERCHANT = (number("9710", n) for n in (10, 20, 30, 40))
OUTSIDE = number("1503", 50)  # another bank's: never in the ledger


def payment(
    pid: str, from_account: str = ALICE, to_account: str = BOB, amount: int = 1_000, *, uid: str = "alice"
) -> PaymentRequested:
    return PaymentRequested(
        payment_id=pid,
        uid=uid,
        request_id=f"req-{pid}",
        kind=INTERNAL if to_account != OUTSIDE else EXTERNAL,
        from_account=from_account,
        to_account=to_account,
        amount=amount,
        currency="NOK",
        message=None,
        kid=None,
        due_date="2025-03-14",
        body_hash="0" * 64,
        requested_at="2025-03-14T12:00:00Z",
    )


def step(p: PaymentRequested, status: str = "approved", reason: str | None = None) -> PaymentEvent:
    return PaymentEvent(p, status, reason)


async def bank(
    funds: dict[str, int], *, interleave: bool = False, overdraft: int = 0, closed: tuple[str, ...] = ()
) -> tuple[Ledger, RecordingDocuments]:
    """A ledger with the internal accounts, Alice's two accounts, Bob's and a merchant's,
    funded from outside through the admin path (so the book balances), the record reset."""
    docs = RecordingDocuments(interleave=interleave)
    ledger = Ledger(docs, clock=lambda: NOW, attempted=Attempts())
    await ledger.ensure_internal_accounts()
    owners = {ALICE: "alice", ALICE_SAVINGS: "alice", BOB: "bob", MERCHANT: "merchant"}
    for account, uid in owners.items():
        await ledger.open_account(
            account_id=account, owner_uid=uid, name="Brukskonto", overdraft_limit=overdraft if account == ALICE else 0
        )
    for account, amount in funds.items():
        assert await ledger.deposit(deposit_id=f"opening-{account}", account_id=account, amount=amount)
    for account in closed:
        docs.store.docs[account_path(account)][0]["status"] = "closed"
    docs.forget()
    return ledger, docs


class Attempts(list):
    """What the ledger reports of each batch: (commits, the error it gave up on)."""

    def __call__(self, attempts: int, error: BaseException | None) -> None:
        self.append((attempts, error))


def attempts(ledger: Ledger) -> Attempts:
    assert isinstance(ledger._attempted, Attempts)
    return ledger._attempted


def commits(docs: RecordingDocuments) -> list[list[tuple[str, str]]]:
    """The writes of each commit outside a unit of work, in order."""
    return [writes for kind, writes in docs.calls if kind == "commit"]


def reads(docs: RecordingDocuments) -> list[list[str]]:
    return [paths for kind, paths in docs.calls if kind == "get_many"]


async def balance(docs: RecordingDocuments, account: str) -> tuple[int, int, int]:
    doc = await docs.get(account_path(account))
    assert doc is not None
    return doc.data["balance"], doc.data["held"], doc.data["available"]


def money(docs: RecordingDocuments) -> int:
    """The sum of every balance in the ledger: zero, money is only moved."""
    return sum(data["balance"] for path, (data, _v) in docs.store.docs.items() if path.startswith("accounts/"))


def snapshot(docs: RecordingDocuments) -> dict:
    return copy.deepcopy(docs.store.docs)


def statuses(verdicts: list[Verdict]) -> list[str | None]:
    return [v.result.status if v.result else None for v in verdicts]


# ---- the 50-payment race: never below the limit ---------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 7, 50])
async def test_fifty_payments_from_an_account_funded_for_ten_never_take_it_below_zero(batch_size):
    ledger, docs = await bank({ALICE: 10 * 1_000})
    payments = [step(payment(f"p{n:02}")) for n in range(50)]
    verdicts = []
    for start in range(0, 50, batch_size):
        verdicts += await ledger.post_batch(payments[start : start + batch_size])
    assert statuses(verdicts) == [CREDIT] * 10 + ["failed"] * 40  # in order: the first ten
    assert {v.result.reason for v in verdicts[10:] if v.result} == {"insufficient_funds"}
    assert await balance(docs, ALICE) == (0, 0, 0)
    assert attempts(ledger) == [(1, None)] * -(-50 // batch_size)  # one commit per batch
    assert money(docs) == 0


async def test_batches_racing_for_one_account_lose_and_retry_and_never_overdraw_it():
    ledger, docs = await bank({ALICE: 10 * 1_000}, interleave=True)
    payments = [step(payment(f"p{n:02}")) for n in range(48)]
    batches = [payments[i::4] for i in range(4)]  # four batches at once, interleaved
    results = await asyncio.gather(*(ledger.post_batch(b) for b in batches))
    all_statuses = [s for verdicts in results for s in statuses(verdicts)]
    assert all_statuses.count(CREDIT) == 10 and all_statuses.count("failed") == 38
    assert await balance(docs, ALICE) == (0, 0, 0)
    assert max(n for n, _error in attempts(ledger)) > 1  # they did race: the losers ran again
    assert money(docs) == 0


async def test_an_overdraft_limit_is_the_floor_and_not_a_step_below():
    ledger, docs = await bank({ALICE: 3_000}, overdraft=2_000)
    verdicts = await ledger.post_batch([step(payment(f"p{n}", amount=1_000)) for n in range(8)])
    assert statuses(verdicts) == [CREDIT] * 5 + ["failed"] * 3
    assert await balance(docs, ALICE) == (-2_000, 0, -2_000)


# ---- exactly once: redelivery, replayed batches ----------------------------------------------
async def test_a_redelivered_step_changes_nothing_and_gets_the_recorded_answer():
    ledger, docs = await bank({ALICE: 5_000})
    p = payment("p1", amount=2_000)
    [first] = await ledger.post_batch([step(p)])
    before, committed = snapshot(docs), len(commits(docs))
    [again] = await ledger.post_batch([step(p)])
    assert (again.result, again.replayed) == (first.result, True)
    assert snapshot(docs) == before  # not a document written
    assert len(commits(docs)) == committed  # nothing to commit
    [elsewhere] = await Ledger(docs, clock=lambda: NOW).post_batch([step(p)])  # another process: guesses "new"
    assert (elsewhere.result, elsewhere.replayed) == (first.result, True)  # its create failed; read, answered
    assert snapshot(docs) == before


async def test_a_refused_step_is_answered_the_same_when_redelivered_after_funds_arrived():
    ledger, docs = await bank({ALICE: 500})
    p = payment("p1", amount=1_000)
    [first] = await ledger.post_batch([step(p)])
    assert first.result == StepResult("failed", "insufficient_funds", "available balance is too low")
    await ledger.deposit(deposit_id="salary", account_id=ALICE, amount=10_000)
    [again] = await ledger.post_batch([step(p)])
    assert (again.result, again.replayed) == (first.result, True)  # the recorded answer, not a new one
    assert await balance(docs, ALICE) == (10_500, 0, 10_500)


async def test_a_replayed_batch_gets_every_recorded_answer_and_changes_nothing():
    ledger, docs = await bank({ALICE: 2_500})
    batch = [step(payment(f"p{n}")) for n in range(4)] + [step(payment("x1", to_account=OUTSIDE, amount=400))]
    first = await ledger.post_batch(batch)
    assert statuses(first) == [CREDIT, CREDIT, "failed", "failed", "reserved"]
    before = snapshot(docs)
    replayed = await ledger.post_batch(list(reversed(batch)))  # a crash before the ack: again, in any order
    assert [(v.event, v.result) for v in replayed] == [(v.event, v.result) for v in reversed(first)]
    assert all(v.replayed for v in replayed)
    assert snapshot(docs) == before


async def test_a_batch_mixing_replayed_and_new_steps_posts_only_the_new_ones():
    ledger, docs = await bank({ALICE: 5_000})
    await ledger.post_batch([step(payment("p1", amount=2_000))])
    verdicts = await ledger.post_batch([step(payment("p1", amount=2_000)), step(payment("p2", amount=2_000))])
    assert [(v.result.status if v.result else None, v.replayed) for v in verdicts] == [(CREDIT, True), (CREDIT, False)]
    assert await balance(docs, ALICE) == (1_000, 0, 1_000)


async def test_a_step_its_payment_cannot_take_is_refused_for_the_dead_letters_and_changes_nothing():
    ledger, docs = await bank({ALICE: 5_000})
    before = snapshot(docs)
    [verdict] = await ledger.post_batch([step(payment("x1", to_account=OUTSIDE), "settled")])
    assert verdict.result is None and verdict.error is not None and verdict.error.startswith("unexpected_step")
    assert snapshot(docs) == before


# ---- an internal payment's two legs ----------------------------------------------------------
async def test_an_internal_payment_is_debited_into_transit_and_credited_from_it():
    ledger, docs = await bank({ALICE: 5_000})
    p = payment("p1", amount=1_200)
    [debit] = await ledger.post_batch([step(p)])
    assert debit.result == StepResult(CREDIT)
    assert await balance(docs, ALICE) == (3_800, 0, 3_800)
    assert (await balance(docs, transit_out_account(ALICE)))[0] == 1_200
    [credit] = await ledger.post_batch([step(p, CREDIT)])
    assert credit.result == StepResult("completed")
    assert [e.status for e in published(credit.event, credit.result)] == ["completed", CREDITED]
    assert await balance(docs, BOB) == (1_200, 0, 1_200)
    assert (await balance(docs, transit_in_account(BOB)))[0] == -1_200
    record = await docs.get(record_path("p1"))
    assert record is not None and record.data["status"] == "completed"
    assert record.data["postingIds"] == ["p1:debit", "p1:credit"]
    # the record is the payment's journal: its postings are kept on it, not as documents
    kept = record.data["postings"]
    assert {step: (p["postingId"], p["entries"]) for step, p in kept.items()} == {
        "debit": (
            "p1:debit",
            [{"account": ALICE, "amount": -1_200}, {"account": transit_out_account(ALICE), "amount": 1_200}],
        ),
        "credit": (
            "p1:credit",
            [{"account": transit_in_account(BOB), "amount": -1_200}, {"account": BOB, "amount": 1_200}],
        ),
    }
    assert not [path for path in docs.store.docs if path.startswith("postings/p1")]
    assert money(docs) == 0


def next_leg(verdict: Verdict) -> PaymentEvent:
    """What the ledger publishes to itself after ``verdict`` (the credit or refund), as its
    consumer does: carrying the payment's record."""
    assert verdict.result is not None
    [leg] = [e for e in carry(published(verdict.event, verdict.result), verdict.record) if e.status in (CREDIT, REFUND)]
    return leg


async def test_a_credit_carries_the_record_so_the_payees_instance_reads_no_record():
    ledger, docs = await bank({ALICE: 5_000})
    payees = Ledger(docs, clock=lambda: NOW, attempted=Attempts())  # owns the payee's partition
    p = payment("p1", amount=1_200)
    [debit] = await ledger.post_batch([step(p)])
    credit = next_leg(debit)
    assert credit.detail is not None and credit.detail[CARRIED]["data"]["status"] == CREDIT
    assert carried_record(credit) is not None
    docs.forget()
    [credited] = await payees.post_batch([credit])
    assert credited.result == StepResult("completed")
    [read] = reads(docs)
    assert record_path("p1") not in read  # the accounts only
    assert [kind for kind, _ in docs.calls] == ["get_many", "commit"]
    record = await docs.get(record_path("p1"))
    assert record is not None and record.data["postingIds"] == ["p1:debit", "p1:credit"]
    assert sorted(record.data["postings"]) == ["credit", "debit"]
    assert record.data["steps"][CREDIT]["status"] == "completed"
    # what the credit publishes carries no record on to the notifier and the others
    assert all(CARRIED not in (e.detail or {}) for e in carry(published(credited.event, credited.result), None))
    assert all(
        CARRIED not in (e.detail or {}) for e in carry(published(credited.event, credited.result), credited.record)
    )
    assert money(docs) == 0


async def test_a_redelivered_credit_carrying_an_old_record_is_read_again_and_changes_nothing():
    ledger, docs = await bank({ALICE: 5_000})
    p = payment("p1", amount=1_200)
    [debit] = await ledger.post_batch([step(p)])
    credit = next_leg(debit)
    await Ledger(docs, clock=lambda: NOW).post_batch([credit])  # credited by one instance
    before = snapshot(docs)
    docs.forget()
    other = Ledger(docs, clock=lambda: NOW, attempted=Attempts())  # the partition moved meanwhile
    [again] = await other.post_batch([credit])  # the same message, its record now old
    assert again.result == StepResult("completed") and again.replayed
    assert [kind for kind, _ in docs.calls] == ["get_many", "commit", "get_many"]  # stale, read, answered
    assert record_path("p1") in reads(docs)[-1]
    assert docs.store.docs == before
    assert attempts(other) == [(2, None)]


async def test_a_credit_refused_is_decided_on_the_record_read_not_the_one_carried():
    ledger, docs = await bank({ALICE: 5_000}, closed=(BOB,))
    p = payment("p1", amount=1_200)
    [debit] = await ledger.post_batch([step(p)])
    docs.forget()
    [credit] = await Ledger(docs, clock=lambda: NOW).post_batch([next_leg(debit)])
    assert credit.result is not None and credit.result.status == REFUND
    assert record_path("p1") in reads(docs)[-1]  # a refusal reads what it decides on
    refund = next_leg(credit)  # back to the payer's partition, carrying the record
    docs.forget()
    [refunded] = await ledger.post_batch([refund])  # it knows the record as the debit left it
    assert refunded.result == StepResult("failed", credit.result.reason, credit.result.message)
    assert [kind for kind, _ in docs.calls] == ["commit"]  # the carried record is the newer: no read
    assert await balance(docs, ALICE) == (5_000, 0, 5_000)
    assert money(docs) == 0


def test_a_carried_record_of_another_payment_or_malformed_is_not_used():
    p, q = payment("p1"), payment("q1")
    good = carry([step(p, CREDIT)], None)[0]
    assert carried_record(good) is None
    wire = {"updated": NOW.isoformat(), "data": {"paymentId": "p1", "status": CREDIT}}
    assert carried_record(PaymentEvent(p, CREDIT, detail={CARRIED: wire})) is not None
    assert carried_record(PaymentEvent(q, CREDIT, detail={CARRIED: wire})) is None  # another payment's
    assert carried_record(PaymentEvent(p, "approved", detail={CARRIED: wire})) is None  # not a ledger leg
    for bad in ({"updated": "yesterday", "data": wire["data"]}, {"updated": "2025-03-14T12:00:00", "data": {}}, "x"):
        assert carried_record(PaymentEvent(p, CREDIT, detail={CARRIED: bad})) is None


def with_carried(event: PaymentEvent, data: dict) -> PaymentEvent:
    """``event`` carrying ``data`` as its record (what only a damaged or forged event holds)."""
    assert event.detail is not None
    wire = {**event.detail[CARRIED], "data": data}
    return replace(event, detail={**event.detail, CARRIED: wire})


async def test_a_carried_record_that_says_its_own_credit_is_done_is_read_not_believed():
    """A genuine credit never carries a record with its own leg in it; one that does would
    write nothing (a replay), so no precondition would check it: the record is read, and
    the money arrives."""
    ledger, docs = await bank({ALICE: 5_000})
    p = payment("p1", amount=1_200)
    [debit] = await ledger.post_batch([step(p)])
    credit = next_leg(debit)
    assert credit.detail is not None
    carried = credit.detail[CARRIED]["data"]
    claims_done = {**carried, "status": "completed", "steps": {**carried["steps"], CREDIT: {"status": "completed"}}}
    docs.forget()
    [credited] = await Ledger(docs, clock=lambda: NOW).post_batch([with_carried(credit, claims_done)])
    assert credited.result == StepResult("completed") and not credited.replayed
    assert record_path("p1") in reads(docs)[-1]
    assert await balance(docs, BOB) == (1_200, 0, 1_200)
    assert money(docs) == 0


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: {"paymentId": data["paymentId"]},  # no steps
        lambda data: {**data, "hold": {}},  # a hold without its id
        lambda data: {**data, "postingIds": 5},
    ],
)
async def test_a_carried_record_this_code_cannot_decide_on_is_read_instead(damage):
    ledger, docs = await bank({ALICE: 5_000})
    p = payment("p1", amount=1_200)
    [debit] = await ledger.post_batch([step(p)])
    credit = next_leg(debit)
    assert credit.detail is not None
    docs.forget()
    [credited] = await Ledger(docs, clock=lambda: NOW).post_batch(
        [with_carried(credit, damage(credit.detail[CARRIED]["data"]))]
    )
    assert credited.result == StepResult("completed")
    assert record_path("p1") in reads(docs)[-1]
    assert await balance(docs, BOB) == (1_200, 0, 1_200)
    assert money(docs) == 0


async def test_a_payee_account_that_cannot_take_the_credit_sends_it_back_to_the_payer():
    ledger, docs = await bank({ALICE: 5_000}, closed=(BOB,))
    p = payment("p1", amount=1_200)
    await ledger.post_batch([step(p)])
    [credit] = await ledger.post_batch([step(p, CREDIT)])
    assert credit.result is not None and credit.result.status == REFUND and credit.result.reason
    assert await balance(docs, BOB) == (0, 0, 0)
    [refund] = await ledger.post_batch([step(p, REFUND, credit.result.reason)])
    assert refund.result == StepResult("failed", credit.result.reason, None)
    assert await balance(docs, ALICE) == (5_000, 0, 5_000)
    assert money(docs) == 0


async def test_a_payment_to_the_payers_own_account_moves_it_between_them():
    ledger, docs = await bank({ALICE: 5_000})
    p = payment("p1", to_account=ALICE_SAVINGS, amount=700)
    await ledger.post_batch([step(p)])
    await ledger.post_batch([step(p, CREDIT)])
    assert await balance(docs, ALICE) == (4_300, 0, 4_300)
    assert await balance(docs, ALICE_SAVINGS) == (700, 0, 700)


# ---- an external payment's hold --------------------------------------------------------------
async def test_an_external_payment_holds_the_funds_and_posts_them_when_settled():
    ledger, docs = await bank({ALICE: 20_000})
    p = payment("x1", to_account=OUTSIDE, amount=12_345)
    [held] = await ledger.post_batch([step(p)])
    assert held.result == StepResult("reserved")
    assert await balance(docs, ALICE) == (20_000, 12_345, 20_000 - 12_345)
    assert await held_on_record(docs, "x1") == ("active", 12_345)  # the record carries its hold
    assert await docs.get(hold_path("x1")) is None  # and no document of its own
    [settled] = await ledger.post_batch([step(p, "settled")])
    assert settled.result == StepResult("completed")
    assert await balance(docs, ALICE) == (20_000 - 12_345, 0, 20_000 - 12_345)
    assert (await balance(docs, settlement_account(ALICE)))[0] == 12_345
    assert await held_on_record(docs, "x1") == ("captured", 12_345)
    assert money(docs) == 0


async def held_on_record(docs: RecordingDocuments, payment_id: str) -> tuple[str, int]:
    record = await docs.get(record_path(payment_id))
    assert record is not None
    return record.data["hold"]["status"], record.data["hold"]["amount"]


async def test_a_returned_external_payment_releases_the_hold_and_says_why():
    ledger, docs = await bank({ALICE: 20_000})
    p = payment("x1", to_account=OUTSIDE, amount=5_000)
    await ledger.post_batch([step(p)])
    [returned] = await ledger.post_batch([PaymentEvent(p, "returned", "AC04", "account closed")])
    assert returned.result == StepResult("failed", "AC04", "account closed")
    assert await balance(docs, ALICE) == (20_000, 0, 20_000)
    assert await held_on_record(docs, "x1") == ("released", 5_000)
    [again] = await ledger.post_batch([PaymentEvent(p, "settled")])  # a late contrary answer
    assert again.result is None and again.error is not None  # dead-lettered, nothing posted
    assert await balance(docs, ALICE) == (20_000, 0, 20_000)


async def test_a_settling_batch_reads_its_records_and_no_hold():
    ledger, docs = await bank({ALICE: 20_000})
    x1, x2 = payment("x1", to_account=OUTSIDE), payment("x2", to_account=OUTSIDE)
    await ledger.post_batch([step(x1), step(x2)])
    fresh = Ledger(docs, clock=lambda: NOW)  # a process that knows nothing yet
    docs.forget()
    await fresh.post_batch([step(x1, "settled"), step(payment("p3"))])
    [read] = reads(docs)
    assert "ledgerPayments/x1" in read and not any(path.startswith("holds/") for path in read)
    assert "ledgerPayments/p3" not in read  # a new payment's record is created, not read
    [writes] = commits(docs)
    assert not any(path.startswith("holds/") for _kind, path in writes)


async def test_a_payment_reserved_before_holds_moved_onto_records_settles_from_its_hold_document():
    ledger, docs = await bank({ALICE: 20_000})
    x1, x2 = payment("x1", to_account=OUTSIDE, amount=3_000), payment("x2", to_account=OUTSIDE, amount=4_000)
    await ledger.post_batch([step(x1), step(x2)])
    for pid in ("x1", "x2"):  # as an older ledger left them: the hold in a document of its own
        record = docs.store.docs[record_path(pid)][0]
        docs.store.docs[hold_path(pid)] = (record.pop("hold"), docs.store.docs[record_path(pid)][1])
    fresh = Ledger(docs, clock=lambda: NOW)
    docs.forget()
    verdicts = await fresh.post_batch([step(x1, "settled"), PaymentEvent(x2, "returned", "AC04", "closed")])
    assert statuses(verdicts) == ["completed", "failed"]
    assert reads(docs) == [
        [account_path(ALICE), account_path(settlement_account(ALICE)), record_path("x1"), record_path("x2")],
        [hold_path("x1"), hold_path("x2")],
    ]
    assert [(await docs.get(hold_path(p))).data["status"] for p in ("x1", "x2")] == ["captured", "released"]
    assert "hold" not in (await docs.get(record_path("x1"))).data
    assert await balance(docs, ALICE) == (17_000, 0, 17_000)
    assert money(docs) == 0


# ---- a hot payee: one write per batch --------------------------------------------------------
async def test_a_merchant_paid_by_many_in_one_batch_is_written_once_and_credited_each():
    payers = {number("9710", 1_000 + 10 * n): f"payer-{n}" for n in range(16)}
    ledger, docs = await bank({})
    for account, uid in payers.items():
        await ledger.open_account(account_id=account, owner_uid=uid, name="Brukskonto")
        await ledger.deposit(deposit_id=f"opening-{account}", account_id=account, amount=4 * 1_250)
    paid = [
        payment(f"{uid}-{n}", account, MERCHANT, 1_250, uid=uid) for n in range(4) for account, uid in payers.items()
    ]
    await ledger.post_batch([step(p) for p in paid])  # the payers' partitions (one batch here)
    docs.forget()
    verdicts = await ledger.post_batch([step(p, CREDIT) for p in paid])  # the merchant's partition
    assert statuses(verdicts) == ["completed"] * 64
    [writes] = commits(docs)
    assert writes.count(("update", account_path(MERCHANT))) == 1  # one write for 64 credits
    assert writes.count(("update", account_path(transit_in_account(MERCHANT)))) == 1
    assert await balance(docs, MERCHANT) == (64 * 1_250, 0, 64 * 1_250)
    assert [(await balance(docs, a))[0] for a in payers] == [0] * len(payers)
    assert money(docs) == 0


async def test_a_batch_is_one_read_and_one_commit_and_the_next_of_known_documents_one_commit():
    ledger, docs = await bank({ALICE: 50_000})
    batch = [step(payment(f"p{n}")) for n in range(5)] + [step(payment("x1", to_account=OUTSIDE))]
    await ledger.post_batch(batch)
    assert docs.units == []  # no transaction
    [read] = reads(docs)
    assert not any(path.startswith("ledgerPayments/") for path in read)  # new payments: created
    [writes] = commits(docs)
    assert writes.count(("update", account_path(ALICE))) == 1
    # six records created, carrying the five debits' postings and the external payment's hold
    assert sorted(k for k, p in writes if p.startswith(("postings/", "ledgerPayments/", "holds/"))) == ["create"] * 6
    docs.forget()
    await ledger.post_batch([step(payment(f"q{n}")) for n in range(5)])
    assert [kind for kind, _ in docs.calls] == ["commit"]  # every document known: no read
    assert attempts(ledger) == [(1, None), (1, None)]


async def test_a_document_another_writer_moved_fails_the_commit_and_the_batch_is_read_again():
    ledger, docs = await bank({ALICE: 5_000})
    await ledger.post_batch([step(payment("p1", amount=1_000))])
    await ledger.deposit(deposit_id="salary", account_id=ALICE, amount=10_000)  # another writer
    docs.forget()
    [paid] = await ledger.post_batch([step(payment("p2", amount=3_000))])
    assert paid.result == StepResult(CREDIT)
    assert [kind for kind, _ in docs.calls] == ["commit", "get_many", "commit"]  # stale, read, again
    assert await balance(docs, ALICE) == (11_000, 0, 11_000)  # the deposit kept
    assert attempts(ledger)[-1] == (2, None)
    assert money(docs) == 0


async def test_a_refusal_is_decided_on_documents_read_then_never_on_remembered_ones():
    ledger, docs = await bank({ALICE: 1_000})
    await ledger.post_batch([step(payment("p1", amount=1_000))])  # Alice known at 0
    await ledger.deposit(deposit_id="salary", account_id=ALICE, amount=5_000)  # not seen by the ledger
    [paid] = await ledger.post_batch([step(payment("p2", amount=2_000))])
    assert paid.result == StepResult(CREDIT)  # not "insufficient funds" from the remembered balance
    assert await balance(docs, ALICE) == (3_000, 0, 3_000)


async def test_documents_that_keep_moving_give_the_batch_back_as_contention():
    _ledger, docs = await bank({ALICE: 5_000})

    class Moving(RecordingDocuments):
        async def get_many(self, paths):
            found = await super().get_many(paths)
            path = account_path(ALICE)
            data, _version = self.store.docs[path]
            self.store.apply([("set", path, dict(data), False)])  # moved after every read
            return found

    moving = Moving(lambda: NOW)
    moving.store = docs.store
    stuck = Ledger(moving, clock=lambda: NOW, attempted=Attempts())
    with pytest.raises(Contention):
        await stuck.post_batch([step(payment("p1"))])
    [(n, error)] = attempts(stuck)
    assert n == ATTEMPTS and isinstance(error, Contention)
    assert await balance(docs, ALICE) == (5_000, 0, 5_000)


# ---- the admin path --------------------------------------------------------------------------
async def test_internal_accounts_are_made_once_and_a_taken_number_is_refused():
    ledger, docs = await bank({})
    await ledger.ensure_internal_accounts()
    assert [c for c in docs.calls if c[0] == "commit"] == []  # all there: read, none made again
    assert None not in (await docs.get_many([account_path(a) for a in INTERNAL_ACCOUNTS])).values()
    with pytest.raises(AlreadyExists):
        await ledger.open_account(account_id=BOB, owner_uid="mallory", name="Stolen")
    bob = await docs.get(account_path(BOB))
    assert bob is not None and bob.data["ownerUid"] == "bob"


async def test_a_deposit_is_posted_once_per_id_and_the_world_written_once_per_batch():
    ledger, docs = await bank({})
    assert await ledger.deposit(deposit_id="d1", account_id=ALICE, amount=1_000)
    assert not await ledger.deposit(deposit_id="d1", account_id=ALICE, amount=1_000)
    docs.forget()
    assert await ledger.deposit_many([("d1", ALICE, 1_000), ("d2", BOB, 2_000), ("d3", ALICE, 3_000)]) == 2
    [unit] = docs.units_of("ledger_deposit")
    assert len(unit.reads) == 1 and unit.written(account_path(world_account("d1"))) == 1
    assert await balance(docs, ALICE) == (4_000, 0, 4_000) and await balance(docs, BOB) == (2_000, 0, 2_000)
    assert money(docs) == 0
    from tests.unit.test_incoming import audit_problems  # (it imports this module)

    assert audit_problems(docs) == []  # each from the world shard of its call


async def test_one_deposit_id_twice_in_one_call_is_refused_and_nothing_is_booked():
    """Both would be applied to the balances but one posting kept (the audit red)."""
    ledger, docs = await bank({})
    with pytest.raises(ValueError, match="d1"):
        await ledger.deposit_many([("d1", ALICE, 1_000), ("d2", BOB, 2_000), ("d1", ALICE, 1_000)])
    assert await balance(docs, ALICE) == (0, 0, 0) and await balance(docs, BOB) == (0, 0, 0)


# ---- two instances at once (a partition moving), deposits meanwhile ------------------------
async def _post(ledger: Ledger, events: list[PaymentEvent]) -> list[Verdict]:
    """As the consumer does: a batch that gave up on contention is delivered again."""
    for _ in range(5):
        try:
            return await ledger.post_batch(events)
        except Contention:
            await asyncio.sleep(0)
    raise AssertionError("contention never settled")


async def _deposit(ledger: Ledger, deposit_id: str) -> None:
    """The admin path's deposit, tried again when it lost to the racing commits."""
    for _ in range(20):
        try:
            await ledger.deposit(deposit_id=deposit_id, account_id=ALICE, amount=700)
            return
        except Contention:
            await asyncio.sleep(0)
    raise AssertionError("the deposit never got through")


async def _race(rng: random.Random, ledgers: list[Ledger], events: list[PaymentEvent], extra=()) -> list[Verdict]:
    """Each event to one instance or both (a redelivery to the other), in random batches,
    all at once with ``extra`` (deposits)."""
    jobs = []
    for event in events:
        for ledger in rng.sample(ledgers, rng.choice([1, 1, 2])):
            jobs.append((ledger, event))
    rng.shuffle(jobs)
    batches = []
    while jobs:
        size = rng.randint(1, 6)
        chunk, jobs = jobs[:size], jobs[size:]
        for ledger in ledgers:
            mine = [e for owner, e in chunk if owner is ledger]
            if mine:
                batches.append(_post(ledger, mine))
    results = await asyncio.gather(*batches, *extra)
    return [v for r in results if isinstance(r, list) for v in r]


@pytest.mark.parametrize("seed", range(12))
async def test_two_instances_racing_on_the_same_accounts_with_deposits_keep_every_invariant(seed):
    """While a partition moves, its old and its new owner may both post for a moment, and
    the admin path deposits meanwhile: whatever the interleaving, money is only moved, no
    account goes below its limit, every step is posted once, and both instances answer a
    step the same (each remembers its own versions; the preconditions decide)."""
    rng = random.Random(seed)
    ledger, docs = await bank({ALICE: 6_000, BOB: 2_000}, interleave=True)
    ledgers = [ledger, Ledger(docs, clock=lambda: NOW)]
    payers = [(ALICE, "alice"), (BOB, "bob")]
    payments = []
    for n in range(24):
        source, uid = rng.choice(payers)
        to = rng.choice([a for a in (ALICE, ALICE_SAVINGS, BOB, MERCHANT) if a != source])
        payments.append(payment(f"r{seed}-{n}", source, to, rng.choice([500, 1_000, 2_500]), uid=uid))
    deposits = [_deposit(ledger, f"d{seed}-{n}") for n in range(3)]
    debits = await _race(rng, ledgers, [step(p) for p in payments], deposits)
    credited = [v.event.payment for v in debits if v.result == StepResult(CREDIT)]
    legs = {v.event.payment.payment_id: next_leg(v) for v in debits if v.result == StepResult(CREDIT) and v.record}
    credits = await _race(rng, ledgers, [legs.get(p.payment_id, step(p, CREDIT)) for p in dict.fromkeys(credited)])

    assert money(docs) == 0
    for account in (ALICE, ALICE_SAVINGS, BOB, MERCHANT):
        assert (await balance(docs, account))[0] >= 0
    answers: dict[tuple[str, str], StepResult | None] = {}
    for v in debits + credits:
        key = (v.event.payment.payment_id, v.event.status)
        assert answers.setdefault(key, v.result) == v.result, key  # the same answer from both
    assert not [path for path in docs.store.docs if path.startswith("postings/") and ":deposit" not in path]
    debited = {p.payment_id for p in credited}
    for pid in debited:  # debited and credited once each, on the record
        record = await docs.get(record_path(pid))
        assert record is not None and record.data["postingIds"] == [f"{pid}:debit", f"{pid}:credit"]
        assert sorted(record.data["postings"]) == ["credit", "debit"]


def test_an_update_of_a_record_sends_only_what_changed() -> None:
    from fjordbank.service_layer.ledger import changed_fields
    from fjordbank.service_layer.ports import DELETE_FIELD, SERVER_TIME

    before = {
        "paymentId": "p1",
        "amount": 5,
        "steps": {"approved": {"status": "credit"}},
        "postingIds": ["a"],
        "status": "credit",
        "updatedAt": SERVER_TIME,
        "gone": 1,
        "odd": {"a-b": 1},
    }
    after = {
        "paymentId": "p1",
        "amount": 5,
        "steps": {"approved": {"status": "credit"}, "credit": {"status": "completed"}},
        "postingIds": ["a", "b"],
        "status": "completed",
        "updatedAt": SERVER_TIME,
        "odd": {"a-b": 2},
    }
    assert changed_fields(before, after) == {
        "steps.credit": {"status": "completed"},
        "postingIds": ["a", "b"],
        "status": "completed",
        "updatedAt": SERVER_TIME,  # a server timestamp is always sent
        "odd": {"a-b": 2},  # a key that is no plain field name: the whole map
        "gone": DELETE_FIELD,
    }
    assert changed_fields(after, after) == {"updatedAt": SERVER_TIME}


async def test_a_missing_transit_shard_is_the_bank_s_fault_not_the_customer_s_unknown_account():
    """Read as the payer's (or payee's) account, a missing shard failed the payment as
    "unknown_account" of the payer's own account, or sent the money back with it although
    the payee's account was there (found in review, 2026-12-07). It is dead-lettered for an
    operator, nothing moved, as the incoming path does."""
    ledger, docs = await bank({ALICE: 5_000})
    del docs.store.docs[account_path(transit_out_account(ALICE))]
    [debit] = await ledger.post_batch([step(payment("p1"))])
    assert debit.result is None and debit.error is not None and "internal account" in debit.error
    assert record_path("p1") not in docs.store.docs
    ledger, docs = await bank({ALICE: 5_000})
    await ledger.post_batch([step(payment("p2"))])
    del docs.store.docs[account_path(transit_in_account(BOB))]
    [credit] = await ledger.post_batch([step(payment("p2"), CREDIT)])
    assert credit.result is None and credit.error is not None and "internal account" in credit.error
    assert docs.store.docs[record_path("p2")][0]["status"] == CREDIT  # debited, waiting for its credit


@pytest.mark.parametrize("damage", ["steps", "status", "postingIds"])
async def test_a_stored_record_that_cannot_be_read_is_refused_alone_and_moves_nothing(damage):
    """A record without the fields every step uses raised a bare KeyError that failed its
    whole batch (the other payments with it), and one without ``postingIds`` only after the
    step had moved the book's money (found in review, 2026-12-07)."""
    ledger, docs = await bank({ALICE: 5_000})
    await ledger.post_batch([step(payment("p1"))])
    del docs.store.docs[record_path("p1")][0][damage]
    before = {path: copy.deepcopy(doc[0]) for path, doc in docs.store.docs.items() if path.startswith("accounts/")}
    fresh = Ledger(docs, clock=lambda: NOW)
    bad, good = await fresh.post_batch([step(payment("p1"), CREDIT), step(payment("p9", amount=100))])
    assert bad.result is None and bad.error is not None and "cannot be read" in bad.error
    assert good.result is not None and good.result.status == CREDIT
    after = {path: doc[0] for path, doc in docs.store.docs.items() if path.startswith("accounts/")}
    moved = {path for path in before if before[path].get("balance") != after[path].get("balance")}
    assert moved == {account_path(ALICE), account_path(transit_out_account(ALICE))}  # p9's debit only


@pytest.mark.parametrize("damage", ["expiresAt", "amount", "holdId"])
async def test_a_stored_hold_that_cannot_be_read_is_refused_alone_and_moves_nothing(damage):
    """An external payment's record carries its hold: one without a field of it raised a
    bare KeyError while the batch was read, before any step, and failed the payments
    beside it too, a mere replay's included (found in review, 2026-12-07)."""
    ledger, docs = await bank({ALICE: 10_000})
    x = payment("x1", to_account=OUTSIDE, amount=400)
    await ledger.post_batch([step(x)])
    del docs.store.docs[record_path("x1")][0]["hold"][damage]
    before = copy.deepcopy(docs.store.docs[account_path(ALICE)][0])
    fresh = Ledger(docs, clock=lambda: NOW)
    bad, good = await fresh.post_batch([step(x, "settled"), step(payment("p9", amount=100))])
    assert bad.result is None and bad.error is not None and "cannot be read" in bad.error
    assert good.result is not None and good.result.status == CREDIT
    after = docs.store.docs[account_path(ALICE)][0]
    assert (after["balance"], after.get("held")) == (before["balance"] - 100, before.get("held"))  # p9's debit only
