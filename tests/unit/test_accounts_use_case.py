"""fjordbank.service_layer.accounts on the in-memory documents: opening, renaming and
closing accounts, with a recording publisher and a fixed clock.

What is promised: only an approved customer opens accounts, at most five open; a number
is claimed once (a number another opening took, before or during this one's unit of work,
is drawn again); only the owner renames or closes, and only an empty account closes; each
change's event is staged with it and published after the commit (left in the outbox while
NATS is away).
"""

from __future__ import annotations

import itertools

import pytest

from fjordbank import topology
from fjordbank.domain.accounts import MAX_ACCOUNTS_EVER, MAX_OPEN_ACCOUNTS, AccountRefused
from fjordbank.domain.norway import is_valid_account_number
from fjordbank.service_layer import accounts
from tests.support.memory import MemoryDocuments
from tests.support.use_cases import (
    BANK_REG,
    NOW,
    RecordingPublisher,
    account_numbers,
    customer_account,
    data,
    drawn,
    fixed_clock,
    paths,
    seed,
)

UID = "alice"
OTHER = "bob"


@pytest.fixture
def docs() -> MemoryDocuments:
    docs = MemoryDocuments(fixed_clock())
    seed(docs, {f"customers/{UID}": {"status": "approved"}, f"customers/{OTHER}": {"status": "approved"}})
    return docs


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


def open_one(docs, publisher, uid: str = UID, **kw) -> str:
    return accounts.open_account(
        docs, publisher, uid, kind=kw.pop("kind", "spending"), name=kw.pop("name", None), bank_reg=BANK_REG, **kw
    )


class Draws:
    """The random draws of account numbers, in a given order."""

    def __init__(self, positions: list[int]) -> None:
        self.positions = iter(positions)

    def randrange(self, _stop: int) -> int:
        return next(self.positions)


def refused(call) -> str:
    with pytest.raises(AccountRefused) as caught:
        call()
    return caught.value.code


# ---- open ------------------------------------------------------------------------------------
def test_an_approved_customer_opens_an_account_and_its_event_is_published_once(docs, publisher):
    number = open_one(docs, publisher, clock=fixed_clock())
    assert number.startswith(BANK_REG) and is_valid_account_number(number)
    account = data(docs, f"accounts/{number}")
    assert account["ownerUid"] == UID and account["status"] == "open" and account["name"] == "Brukskonto"
    assert (account["balance"], account["held"], account["available"], account["type"]) == (0, 0, 0, "spending")
    assert publisher.subjects() == [topology.SUBJECT_ACCOUNT_OPENED]
    assert publisher.stored[0].msg_id == f"{number}:account_opened"
    assert publisher.stored[0].body["account_id"] == number and publisher.stored[0].body["uid"] == UID
    assert paths(docs, "outbox") == []  # published: gone from the outbox


def test_while_nats_is_away_the_account_stands_and_its_event_waits_in_the_outbox(docs):
    number = open_one(docs, RecordingPublisher(down=True), clock=fixed_clock())
    assert data(docs, f"accounts/{number}")["status"] == "open"
    staged = data(docs, f"outbox/{number}:account_opened")
    assert staged["subject"] == topology.SUBJECT_ACCOUNT_OPENED and staged["kind"] == "customers"
    assert staged["stagedAt"] == NOW


def test_who_is_not_an_approved_customer_opens_nothing(docs, publisher):
    seed(docs, {"customers/carol": {"status": "review"}})
    assert refused(lambda: open_one(docs, publisher, "carol")) == "not_a_customer"
    assert refused(lambda: open_one(docs, publisher, "nobody")) == "not_a_customer"
    assert paths(docs, "accounts") == [] and publisher.stored == []


def test_at_most_five_accounts_are_open_and_a_closed_one_does_not_count(docs, publisher):
    numbers = account_numbers()
    seed(docs, {f"accounts/{n}": customer_account(UID, n) for n in itertools.islice(numbers, MAX_OPEN_ACCOUNTS)})
    assert refused(lambda: open_one(docs, publisher, kind="savings")) == "too_many_accounts"
    closed = next(iter(paths(docs, "accounts")))
    seed(docs, {closed: {**data(docs, closed), "status": "closed"}})
    assert open_one(docs, publisher, kind="savings", name="Buffer")
    assert refused(lambda: open_one(docs, publisher)) == "too_many_accounts"


