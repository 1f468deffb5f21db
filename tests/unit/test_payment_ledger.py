"""Unit and property tests for fjordbank.domain.payment_ledger (the ledger's payment steps, no I/O).

The promises checked here are the module's own: an approved internal payment is debited into
the payer's partition's transit shard, then credited from the payee's partition's (or, when the
payee's account cannot take it, refunded to the payer); an approved external one only holds
the funds until it is settled (captured and posted to settlement) or returned (released,
nothing posted); a step seen again returns its recorded result and changes nothing; a step
the record does not allow raises `UnexpectedStep` and changes nothing; money is only moved, never created or destroyed.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fjordbank import topology
from fjordbank.domain.ledger import (
    CUSTOMER,
    INTERNAL,
    INTERNAL_ACCOUNTS,
    INTERNAL_CLEARING,
    INTERNAL_SETTLEMENT,
    INTERNAL_SETTLEMENT_SHARDS,
    INTERNAL_TRANSIT,
    INTERNAL_WORLD,
    Account,
    Book,
    Declined,
    Entry,
    Posting,
    record_holds,
    record_postings,
    replay,
    settlement_account,
    transit_in_account,
    transit_out_account,
)
from fjordbank.domain.norway import make_account_number
from fjordbank.domain.payment_ledger import (
    EXTERNAL_HOLD_DAYS,
    StepResult,
    UnexpectedStep,
    apply_step,
    new_record,
    published,
)
from fjordbank.domain.payments import EXTERNAL, PaymentEvent, PaymentRequested
from fjordbank.domain.payments import INTERNAL as INTERNAL_KIND
from fjordbank.topology import CREDIT, REFUND

NOK = "NOK"
NOW = dt.datetime(2025, 1, 15, 12, 0, 0, tzinfo=dt.UTC)
ALICE_1 = make_account_number("1234", "56", 7891)
ALICE_2 = make_account_number("1234", "56", 7893)
BOB_1 = make_account_number("1234", "56", 7894)
OUTSIDE = make_account_number("9999", "11", 1234)  # in another bank: never in the book

# ---------------------------------------------------------------------- helpers


def customer(account_id: str, balance: int, *, owner: str, overdraft: int = 0) -> Account:
    return Account(
        account_id=account_id, currency=NOK, balance=balance, overdraft_limit=overdraft, kind=CUSTOMER, owner_uid=owner
    )


def internal(account_id: str, balance: int = 0) -> Account:
    return Account(account_id=account_id, currency=NOK, balance=balance, kind=INTERNAL)


def fresh_book(alice_1: int = 10_000, alice_2: int = 0, bob_1: int = 5_000, *, overdraft: int = 0) -> Book:
    """A balanced book: every customer balance came in from the outside world."""
    accounts = [
        customer(ALICE_1, alice_1, owner="alice", overdraft=overdraft),
        customer(ALICE_2, alice_2, owner="alice"),
        customer(BOB_1, bob_1, owner="bob"),
        internal(INTERNAL_WORLD, -(alice_1 + alice_2 + bob_1)),
        *(internal(a) for a in INTERNAL_ACCOUNTS if a != INTERNAL_WORLD),  # every other internal account, empty
    ]
    return Book({a.account_id: a for a in accounts})


def payment(
    pid: str = "p1",
    *,
    kind: str = INTERNAL_KIND,
    amount: int = 2_500,
    uid: str = "alice",
    from_account: str = ALICE_1,
    to_account: str | None = None,
) -> PaymentRequested:
    if to_account is None:
        to_account = BOB_1 if kind == INTERNAL_KIND else OUTSIDE
    return PaymentRequested(
        payment_id=pid,
        uid=uid,
        request_id=f"req-{pid}",
        kind=kind,
        from_account=from_account,
        to_account=to_account,
        amount=amount,
        currency=NOK,
        message=None,
        kid=None,
        due_date="2025-01-15",
        body_hash="0" * 64,
        requested_at="2025-01-15T12:00:00Z",
    )


def event(p: PaymentRequested, status: str, reason: str | None = None, message: str | None = None) -> PaymentEvent:
    return PaymentEvent(p, status, reason, message)


def state_of(book: Book) -> tuple:
    """Everything a step could change in a book, as plain values."""
    return (
        {k: dataclasses.asdict(v) for k, v in book.accounts.items()},
        list(book.postings),
        set(book.touched),
        {k: dataclasses.asdict(v) for k, v in book.holds.items()},
        set(book.touched_holds),
    )


def copy_of(book: Book) -> Book:
    """A fresh commit's book loaded from the same stored state: no postings, nothing touched."""
    return Book(accounts=copy.deepcopy(book.accounts), holds=copy.deepcopy(book.holds))


