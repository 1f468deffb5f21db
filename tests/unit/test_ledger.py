"""Unit and property tests for fjordbank.domain.ledger (double-entry rules, no I/O).

The promises checked here are the module's own: postings balance, money is only moved
(never created or destroyed), a customer account never goes below its overdraft limit,
a declined transfer changes nothing, and the postings are the ground truth (replay).
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fjordbank.domain.errors import DomainError
from fjordbank.domain.ledger import (
    CUSTOMER,
    INTERNAL,
    INTERNAL_ACCOUNTS,
    INTERNAL_CLEARING,
    INTERNAL_WORLD,
    INTERNAL_WORLD_SHARDS,
    OPEN,
    Account,
    Book,
    Declined,
    Entry,
    LedgerError,
    Posting,
    UnbalancedPosting,
    posting_id,
    replay,
    world_account,
)

NOK = "NOK"

# ---------------------------------------------------------------------- helpers


def customer(
    account_id: str,
    balance: int = 0,
    *,
    owner: str = "alice",
    overdraft: int = 0,
    held: int = 0,
    status: str = OPEN,
    currency: str = NOK,
) -> Account:
    return Account(
        account_id=account_id,
        currency=currency,
        balance=balance,
        held=held,
        overdraft_limit=overdraft,
        status=status,
        kind=CUSTOMER,
        owner_uid=owner,
    )


def internal(account_id: str, balance: int = 0, currency: str = NOK) -> Account:
    return Account(account_id=account_id, currency=currency, balance=balance, kind=INTERNAL)


def book_of(*accounts: Account) -> Book:
    return Book({a.account_id: a for a in accounts})


def snapshot(book: Book) -> tuple:
    """Everything a commit could change, as plain values."""
    return (
        {k: dataclasses.asdict(v) for k, v in book.accounts.items()},
        list(book.postings),
        set(book.touched),
    )


def pay(
    book: Book, *, debit: str, credit: str, amount: int, payer: str = "alice", pid: str = "p1", currency: str = NOK
) -> Posting:
    return book.transfer(
        payment_id=pid, step="transfer", payer_uid=payer, debit=debit, credit=credit, amount=amount, currency=currency
    )


# ------------------------------------------------------------ postings balance


def test_posting_with_entries_summing_to_zero_is_accepted():
    posting = Posting("p:1", "p", "1", NOK, (Entry("a", -100), Entry("b", 60), Entry("c", 40)))
    assert sum(e.amount for e in posting.entries) == 0


@pytest.mark.parametrize(
    "entries",
    [
        (Entry("a", -100), Entry("b", 99)),
        (Entry("a", 100), Entry("b", 100)),
        (Entry("a", -1), Entry("b", 1), Entry("c", 1)),
    ],
    ids=["short-credit", "two-credits", "three-entries-off-by-one"],
)
def test_unbalanced_posting_is_refused(entries):
    with pytest.raises(UnbalancedPosting):
        Posting("p:1", "p", "1", NOK, entries)


@pytest.mark.parametrize("entries", [(), (Entry("a", 100),)], ids=["no-entry", "single-entry"])
def test_posting_needs_at_least_two_entries(entries):
    with pytest.raises(UnbalancedPosting):
        Posting("p:1", "p", "1", NOK, entries)


@pytest.mark.parametrize("amount", [0, 1.5, 10.0, True, False, "10", None], ids=repr)
def test_entry_amount_must_be_a_non_zero_int(amount):
    with pytest.raises(UnbalancedPosting):
        Entry("a", amount)


@pytest.mark.parametrize("amount", [0, -1, -100, 10.0, 0.5, True, "10", None], ids=repr)
def test_transfer_posting_amount_must_be_a_positive_int(amount):
    with pytest.raises(UnbalancedPosting):
        Posting.transfer("p", "transfer", "a", "b", amount, NOK)


def test_transfer_posting_debits_one_account_and_credits_the_other():
    posting = Posting.transfer("pay-1", "transfer", "a", "b", 250, NOK)
    assert posting.posting_id == posting_id("pay-1", "transfer") == "pay-1:transfer"
    assert posting.entries == (Entry("a", -250), Entry("b", 250))
    assert posting.currency == NOK


def test_unbalanced_posting_is_a_ledger_and_domain_error():
    assert issubclass(UnbalancedPosting, LedgerError)
    assert issubclass(Declined, LedgerError)
    assert issubclass(LedgerError, DomainError)


def test_posting_round_trips_through_dict():
    posting = Posting("p:1", "p", "1", NOK, (Entry("a", -100), Entry("b", 60), Entry("c", 40)))
    assert Posting.from_dict(posting.to_dict()) == posting


def test_posting_from_tampered_dict_is_refused():
    data = Posting.transfer("p", "transfer", "a", "b", 100, NOK).to_dict()
    data["entries"][1]["amount"] = 101
    with pytest.raises(UnbalancedPosting):
        Posting.from_dict(data)


# ------------------------------------------------------------- Book.transfer


def test_transfer_moves_money_and_marks_both_accounts_touched():
    book = book_of(customer("a", 1_000), customer("b", 50, owner="bob"), customer("c", 7))
    posting = pay(book, debit="a", credit="b", amount=300)
    assert book.accounts["a"].balance == 700
    assert book.accounts["b"].balance == 350
    assert book.accounts["c"].balance == 7
    assert book.touched == {"a", "b"}
    assert book.postings == [posting]
    assert posting.entries == (Entry("a", -300), Entry("b", 300))


def test_transfer_of_whole_available_balance_empties_the_account():
    book = book_of(customer("a", 500), customer("b", owner="bob"))
    pay(book, debit="a", credit="b", amount=500)
    assert book.accounts["a"].balance == 0
    assert book.accounts["a"].available == 0


def test_transfer_may_pay_a_customer_account_owned_by_someone_else():
    book = book_of(customer("a", 100, owner="alice"), customer("b", owner="bob"))
    pay(book, debit="a", credit="b", amount=100, payer="alice")
    assert book.accounts["b"].balance == 100


def _decline_cases():
    def base(**over):
        accounts = {
            "a": customer("a", 1_000, owner="alice"),
            "b": customer("b", 0, owner="bob"),
        }
        accounts.update(over)
        return Book(accounts)

    yield "unknown_account", base(), dict(debit="nope", credit="b")
    yield "unknown_account", base(), dict(debit="a", credit="nope")
    yield "unknown_account", base(), dict(debit="a", credit="b", payer="mallory")
    yield "unknown_account", base(), dict(debit="b", credit="a", payer="alice")
    yield (
        "unknown_account",
        base(**{INTERNAL_WORLD: internal(INTERNAL_WORLD, 10**9)}),
        dict(debit=INTERNAL_WORLD, credit="a", payer="alice"),
    )
    yield "account_closed", base(a=customer("a", 1_000, status="closed")), dict(debit="a", credit="b")
    yield "account_closed", base(a=customer("a", 1_000, status="blocked")), dict(debit="a", credit="b")
    yield "to_account_closed", base(b=customer("b", owner="bob", status="closed")), dict(debit="a", credit="b")
    yield "same_account", base(), dict(debit="a", credit="a")
    yield "currency_mismatch", base(b=customer("b", owner="bob", currency="EUR")), dict(debit="a", credit="b")
    yield "currency_mismatch", base(a=customer("a", 1_000, currency="EUR")), dict(debit="a", credit="b")
    yield "currency_mismatch", base(), dict(debit="a", credit="b", currency="EUR")
    yield "insufficient_funds", base(), dict(debit="a", credit="b", amount=1_001)
    yield "insufficient_funds", base(a=customer("a", 1_000, held=1)), dict(debit="a", credit="b", amount=1_000)


DECLINE_CASES = list(_decline_cases())


@pytest.mark.parametrize(
    ("code", "book", "kwargs"),
    DECLINE_CASES,
    ids=[f"{code}-{i}" for i, (code, _, _) in enumerate(DECLINE_CASES)],
)
def test_declined_transfer_has_precise_code_and_changes_nothing(code, book, kwargs):
    before = snapshot(book)
    kwargs = {"amount": 100, **kwargs}
    with pytest.raises(Declined) as excinfo:
        pay(book, **kwargs)
    assert excinfo.value.code == code
    assert snapshot(book) == before
    assert book.postings == []
    assert book.touched == set()


def test_declined_transfer_after_a_successful_one_keeps_the_first():
    book = book_of(customer("a", 100), customer("b", owner="bob"))
    first = pay(book, debit="a", credit="b", amount=60, pid="p1")
    before = snapshot(book)
    with pytest.raises(Declined) as excinfo:
        pay(book, debit="a", credit="b", amount=41, pid="p2")
    assert excinfo.value.code == "insufficient_funds"
    assert snapshot(book) == before
    assert book.postings == [first]


def test_decline_message_does_not_contain_full_account_id():
    book = book_of(customer("12345678903", 100))
    with pytest.raises(Declined) as excinfo:
        pay(book, debit="12345678903", credit="98765432109", amount=1)
    assert excinfo.value.code == "unknown_account"
    assert "98765432109" not in str(excinfo.value)


@pytest.mark.parametrize("amount", [0, -100, 10.0, True], ids=repr)
def test_transfer_with_invalid_amount_is_refused_and_changes_nothing(amount):
    book = book_of(customer("a", 1_000), customer("b", owner="bob"))
    before = snapshot(book)
    with pytest.raises(LedgerError):
        pay(book, debit="a", credit="b", amount=amount)
    assert snapshot(book) == before


# -------------------------------------------------------------- overdraft


@pytest.mark.parametrize(
    ("balance", "held", "overdraft", "amount", "allowed"),
    [
        (100, 0, 0, 100, True),
        (100, 0, 0, 101, False),
        (100, 0, 50, 150, True),
        (100, 0, 50, 151, False),
        (100, 30, 50, 120, True),
        (100, 30, 50, 121, False),
        (0, 0, 500, 500, True),
        (0, 0, 500, 501, False),
        (-200, 0, 500, 300, True),
        (-200, 0, 500, 301, False),
    ],
)
def test_overdraft_limit_is_respected_exactly_at_the_boundary(balance, held, overdraft, amount, allowed):
    book = book_of(customer("a", balance, held=held, overdraft=overdraft), customer("b", owner="bob"))
    assert book.accounts["a"].can_spend(amount) is allowed
    if allowed:
        pay(book, debit="a", credit="b", amount=amount)
        assert book.accounts["a"].available >= -overdraft
        assert book.accounts["a"].balance == balance - amount
    else:
        before = snapshot(book)
        with pytest.raises(Declined) as excinfo:
            pay(book, debit="a", credit="b", amount=amount)
        assert excinfo.value.code == "insufficient_funds"
        assert snapshot(book) == before


def test_available_is_balance_minus_held():
    assert customer("a", 1_000, held=250).available == 750


# ---------------------------------------------------------- internal accounts


def test_internal_account_can_go_negative():
    book = book_of(internal(INTERNAL_WORLD), customer("a"))
    book.apply(Posting.transfer("dep-1", "deposit", INTERNAL_WORLD, "a", 500, NOK))
    assert book.accounts[INTERNAL_WORLD].balance == -500
    assert book.accounts["a"].balance == 500
    assert book.touched == {INTERNAL_WORLD, "a"}


def test_internal_account_can_always_spend():
    assert internal(INTERNAL_CLEARING).can_spend(10**15)


def test_internal_accounts_are_distinct():
    # world shards, settlement shards, scheme shards, transit out and in, suspense
    assert len(set(INTERNAL_ACCOUNTS)) == len(INTERNAL_ACCOUNTS) == 3 + 16 + 8 + 256 + 8 + 8 + 8


def test_apply_is_all_or_nothing_on_unknown_account():
    book = book_of(customer("a", 100))
    before = snapshot(book)
    posting = Posting("p:1", "p", "1", NOK, (Entry("a", 50), Entry("ghost", -50)))
    with pytest.raises(Declined) as excinfo:
        book.apply(posting)
    assert excinfo.value.code == "unknown_account"
    assert snapshot(book) == before


def test_apply_is_all_or_nothing_on_currency_mismatch():
    book = book_of(internal(INTERNAL_WORLD), customer("a"), customer("e", currency="EUR"))
    before = snapshot(book)
    posting = Posting("p:1", "p", "1", NOK, (Entry(INTERNAL_WORLD, -100), Entry("a", 50), Entry("e", 50)))
    with pytest.raises(Declined) as excinfo:
        book.apply(posting)
    assert excinfo.value.code == "currency_mismatch"
    assert snapshot(book) == before


def test_apply_refuses_a_debit_that_takes_a_customer_account_below_its_overdraft_limit():
    book = book_of(customer("a", 100), internal(INTERNAL_WORLD))
    with pytest.raises(LedgerError):
        book.apply(Posting.transfer("w-1", "withdrawal", "a", INTERNAL_WORLD, 1_000, NOK))


# ------------------------------------------------------- properties (Hypothesis)

OWNERS = ("alice", "bob", "carol")
ACCOUNT_IDS = ("acc-0", "acc-1", "acc-2", "acc-3")


@st.composite
def opening_books(draw):
    accounts = {}
    for account_id in ACCOUNT_IDS:
        balance = draw(st.integers(0, 10_000))
        accounts[account_id] = customer(
            account_id,
            balance,
            owner=draw(st.sampled_from(OWNERS)),
            overdraft=draw(st.integers(0, 5_000)),
            held=draw(st.integers(0, balance)),
            status=draw(st.sampled_from([OPEN, OPEN, OPEN, "closed"])),
        )
    # The outside world holds the other side of every opening balance, so the book sums to zero.
    total = sum(a.balance for a in accounts.values())
    accounts[INTERNAL_WORLD] = internal(INTERNAL_WORLD, -total)
    return Book(accounts)


transfers = st.lists(
    st.tuples(
        st.sampled_from(OWNERS),
        st.sampled_from(ACCOUNT_IDS),
        st.sampled_from((*ACCOUNT_IDS, "acc-unknown")),
        st.integers(1, 20_000),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(book=opening_books(), moves=transfers)
def test_random_transfers_conserve_money_respect_overdraft_and_replay_to_final_balances(book, moves):
    opening = {k: a.balance for k, a in book.accounts.items()}
    total = sum(opening.values())
    completed = []
    for i, (payer, debit, credit, amount) in enumerate(moves):
        before = snapshot(book)
        try:
            completed.append(pay(book, debit=debit, credit=credit, amount=amount, payer=payer, pid=f"p{i}"))
        except Declined:
            assert snapshot(book) == before, "a declined transfer changed the book"
        # conservation: money is only moved
        assert sum(a.balance for a in book.accounts.values()) == total
        # no customer account below its floor (those that started above it)
        for acct in book.accounts.values():
            if acct.kind == CUSTOMER:
                assert acct.available >= -acct.overdraft_limit

    assert book.postings == completed
    replayed = replay(book.postings)
    for account_id, acct in book.accounts.items():
        assert opening[account_id] + replayed.get(account_id, 0) == acct.balance
    assert set(replayed) <= set(book.accounts)
    assert book.touched == {e.account_id for p in book.postings for e in p.entries}


@settings(max_examples=200, deadline=None)
@given(
    amount=st.integers(1, 10**6),
    funded_for=st.integers(0, 20),
    extra=st.integers(0, 40),
    overdraft_part=st.integers(0, 20),
)
def test_n_concurrent_payments_from_account_funded_for_k_exactly_k_succeed(amount, funded_for, extra, overdraft_part):
    # Funding = balance + overdraft = exactly funded_for * amount.
    overdraft = min(overdraft_part, funded_for) * amount
    balance = funded_for * amount - overdraft
    book = book_of(customer("payer", balance, overdraft=overdraft), customer("payee", owner="bob"))
    outcomes = []
    for i in range(funded_for + extra):
        try:
            pay(book, debit="payer", credit="payee", amount=amount, pid=f"p{i}")
            outcomes.append("ok")
        except Declined as exc:
            outcomes.append(exc.code)
    assert outcomes == ["ok"] * funded_for + ["insufficient_funds"] * extra
    assert book.accounts["payer"].available == -overdraft
    assert book.accounts["payee"].balance == funded_for * amount
    assert len(book.postings) == funded_for


def test_fifty_payments_from_account_funded_for_ten_exactly_ten_succeed():
    book = book_of(customer("payer", 10 * 1_000), customer("payee", owner="bob"))
    ok = 0
    for i in range(50):
        try:
            pay(book, debit="payer", credit="payee", amount=1_000, pid=f"p{i}")
            ok += 1
        except Declined as exc:
            assert exc.code == "insufficient_funds"
    assert ok == 10
    assert book.accounts["payer"].balance == 0
    assert book.accounts["payee"].balance == 10_000
    assert len({p.posting_id for p in book.postings}) == 10


@given(
    st.lists(
        st.tuples(st.sampled_from("abcd"), st.sampled_from("abcd"), st.integers(1, 10**9)).filter(
            lambda t: t[0] != t[1]
        ),
        max_size=30,
    )
)
def test_replay_of_balanced_postings_sums_to_zero(moves):
    postings = [Posting.transfer(f"p{i}", "t", d, c, amt, NOK) for i, (d, c, amt) in enumerate(moves)]
    assert sum(replay(postings).values()) == 0


def test_captures_spread_evenly_over_the_card_scheme_shards():
    """Every capture writes its shard in a transaction: the shards carry the capture rate
    only if each takes its share (the id's last bytes used to reach 10 of 16)."""
    from collections import Counter

    from fjordbank.domain.cards import authorization_id
    from fjordbank.domain.ledger import CARD_SCHEME_SHARDS, INTERNAL_CARD_SCHEME, card_scheme_account

    captures = 1_000 * CARD_SCHEME_SHARDS
    taken = Counter(card_scheme_account(authorization_id(f"ref-{n}")) for n in range(captures))
    assert set(taken) == set(INTERNAL_CARD_SCHEME)
    assert max(taken.values()) < 1.15 * captures / CARD_SCHEME_SHARDS
    assert card_scheme_account("auth-1") == card_scheme_account("auth-1")


def test_deposits_spread_over_the_world_shards():
    shards = {world_account(f"opening-{n}") for n in range(400)}
    assert shards == set(INTERNAL_WORLD_SHARDS) and INTERNAL_WORLD not in shards
    assert world_account("opening-1") == world_account("opening-1")


@pytest.mark.parametrize("amount", [0, -1, 300, 301, 1.5, True])
def test_a_hold_is_reduced_by_less_than_all_of_it_or_not_at_all(amount):
    book = book_of(customer("A", 1_000))
    book.hold(hold_id="h1", payer_uid="alice", account_id="A", amount=300, currency=NOK, expires_at="2030-01-01")
    with pytest.raises(DomainError):
        book.reduce("h1", amount=amount)
    assert (book.holds["h1"].amount, book.account("A").held) == (300, 300)
    book.reduce("h1", amount=120)
    assert (book.holds["h1"].amount, book.account("A").held, book.account("A").available) == (180, 180, 820)
    book.release("h1")
    assert book.account("A").held == 0