def test_a_customer_opens_at_most_fifty_accounts_in_all_closed_ones_counted(docs, publisher):
    """A closed account keeps its number for good: opening and closing in a loop used up a
    registry's numbers, and then every customer's opening was refused (found in review,
    2026-12-07)."""
    numbers = account_numbers()
    closed = itertools.islice(numbers, MAX_ACCOUNTS_EVER - 1)
    seed(docs, {f"accounts/{n}": {**customer_account(UID, n), "status": "closed"} for n in closed})
    assert open_one(docs, publisher, kind="savings")  # the fiftieth
    closed_last = next(p for p in paths(docs, "accounts") if data(docs, p)["status"] == "open")
    seed(docs, {closed_last: {**data(docs, closed_last), "status": "closed"}})
    assert refused(lambda: open_one(docs, publisher, kind="savings")) == "too_many_accounts"


def test_an_opening_retried_with_its_request_id_answers_the_account_it_opened(docs, publisher):
    """The app's idempotency key: the first answer was lost, the retry gets the same
    account (no second one, no second event); another key opens another account."""
    first = open_one(docs, publisher, kind="savings", request_id="open-0001-abcd")
    assert open_one(docs, publisher, kind="savings", request_id="open-0001-abcd") == first
    assert data(docs, f"accounts/{first}")["openRequest"] == "open-0001-abcd"
    assert len(paths(docs, "accounts")) == 1 and len(publisher.stored) == 1
    assert open_one(docs, publisher, kind="savings", request_id="open-0002-abcd") != first
    assert open_one(docs, publisher, uid=OTHER, kind="savings", request_id="open-0001-abcd") != first  # its own key
    assert len(paths(docs, "accounts")) == 3


def test_an_opening_key_used_for_another_kind_is_refused_and_opens_nothing(docs, publisher):
    """A client idempotency key with a different body is refused and changes nothing; the
    name is not compared (the account may have been renamed since)."""
    first = open_one(docs, publisher, kind="savings", request_id="open-0001-abcd")
    assert refused(lambda: open_one(docs, publisher, kind="spending", request_id="open-0001-abcd")) == (
        "request_id_reused"
    )
    assert len(paths(docs, "accounts")) == 1 and len(publisher.stored) == 1
    assert open_one(docs, publisher, kind="savings", name="Renamed", request_id="open-0001-abcd") == first


@pytest.mark.parametrize("request_id", ["short", "x" * 65, "../accounts", 12345678, ["open-0001-abcd"]])
def test_a_request_id_of_another_shape_is_refused(docs, publisher, request_id):
    with pytest.raises(AccountRefused) as refused:
        open_one(docs, publisher, request_id=request_id)
    assert refused.value.code == "invalid_request_id" and paths(docs, "accounts") == []


def test_kind_and_name_are_checked_before_anything_is_read(docs, publisher):
    assert refused(lambda: open_one(docs, publisher, kind="gold")) == "invalid_kind"
    assert refused(lambda: open_one(docs, publisher, name="x" * 100)) == "invalid_name"


def test_a_number_that_is_taken_is_drawn_again(docs, publisher, monkeypatch):
    (p_taken, taken), (p_free, free) = itertools.islice(drawn(), 2)
    seed(docs, {f"accounts/{taken}": customer_account(OTHER, taken)})
    monkeypatch.setattr(accounts, "_draw", Draws([p_taken, p_taken, p_free]))
    assert open_one(docs, publisher) == free
    assert data(docs, f"accounts/{taken}")["ownerUid"] == OTHER  # never claimed twice


class Racing:
    """The documents, with another opening that takes ``number`` right after this one's
    unit of work read it free (between its reads and its commit)."""

    def __init__(self, docs: MemoryDocuments, number: str) -> None:
        self.docs, self.number, self.raced = docs, number, False

    def __getattr__(self, name: str):
        return getattr(self.docs, name)

    def transact(self, fn, *, operation: str):
        def run(uow):
            return fn(RacedUnit(uow, self))

        return self.docs.transact(run, operation=operation)


class RacedUnit:
    def __init__(self, uow, race: Racing) -> None:
        self.uow, self.race = uow, race

    def __getattr__(self, name: str):
        return getattr(self.uow, name)

    def get(self, path: str):
        found = self.uow.get(path)
        if path == f"accounts/{self.race.number}" and not self.race.raced:
            self.race.raced = True
            seed(self.race.docs, {path: customer_account(OTHER, self.race.number)})
        return found