def total(book: Book) -> int:
    return sum(a.balance for a in book.accounts.values())


def run(book: Book, record: dict | None, ev: PaymentEvent) -> tuple[dict, StepResult, bool]:
    return apply_step(book, record, ev, now=NOW)


def paid_internally(book: Book, p: PaymentRequested) -> tuple[dict, StepResult]:
    """An internal payment's legs as the pipeline runs them: approved (the payer's
    partition), credit (the payee's), and a refund when the credit was refused."""
    record, result, _ = run(book, None, event(p, "approved"))
    if result.status == CREDIT:
        record, result, _ = run(book, record, event(p, CREDIT))
    if result.status == REFUND:
        record, result, _ = run(book, record, event(p, REFUND, result.reason, result.message))
    return record, result


def transit(book: Book) -> int:
    return sum(book.accounts[a].balance for a in INTERNAL_TRANSIT)


def reserved(book: Book, p: PaymentRequested) -> dict:
    record, result, _ = run(book, None, event(p, "approved"))
    assert result == StepResult("reserved")
    return record


# --------------------------------------------------------------- new record


def test_new_record_copies_the_payment_and_has_no_steps():
    p = payment("p9", kind=EXTERNAL, amount=123)
    assert new_record(event(p, "approved")) == {
        "paymentId": "p9",
        "uid": "alice",
        "requestId": "req-p9",
        "kind": EXTERNAL,
        "fromAccount": ALICE_1,
        "toAccount": OUTSIDE,
        "amount": 123,
        "currency": NOK,
        "kid": p.kid,
        "dueDate": p.due_date,
        "requestedAt": p.requested_at,
        "bodyHash": "0" * 64,
        "steps": {},
        "postingIds": [],
        "postings": {},
        "status": None,
    }


def test_step_result_to_dict():
    assert StepResult("failed", "AC04", "closed").to_dict() == {
        "status": "failed",
        "reason": "AC04",
        "message": "closed",
    }
    assert StepResult("completed").to_dict() == {"status": "completed", "reason": None, "message": None}


def test_unexpected_step_is_a_declined_with_its_own_code():
    exc = UnexpectedStep("why")
    assert isinstance(exc, Declined)
    assert (exc.code, exc.message) == ("unexpected_step", "why")


# ---------------------------------------------------------- approved internal


def test_an_internal_payment_is_debited_into_transit_then_credited_from_it():
    book = fresh_book()
    p = payment(amount=2_500)
    record, result, replayed = run(book, None, event(p, "approved"))

    assert (result, replayed) == (StepResult(CREDIT), False)
    assert record["status"] == CREDIT
    assert record["postingIds"] == ["p1:debit"]
    assert "holdId" not in record
    [debit] = book.postings
    assert (debit.posting_id, debit.payment_id, debit.step) == ("p1:debit", "p1", "debit")
    assert debit.entries == (Entry(ALICE_1, -2_500), Entry(transit_out_account(ALICE_1), 2_500))
    assert (book.accounts[ALICE_1].balance, book.accounts[BOB_1].balance) == (7_500, 5_000)
    assert transit(book) == 2_500  # in flight between the two partitions
    assert book.touched == {ALICE_1, transit_out_account(ALICE_1)}  # the payer's partition's accounts only

    later = copy_of(book)  # the payee's partition: another commit
    record, result, replayed = run(later, record, event(p, CREDIT))
    assert (result, replayed) == (StepResult("completed"), False)
    assert record["status"] == "completed"
    assert record["postingIds"] == ["p1:debit", "p1:credit"]
    assert set(record["steps"]) == {"approved", CREDIT}
    # the record keeps each step's posting (its journal), as the posting reads
    assert {step: Posting.from_dict(kept) for step, kept in record["postings"].items()} == {
        "debit": debit,
        "credit": later.postings[0],
    }
    assert record_postings(record) == list(record["postings"].values())
    [credit] = later.postings
    assert credit.entries == (Entry(transit_in_account(BOB_1), -2_500), Entry(BOB_1, 2_500))
    assert later.touched == {BOB_1, transit_in_account(BOB_1)}  # the payee's partition's accounts only
    assert (later.accounts[ALICE_1].balance, later.accounts[BOB_1].balance) == (7_500, 7_500)
    assert transit(later) == 0
    assert later.accounts[ALICE_1].held == 0 and later.holds == {}
    assert total(later) == 0


def test_what_the_ledger_publishes_after_each_step_and_to_which_partition():
    p = payment(amount=2_500)
    partition = {ALICE_1: topology.partition_of(ALICE_1), BOB_1: topology.partition_of(BOB_1)}
    [credit] = published(event(p, "approved"), StepResult(CREDIT))
    assert (credit.status, credit.subject) == (CREDIT, f"payments.credit.{partition[BOB_1]}")
    completed, credited = published(event(p, CREDIT), StepResult("completed"))
    assert (completed.status, completed.subject) == ("completed", f"payments.completed.{partition[ALICE_1]}")
    assert (credited.status, credited.subject) == ("credited", f"payments.credited.{partition[BOB_1]}")
    assert credited.msg_id == "p1:credited"
    [refund] = published(event(p, CREDIT), StepResult(REFUND, "to_account_closed", "closed"))
    assert (refund.subject, refund.reason) == (f"payments.refund.{partition[ALICE_1]}", "to_account_closed")
    [failed] = published(event(p, REFUND, "to_account_closed"), StepResult("failed", "to_account_closed"))
    assert failed.subject == f"payments.failed.{partition[ALICE_1]}"


def test_approved_internal_payment_between_own_accounts_is_completed():
    book = fresh_book()
    _, result = paid_internally(book, payment(to_account=ALICE_2, amount=10_000))
    assert result.status == "completed"
    assert (book.accounts[ALICE_1].balance, book.accounts[ALICE_2].balance) == (0, 10_000)


def test_approved_internal_payment_of_the_whole_available_balance_is_completed():
    book = fresh_book(alice_1=2_500)
    _, result = paid_internally(book, payment(amount=2_500))
    assert result.status == "completed"
    assert book.accounts[ALICE_1].balance == 0


def test_approved_internal_payment_may_use_the_overdraft():
    book = fresh_book(alice_1=1_000, overdraft=1_500)
    _, result = paid_internally(book, payment(amount=2_500))
    assert result.status == "completed"
    assert book.accounts[ALICE_1].available == -1_500


@pytest.mark.parametrize(
    ("to_account", "closed", "code"),
    [(OUTSIDE, False, "unknown_account"), (BOB_1, True, "to_account_closed")],
    ids=["unknown-payee", "closed-payee"],
)
def test_a_credit_the_payees_account_refuses_is_refunded_and_the_payment_fails(to_account, closed, code):
    book = fresh_book()
    if closed:
        book.accounts[BOB_1].status = "closed"
    before = {k: a.balance for k, a in book.accounts.items()}
    p = payment(amount=2_500, to_account=to_account)
    record, result, _ = run(book, None, event(p, "approved"))
    record, result, _ = run(book, record, event(p, CREDIT))
    assert (result.status, result.reason) == (REFUND, code)
    assert record["postingIds"] == ["p1:debit"]  # the refused credit posted nothing
    record, result, _ = run(book, record, event(p, REFUND, result.reason, result.message))
    assert (result.status, result.reason) == ("failed", code)
    assert record["postingIds"] == ["p1:debit", "p1:refund"]
    assert not any(replay(book.postings).values())  # debit and refund cancel out
    assert {k: a.balance for k, a in book.accounts.items()} == before
    assert transit(book) == 0