def test_two_openings_that_drew_one_number_claim_it_once_and_the_other_draws_again(docs, publisher, monkeypatch):
    (p_first, first), (p_second, second) = itertools.islice(drawn(), 2)
    monkeypatch.setattr(accounts, "_draw", Draws([p_first, p_first, p_second]))
    number = open_one(Racing(docs, first), publisher)
    assert number == second  # the unit of work ran again: `first` was taken meanwhile
    assert docs.attempts["accounts_open"] == 2
    assert data(docs, f"accounts/{first}")["ownerUid"] == OTHER
    assert data(docs, f"accounts/{second}")["ownerUid"] == UID
    assert publisher.on(topology.SUBJECT_ACCOUNT_OPENED) == [publisher.stored[0].body]  # one event


def test_every_draw_taken_is_registry_exhausted(docs, publisher, monkeypatch):
    position, taken = next(drawn())
    seed(docs, {f"accounts/{taken}": customer_account(OTHER, taken)})
    monkeypatch.setattr(accounts, "_draw", Draws([position] * 16))
    assert refused(lambda: open_one(docs, publisher)) == "registry_exhausted"


# ---- rename ----------------------------------------------------------------------------------
def test_the_owner_renames_an_open_account_and_nobody_else_can(docs, publisher):
    number = open_one(docs, publisher)
    accounts.rename_account(docs, UID, account_id=number, name="Hverdag")
    assert data(docs, f"accounts/{number}")["name"] == "Hverdag"
    assert refused(lambda: accounts.rename_account(docs, OTHER, account_id=number, name="Mine")) == "unknown_account"
    assert refused(lambda: accounts.rename_account(docs, UID, account_id="123", name="x")) == "unknown_account"
    assert refused(lambda: accounts.rename_account(docs, UID, account_id=None, name="x")) == "unknown_account"
    assert data(docs, f"accounts/{number}")["name"] == "Hverdag"


def test_a_closed_account_is_not_renamed(docs, publisher):
    number = next(account_numbers())
    seed(docs, {f"accounts/{number}": customer_account(UID, number, status="closed")})
    assert refused(lambda: accounts.rename_account(docs, UID, account_id=number, name="Ny")) == "account_closed"


# ---- close -----------------------------------------------------------------------------------
def test_the_owner_closes_an_empty_account_with_its_event(docs, publisher):
    number = open_one(docs, publisher)
    assert refused(lambda: accounts.close_account(docs, publisher, OTHER, account_id=number)) == "unknown_account"
    accounts.close_account(docs, publisher, UID, account_id=number)
    assert data(docs, f"accounts/{number}")["status"] == "closed"
    assert publisher.subjects() == [topology.SUBJECT_ACCOUNT_OPENED, topology.SUBJECT_ACCOUNT_CLOSED]
    assert publisher.stored[-1].msg_id == f"{number}:account_closed"
    # again (a retry after a lost answer): answered as the close was, nothing written or told
    before = data(docs, f"accounts/{number}")
    accounts.close_account(docs, publisher, UID, account_id=number)
    assert data(docs, f"accounts/{number}") == before and len(publisher.stored) == 2
    assert paths(docs, "outbox") == []


@pytest.mark.parametrize("status", [topology.CREDIT, topology.REFUND])
def test_an_emptied_account_with_a_payment_on_its_way_does_not_close(docs, publisher, status):
    """An internal payment debited and not yet credited may come back (its credit refused):
    its refund into a closed account could never be paid out, so the account waits."""
    number, other = itertools.islice(account_numbers(), 2)
    seed(
        docs,
        {
            f"accounts/{number}": customer_account(UID, number),
            "ledgerPayments/p1": {"uid": UID, "fromAccount": number, "status": status},
            "ledgerPayments/p2": {"uid": UID, "fromAccount": other, "status": topology.CREDIT},
        },
    )
    assert refused(lambda: accounts.close_account(docs, publisher, UID, account_id=number)) == "money_in_transit"
    seed(docs, {"ledgerPayments/p1": {"uid": UID, "fromAccount": number, "status": "completed"}})
    accounts.close_account(docs, publisher, UID, account_id=number)
    assert data(docs, f"accounts/{number}")["status"] == "closed"


def test_an_account_with_money_or_holds_does_not_close(docs, publisher):
    rich, held = itertools.islice(account_numbers(), 2)
    seed(
        docs,
        {
            f"accounts/{rich}": customer_account(UID, rich, balance=100),
            f"accounts/{held}": {**customer_account(UID, held), "held": 5},
        },
    )
    for number in (rich, held):
        assert refused(lambda n=number: accounts.close_account(docs, publisher, UID, account_id=n)) == (
            "account_not_empty"
        )
        assert data(docs, f"accounts/{number}")["status"] == "open"
    assert publisher.stored == [] and paths(docs, "outbox") == []