def test_input_record_is_not_mutated():
    book = fresh_book()
    p = payment(kind=EXTERNAL)
    record = reserved(book, p)
    before = copy.deepcopy(record)
    new, result, _ = run(book, record, event(p, "settled"))
    assert result.status == "completed"
    assert record == before
    assert new is not record


# ---------------------------------------------------------- approved external


def test_approved_external_payment_is_reserved_with_a_hold():
    book = fresh_book()
    p = payment(kind=EXTERNAL, amount=4_000)
    record, result, replayed = run(book, None, event(p, "approved"))

    assert (result, replayed) == (StepResult("reserved"), False)
    assert record["status"] == "reserved"
    assert record["holdId"] == "p1"
    assert record["postingIds"] == []
    assert record["steps"] == {"approved": {"status": "reserved", "reason": None, "message": None}}

    account = book.accounts[ALICE_1]
    assert (account.balance, account.held, account.available) == (10_000, 4_000, 6_000)
    hold = book.holds["p1"]
    assert (hold.hold_id, hold.account_id, hold.amount, hold.currency, hold.status) == (
        "p1",
        ALICE_1,
        4_000,
        NOK,
        "active",
    )
    assert hold.expires_at == (NOW + dt.timedelta(days=EXTERNAL_HOLD_DAYS)).isoformat()
    assert dt.datetime.fromisoformat(hold.expires_at) - NOW == dt.timedelta(days=5)
    assert record["hold"] == hold.to_dict()  # the record carries its hold
    assert record_holds({"p1": record}) == {"p1": hold}
    assert book.postings == []
    assert total(book) == 0


def test_hold_expiry_is_written_in_utc_whatever_the_offset_of_now():
    book = fresh_book()
    oslo_now = NOW.astimezone(ZoneInfo("Europe/Oslo"))
    apply_step(book, None, event(payment(kind=EXTERNAL), "approved"), now=oslo_now)
    expires_at = book.holds["p1"].expires_at
    assert expires_at == (NOW + dt.timedelta(days=EXTERNAL_HOLD_DAYS)).isoformat()


def test_external_hold_blocks_spending_the_held_funds():
    book = fresh_book(alice_1=5_000)
    reserved(book, payment("ext", kind=EXTERNAL, amount=4_000))
    _, result = paid_internally(book, payment("int", amount=1_001))
    assert (result.status, result.reason) == ("failed", "insufficient_funds")
    _, result = paid_internally(book, payment("int2", amount=1_000))
    assert result.status == "completed"


# ---------------------------------------------------------------- settled


def test_settled_payment_is_completed_capturing_the_hold_into_settlement():
    book = fresh_book()
    p = payment(kind=EXTERNAL, amount=4_000)
    record = reserved(book, p)
    record, result, replayed = run(book, record, event(p, "settled"))

    assert (result, replayed) == (StepResult("completed"), False)
    assert record["status"] == "completed"
    assert record["postingIds"] == ["p1:settle"]
    assert set(record["steps"]) == {"approved", "settled"}
    assert record["steps"]["approved"]["status"] == "reserved"

    assert book.holds["p1"].status == "captured"
    assert record["hold"] == book.holds["p1"].to_dict()
    [posting] = book.postings
    assert (posting.posting_id, posting.step) == ("p1:settle", "settle")
    # credited to the settlement shard of the payer's partition
    assert posting.entries == (Entry(ALICE_1, -4_000), Entry(settlement_account(ALICE_1), 4_000))
    account = book.accounts[ALICE_1]
    assert (account.balance, account.held, account.available) == (6_000, 0, 6_000)
    assert book.accounts[settlement_account(ALICE_1)].balance == 4_000
    assert book.accounts[INTERNAL_SETTLEMENT].balance == 0  # the pre-partition account takes no more
    assert total(book) == 0


def test_a_record_that_does_not_carry_its_hold_leaves_it_in_the_book_only():
    book = fresh_book()
    p = payment(kind=EXTERNAL, amount=4_000)
    record = reserved(book, p)
    del record["hold"]  # reserved by a ledger from before holds moved onto records
    record, result, _ = run(book, record, event(p, "settled"))
    assert result.status == "completed" and book.holds["p1"].status == "captured"
    assert "hold" not in record and record_holds({"p1": record}) == {}


def test_settlement_in_a_later_commit_uses_the_stored_hold():
    first = fresh_book()
    p = payment(kind=EXTERNAL, amount=4_000)
    record = reserved(first, p)
    later = copy_of(first)
    _, result, _ = run(later, record, event(p, "settled"))
    assert result.status == "completed"
    assert later.accounts[ALICE_1].balance == 6_000
    assert [x.posting_id for x in later.postings] == ["p1:settle"]


# --------------------------------------------------------------- returned


def test_returned_payment_fails_with_the_events_reason_and_releases_the_hold():
    book = fresh_book()
    p = payment(kind=EXTERNAL, amount=4_000)
    record = reserved(book, p)
    record, result, replayed = run(book, record, event(p, "returned", "AC04", "account closed"))

    assert (result, replayed) == (StepResult("failed", "AC04", "account closed"), False)
    assert record["status"] == "failed"
    assert record["steps"]["returned"] == {"status": "failed", "reason": "AC04", "message": "account closed"}
    assert record["postingIds"] == []
    assert book.holds["p1"].status == "released"
    assert record["hold"]["status"] == "released"
    account = book.accounts[ALICE_1]
    assert (account.balance, account.held, account.available) == (10_000, 0, 10_000)
    assert book.postings == []
    assert total(book) == 0


def test_returned_payment_without_a_reason_fails_as_returned():
    book = fresh_book()
    p = payment(kind=EXTERNAL)
    record = reserved(book, p)
    _, result, _ = run(book, record, event(p, "returned"))
    assert result == StepResult("failed", "returned", None)


# ------------------------------------------------------------------ declines


@pytest.mark.parametrize("kind", [INTERNAL_KIND, EXTERNAL])
def test_insufficient_funds_fails_the_payment_and_changes_nothing(kind):
    book = fresh_book(alice_1=2_499)
    before = state_of(book)
    record, result, replayed = run(book, None, event(payment(kind=kind, amount=2_500), "approved"))
    assert (result.status, result.reason, replayed) == ("failed", "insufficient_funds", False)
    assert result.message
    assert record["status"] == "failed"
    assert record["steps"]["approved"]["reason"] == "insufficient_funds"
    assert record["postingIds"] == []
    assert "holdId" not in record
    assert state_of(book) == before


@pytest.mark.parametrize("kind", [INTERNAL_KIND, EXTERNAL])
def test_overdraft_limit_is_the_floor_of_an_approval(kind):
    book = fresh_book(alice_1=1_000, overdraft=1_499)
    before = state_of(book)
    _, result, _ = run(book, None, event(payment(kind=kind, amount=2_500), "approved"))
    assert result.reason == "insufficient_funds"
    assert state_of(book) == before


@pytest.mark.parametrize(
    ("kind", "changes", "code"),
    [
        (INTERNAL_KIND, {"uid": "mallory"}, "unknown_account"),
        (EXTERNAL, {"uid": "mallory"}, "unknown_account"),
        (INTERNAL_KIND, {"from_account": BOB_1}, "unknown_account"),
        (EXTERNAL, {"from_account": OUTSIDE}, "unknown_account"),
        (INTERNAL_KIND, {"to_account": ALICE_1}, "same_account"),
    ],
    ids=["internal-not-owner", "external-not-owner", "bobs-account", "unknown-payer", "same"],
)
def test_declined_approval_fails_with_the_ledger_reason_and_changes_nothing(kind, changes, code):
    book = fresh_book()
    before = state_of(book)
    p = dataclasses.replace(payment(kind=kind), **changes)
    record, result, _ = run(book, None, event(p, "approved"))
    assert (result.status, result.reason) == ("failed", code)
    assert record["status"] == "failed"
    assert state_of(book) == before


# ------------------------------------------------------------------- replay


def _flows():
    """(name, events); each flow is applied in order, then every step is replayed."""
    ext = payment(kind=EXTERNAL, amount=4_000)
    return {
        "internal": [event(payment(amount=2_500), "approved"), event(payment(amount=2_500), CREDIT)],
        "internal-refunded": [
            event(payment(to_account=OUTSIDE), "approved"),
            event(payment(to_account=OUTSIDE), CREDIT),
            event(payment(to_account=OUTSIDE), REFUND, "unknown_account"),
        ],
        "internal-insufficient": [event(payment(amount=10**7), "approved")],
        "external-insufficient": [event(payment(kind=EXTERNAL, amount=10**7), "approved")],
        "external-settled": [event(ext, "approved"), event(ext, "settled")],
        "external-returned": [event(ext, "approved"), event(ext, "returned", "AC01", "wrong account")],
    }


@pytest.mark.parametrize("flow", list(_flows()))
def test_every_step_replayed_returns_the_recorded_result_and_changes_nothing(flow):
    book = fresh_book()
    record = None
    history: list[tuple[PaymentEvent, dict, StepResult]] = []
    for ev in _flows()[flow]:
        record, result, replayed = run(book, record, ev)
        assert not replayed
        history.append((ev, record, result))

    for ev, _, result in history:
        for target in (copy_of(book), Book(accounts={})):  # replay needs nothing from the book
            before = state_of(target)
            again, replayed_result, replayed = run(target, record, ev)
            assert replayed is True
            assert replayed_result == result
            assert again == record
            assert state_of(target) == before


def test_redelivered_return_with_another_reason_keeps_the_recorded_reason():
    book = fresh_book()
    p = payment(kind=EXTERNAL)
    record = reserved(book, p)
    record, first, _ = run(book, record, event(p, "returned", "AC04", "closed"))
    later = copy_of(book)
    before = state_of(later)
    _, again, replayed = run(later, record, event(p, "returned", "AC01", "wrong"))
    assert (again, replayed) == (first, True)
    assert state_of(later) == before


def test_internal_legs_replayed_in_the_same_book_post_once():
    book = fresh_book()
    approved, credit = event(payment(amount=2_500), "approved"), event(payment(amount=2_500), CREDIT)
    record, _, _ = run(book, None, approved)
    for _ in range(3):
        record, result, replayed = run(book, record, approved)
        assert (result.status, replayed) == (CREDIT, True)
    record, _, _ = run(book, record, credit)
    for ev, status in ((credit, "completed"), (approved, CREDIT)):
        record, result, replayed = run(book, record, ev)
        assert (result.status, replayed) == (status, True)
    assert [x.posting_id for x in book.postings] == ["p1:debit", "p1:credit"]
    assert (book.accounts[ALICE_1].balance, book.accounts[BOB_1].balance) == (7_500, 7_500)


# --------------------------------------------------------------- unexpected


def _settled_record(book: Book, p: PaymentRequested) -> dict:
    record = reserved(book, p)
    record, _, _ = run(book, record, event(p, "settled"))
    return record


def _returned_record(book: Book, p: PaymentRequested) -> dict:
    record = reserved(book, p)
    record, _, _ = run(book, record, event(p, "returned", "AC04"))
    return record


def _internal_record(book: Book, p: PaymentRequested) -> dict:
    record, _ = paid_internally(book, dataclasses.replace(p, kind=INTERNAL_KIND, to_account=BOB_1))
    return record


def _failed_record(book: Book, p: PaymentRequested) -> dict:
    record, result, _ = run(book, None, event(dataclasses.replace(p, amount=10**7), "approved"))
    assert result.status == "failed"
    return record


PRIOR = {
    "no-record": lambda book, p: None,
    "internal-completed": _internal_record,
    "approval-failed": _failed_record,
    "settled": _settled_record,
    "returned": _returned_record,
}


@pytest.mark.parametrize(
    ("prior", "step"),
    [(prior, step) for prior in PRIOR for step in ("settled", "returned") if prior != step],  # else a replay
)
def test_settle_or_return_without_a_reserved_record_raises_and_changes_nothing(prior, step):
    book = fresh_book()
    p = payment(kind=EXTERNAL, amount=4_000)
    record = PRIOR[prior](book, p)
    record_before = copy.deepcopy(record)
    before = state_of(book)
    with pytest.raises(UnexpectedStep) as info:
        run(book, record, event(p, step, "AC04"))
    assert info.value.code == "unexpected_step"
    assert state_of(book) == before
    assert record == record_before


@pytest.mark.parametrize("step", ["settled", "returned"])
def test_settle_or_return_with_a_reserved_record_but_no_hold_in_the_book_raises(step):
    p = payment(kind=EXTERNAL, amount=4_000)
    record = reserved(fresh_book(), p)
    book = fresh_book()  # the hold is missing
    before = state_of(book)
    with pytest.raises(UnexpectedStep):
        run(book, record, event(p, step))
    assert state_of(book) == before


def test_settlement_that_cannot_post_raises_and_leaves_the_hold_active():
    book = fresh_book()
    p = payment(kind=EXTERNAL, amount=4_000)
    record = reserved(book, p)
    del book.accounts[settlement_account(p.from_account)]  # not loaded into this commit
    before = state_of(book)
    with pytest.raises(UnexpectedStep):
        run(book, record, event(p, "settled"))
    assert state_of(book) == before
    assert book.holds["p1"].status == "active"
    assert book.accounts[ALICE_1].held == 4_000


@pytest.mark.parametrize(
    "step", ["received", "scheduled", "requested", "reserved", "submitted", "completed", "failed", "rejected", "bogus"]
)
@pytest.mark.parametrize("prior", ["no-record", "reserved"])
def test_a_step_the_ledger_does_not_handle_raises_and_changes_nothing(step, prior):
    book = fresh_book()
    p = payment(kind=EXTERNAL, amount=4_000)
    record = reserved(book, p) if prior == "reserved" else None
    before = state_of(book)
    with pytest.raises(UnexpectedStep):
        run(book, record, event(p, step))
    assert state_of(book) == before


# ---------------------------------------------------------------- properties

UIDS = {ALICE_1: "alice", ALICE_2: "alice", BOB_1: "bob"}
CUSTOMER_ACCOUNTS = list(UIDS)


@st.composite
def payments(draw, pid: str) -> PaymentRequested:
    kind = draw(st.sampled_from([INTERNAL_KIND, EXTERNAL]))
    source = draw(st.sampled_from(CUSTOMER_ACCOUNTS))
    target = (
        draw(st.sampled_from([a for a in CUSTOMER_ACCOUNTS if a != source] * 3 + [OUTSIDE]))  # rarely unknown
        if kind == INTERNAL_KIND
        else OUTSIDE
    )
    amount = draw(st.one_of(st.integers(1, 3_000), st.integers(1, 12_000)))
    return payment(pid, kind=kind, amount=amount, uid=UIDS[source], from_account=source, to_account=target)


@st.composite
def scenarios(draw):
    count = draw(st.integers(1, 5))
    ps = [draw(payments(f"p{i}")) for i in range(count)]
    steps = draw(
        st.lists(
            st.tuples(
                st.integers(0, count - 1),
                st.sampled_from(["approved", "approved", "settled", "returned", CREDIT, CREDIT, REFUND]),
                st.sampled_from([None, "AC04", "AC01"]),
            ),
            min_size=1,
            max_size=30,
        )
    )
    balance = st.one_of(st.integers(0, 10_000), st.integers(3_000, 10_000))
    balances = draw(st.tuples(balance, balance, balance))
    overdraft = draw(st.sampled_from([0, 0, 2_000]))
    return ps, steps, balances, overdraft


def _check_invariants(book: Book, start: dict[str, int]) -> None:
    assert total(book) == 0  # conservation: every balance came from the world account
    for account in book.accounts.values():
        active = sum(
            h.amount for h in book.holds.values() if h.account_id == account.account_id and h.status == "active"
        )
        assert account.held == active
        if account.kind == CUSTOMER:
            assert account.available >= -account.overdraft_limit
    ids = [x.posting_id for x in book.postings]
    assert len(ids) == len(set(ids))  # each step of a payment posted at most once
    moved = replay(book.postings)
    for account_id, account in book.accounts.items():
        assert account.balance == start[account_id] + moved.get(account_id, 0)


@settings(max_examples=300, deadline=None, database=None)
@given(scenarios())
def test_random_interleavings_conserve_money_and_post_each_payment_once(scenario):
    ps, steps, (a1, a2, b1), overdraft = scenario
    book = fresh_book(a1, a2, b1, overdraft=overdraft)
    start = {k: v.balance for k, v in book.accounts.items()}
    records: dict[str, dict] = {}
    _check_invariants(book, start)
    for index, status, reason in steps:
        p = ps[index]
        previous = records.get(p.payment_id)
        before = state_of(book)
        try:
            record, result, replayed = run(book, previous, event(p, status, reason))
        except UnexpectedStep:
            assert state_of(book) == before
            if status in ("settled", "returned"):
                assert previous is None or previous["status"] != "reserved" or p.payment_id not in book.holds
            else:
                assert status in (CREDIT, REFUND) and (previous or {}).get("status") != status
            continue
        if replayed:
            assert state_of(book) == before
            assert record == previous
        else:
            assert record["steps"][status] == result.to_dict()
        records[p.payment_id] = record
        _check_invariants(book, start)
        # the transit shards hold exactly the internal payments between their two legs
        assert transit(book) == sum(r["amount"] for r in records.values() if r["status"] in (CREDIT, REFUND))

    for pid, record in records.items():
        posted = [x for x in book.postings if x.payment_id == pid]
        hold = book.holds.get(pid)
        assert record["postingIds"] == [x.posting_id for x in posted]
        steps = [x.step for x in posted]
        if record["kind"] == EXTERNAL:
            assert steps == (["settle"] if record["status"] == "completed" else [])
        else:
            assert (
                steps
                == {
                    CREDIT: ["debit"],
                    REFUND: ["debit"],
                    "completed": ["debit", "credit"],
                    "failed": ["debit", "refund"] if REFUND in record["steps"] else [],
                }[record["status"]]
            )
        if steps:
            assert posted[0].entries[0] == Entry(record["fromAccount"], -record["amount"])
        if record["status"] == "failed":
            assert not any(replay(posted).values())  # a failed payment moved no money
        if record["kind"] == EXTERNAL:
            expected_hold = {"reserved": "active", "completed": "captured"}.get(record["status"])
            if record["status"] == "failed":
                expected_hold = "released" if "returned" in record["steps"] else None
            assert (hold.status if hold else None) == expected_hold
        else:
            assert hold is None
    # settlement and clearing only receive captured holds
    assert sum(book.accounts[a].balance for a in (INTERNAL_SETTLEMENT, *INTERNAL_SETTLEMENT_SHARDS)) == sum(
        h.amount for h in book.holds.values() if h.status == "captured"
    )
    assert book.accounts[INTERNAL_CLEARING].balance == 0
    assert set(INTERNAL_ACCOUNTS) <= set(book.accounts)


@pytest.mark.parametrize(
    "changed",
    [
        {"amount": 9_000},
        {"to_account": ALICE_2},
        {"from_account": ALICE_2},
        {"currency": "SEK"},
        {"body_hash": "f" * 64},
    ],
    ids=["amount", "payee", "payer", "currency", "body"],
)
@pytest.mark.parametrize("status", [CREDIT, "approved"], ids=["a-later-step", "a-replay"])
def test_a_step_whose_payment_differs_from_its_record_raises_and_changes_nothing(changed, status):
    """Each step moves its event's amount between its event's accounts: an event under a
    payment id already used with another amount credited 9 000 for a debit of 1 000 (the
    transit accounts below zero: money made), and a replay published the next step from it."""
    book = fresh_book()
    p = payment(amount=1_000)
    record, result, _ = apply_step(book, None, event(p, "approved"), now=NOW)
    assert result.status == CREDIT
    before, record_before = state_of(book), copy.deepcopy(record)
    with pytest.raises(UnexpectedStep, match="differs from its record"):
        apply_step(book, record, event(dataclasses.replace(p, **changed), status), now=NOW)
    assert state_of(book) == before and record == record_before
