"""The card service's use cases (fjordbank.service_layer.card_ledger) on the in-memory fake
of the ports (tests/support/memory.py): what tests/integration/test_cards.py promises on the
real stack, in milliseconds.

An authorisation is approved with its hold, or declined for each of the card's and the
account's reasons and holds nothing; the same request again gets the same answer and a
different one with a used reference is declined; a reversal may overtake its
authorisation; captures are partial, late or replayed; the job releases expired holds once;
guessing the security code freezes the card; many concurrent authorisations never take the
available balance below the account's limit. Each decision reads in as few round trips as
on Firestore (decision time is the processor's timeout) and announces its event once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import pytest

from fjordbank import topology
from fjordbank.domain.cards import (
    DEFAULT_LIMITS,
    FROZEN,
    HOLD_DAYS,
    MAX_FAILED_CHECKS,
    AuthorizationRequest,
    authorization_id,
    derive_cvv,
    make_pan,
)
from fjordbank.domain.events import CardAuthorization, CardIncremented, CardIssued, CardRefunded, IssueCard
from fjordbank.domain.ledger import INTERNAL_CARD_SCHEME, card_scheme_account
from fjordbank.errors import PublishError
from fjordbank.runtime.consumer import Ack, Reject, Retry
from fjordbank.service_layer import card_ledger
from fjordbank.service_layer.card_ledger import CardLedger, CardNumbers, CardResult
from fjordbank.service_layer.ports import Contention, Doc
from tests.support.memory import MAX_ATTEMPTS, AsyncMemoryDocuments, AsyncMemoryUnitOfWork, MemoryDocuments

T = TypeVar("T")
NOW = dt.datetime(2026, 11, 26, 11, 0, tzinfo=dt.UTC)
ACCOUNT = "12345678903"
CVV_KEY = b"k" * 32
BIN = "499210"


# ---- the fakes around the use cases ------------------------------------------------------------
class Documents(AsyncMemoryDocuments):
    """The fake, recording each unit of work's reads (one round trip each on Firestore);
    with ``interleave``, a unit of work lets the other tasks run after each read, so
    concurrent units of work really overlap (and lose their commits to each other)."""

    def __init__(self, *, interleave: bool = False) -> None:
        super().__init__()
        self.interleave = interleave
        self.reads: list[tuple[str, int]] = []  # (operation, reads) of each attempt

    async def transact(self, fn: Callable[[Any], Awaitable[T]], *, operation: str) -> T:
        for _ in range(MAX_ATTEMPTS):
            self.attempts[operation] = self.attempts.get(operation, 0) + 1
            unit = _CountedUnit(self.store, self.interleave)
            result = await fn(unit)
            self.reads.append((operation, unit.round_trips))
            if unit.commit():
                return result
        raise Contention(operation)

    def data(self, path: str) -> dict[str, Any] | None:
        doc = self.store.doc(path)
        return None if doc is None else doc.data

    def put(self, path: str, data: dict[str, Any]) -> None:
        batch = MemoryDocuments(store=self.store).batch()
        batch.set(path, data)
        batch.commit()


class _CountedUnit(AsyncMemoryUnitOfWork):
    def __init__(self, store: Any, interleave: bool) -> None:
        super().__init__(store)
        self.interleave = interleave
        self.round_trips = 0

    async def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]:
        self.round_trips += 1
        found = await super().get_many(paths)
        if self.interleave:
            await asyncio.sleep(0)
        return found

    async def get(self, path: str) -> Doc | None:
        self.round_trips += 1
        found = await super().get(path)
        if self.interleave:
            await asyncio.sleep(0)
        return found


class Events:
    """The publisher port: what was published, or a NATS that is down (``failing``)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any], str]] = []
        self.failing = False

    async def publish_json(self, subject: str, body: dict[str, Any], *, msg_id: str, stream: str | None = None) -> None:
        if self.failing:
            raise PublishError("nats is down")
        self.published.append((subject, body, msg_id))

    def subjects(self) -> list[str]:
        return [subject for subject, _, _ in self.published]


@dataclass(frozen=True)
class Entry:
    token: str
    card_id: str
    exp_month: int
    exp_year: int
    cvv_key_id: str = "k0"


class Vault:
    """The card vault: card numbers by card, found by number."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[Entry, str]] = {}
        self.on_store: Callable[[], None] = lambda: None  # what happens meanwhile

    def add(self, card_id: str, exp: tuple[int, int] = (11, 2030)) -> str:
        pan = make_pan(BIN, f"{len(self.entries) + 1:09d}")
        self.entries[card_id] = (Entry(f"tok_{card_id}", card_id, *exp), pan)
        return pan

    def find(self, pan: str) -> Entry | None:
        return next((e for e, p in self.entries.values() if p == pan), None)

    def store(
        self, card_id: str, make: Callable[[], str], exp_month: int, exp_year: int, *, cvv_key_id: str
    ) -> tuple[Entry, str | None]:
        self.on_store()
        if card_id in self.entries:
            return self.entries[card_id][0], None
        pan = make()
        self.entries[card_id] = (Entry(f"tok_{card_id}", card_id, exp_month, exp_year, cvv_key_id), pan)
        return self.entries[card_id][0], pan

    def reveal(self, card_id: str) -> str | None:
        found = self.entries.get(card_id)
        return found[1] if found else None


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Bank:
    docs: Documents
    events: Events
    vault: Vault
    clock: Clock
    ledger: CardLedger
    cards: CardNumbers

    def account(self) -> dict[str, Any]:
        found = self.docs.data(f"accounts/{ACCOUNT}")
        assert found is not None
        return found

    def add_card(self, card_id: str = "card_1", **changes: Any) -> str:
        """An active card on the account (its number in the vault)."""
        exp = (changes.pop("expMonth", 11), changes.pop("expYear", 2030))
        pan = self.vault.add(card_id, exp)
        self.docs.put(
            f"cards/{card_id}",
            {
                "cardId": card_id,
                "status": "active",
                "expMonth": exp[0],
                "expYear": exp[1],
                "ownerUid": "alice",
                "accountId": ACCOUNT,
                "last4": pan[-4:],
                **changes,
            },
        )
        return pan

    def request(
        self, pan: str, *, reference: str = "ref-1", cvv: str | None = "", **changes: Any
    ) -> AuthorizationRequest:
        """A processor's request with the right CVV (``cvv=""``), another or none (None)."""
        exp_month, exp_year = changes.pop("exp", (11, 2030))
        right = derive_cvv(CVV_KEY, pan, exp_month, exp_year)
        base = AuthorizationRequest(
            reference=reference,
            pan=pan,
            exp_month=exp_month,
            exp_year=exp_year,
            cvv=right if cvv == "" else cvv,
            amount=25_000,
            currency="NOK",
            merchant_name="Rema 1000 Majorstuen",
            mcc="5411",
            merchant_country="NO",
            channel="pos",
        )
        return replace(base, **changes)

    async def buy(self, pan: str, **changes: Any) -> CardResult:
        result = await self.cards.authorize(self.request(pan, **changes))
        await self.cards.announced()
        return result


def make_bank(*, balance: int = 100_000, overdraft: int = 0, interleave: bool = False) -> Bank:
    docs, events, vault, clock = Documents(interleave=interleave), Events(), Vault(), Clock()
    docs.put(
        f"accounts/{ACCOUNT}",
        {
            "accountId": ACCOUNT,
            "currency": "NOK",
            "balance": balance,
            "held": 0,
            "available": balance,
            "overdraftLimit": overdraft,
            "ownerUid": "alice",
            "kind": "customer",
            "status": "open",
        },
    )
    for scheme in INTERNAL_CARD_SCHEME:
        docs.put(
            f"accounts/{scheme}", {"accountId": scheme, "currency": "NOK", "balance": 0, "held": 0, "kind": "internal"}
        )
    ledger = CardLedger(docs, events, clock=clock)
    return Bank(docs, events, vault, clock, ledger, CardNumbers(ledger, vault, cvv_key=CVV_KEY, card_bin=BIN))


@pytest.fixture
def bank() -> Bank:
    return make_bank()


def event(bank: Bank, i: int = -1) -> CardAuthorization:
    return CardAuthorization.from_json(bank.events.published[i][1])


# ---- approve -----------------------------------------------------------------------------------
async def test_an_approval_holds_the_amount_in_one_unit_of_work_of_two_reads(bank: Bank) -> None:
    pan = bank.add_card()
    bank.docs.put("users/alice/categoryOverrides/m:rema-1000-majorstuen", {"category": "restaurants"})
    result = await bank.buy(pan)
    assert (result.status, result.reason, result.replayed) == ("approved", None, False)
    assert result.answer() == {"authorizationId": authorization_id("ref-1"), "status": "approved", "reason": None}
    acct = bank.account()
    assert (acct["balance"], acct["held"], acct["available"]) == (100_000, 25_000, 75_000)
    auth_id = result.auth_id
    record = bank.docs.data(f"cardAuthorizations/{auth_id}")
    assert record is not None and record["status"] == "approved" and pan not in str(record)
    hold = record["hold"]  # kept on the record, not in a document of its own
    assert (hold["amount"], hold["kind"], hold["status"]) == (25_000, "card", "active")
    assert hold["expiresAt"] == (NOW + dt.timedelta(days=HOLD_DAYS)).isoformat()
    assert bank.docs.data(f"holds/{auth_id}") is None
    assert bank.docs.data("cardSpend/card_1_2026-11-26") == {
        "daily": 25_000,
        "online": 0,
        "abroad": 0,
        "cardId": "card_1",
        "day": "2026-11-26",
    }
    feed = bank.docs.data(f"accounts/{ACCOUNT}/transactions/{auth_id}")
    assert feed is not None
    assert (feed["status"], feed["amount"], feed["category"], feed["date"]) == (
        "pending",
        -25_000,
        "restaurants",  # the customer's own category for the merchant
        "2026-11-26",
    )
    assert bank.docs.reads == [("cards_authorize", 2)] and bank.docs.attempts == {"cards_authorize": 1}
    assert bank.events.published[0][0] == topology.SUBJECT_CARD_AUTHORIZED
    assert bank.events.published[0][2] == f"{auth_id}:approved"
    assert (event(bank).uid, event(bank).amount, event(bank).day) == ("alice", 25_000, "2026-11-26")


async def test_the_purchase_s_day_is_norway_s(bank: Bank) -> None:
    pan = bank.add_card()
    bank.clock.now = dt.datetime(2026, 11, 26, 23, 30, tzinfo=dt.UTC)  # 00:30 on the 27th in Oslo
    result = await bank.buy(pan)
    assert result.record["spendDay"] == "2026-11-27"
    assert bank.docs.data("cardSpend/card_1_2026-11-27") is not None


# ---- decline -----------------------------------------------------------------------------------
DECLINES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    # (reason, the card's fields, the request's)
    ("card_frozen", {"status": FROZEN}, {}),
    ("card_blocked", {"status": "blocked"}, {}),
    ("card_not_active", {"status": "issuing"}, {}),
    ("invalid_expiry", {}, {"exp": (12, 2030)}),
    ("card_expired", {"expMonth": 10, "expYear": 2026}, {"exp": (10, 2026)}),
    ("cvv_mismatch", {}, {"cvv": "000"}),
    ("cvv_required", {}, {"cvv": None, "channel": "online"}),
    ("over_daily_limit", {}, {"amount": DEFAULT_LIMITS["daily"] + 1}),
    ("over_online_limit", {"limits": {"online": 10_000}}, {"channel": "online"}),
    ("over_abroad_limit", {"limits": {"abroad": 10_000}}, {"merchant_country": "SE"}),
    ("insufficient_funds", {}, {"amount": 100_001}),
]


@pytest.mark.parametrize(("reason", "card", "changes"), DECLINES, ids=[d[0] for d in DECLINES])
async def test_each_decline_holds_nothing_and_is_announced(
    bank: Bank, reason: str, card: dict[str, Any], changes: dict[str, Any]
) -> None:
    if reason == "cvv_mismatch" and derive_cvv(CVV_KEY, bank.vault.add("card_x"), 11, 2030) == "000":
        pytest.skip("the right code happens to be 000")
    pan = bank.add_card(**card)
    result = await bank.buy(pan, **changes)
    assert (result.status, result.reason, result.approved) == ("declined", reason, False)
    acct = bank.account()
    assert (acct["balance"], acct["held"]) == (100_000, 0)
    assert bank.docs.data(f"holds/{result.auth_id}") is None
    assert bank.docs.data(f"accounts/{ACCOUNT}/transactions/{result.auth_id}") is None
    record = bank.docs.data(f"cardAuthorizations/{result.auth_id}")
    assert record is not None and (record["status"], record["reason"]) == ("declined", reason)
    assert bank.events.subjects() == [topology.SUBJECT_CARD_DECLINED] and event(bank).reason == reason
    # a card that declines is not read further: one round trip; the funds take two
    assert bank.docs.reads == [("cards_authorize", 2 if reason == "insufficient_funds" else 1)]


@pytest.mark.parametrize(
    ("account", "reason"),
    [({"status": "closed"}, "account_closed"), ({"ownerUid": "mallory"}, "unknown_account"), (None, "account_closed")],
)
async def test_an_account_that_cannot_hold_declines(bank: Bank, account: dict[str, Any] | None, reason: str) -> None:
    pan = bank.add_card()
    if account is None:
        batch = MemoryDocuments(store=bank.docs.store).batch()
        batch.delete(f"accounts/{ACCOUNT}")
        batch.commit()
    else:
        bank.docs.put(f"accounts/{ACCOUNT}", {**bank.account(), **account})
    result = await bank.buy(pan)
    assert (result.status, result.reason) == ("declined", reason)
    assert bank.docs.data(f"holds/{result.auth_id}") is None


async def test_an_unknown_card_number_is_declined_in_one_read_and_stores_no_number(bank: Bank) -> None:
    pan = make_pan(BIN, "999999999")
    result = await bank.buy(pan)
    assert (result.status, result.reason) == ("declined", "unknown_card")
    record = bank.docs.data(f"cardAuthorizations/{result.auth_id}")
    assert record is not None and record["cardId"] is None and pan not in str(record)
    assert bank.docs.reads == [("cards_authorize", 1)]
    assert event(bank).uid is None and event(bank).card_id is None


# ---- the processor's reference -----------------------------------------------------------------
async def test_the_same_request_again_gets_the_same_answer_and_changes_nothing(bank: Bank) -> None:
    pan = bank.add_card()
    first = await bank.buy(pan)
    again = await bank.buy(pan)
    assert (again.status, again.reason, again.replayed) == ("approved", None, True)
    assert again.answer() == first.answer()
    assert bank.account()["held"] == 25_000
    assert len(bank.events.published) == 1  # a replayed answer is no new decision


async def test_a_declined_request_again_is_declined_for_the_same_reason(bank: Bank) -> None:
    pan = bank.add_card(status=FROZEN)
    first = await bank.buy(pan)
    bank.docs.put("cards/card_1", {**(bank.docs.data("cards/card_1") or {}), "status": "active"})
    again = await bank.buy(pan)
    assert (first.reason, again.reason, again.replayed) == ("card_frozen", "card_frozen", True)


async def test_another_request_with_a_used_reference_is_declined_and_stores_nothing(bank: Bank) -> None:
    pan = bank.add_card()
    first = await bank.buy(pan)
    stored = bank.docs.data(f"cardAuthorizations/{first.auth_id}")
    other = await bank.buy(pan, amount=9_000)
    assert (other.status, other.reason, other.replayed) == ("declined", "duplicate_reference", False)
    assert bank.docs.data(f"cardAuthorizations/{first.auth_id}") == stored
    assert bank.account()["held"] == 25_000
    assert bank.events.subjects() == [topology.SUBJECT_CARD_AUTHORIZED]  # nothing to announce


async def test_after_its_capture_a_retried_authorisation_still_gets_its_approval(bank: Bank) -> None:
    pan = bank.add_card()
    first = await bank.buy(pan)
    await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=None)
    again = await bank.buy(pan)
    assert again.answer() == first.answer() and again.replayed
    assert bank.account()["held"] == 0


# ---- reversal ----------------------------------------------------------------------------------
async def test_a_reversal_releases_the_hold_and_again_answers_the_same(bank: Bank) -> None:
    pan = bank.add_card()
    first = await bank.buy(pan)
    reversed_ = await bank.ledger.reverse("ref-1")
    assert (reversed_.status, reversed_.reason) == ("reversed", None)
    again = await bank.ledger.reverse("ref-1")
    assert (again.status, again.replayed) == ("reversed", True)
    acct = bank.account()
    assert (acct["balance"], acct["held"], acct["available"]) == (100_000, 0, 100_000)
    assert (bank.docs.data("cardSpend/card_1_2026-11-26") or {})["daily"] == 0
    feed = bank.docs.data(f"accounts/{ACCOUNT}/transactions/{first.auth_id}")
    assert feed is not None and feed["status"] == "cancelled"
    await bank.ledger.announced()  # a settlement's event follows its answer
    assert bank.events.subjects() == [topology.SUBJECT_CARD_AUTHORIZED, topology.SUBJECT_CARD_REVERSED]
    assert bank.docs.attempts["cards_release"] == 2


async def test_a_reversal_before_its_authorisation_leaves_nothing_held(bank: Bank) -> None:
    pan = bank.add_card()
    early = await bank.ledger.reverse("late-1")
    assert (early.status, early.reason) == ("reversed", "reversed_before_authorization")
    assert bank.events.published == []  # there is no purchase to announce yet
    late = await bank.buy(pan, reference="late-1")
    assert (late.status, late.reason, late.approved) == ("declined", "reversed_before_authorization", False)
    assert bank.account()["held"] == 0
    assert bank.docs.data(f"holds/{authorization_id('late-1')}") is None
    assert bank.events.published == []  # nor for the late authorisation: it is a replayed answer


# ---- capture -----------------------------------------------------------------------------------
async def test_a_partial_capture_posts_less_and_a_replay_changes_nothing(bank: Bank) -> None:
    pan = bank.add_card()
    first = await bank.buy(pan)
    captured = await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=19_990)
    assert captured.answer() == {
        "authorizationId": first.auth_id,
        "status": "captured",
        "reason": None,
        "capturedAmount": 19_990,
    }
    acct = bank.account()
    assert (acct["balance"], acct["held"], acct["available"]) == (80_010, 0, 80_010)
    scheme = bank.docs.data(f"accounts/{card_scheme_account(first.auth_id)}")
    assert scheme is not None and scheme["balance"] == 19_990
    record = bank.docs.data(f"cardAuthorizations/{first.auth_id}") or {}
    posting = record["postings"]["card-capture"]  # kept on the authorisation's record
    assert (posting["postingId"], posting["step"]) == (f"{first.auth_id}:card-capture", "card-capture")
    assert posting["entries"] == [
        {"account": ACCOUNT, "amount": -19_990},
        {"account": card_scheme_account(first.auth_id), "amount": 19_990},
    ]
    assert bank.docs.data(f"postings/{first.auth_id}:card-capture") is None
    assert (bank.docs.data("cardSpend/card_1_2026-11-26") or {})["daily"] == 19_990  # the rest given back
    feed = bank.docs.data(f"accounts/{ACCOUNT}/transactions/{first.auth_id}")
    assert feed is not None and (feed["status"], feed["amount"]) == ("posted", -19_990)
    await bank.ledger.announced()  # a settlement's event follows its answer
    assert bank.events.published[-1][0] == topology.SUBJECT_CARD_CAPTURED and event(bank).amount == 19_990

    again = await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=19_990)
    assert again.answer() == captured.answer() and again.replayed
    other = await bank.ledger.capture("ref-1", capture_ref="cap-2", amount=10)
    assert (other.status, other.reason) == ("refused", "already_captured")
    # the same reference with another amount: refused, as a refund's is (it was answered
    # "captured" with the first amount, the merchant taking the other for posted)
    changed = await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=19_000)
    assert (changed.status, changed.reason) == ("refused", "reference_reused")
    assert (await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=None)).replayed  # "all of it" again
    assert bank.account()["balance"] == 80_010
    assert bank.events.subjects().count(topology.SUBJECT_CARD_CAPTURED) == 1
    assert [reads for op, reads in bank.docs.reads if op == "cards_capture"] == [2, 2, 2, 2, 2]


async def test_a_capture_keeps_the_category_the_entry_shows_and_reads_no_choice(bank: Bank) -> None:
    pan = bank.add_card()
    bank.docs.put("users/alice/categoryOverrides/m:rema-1000-majorstuen", {"category": "restaurants"})
    first = await bank.buy(pan)
    path = f"accounts/{ACCOUNT}/transactions/{first.auth_id}"
    assert (bank.docs.data(path) or {})["category"] == "restaurants"
    # the entry relabelled (as the recategorise callable does, fjordbank.service_layer.insights),
    # and an override that says otherwise: the capture reads it not, so the entry keeps its label
    bank.docs.put("users/alice/categoryOverrides/m:rema-1000-majorstuen", {"category": "travel"})
    bank.docs.put(path, {**(bank.docs.data(path) or {}), "category": "shopping"})
    await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=None)
    feed = bank.docs.data(path) or {}
    assert (feed["status"], feed["amount"], feed["category"]) == ("posted", -25_000, "shopping")
    assert feed["merchantKey"] == "m:rema-1000-majorstuen" and feed["bookedAt"] is not None
    # the record, then the account, the scheme's shard and the day's spend: no override
    assert [reads for op, reads in bank.docs.reads if op == "cards_capture"] == [2]


def as_before_holds_moved(bank: Bank, auth_id: str) -> None:
    """The authorisation as approved before 2026-12-02: its hold in the holds collection,
    its record without it."""
    record = bank.docs.data(f"cardAuthorizations/{auth_id}") or {}
    bank.docs.put(f"holds/{auth_id}", record.pop("hold"))
    bank.docs.put(f"cardAuthorizations/{auth_id}", record)


async def test_an_authorisation_approved_before_holds_moved_is_captured_from_its_hold_document(bank: Bank) -> None:
    pan = bank.add_card()
    first = await bank.buy(pan, reference="ref-1", amount=25_000)
    as_before_holds_moved(bank, first.auth_id)
    captured = await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=20_000)
    assert captured.status == "captured"
    assert (bank.docs.data(f"holds/{first.auth_id}") or {})["status"] == "captured"
    assert "hold" not in (bank.docs.data(f"cardAuthorizations/{first.auth_id}") or {})
    acct = bank.account()
    assert (acct["balance"], acct["held"]) == (80_000, 0)
    # the hold's document is read in a round trip of its own: record, hold, accounts
    assert [reads for op, reads in bank.docs.reads if op == "cards_capture"] == [3]


async def test_the_job_releases_expired_holds_on_records_and_in_the_holds_collection(bank: Bank) -> None:
    pan = bank.add_card()
    before = await bank.buy(pan, reference="ref-before", amount=8_000)
    as_before_holds_moved(bank, before.auth_id)
    after = await bank.buy(pan, reference="ref-after", amount=7_000)
    bank.clock.now = NOW + dt.timedelta(days=HOLD_DAYS, seconds=1)
    released = await bank.ledger.expire_holds()
    assert sorted(r.auth_id for r in released) == sorted([before.auth_id, after.auth_id])
    assert (bank.docs.data(f"holds/{before.auth_id}") or {})["status"] == "released"
    assert (bank.docs.data(f"cardAuthorizations/{after.auth_id}") or {})["hold"]["status"] == "released"
    assert bank.account()["held"] == 0 and await bank.ledger.expire_holds() == []


async def test_one_run_of_the_job_releases_page_after_page_while_they_come_full(bank: Bank) -> None:
    """One page per run (hourly) let more expiries than a page an hour pile up past their
    expiry: a run goes on while it finds full pages."""
    pan = bank.add_card()
    bought = [await bank.buy(pan, reference=f"ref-page-{n}", amount=1_000) for n in range(7)]
    bank.clock.now = NOW + dt.timedelta(days=HOLD_DAYS, seconds=1)
    released = await bank.ledger.expire_holds(limit=3)
    assert sorted(r.auth_id for r in released) == sorted(b.auth_id for b in bought)
    assert bank.account()["held"] == 0
    assert await bank.ledger.expire_holds(limit=3, budget=0) == []


async def _expiry_backlog(holds: int, seconds_each: float) -> Bank:
    """``holds`` holds past their expiry, each release's transaction ``seconds_each`` long."""
    bank = make_bank(balance=10_000_000)
    pan = bank.add_card(limits={"daily": 10_000_000, "online": 5_000_000, "abroad": 5_000_000})
    for n in range(holds):
        assert (await bank.buy(pan, reference=f"ref-due-{n}", amount=1_000)).approved
    bank.clock.now = NOW + dt.timedelta(days=HOLD_DAYS, seconds=1)
    real = bank.docs.transact

    async def slow(fn, *, operation):  # type: ignore[no-untyped-def]
        await asyncio.sleep(seconds_each)
        return await real(fn, operation=operation)

    bank.docs.transact = slow  # type: ignore[method-assign]
    return bank


def test_the_expiry_budget_leaves_the_batch_half_the_handler_s_deadline() -> None:
    """The budget was the consumer's handler deadline itself (120 s each): a run with a
    backlog was cut off by it, failed toward the dead letter, and the card issues in its
    batch waited (found in review, 2026-12-06)."""
    from fjordbank.runtime.consumer import HANDLER_DEADLINE_SECONDS

    assert card_ledger.EXPIRE_BUDGET_SECONDS <= HANDLER_DEADLINE_SECONDS / 2


@pytest.mark.parametrize("limit", [20, 500], ids=["pages", "one-page"])
async def test_a_backlog_s_run_stops_at_its_budget_inside_a_page_well_before_the_handler_s_deadline(
    limit: int,
) -> None:
    """Scaled down 120 times: the consumer's deadline 1 s (120 s), the budget what
    EXPIRE_BUDGET_SECONDS is of it, a release 20 ms. The budget was looked at between pages
    only: a run of one page (500 holds) went on to its end whatever the budget. Now it
    stops in the page, under the deadline, every hold it released announced and the rest
    left active for the next run, which goes on from there. (No bound on how soon after its
    budget it stops beyond the deadline itself: a loaded machine's timing is no promise.)"""
    from fjordbank.runtime.consumer import HANDLER_DEADLINE_SECONDS

    deadline = 1.0
    budget = deadline * card_ledger.EXPIRE_BUDGET_SECONDS / HANDLER_DEADLINE_SECONDS
    bank = await _expiry_backlog(120, 0.02)
    bank.events.published.clear()
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(deadline):  # the consumer's cut
        first = await bank.ledger.expire_holds(limit=limit, budget=budget)
    assert budget <= loop.time() - started
    assert 0 < len(first) < 120
    assert bank.account()["held"] == (120 - len(first)) * 1_000
    assert len(bank.events.published) == len(first) and outbox_ids(bank) == []  # each released one announced
    second = await bank.ledger.expire_holds(limit=limit, budget=10)  # the next run
    assert len(first) + len(second) == 120 and bank.account()["held"] == 0


async def test_a_hold_that_cannot_be_expired_does_not_keep_the_others_held(bank: Bank, monkeypatch) -> None:
    """One record the release fails on every time (a record grown past what a commit
    takes, a defect): it stopped the run, came first again in the next, and every later
    expiry waited behind it. It is left for the next run and the others are released;
    when none can be, the run fails (the datastore, not a hold)."""
    pan = bank.add_card()
    bought = [await bank.buy(pan, reference=f"ref-exp-{n}", amount=1_000) for n in range(3)]
    bank.clock.now = NOW + dt.timedelta(days=HOLD_DAYS, seconds=1)
    real, broken = bank.ledger._release, bought[0].auth_id

    async def release(auth_id, **kw):
        if auth_id == broken:
            raise ValueError("a record the release cannot take")
        return await real(auth_id, **kw)

    monkeypatch.setattr(bank.ledger, "_release", release)
    released = await bank.ledger.expire_holds()
    assert sorted(r.auth_id for r in released) == sorted(b.auth_id for b in bought[1:])
    assert bank.account()["held"] == 1_000
    with pytest.raises(ValueError):
        await bank.ledger.expire_holds()  # only the broken one left: the run fails


async def test_a_refused_capture_is_kept_for_the_reconciliation_once_per_capture(bank: Bank) -> None:
    """The card scheme settles a merchant's capture whatever the issuer answered: a refusal
    left no trace but a log line (noticed 2026-12-05). Each is kept once per capture, a
    retry counted on it; an accepted capture keeps nothing."""
    pan = bank.add_card()
    await bank.buy(pan, reference="ref-r")
    await bank.ledger.reverse("ref-r")
    news = [
        await bank.ledger.note_refused_capture(
            "ref-r", capture_ref="cap-1", amount=2_500, reason="authorization_reversed"
        )
        for _ in range(2)  # the processor's retry
    ]
    assert news == [True, False]  # counted once
    await bank.ledger.note_refused_capture(
        "never-seen", capture_ref="cap-1", amount=None, reason="unknown_authorization"
    )
    kept = {d.data["reference"]: d.data for d in await bank.docs.query(card_ledger.CAPTURE_REFUSALS)}
    assert set(kept) == {"ref-r", "never-seen"}
    assert {k: kept["ref-r"][k] for k in ("captureReference", "amount", "reason", "status", "refusals")} == {
        "captureReference": "cap-1",
        "amount": 2_500,
        "reason": "authorization_reversed",
        "status": "open",
        "refusals": 2,
    }
    # cleared by the reconciliation, then the processor sends it again: it stays cleared
    path = next(d.path for d in await bank.docs.query(card_ledger.CAPTURE_REFUSALS) if d.data["reference"] == "ref-r")
    bank.docs.put(path, {**kept["ref-r"], "status": "cleared"})
    await bank.ledger.note_refused_capture("ref-r", capture_ref="cap-1", amount=2_500, reason="authorization_reversed")
    assert bank.docs.data(path)["status"] == "cleared" and bank.docs.data(path)["refusals"] == 3


async def test_captures_of_what_holds_nothing_are_refused(bank: Bank) -> None:
    pan = bank.add_card()
    unknown = await bank.ledger.capture("never-seen", capture_ref="cap-1", amount=None)
    assert (unknown.status, unknown.reason) == ("refused", "unknown_authorization")
    await bank.buy(pan, reference="ref-r")
    await bank.ledger.reverse("ref-r")
    reversed_ = await bank.ledger.capture("ref-r", capture_ref="cap-1", amount=None)
    assert (reversed_.status, reversed_.reason) == ("refused", "authorization_reversed")
    await bank.buy(pan, reference="ref-big")
    too_much = await bank.ledger.capture("ref-big", capture_ref="cap-1", amount=25_001)
    assert (too_much.status, too_much.reason) == ("refused", "invalid_capture")
    assert bank.account()["balance"] == 100_000
    assert topology.SUBJECT_CARD_CAPTURED not in bank.events.subjects()


# ---- expiry ------------------------------------------------------------------------------------
async def test_the_job_releases_expired_holds_once_and_a_late_capture_is_still_posted(bank: Bank) -> None:
    pan = bank.add_card()
    old = await bank.buy(pan, reference="ref-old", amount=8_000)
    bank.clock.now = NOW + dt.timedelta(days=3)
    young = await bank.buy(pan, reference="ref-young", amount=7_000)
    assert bank.account()["held"] == 15_000
    bank.clock.now = NOW + dt.timedelta(days=HOLD_DAYS, seconds=1)
    released = await bank.ledger.expire_holds()
    assert [r.auth_id for r in released] == [old.auth_id]
    assert await bank.ledger.expire_holds() == []  # the job twice releases once
    assert bank.account()["held"] == 7_000
    record = bank.docs.data(f"cardAuthorizations/{old.auth_id}")
    assert record is not None and record["status"] == "expired"
    feed = bank.docs.data(f"accounts/{ACCOUNT}/transactions/{old.auth_id}")
    assert feed is not None and feed["status"] == "cancelled"
    assert bank.events.subjects().count(topology.SUBJECT_CARD_EXPIRED) == 1
    assert (bank.docs.data(f"cardAuthorizations/{young.auth_id}") or {})["hold"]["status"] == "active"
    assert (bank.docs.data(f"cardAuthorizations/{old.auth_id}") or {})["hold"]["status"] == "released"
    # the scheme settles a late capture whatever our hold did: posted from the available balance
    late = await bank.ledger.capture("ref-old", capture_ref="cap-1", amount=6_000)
    assert (late.status, late.record["capturedAmount"]) == ("captured", 6_000)
    assert bank.account()["balance"] == 94_000
    assert (bank.docs.data(f"cardAuthorizations/{old.auth_id}") or {})["lateCapture"] is True
    # its event says so (the holder, told the reservation ended, is told of the charge)
    await bank.ledger.announced()  # a settlement's event follows its answer
    captured = [b for subject, b, _ in bank.events.published if subject == topology.SUBJECT_CARD_CAPTURED]
    assert [CardAuthorization.from_json(b).late for b in captured] == [True]
    on_time = await bank.ledger.capture("ref-young", capture_ref="cap-2", amount=None)
    assert on_time.status == "captured"
    await bank.ledger.announced()  # a settlement's event follows its answer
    captured = [b for subject, b, _ in bank.events.published if subject == topology.SUBJECT_CARD_CAPTURED]
    assert [CardAuthorization.from_json(b).late for b in captured] == [True, False]


# ---- failed checks -----------------------------------------------------------------------------
async def test_guessing_the_security_code_freezes_the_card(bank: Bank) -> None:
    pan = bank.add_card()
    right = derive_cvv(CVV_KEY, pan, 11, 2030)
    wrong = "000" if right != "000" else "001"
    answers = [
        await bank.buy(pan, reference=f"guess-{i}", cvv=wrong, channel="online") for i in range(MAX_FAILED_CHECKS)
    ]
    assert [a.reason for a in answers] == ["cvv_mismatch"] * MAX_FAILED_CHECKS
    card = bank.docs.data("cards/card_1")
    assert card is not None and (card["status"], card["frozenReason"]) == (FROZEN, "too_many_failed_checks")
    after = await bank.buy(pan, reference="right", channel="online")  # even with the right code
    assert after.reason == "card_frozen"


# ---- events ------------------------------------------------------------------------------------
def outbox_ids(bank: Bank) -> list[str]:
    """The card service's outbox (the functions' one, which the relay-outbox job relays as
    the edge, stays empty: the edge may not publish a card decision's event)."""
    assert bank.docs.store.query("outbox", [], [], None) == []
    return sorted(d.id for d in bank.docs.store.query("cardOutbox", [], [], None))


async def relayed(bank: Bank) -> list[str]:
    """The card service's relay (20 s later, NATS back); the subjects it published."""
    before = len(bank.events.published)
    bank.clock.now += dt.timedelta(seconds=20)
    counts = await bank.ledger.relay()
    published = bank.events.subjects()[before:]
    assert counts == {"pending": len(published), "published": len(published)}
    return published


async def test_the_events_nats_does_not_take_wait_in_the_outbox_and_the_relay_publishes_them(bank: Bank) -> None:
    """Before the outbox, an event that could not be published was logged and lost: the
    customer's push, and the purchase in their economy (insights books it from the event)."""
    pan = bank.add_card()
    bank.events.failing = True
    result = await bank.buy(pan)
    captured = await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=None)
    assert (result.status, captured.status) == ("approved", "captured")
    assert bank.account()["balance"] == 75_000 and bank.events.published == []
    assert outbox_ids(bank) == [f"{result.auth_id}:approved", f"{result.auth_id}:captured"]
    bank.events.failing = False
    assert sorted(await relayed(bank)) == [topology.SUBJECT_CARD_AUTHORIZED, topology.SUBJECT_CARD_CAPTURED]
    assert outbox_ids(bank) == []
    body = next(b for s, b, _ in bank.events.published if s == topology.SUBJECT_CARD_CAPTURED)
    assert (body["auth_id"], body["amount"]) == (result.auth_id, 25_000)


async def test_a_published_event_leaves_nothing_in_the_outbox(bank: Bank) -> None:
    pan = bank.add_card()
    result = await bank.buy(pan)
    await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=None)
    await bank.ledger.reverse("ref-2")  # a reversal before its authorisation announces nothing
    await bank.ledger.announced()  # a settlement's event follows its answer
    assert bank.events.subjects() == [topology.SUBJECT_CARD_AUTHORIZED, topology.SUBJECT_CARD_CAPTURED]
    assert [m for _, _, m in bank.events.published] == [f"{result.auth_id}:approved", f"{result.auth_id}:captured"]
    assert outbox_ids(bank) == []


class _Crash(BaseException):
    """The process dies (nothing after it runs, and no ``except Exception`` catches it)."""


async def test_a_crash_between_a_decision_and_its_publish_loses_no_event(bank: Bank) -> None:
    pan = bank.add_card()
    result = await bank.buy(pan)

    async def dies(subject: str, body: dict[str, Any], *, msg_id: str, stream: str | None = None) -> None:
        raise _Crash

    bank.events.publish_json = dies  # type: ignore[method-assign]
    await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=10_000)  # answered: its event follows
    with pytest.raises(_Crash):
        await bank.ledger.announced()
    assert bank.account()["balance"] == 90_000  # committed
    assert outbox_ids(bank) == [f"{result.auth_id}:captured"]
    del bank.events.publish_json  # the service started again
    assert await relayed(bank) == [topology.SUBJECT_CARD_CAPTURED] and outbox_ids(bank) == []


async def test_the_expiry_job_tries_nats_three_times_not_once_per_hold(bank: Bank) -> None:
    from fjordbank.service_layer.outbox import MAX_FAILED_IN_A_ROW

    pan = bank.add_card()
    bought = [await bank.buy(pan, reference=f"ref-exp-{n}", amount=1_000) for n in range(6)]
    tries = 0

    async def away(subject: str, body: dict[str, Any], *, msg_id: str, stream: str | None = None) -> None:
        nonlocal tries
        tries += 1
        raise PublishError("nats is down")

    bank.events.publish_json = away  # type: ignore[method-assign]
    bank.clock.now = NOW + dt.timedelta(days=HOLD_DAYS, seconds=1)
    released = await bank.ledger.expire_holds()
    assert len(released) == 6 and bank.account()["held"] == 0
    assert tries == MAX_FAILED_IN_A_ROW
    assert outbox_ids(bank) == sorted(f"{b.auth_id}:expired" for b in bought)


SETTLEMENTS: dict[str, Callable[[CardLedger], Awaitable[CardResult]]] = {
    "capture": lambda ledger: ledger.capture("ref-1", capture_ref="cap-1", amount=None),
    "refund": lambda ledger: ledger.refund("ref-0", refund_ref="rfd-1", amount=5_000),
    "increment": lambda ledger: ledger.increment("ref-1", increment_ref="inc-1", amount=5_000),
    "reversal": lambda ledger: ledger.reverse("ref-1"),
    "partial reversal": lambda ledger: ledger.reduce("ref-1", reversal_ref="rev-1", amount=25_000),
}


@pytest.mark.parametrize("operation", SETTLEMENTS)
async def test_with_nats_away_a_settlement_is_answered_at_once_and_its_event_waits_in_the_outbox(
    bank: Bank, operation: str
) -> None:
    """A capture, refund, increment or reversal published its event before it was answered:
    with NATS away, each held one of the card API's connections for the publish's timeout
    (2 s), while an authorisation's event already followed its answer (found in review,
    2026-12-06). Now they all answer first; the event, committed with the decision, waits
    in the outbox and the relay publishes it."""
    pan = bank.add_card()
    await bank.buy(pan, reference="ref-0", amount=20_000)
    await bank.ledger.capture("ref-0", capture_ref="cap-0", amount=None)  # for the refund
    await bank.buy(pan, reference="ref-1")
    await bank.ledger.announced()
    before = len(bank.events.published)

    ack = asyncio.Event()  # JetStream's ack not coming until the answer is in

    async def away(subject: str, body: dict[str, Any], *, msg_id: str, stream: str | None = None) -> None:
        await ack.wait()
        raise PublishError("nats: timeout")

    bank.events.publish_json = away  # type: ignore[method-assign]
    # answered while its publish still waits (an answer that waited for it never comes:
    # the wait_for fails the test instead of hanging it)
    result = await asyncio.wait_for(SETTLEMENTS[operation](bank.ledger), timeout=10)
    ack.set()
    assert result.status in ("captured", "refunded", "incremented", "reversed") and not result.replayed
    await bank.ledger.announced()
    (left,) = outbox_ids(bank)
    del bank.events.publish_json  # NATS back
    published = await relayed(bank)
    assert len(published) == 1 and bank.events.published[-1][2] == left and len(bank.events.published) == before + 1
    assert outbox_ids(bank) == []


# ---- many at once ------------------------------------------------------------------------------
def assert_within_the_limit(bank: Bank, approved: list[CardResult]) -> int:
    """The account holds exactly the approvals, one hold each, and its available balance is
    not below its overdraft limit (20 000). Returns what is held."""
    acct = bank.account()
    held = sum(r.record["amount"] for r in approved)
    assert (acct["balance"], acct["held"], acct["available"]) == (100_000, held, 100_000 - held)
    assert acct["available"] >= -20_000
    records = bank.docs.store.query("cardAuthorizations", [], [], None)
    holds = [r.id for r in records if r.data.get("hold", {}).get("status") == "active"]
    assert sorted(holds) == sorted(r.auth_id for r in approved)
    assert bank.docs.store.query("holds", [], [], None) == []
    return held


async def test_one_card_s_concurrent_authorisations_queue_and_never_pass_the_limit() -> None:
    bank = make_bank(balance=100_000, overdraft=20_000, interleave=True)
    pan = bank.add_card(limits=dict.fromkeys(("daily", "online", "abroad"), 10_000_000))
    requests = [bank.request(pan, reference=f"ref-{i}", amount=7_000 + i) for i in range(40)]
    results = await asyncio.gather(*(bank.cards.authorize(r) for r in requests))
    await bank.cards.announced()
    approved = [r for r in results if r.approved]
    assert {r.reason for r in results if not r.approved} == {"insufficient_funds"}
    held = assert_within_the_limit(bank, approved)
    assert 120_000 - held < 7_000  # filled up to the limit, not short of it
    assert bank.docs.attempts == {"cards_authorize": 40}  # queued: none lost its commit
    assert len(bank.events.published) == 40


async def test_overlapping_units_of_work_on_one_account_never_pass_the_limit() -> None:
    """Four cards of one account, forty authorisations, no queue: the units of work overlap
    and lose their commits to each other (optimistic, as Firestore's); whatever commits,
    the limit holds. One that loses every attempt ends in Contention (a 500; the processor
    declines on its timeout and reverses)."""
    bank = make_bank(balance=100_000, overdraft=20_000, interleave=True)
    for i in range(4):
        bank.add_card(f"card_{i}", limits=dict.fromkeys(("daily", "online", "abroad"), 10_000_000))
    requests = [bank.request("4" * 16, reference=f"ref-{i}", amount=30_000) for i in range(40)]
    outcomes = await asyncio.gather(
        *(bank.ledger.authorize(r, f"card_{i % 4}", cvv_ok=True) for i, r in enumerate(requests)),
        return_exceptions=True,
    )
    results = [o for o in outcomes if isinstance(o, CardResult)]
    assert all(isinstance(o, Contention) for o in outcomes if not isinstance(o, CardResult))
    approved = [r for r in results if r.approved]
    assert {r.reason for r in results if not r.approved} <= {"insufficient_funds"}
    assert 1 <= len(approved) <= 4
    assert_within_the_limit(bank, approved)
    assert bank.docs.attempts["cards_authorize"] > 40  # they did overlap


# ---- issuing -----------------------------------------------------------------------------------
def issuing(bank: Bank, card_id: str = "card_new") -> IssueCard:
    bank.docs.put(
        f"cards/{card_id}", {"cardId": card_id, "status": "issuing", "ownerUid": "alice", "accountId": ACCOUNT}
    )
    return IssueCard(uid="alice", card_id=card_id, account_id=ACCOUNT)


async def test_issuing_draws_a_number_and_shows_only_the_last_four_and_the_expiry(bank: Bank) -> None:
    command = issuing(bank)
    assert await bank.cards.issue(command) == Ack()
    card = bank.docs.data("cards/card_new")
    pan = bank.vault.reveal("card_new")
    assert card is not None and pan is not None and pan.startswith(BIN)
    assert (card["status"], card["last4"], card["bin"], card["expMonth"], card["expYear"]) == (
        "active",
        pan[-4:],
        BIN,
        11,
        2030,
    )
    assert pan not in str(card)
    assert bank.events.published == [
        (
            topology.SUBJECT_CARD_ISSUED,
            CardIssued(uid="alice", card_id="card_new", account_id=ACCOUNT, last4=pan[-4:]).to_json(),
            "card_new:issued",
        )
    ]
    assert await bank.cards.issue(command) == Ack()  # a redelivery: issued already
    assert bank.vault.reveal("card_new") == pan and len(bank.events.published) == 1


async def test_a_card_issued_while_nats_is_away_is_announced_by_the_relay(bank: Bank) -> None:
    """The redelivered command finds the card active and acks: only the outbox still knows
    that cards.issued was never published."""
    command = issuing(bank)
    bank.events.failing = True
    assert await bank.cards.issue(command) == Ack()
    assert outbox_ids(bank) == ["card_new:issued"] and bank.events.published == []
    bank.events.failing = False
    assert await bank.cards.issue(command) == Ack()  # a redelivery: issued already
    assert await relayed(bank) == [topology.SUBJECT_CARD_ISSUED] and outbox_ids(bank) == []


async def test_issuing_waits_for_the_card_and_refuses_what_is_no_card(bank: Bank) -> None:
    assert isinstance(await bank.cards.issue(IssueCard(uid="alice", card_id="card_x", account_id=ACCOUNT)), Retry)
    assert isinstance(await bank.cards.issue(IssueCard(uid="alice", card_id="x", account_id=ACCOUNT)), Reject)
    assert bank.events.published == []


async def test_a_card_blocked_while_it_is_issued_stays_blocked(bank: Bank) -> None:
    command = issuing(bank)

    def blocked_meanwhile() -> None:
        bank.docs.put("cards/card_new", {**(bank.docs.data("cards/card_new") or {}), "status": "blocked"})

    bank.vault.on_store = blocked_meanwhile
    outcome = await bank.cards.issue(command)
    assert isinstance(outcome, Retry) and "Stale" in outcome.reason
    bank.vault.on_store = lambda: None
    assert await bank.cards.issue(command) == Ack()  # the redelivery reads it blocked
    card = bank.docs.data("cards/card_new")
    assert card is not None and card["status"] == "blocked" and "last4" not in card
    assert bank.events.published == []


# ---- the adapters around them ------------------------------------------------------------------
async def test_the_jetstream_publisher_sends_the_compact_body_with_its_id_and_says_when_it_failed() -> None:
    import nats.errors

    from fjordbank.adapters.publisher import AsyncJetStreamPublisher

    sent: list[tuple[str, bytes, dict[str, str], float]] = []

    class JetStream:
        down = False

        async def publish(self, subject: str, payload: bytes, *, headers: dict[str, str], stream: Any, timeout: float):
            if self.down:
                raise nats.errors.TimeoutError
            sent.append((subject, payload, headers, timeout))

    js = JetStream()
    publisher = AsyncJetStreamPublisher(js)  # type: ignore[arg-type]
    await publisher.publish_json("cards.authorized", {"v": 1, "amount": 1}, msg_id="ca1:approved")
    assert sent == [("cards.authorized", b'{"v":1,"amount":1}', {"Nats-Msg-Id": "ca1:approved"}, 2.0)]
    js.down = True
    with pytest.raises(PublishError):
        await publisher.publish_json("cards.authorized", {}, msg_id="ca1:approved")


async def test_the_processor_api_wiring_answers_as_the_use_cases_decide(bank: Bank) -> None:
    import json
    import time
    from types import SimpleNamespace

    from fjordbank.domain import signatures
    from run_services.cards import CardService

    service = CardService(SimpleNamespace(card_processor_secret="s3cret"), None, bank.vault, CVV_KEY)  # type: ignore[arg-type]
    service.ledger, service.numbers = bank.ledger, bank.cards
    routes = service.routes()

    async def post(path: str, data: object, secret: bytes = b"s3cret") -> tuple[int, dict[str, Any]]:
        body = json.dumps(data).encode()
        header = signatures.sign(secret, int(time.time()), body, path=path)
        return await routes[path]({signatures.HEADER.lower(): header}, body)

    pan = bank.add_card()
    req = bank.request(pan)
    wire = {
        "reference": req.reference,
        "pan": pan,
        "expMonth": req.exp_month,
        "expYear": req.exp_year,
        "cvv": req.cvv,
        "amount": req.amount,
        "currency": "NOK",
        "merchantName": req.merchant_name,
        "mcc": req.mcc,
        "merchantCountry": "NO",
        "channel": "pos",
    }
    assert (await post("/v1/authorizations", wire, secret=b"forged"))[0] == 401
    assert (await post("/v1/authorizations", {**wire, "pan": "1"}))[0] == 400
    status, answer = await post("/v1/authorizations", wire)
    assert (status, answer["approved"], answer["status"]) == (200, True, "approved")
    assert (await post("/v1/captures", {"reference": "ref-1", "captureReference": "c", "amount": 0}))[0] == 400
    status, captured = await post("/v1/captures", {"reference": "ref-1", "captureReference": "c", "amount": 20_000})
    assert (status, captured["capturedAmount"]) == (200, 20_000)
    assert (await post("/v1/reversals", {"reference": "ref-1"}))[0] == 409  # captured: nothing to release
    assert (await post("/v1/reversals", {"reference": "ref-2"}))[1]["reason"] == "reversed_before_authorization"
    await bank.cards.announced()  # the authorisation's event follows in the background: any order
    assert sorted(bank.events.subjects()) == [topology.SUBJECT_CARD_AUTHORIZED, topology.SUBJECT_CARD_CAPTURED]


def _api(bank: Bank):
    """The processor API's handlers on the bank (signature, parsing, status codes)."""
    import json
    import time
    from types import SimpleNamespace

    from fjordbank.domain import signatures
    from run_services.cards import CardService

    service = CardService(SimpleNamespace(card_processor_secret="s3cret"), None, bank.vault, CVV_KEY)  # type: ignore[arg-type]
    service.ledger, service.numbers = bank.ledger, bank.cards
    routes = service.routes()

    async def post(path: str, body: bytes | object, *, header: str | None = None) -> tuple[int, dict[str, Any]]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        header = header or signatures.sign(b"s3cret", int(time.time()), raw, path=path)
        return await routes[path]({signatures.HEADER.lower(): header}, raw)

    return post


async def test_a_refused_signature_says_why_and_never_what_was_expected(bank: Bank) -> None:
    import time

    from fjordbank.domain import signatures

    post = _api(bank)
    stale = signatures.sign(b"s3cret", int(time.time()) - 600, b"{}", path="/v1/reversals")
    for header, why in (
        (stale, "stale_timestamp"),
        (signatures.sign(b"other", int(time.time()), b"{}", path="/v1/reversals"), "mismatch"),
        ("t=1,v1=" + "0" * 64, "unsupported_scheme"),
        ("nonsense", "malformed"),
    ):
        assert await post("/v1/reversals", b"{}", header=header) == (401, {"error": "bad_signature", "reason": why})


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/captures", b'{"reference":"\\ud800","captureReference":"c1"}'),
        ("/v1/captures", b'{"reference":"ref-1","captureReference":"\\udfff"}'),
        ("/v1/reversals", b'{"reference":"\\ud800"}'),
        ("/v1/reversals", b'{"reference":""}'),
        ("/v1/reversals", b'{"reference":"' + b"r" * 65 + b'"}'),
        ("/v1/authorizations", b"[" * 60_000),
        ("/v1/captures", b'{"reference":' + b"[" * 60_000),
    ],
    ids=["lone-surrogate", "lone-surrogate-capture-ref", "reversal-surrogate", "empty", "long", "nested", "nested-2"],
)
async def test_a_signed_body_of_another_shape_is_a_400_not_a_500(bank: Bank, path: str, body: bytes) -> None:
    status, answer = await _api(bank)(path, body)
    assert status == 400 and answer["error"] in ("invalid_request", "invalid_json")


@pytest.mark.parametrize("amount", [2**63, 2**64, 100_000_001])
async def test_a_capture_or_refund_of_more_than_an_authorisation_may_ask_is_a_400(bank: Bank, amount: int) -> None:
    """An amount past Firestore's 64-bit integers was refused, and its refusal was never kept
    for the reconciliation: its write failed too (found in review, 2026-12-07)."""
    post = _api(bank)
    capture = {"reference": "ref-1", "captureReference": "cap-1", "amount": amount}
    assert await post("/v1/captures", capture) == (400, {"error": "invalid_amount"})
    refund = {"reference": "rf-1", "originalReference": "ref-1", "amount": amount}
    assert await post("/v1/refunds", refund) == (400, {"error": "invalid_amount"})


async def test_a_store_that_does_not_answer_is_tried_once_more_then_answered_503(bank: Bank) -> None:
    """A transaction lost to contention (or a commit whose answer was lost) was a 500, which
    the processor took for a decline while the hold stayed: it is run once more (a commit
    that went through is found then), and else answered 503 for the processor to retry."""
    post = _api(bank)
    real, failures = bank.docs.transact, [2]

    async def flaky(fn, *, operation):
        if failures[0]:
            failures[0] -= 1
            raise Contention("lost to contention")
        return await real(fn, operation=operation)

    bank.docs.transact = flaky  # type: ignore[method-assign]
    assert await post("/v1/reversals", {"reference": "ref-9"}) == (503, {"error": "unavailable", "retryable": True})
    failures[0] = 1
    status, answer = await post("/v1/reversals", {"reference": "ref-9"})
    assert status == 200 and answer["reason"] == "reversed_before_authorization"


def test_only_the_card_service_may_publish_what_its_outbox_holds_and_it_relays_it_itself() -> None:
    """The relay-outbox job runs in the functions as the edge: an event of a card decision
    left in the functions' outbox would never be published (each try a permissions
    violation, timed out), and would hold up every event behind it."""
    from fjordbank.service_layer.card_ledger import EVENT_SUBJECTS

    staged = {*EVENT_SUBJECTS.values(), topology.SUBJECT_CARD_ISSUED}
    assert staged <= set(topology.identity("cards").publishes)
    assert not staged & set(topology.identity("edge").publishes)


async def test_an_approval_the_processor_may_not_have_had_is_released_at_once(bank: Bank) -> None:
    """Its answer not written (the processor hung up), or decided after the processor's
    deadline (it declined in the issuer's stead): the hold went on for days, and the
    customer's second try at the till was declined for the money it held."""
    import json
    from types import SimpleNamespace

    from fjordbank.runtime.http import Exchange
    from run_services.cards import AUTHORIZATIONS, CardService

    service = CardService(SimpleNamespace(card_processor_secret="s3cret"), None, bank.vault, CVV_KEY)  # type: ignore[arg-type]
    service.ledger, service.numbers = bank.ledger, bank.cards
    pan = bank.add_card()
    approved = await bank.buy(pan, amount=60_000)
    assert approved.approved and bank.account()["held"] == 60_000
    body = json.dumps({"reference": "ref-1"}).encode()
    declined = Exchange(AUTHORIZATIONS, body, 200, {"approved": False, "status": "declined"}, 3.0)
    await service.unanswered(declined, "late")  # nothing was held: nothing to do
    assert bank.account()["held"] == 60_000
    await service.unanswered(Exchange(AUTHORIZATIONS, body, 200, approved.answer() | {"approved": True}, 2.4), "late")
    assert bank.account()["held"] == 0 and bank.account()["available"] == bank.account()["balance"]
    await service.unanswered(Exchange(AUTHORIZATIONS, body, 200, {"approved": True}, 0.1), "not_written")  # again
    assert bank.account()["held"] == 0
    again = await bank.buy(pan, amount=60_000, reference="ref-2")  # the customer's second try
    assert again.approved


async def test_an_approval_the_processor_had_is_kept_when_a_request_sent_again_is_not_answered(bank: Bank) -> None:
    """The signed request sent again within its window (a replay, or the processor's own
    retry of an answer it had) is answered as decided; whoever sent it breaking the
    connection released the purchase's hold under the merchant, whose capture was then
    refused authorization_reversed. One the processor never had is still released."""
    import json
    from types import SimpleNamespace

    from fjordbank.runtime.http import Exchange
    from run_services.cards import AUTHORIZATIONS, CardService

    service = CardService(SimpleNamespace(card_processor_secret="s3cret"), None, bank.vault, CVV_KEY)  # type: ignore[arg-type]
    service.ledger, service.numbers = bank.ledger, bank.cards
    pan = bank.add_card()
    approved = await bank.buy(pan, amount=60_000, reference="ref-had")
    answer = approved.answer() | {"approved": True}
    had = json.dumps({"reference": "ref-had"}).encode()
    service.answered(Exchange(AUTHORIZATIONS, had, 200, answer, 0.1))  # the processor had it in time
    await service.unanswered(Exchange(AUTHORIZATIONS, had, 200, answer, 0.01), "not_written")  # sent again, hung up
    assert bank.account()["held"] == 60_000
    lost = await bank.buy(pan, amount=10_000, reference="ref-lost")  # its answer never had
    await service.unanswered(
        Exchange(
            AUTHORIZATIONS, json.dumps({"reference": "ref-lost"}).encode(), 200, lost.answer() | {"approved": True}
        ),
        "not_written",
    )
    assert bank.account()["held"] == 60_000


async def test_an_approval_released_unanswered_is_declined_when_the_same_request_comes_again(bank: Bank) -> None:
    """A copy of the signed request decided first and hung up: its approval is released.
    The same request again (the genuine one, or the processor's retry) is declined with
    not_answered_in_time; answered "approved" as the record's decision, the merchant was
    told yes with nothing held and its capture was refused authorization_reversed."""
    import json
    from types import SimpleNamespace

    from fjordbank.runtime.http import Exchange
    from run_services.cards import AUTHORIZATIONS, CardService

    service = CardService(SimpleNamespace(card_processor_secret="s3cret"), None, bank.vault, CVV_KEY)  # type: ignore[arg-type]
    service.ledger, service.numbers = bank.ledger, bank.cards
    pan = bank.add_card()
    body = json.dumps({"reference": "ref-x"}).encode()
    copy = await bank.buy(pan, amount=60_000, reference="ref-x")
    await service.unanswered(
        Exchange(AUTHORIZATIONS, body, 200, copy.answer() | {"approved": True}, 0.01), "not_written"
    )
    assert bank.account()["held"] == 0
    genuine = await bank.buy(pan, amount=60_000, reference="ref-x")
    assert (genuine.approved, genuine.reason) == (False, "not_answered_in_time")
    service.answered(Exchange(AUTHORIZATIONS, body, 200, genuine.answer() | {"approved": genuine.approved}, 0.05))
    assert not service.delivered.get("ref-x")
    # a reversal from the processor changes nothing; a new reference is decided afresh
    assert (await bank.ledger.reverse("ref-x")).status == "reversed" and bank.account()["held"] == 0
    assert (await bank.buy(pan, amount=60_000, reference="ref-y")).approved


@pytest.mark.parametrize(
    "body",
    [
        b'{"amount": 100, "amount": 90000}',  # a key twice: two readers, two amounts
        '{"amount": 100}'.encode("utf-16"),  # not UTF-8
        b'{"amount": NaN}',
        b'{"amount": Infinity}',
        b"\xff\xfe",
    ],
)
def test_a_processor_request_body_is_read_one_way_only(body: bytes) -> None:
    from run_services.cards import parse_json

    with pytest.raises(ValueError):
        parse_json(body)
    assert parse_json(b'{"amount": 100, "reference": "r"}') == {"amount": 100, "reference": "r"}


# ---- refunds ------------------------------------------------------------------------------------
def refunded_event(bank: Bank, i: int = -1) -> CardRefunded:
    subject, body, _ = bank.events.published[i]
    assert subject == topology.SUBJECT_CARD_REFUNDED
    return CardRefunded.from_json(body)


async def captured_purchase(bank: Bank, amount: int | None = 20_000) -> CardResult:
    pan = bank.add_card()
    first = await bank.buy(pan)
    await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=amount)
    await bank.ledger.announced()
    return first


async def test_a_refund_gives_money_back_from_the_scheme_with_its_own_entry_and_event(bank: Bank) -> None:
    bank.docs.put("users/alice/categoryOverrides/m:rema-1000-majorstuen", {"category": "restaurants"})
    first = await captured_purchase(bank)
    bank.clock.now = dt.datetime(2026, 11, 29, 23, 30, tzinfo=dt.UTC)  # 30 November in Norway
    result = await bank.ledger.refund("ref-1", refund_ref="rfd-1", amount=4_500)
    refund_id = result.refund_id
    assert refund_id is not None and refund_id.startswith("rf")
    assert result.answer() == {
        "authorizationId": first.auth_id,
        "status": "refunded",
        "reason": None,
        "refundId": refund_id,
        "refundedAmount": 4_500,
        "refundedTotal": 4_500,
    }
    acct = bank.account()
    assert (acct["balance"], acct["held"], acct["available"]) == (84_500, 0, 84_500)
    scheme = bank.docs.data(f"accounts/{card_scheme_account(first.auth_id)}") or {}
    assert scheme["balance"] == 20_000 - 4_500
    record = bank.docs.data(f"cardAuthorizations/{first.auth_id}") or {}
    step = f"card-refund-{refund_id}"
    assert record["postings"][step]["entries"] == [
        {"account": card_scheme_account(first.auth_id), "amount": -4_500},
        {"account": ACCOUNT, "amount": 4_500},
    ]
    assert record["postings"]["card-capture"]["entries"][0]["amount"] == -20_000  # the capture's, kept
    assert (record["status"], record["refundedAmount"], record["refunds"][refund_id]["reference"]) == (
        "captured",
        4_500,
        "rfd-1",
    )
    assert bank.docs.data(f"postings/{first.auth_id}:{step}") is None  # on the record, not a document
    # its own feed entry, money in, labelled as the purchase's entry is (the customer's choice)
    entry = bank.docs.data(f"accounts/{ACCOUNT}/transactions/{refund_id}") or {}
    assert (entry["kind"], entry["direction"], entry["status"], entry["amount"]) == (
        "card_refund",
        "in",
        "posted",
        4_500,
    )
    assert (entry["category"], entry["refundOf"], entry["merchantName"]) == (
        "restaurants",
        first.auth_id,
        "Rema 1000 Majorstuen",
    )
    purchase = bank.docs.data(f"accounts/{ACCOUNT}/transactions/{first.auth_id}") or {}
    assert (purchase["status"], purchase["amount"]) == ("posted", -20_000)  # the purchase stays as it was
    await bank.ledger.announced()  # a settlement's event follows its answer
    sent = refunded_event(bank)
    assert (sent.refund_id, sent.auth_id, sent.amount, sent.category, sent.uid) == (
        refund_id,
        first.auth_id,
        4_500,
        "restaurants",
        "alice",
    )
    assert sent.day == "2026-11-30"  # the refund's day in Norway, not the purchase's
    assert bank.events.published[-1][2] == f"{first.auth_id}:refunded:{refund_id}"
    # the record, then the account, the scheme's shard and the purchase's entry: two round trips
    assert [reads for op, reads in bank.docs.reads if op == "cards_refund"] == [2]


async def test_a_retried_refund_changes_nothing_and_its_reference_is_its_own(bank: Bank) -> None:
    first = await captured_purchase(bank)
    done = await bank.ledger.refund("ref-1", refund_ref="rfd-1", amount=4_500)
    again = await bank.ledger.refund("ref-1", refund_ref="rfd-1", amount=4_500)
    assert again.replayed and again.answer() == done.answer()
    other = await bank.ledger.refund("ref-1", refund_ref="rfd-1", amount=4_000)
    assert (other.status, other.reason) == ("refused", "reference_reused")
    assert bank.account()["balance"] == 84_500
    await bank.ledger.announced()  # a settlement's event follows its answer
    assert bank.events.subjects().count(topology.SUBJECT_CARD_REFUNDED) == 1
    # a second refund of the same purchase, under its own reference, up to what was captured
    second = await bank.ledger.refund("ref-1", refund_ref="rfd-2", amount=15_500)
    assert second.answer()["refundedTotal"] == 20_000 and second.refund_id != done.refund_id
    over = await bank.ledger.refund("ref-1", refund_ref="rfd-3", amount=1)
    assert (over.status, over.reason) == ("refused", "refund_exceeds_capture")
    assert bank.account()["balance"] == 100_000
    assert (bank.docs.data(f"accounts/{card_scheme_account(first.auth_id)}") or {})["balance"] == 0
    await bank.ledger.announced()  # a settlement's event follows its answer
    assert bank.events.subjects().count(topology.SUBJECT_CARD_REFUNDED) == 2


async def test_a_refund_of_what_was_not_captured_is_refused_and_changes_nothing(bank: Bank) -> None:
    pan = bank.add_card()
    await bank.buy(pan)
    assert (await bank.ledger.refund("ref-1", refund_ref="rfd-1", amount=100)).reason == "authorization_approved"
    assert (await bank.ledger.refund("nope", refund_ref="rfd-1", amount=100)).reason == "unknown_authorization"
    await bank.ledger.reverse("ref-1")
    assert (await bank.ledger.refund("ref-1", refund_ref="rfd-1", amount=100)).reason == "authorization_reversed"
    await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=None)  # refused: reversed
    acct = bank.account()
    assert (acct["balance"], acct["held"]) == (100_000, 0)
    assert topology.SUBJECT_CARD_REFUNDED not in bank.events.subjects()


async def test_a_refund_more_than_captured_is_refused_and_a_partial_capture_bounds_it(bank: Bank) -> None:
    await captured_purchase(bank, amount=10_000)  # authorised 25,000, captured 10,000
    over = await bank.ledger.refund("ref-1", refund_ref="rfd-1", amount=10_001)
    assert (over.status, over.reason) == ("refused", "refund_exceeds_capture")
    assert (await bank.ledger.refund("ref-1", refund_ref="rfd-1", amount=10_000)).status == "refunded"
    assert bank.account()["balance"] == 100_000


async def test_a_refund_to_a_closed_account_is_still_posted(bank: Bank) -> None:
    """The money is the customer's, as a payment's refund is (fjordbank.domain.ledger receive)."""
    await captured_purchase(bank)
    bank.docs.put(f"accounts/{ACCOUNT}", {**bank.account(), "status": "closed"})
    assert (await bank.ledger.refund("ref-1", refund_ref="rfd-1", amount=5_000)).status == "refunded"
    assert bank.account()["balance"] == 85_000


async def test_a_refund_that_nats_does_not_take_waits_in_the_outbox(bank: Bank) -> None:
    await captured_purchase(bank)
    bank.events.failing = True
    assert (await bank.ledger.refund("ref-1", refund_ref="rfd-1", amount=5_000)).status == "refunded"
    await bank.ledger.announced()  # a settlement's event follows its answer
    assert topology.SUBJECT_CARD_REFUNDED not in bank.events.subjects()
    bank.events.failing = False
    assert await relayed(bank) == [topology.SUBJECT_CARD_REFUNDED]
    assert refunded_event(bank).amount == 5_000


async def test_the_processor_api_takes_a_refund_and_refuses_what_is_not_one(bank: Bank) -> None:
    post = _api(bank)
    await captured_purchase(bank)
    body = {"reference": "rfd-1", "originalReference": "ref-1", "amount": 5_000}
    for bad, error in (
        ({**body, "amount": 0}, "invalid_amount"),
        ({**body, "amount": 1.5}, "invalid_amount"),
        ({**body, "amount": True}, "invalid_amount"),
        ({k: v for k, v in body.items() if k != "reference"}, "invalid_request"),
        ({**body, "extra": 1}, "invalid_request"),
        ({**body, "originalReference": ""}, "invalid_request"),
    ):
        assert await post("/v1/refunds", bad) == (400, {"error": error})
    status, answer = await post("/v1/refunds", body)
    assert (status, answer["status"], answer["refundedAmount"]) == (200, "refunded", 5_000)
    assert (await post("/v1/refunds", body))[0] == 200  # a retry
    status, answer = await post("/v1/refunds", {**body, "reference": "rfd-2", "amount": 15_001})
    assert (status, answer["reason"]) == (409, "refund_exceeds_capture")


# ---- incremental authorisations ----------------------------------------------------------------
def incremented_event(bank: Bank, i: int = -1) -> CardIncremented:
    subject, body, _ = bank.events.published[i]
    assert subject == topology.SUBJECT_CARD_INCREMENTED
    return CardIncremented.from_json(body)


async def test_an_increment_holds_more_on_the_same_hold_and_a_capture_takes_up_to_the_total(bank: Bank) -> None:
    """A hotel's extra nights: the reservation grows, the feed shows it, the capture may take it all."""
    pan = bank.add_card()
    first = await bank.buy(pan)  # 25,000 held of 100,000
    bank.clock.now = NOW + dt.timedelta(days=2)
    result = await bank.ledger.increment("ref-1", increment_ref="inc-1", amount=50_000)
    iid = result.increment_id
    assert iid is not None and iid.startswith("in")
    assert result.answer() == {
        "authorizationId": first.auth_id,
        "status": "incremented",
        "reason": None,
        "incrementId": iid,
        "authorizedAmount": 75_000,
    }
    acct = bank.account()
    assert (acct["balance"], acct["held"], acct["available"]) == (100_000, 75_000, 25_000)
    record = bank.docs.data(f"cardAuthorizations/{first.auth_id}") or {}
    assert (record["status"], record["amount"], record["authorizedAmount"]) == ("approved", 25_000, 75_000)
    assert record["hold"]["amount"] == 75_000
    # the reservation lasts HOLD_DAYS from the increment now
    assert record["hold"]["expiresAt"] == (bank.clock.now + dt.timedelta(days=HOLD_DAYS)).isoformat()
    assert record["increments"][iid]["reference"] == "inc-1"
    entry = bank.docs.data(f"accounts/{ACCOUNT}/transactions/{first.auth_id}") or {}
    assert (entry["status"], entry["amount"]) == ("pending", -75_000)
    spend = bank.docs.data(f"cardSpend/card_1_{record['spendDay']}") or {}
    assert spend["daily"] == 75_000  # counted on the purchase's day, where a release gives it back
    await bank.ledger.announced()  # a settlement's event follows its answer
    sent = incremented_event(bank)
    assert (sent.increment_id, sent.auth_id, sent.amount, sent.authorized_amount, sent.uid) == (
        iid,
        first.auth_id,
        50_000,
        75_000,
        "alice",
    )
    assert bank.events.published[-1][2] == f"{first.auth_id}:incremented:{iid}"
    # the record, then the account, the day's spend and the card: two round trips
    assert [reads for op, reads in bank.docs.reads if op == "cards_increment"] == [2]
    over = await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=75_001)
    assert (over.status, over.reason) == ("refused", "invalid_capture")
    captured = await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=70_000)
    assert (captured.status, captured.record["capturedAmount"]) == ("captured", 70_000)
    acct = bank.account()
    assert (acct["balance"], acct["held"], acct["available"]) == (30_000, 0, 30_000)
    spend = bank.docs.data(f"cardSpend/card_1_{record['spendDay']}") or {}
    assert spend["daily"] == 70_000  # what the capture did not take is given back
    late = await bank.ledger.increment("ref-1", increment_ref="inc-2", amount=1_000)
    assert (late.status, late.reason) == ("refused", "authorization_captured")


async def test_a_retried_increment_is_answered_as_before_and_its_reference_is_its_own(bank: Bank) -> None:
    pan = bank.add_card()
    await bank.buy(pan)
    done = await bank.ledger.increment("ref-1", increment_ref="inc-1", amount=10_000)
    again = await bank.ledger.increment("ref-1", increment_ref="inc-1", amount=10_000)
    assert again.replayed and again.answer() == done.answer()
    other = await bank.ledger.increment("ref-1", increment_ref="inc-1", amount=20_000)
    assert (other.status, other.reason, other.approved) == ("declined", "reference_reused", False)
    second = await bank.ledger.increment("ref-1", increment_ref="inc-2", amount=20_000)
    assert second.answer()["authorizedAmount"] == 55_000 and second.increment_id != done.increment_id
    assert bank.account()["held"] == 55_000
    await bank.ledger.announced()  # a settlement's event follows its answer
    assert bank.events.subjects().count(topology.SUBJECT_CARD_INCREMENTED) == 2


async def test_an_increment_the_funds_or_the_card_do_not_allow_is_declined_kept_and_holds_nothing(bank: Bank) -> None:
    pan = bank.add_card()
    first = await bank.buy(pan)  # 25,000 held: 75,000 available
    poor = await bank.ledger.increment("ref-1", increment_ref="inc-1", amount=75_001)
    assert (poor.status, poor.reason, poor.approved) == ("declined", "insufficient_funds", False)
    assert poor.answer()["authorizedAmount"] == 25_000
    acct = bank.account()
    assert (acct["held"], acct["available"]) == (25_000, 75_000)
    record = bank.docs.data(f"cardAuthorizations/{first.auth_id}") or {}
    assert record["hold"]["amount"] == 25_000 and record["increments"][poor.increment_id]["status"] == "declined"
    # the same increment again is answered as it was, even with the money there now
    bank.docs.put(f"accounts/{ACCOUNT}", {**bank.account(), "balance": 200_000, "available": 175_000})
    again = await bank.ledger.increment("ref-1", increment_ref="inc-1", amount=75_001)
    assert (again.status, again.reason, again.replayed) == ("declined", "insufficient_funds", True)
    # the card's limits count the whole reservation on the purchase's day
    bank.docs.put("cards/card_1", {**(bank.docs.data("cards/card_1") or {}), "limits": {"daily": 30_000}})
    limited = await bank.ledger.increment("ref-1", increment_ref="inc-2", amount=5_001)
    assert limited.reason == "over_daily_limit"
    assert (await bank.ledger.increment("ref-1", increment_ref="inc-3", amount=5_000)).status == "incremented"
    bank.docs.put("cards/card_1", {**(bank.docs.data("cards/card_1") or {}), "status": FROZEN})
    assert (await bank.ledger.increment("ref-1", increment_ref="inc-4", amount=1)).reason == "card_frozen"
    assert bank.account()["held"] == 30_000
    await bank.ledger.announced()  # a settlement's event follows its answer
    assert bank.events.subjects().count(topology.SUBJECT_CARD_INCREMENTED) == 1
    assert topology.SUBJECT_CARD_DECLINED not in bank.events.subjects()  # the purchase stands


async def test_an_increment_of_an_authorisation_no_longer_holding_changes_nothing(bank: Bank) -> None:
    pan = bank.add_card()
    await bank.buy(pan)
    unknown = await bank.ledger.increment("nope", increment_ref="inc-1", amount=100)
    assert (unknown.status, unknown.reason, unknown.approved) == ("refused", "unknown_authorization", False)
    await bank.ledger.reverse("ref-1")
    reversed_ = await bank.ledger.increment("ref-1", increment_ref="inc-1", amount=100)
    assert (reversed_.status, reversed_.reason) == ("refused", "authorization_reversed")
    acct = bank.account()
    assert (acct["balance"], acct["held"]) == (100_000, 0)
    assert topology.SUBJECT_CARD_INCREMENTED not in bank.events.subjects()


async def test_a_reversal_or_an_expiry_after_increments_gives_all_of_it_back(bank: Bank) -> None:
    pan = bank.add_card()
    first = await bank.buy(pan)
    await bank.ledger.increment("ref-1", increment_ref="inc-1", amount=30_000)
    day = (bank.docs.data(f"cardAuthorizations/{first.auth_id}") or {})["spendDay"]
    bank.clock.now = NOW + dt.timedelta(days=HOLD_DAYS, hours=1)
    assert [r.auth_id for r in await bank.ledger.expire_holds()] == [first.auth_id]
    acct = bank.account()
    assert (acct["balance"], acct["held"], acct["available"]) == (100_000, 0, 100_000)
    assert (bank.docs.data(f"cardSpend/card_1_{day}") or {})["daily"] == 0
    entry = bank.docs.data(f"accounts/{ACCOUNT}/transactions/{first.auth_id}") or {}
    assert (entry["status"], entry["amount"]) == ("cancelled", -55_000)
    # a hotel's late capture may still take what was authorised in all
    late = await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=55_000)
    assert (late.status, late.record.get("lateCapture")) == ("captured", True)
    assert bank.account()["balance"] == 45_000


async def test_the_processor_api_answers_an_increment_as_an_authorisation(bank: Bank) -> None:
    post = _api(bank)
    pan = bank.add_card()
    await bank.buy(pan)
    body = {"reference": "inc-1", "originalReference": "ref-1", "amount": 5_000}
    for bad, error in (
        ({**body, "amount": 0}, "invalid_amount"),
        ({**body, "amount": 1.5}, "invalid_amount"),
        ({**body, "amount": 100_000_001}, "invalid_amount"),
        ({k: v for k, v in body.items() if k != "reference"}, "invalid_request"),
        ({**body, "extra": 1}, "invalid_request"),
        ({**body, "originalReference": ""}, "invalid_request"),
    ):
        assert await post("/v1/increments", bad) == (400, {"error": error})
    status, answer = await post("/v1/increments", body)
    assert (status, answer["approved"], answer["status"], answer["authorizedAmount"]) == (200, True, "approved", 30_000)
    assert (await post("/v1/increments", body))[1] == answer  # a retry
    status, answer = await post("/v1/increments", {**body, "reference": "inc-2", "amount": 1_000_000})
    assert (status, answer["approved"], answer["status"], answer["reason"]) == (
        200,
        False,
        "declined",
        "insufficient_funds",
    )
    status, answer = await post("/v1/increments", {**body, "reference": "inc-3", "originalReference": "nope"})
    assert (status, answer["approved"], answer["reason"]) == (200, False, "unknown_authorization")


async def test_a_reservation_past_its_expiry_is_not_extended_and_one_extended_is_not_expired(bank: Bank) -> None:
    """The job lists the due holds, then releases each in its own transaction: an increment
    landing in between was approved (7 more days) and the job then released it all
    (found by review). A due hold is not extended; the job releases only what is still due."""
    pan = bank.add_card()
    first = await bank.buy(pan)
    bank.clock.now = NOW + dt.timedelta(days=HOLD_DAYS, seconds=1)  # due, not yet swept
    late = await bank.ledger.increment("ref-1", increment_ref="inc-1", amount=10_000)
    assert (late.status, late.reason, late.approved) == ("refused", "authorization_expired", False)
    assert bank.account()["held"] == 25_000
    # a hold extended after the job found it due (here: its expiry moved on meanwhile)
    real_query = bank.docs.query
    path = f"cardAuthorizations/{first.auth_id}"

    async def query_then_extend(*args: Any, **kwargs: Any) -> Any:
        found = await real_query(*args, **kwargs)
        record = bank.docs.data(path) or {}
        later = (bank.clock.now + dt.timedelta(days=HOLD_DAYS)).isoformat()
        bank.docs.put(path, {**record, "hold": {**record["hold"], "expiresAt": later}})
        return found

    bank.docs.query = query_then_extend  # type: ignore[method-assign]
    assert await bank.ledger.expire_holds() == []
    record = bank.docs.data(path) or {}
    assert (record["status"], record["hold"]["status"], bank.account()["held"]) == ("approved", "active", 25_000)


async def test_a_release_after_increments_tells_all_that_was_reserved(bank: Bank) -> None:
    """The event (and its push) named the first request's amount: 250 kr released where
    750 kr was (found by review)."""
    pan = bank.add_card()
    await bank.buy(pan)
    await bank.ledger.increment("ref-1", increment_ref="inc-1", amount=50_000)
    await bank.ledger.reverse("ref-1")
    await bank.ledger.announced()  # a settlement's event follows its answer
    assert (event(bank).status, event(bank).amount) == ("reversed", 75_000)


async def test_a_retried_increment_is_answered_as_it_was_after_another(bank: Bank) -> None:
    pan = bank.add_card()
    await bank.buy(pan)
    first = await bank.ledger.increment("ref-1", increment_ref="inc-1", amount=10_000)
    await bank.ledger.increment("ref-1", increment_ref="inc-2", amount=20_000)
    again = await bank.ledger.increment("ref-1", increment_ref="inc-1", amount=10_000)
    assert again.replayed and again.answer() == first.answer() and first.answer()["authorizedAmount"] == 35_000


# ---- partial reversals -------------------------------------------------------------------------
async def test_a_partial_reversal_gives_part_of_the_hold_back_and_a_capture_takes_at_most_the_rest(
    bank: Bank,
) -> None:
    """A fuel pump held 250 kr and pumped 100: 150 go back to the account and to the day's
    spend, the pending entry shows 100, nothing is pushed, and the capture may take 100."""
    pan = bank.add_card()
    first = await bank.buy(pan)  # 25,000 held of 100,000
    result = await bank.ledger.reduce("ref-1", reversal_ref="rev-1", amount=15_000)
    rid = result.reversal_id
    assert rid is not None and rid.startswith("rv")
    assert result.answer() == {
        "authorizationId": first.auth_id,
        "status": "reversed",
        "reason": None,
        "reversalId": rid,
        "reversedAmount": 15_000,
        "heldAmount": 10_000,
    }
    acct = bank.account()
    assert (acct["balance"], acct["held"], acct["available"]) == (100_000, 10_000, 90_000)
    record = bank.docs.data(f"cardAuthorizations/{first.auth_id}") or {}
    assert (record["status"], record["authorizedAmount"], record["hold"]["amount"]) == ("approved", 10_000, 10_000)
    entry = bank.docs.data(f"accounts/{ACCOUNT}/transactions/{first.auth_id}") or {}
    assert (entry["status"], entry["amount"]) == ("pending", -10_000)
    assert (bank.docs.data(f"cardSpend/card_1_{record['spendDay']}") or {})["daily"] == 10_000
    assert bank.events.subjects() == [topology.SUBJECT_CARD_AUTHORIZED]  # no push for a smaller reservation
    # the same reversal again: answered as before, nothing moves; its reference with another amount: refused
    again = await bank.ledger.reduce("ref-1", reversal_ref="rev-1", amount=15_000)
    assert (again.replayed, again.answer()) == (True, result.answer())
    reused = await bank.ledger.reduce("ref-1", reversal_ref="rev-1", amount=5_000)
    assert (reused.status, reused.reason) == ("refused", "reference_reused")
    over = await bank.ledger.reduce("ref-1", reversal_ref="rev-2", amount=10_001)
    assert (over.status, over.reason) == ("refused", "reversal_over_hold")
    assert bank.account()["held"] == 10_000
    refused = await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=10_001)
    assert (refused.status, refused.reason) == ("refused", "invalid_capture")
    captured = await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=10_000)
    assert captured.status == "captured"
    acct = bank.account()
    assert (acct["balance"], acct["held"], acct["available"]) == (90_000, 0, 90_000)
    late = await bank.ledger.reduce("ref-1", reversal_ref="rev-3", amount=1_000)
    assert (late.status, late.reason) == ("refused", "authorization_captured")


async def test_a_partial_reversal_of_all_that_is_left_reverses_the_authorisation(bank: Bank) -> None:
    """An increment taken back, then the rest: the second releases all that was left, which
    is pushed as a reversal of that amount; a full reversal after it changes nothing."""
    pan = bank.add_card()
    first = await bank.buy(pan)
    await bank.ledger.increment("ref-1", increment_ref="inc-1", amount=30_000)  # 55,000 held
    part = await bank.ledger.reduce("ref-1", reversal_ref="rev-1", amount=30_000)
    assert part.answer()["heldAmount"] == 25_000
    rest = await bank.ledger.reduce("ref-1", reversal_ref="rev-2", amount=25_000)
    assert (rest.status, rest.answer()["heldAmount"], rest.record["status"]) == ("reversed", 0, "reversed")
    acct = bank.account()
    assert (acct["balance"], acct["held"], acct["available"]) == (100_000, 0, 100_000)
    record = bank.docs.data(f"cardAuthorizations/{first.auth_id}") or {}
    assert (bank.docs.data(f"cardSpend/card_1_{record['spendDay']}") or {})["daily"] == 0
    entry = bank.docs.data(f"accounts/{ACCOUNT}/transactions/{first.auth_id}") or {}
    assert entry["status"] == "cancelled"
    await bank.ledger.announced()  # a settlement's event follows its answer
    assert bank.events.subjects()[-1] == topology.SUBJECT_CARD_REVERSED
    assert event(bank).amount == 25_000  # what was released now: the increment went back before
    whole = await bank.ledger.reverse("ref-1")
    assert (whole.status, whole.replayed) == ("reversed", True)
    assert (await bank.ledger.reduce("ref-1", reversal_ref="rev-2", amount=25_000)).replayed


async def test_a_partial_reversal_past_the_expiry_is_kept_and_bounds_a_late_capture(bank: Bank) -> None:
    """Due but not yet released: the hold is reduced and the job gives back the rest.
    Released: nothing is held, but the merchant's final amount bounds a late capture; and
    the merchant's whole reversal after the expiry calls the purchase off."""
    unknown = await bank.ledger.reduce("nope", reversal_ref="rev-1", amount=1_000)
    assert (unknown.status, unknown.reason) == ("refused", "unknown_authorization")
    pan = bank.add_card()
    first = await bank.buy(pan)  # 25,000 held
    bank.clock.now = NOW + dt.timedelta(days=HOLD_DAYS, hours=1)
    due = await bank.ledger.reduce("ref-1", reversal_ref="rev-1", amount=5_000)
    assert (due.status, due.answer()["heldAmount"]) == ("reversed", 20_000)
    assert [r.auth_id for r in await bank.ledger.expire_holds()] == [first.auth_id]
    assert event(bank).amount == 20_000  # what the expiry gave back
    acct = bank.account()
    assert (acct["balance"], acct["held"], acct["available"]) == (100_000, 0, 100_000)
    published = len(bank.events.published)
    after = await bank.ledger.reduce("ref-1", reversal_ref="rev-2", amount=8_000)
    assert (after.status, after.answer()["reversedAmount"], after.answer()["heldAmount"]) == ("reversed", 8_000, 0)
    assert (await bank.ledger.reduce("ref-1", reversal_ref="rev-3", amount=12_001)).reason == "reversal_over_hold"
    assert len(bank.events.published) == published  # nothing more to tell the customer
    over = await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=12_001)
    assert (over.status, over.reason) == ("refused", "invalid_capture")
    late = await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=None)  # all that is left authorised
    assert (late.status, late.record["capturedAmount"], late.record["lateCapture"]) == ("captured", 12_000, True)
    assert bank.account()["balance"] == 88_000


async def test_a_partial_reversal_of_all_that_is_left_after_the_expiry_calls_the_purchase_off(bank: Bank) -> None:
    pan = bank.add_card()
    await bank.buy(pan)
    bank.clock.now = NOW + dt.timedelta(days=HOLD_DAYS, hours=1)
    await bank.ledger.expire_holds()
    published = len(bank.events.published)
    await bank.ledger.reduce("ref-1", reversal_ref="rev-1", amount=5_000)
    rest = await bank.ledger.reduce("ref-1", reversal_ref="rev-2", amount=20_000)
    assert (rest.status, rest.record["status"], rest.answer()["heldAmount"]) == ("reversed", "reversed", 0)
    assert len(bank.events.published) == published
    late = await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=1_000)
    assert (late.status, late.reason) == ("refused", "authorization_reversed")
    assert (await bank.ledger.reduce("ref-1", reversal_ref="rev-2", amount=20_000)).replayed


async def test_the_merchants_reversal_after_the_expiry_stops_a_late_capture(bank: Bank) -> None:
    pan = bank.add_card()
    await bank.buy(pan)
    bank.clock.now = NOW + dt.timedelta(days=HOLD_DAYS, hours=1)
    await bank.ledger.expire_holds()
    published = len(bank.events.published)
    called_off = await bank.ledger.reverse("ref-1")
    assert (called_off.status, called_off.record["status"]) == ("reversed", "reversed")
    assert len(bank.events.published) == published  # the expiry was told; nothing moved now
    assert (await bank.ledger.reverse("ref-1")).replayed
    late = await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=1_000)
    assert (late.status, late.reason) == ("refused", "authorization_reversed")
    assert bank.account()["balance"] == 100_000


async def test_the_processor_api_takes_a_partial_reversal_and_refuses_what_is_not_one(bank: Bank) -> None:
    post = _api(bank)
    pan = bank.add_card()
    await bank.buy(pan)
    body = {"reference": "rev-1", "originalReference": "ref-1", "amount": 5_000}
    for bad, error in (
        ({**body, "amount": 0}, "invalid_amount"),
        ({**body, "amount": "5000"}, "invalid_amount"),
        ({**body, "amount": True}, "invalid_amount"),
        ({**body, "originalReference": ""}, "invalid_request"),
        ({**body, "extra": 1}, "invalid_request"),
        ({"reference": "rev-1", "amount": 5_000}, "invalid_request"),
    ):
        assert await post("/v1/reversals", bad) == (400, {"error": error})
    status, answer = await post("/v1/reversals", body)
    assert (status, answer["status"], answer["reversedAmount"], answer["heldAmount"]) == (
        200,
        "reversed",
        5_000,
        20_000,
    )
    assert await post("/v1/reversals", body) == (200, answer)  # a retry
    status, answer = await post("/v1/reversals", {**body, "reference": "rev-2", "amount": 20_001})
    assert (status, answer["reason"]) == (409, "reversal_over_hold")


async def test_two_expiry_commands_in_one_batch_run_once_within_the_handler_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each expire-holds command of a batch had a run of its own with the whole budget: two
    took twice the budget, the consumer's whole handler deadline, and the batch was cut off
    (found in review, 2026-12-06). Scaled as above (deadline 0.5 s, budget 0.25 s)."""
    from types import SimpleNamespace

    from fjordbank.domain.events import ExpireCardHolds
    from fjordbank.runtime.consumer import HANDLER_DEADLINE_SECONDS

    deadline = 0.5
    budget = deadline * card_ledger.EXPIRE_BUDGET_SECONDS / HANDLER_DEADLINE_SECONDS
    monkeypatch.setitem(card_ledger.CardLedger.expire_holds.__kwdefaults__, "budget", budget)
    bank = await _expiry_backlog(200, 0.01)
    service = _card_service(bank)
    decided: dict[int, object] = {}
    command = ExpireCardHolds(as_of="2026-12-06T07:07:00Z")
    step = SimpleNamespace(
        items=[(0, command), (1, command)],
        batch=[None, None],
        decide=decided.__setitem__,
        reject=None,
    )
    async with asyncio.timeout(deadline):  # the consumer's cut, scaled
        await service.command(step)
    assert decided == {0: Ack(), 1: Ack()}
    assert 0 < bank.account()["held"] < 200 * 1_000  # one run's worth released, the rest the next run's


def _card_service(bank: Bank) -> Any:
    """The card service's HTTP side on the bank's ledger and card numbers (no NATS)."""
    from types import SimpleNamespace

    from run_services.cards import CardService

    service = CardService(SimpleNamespace(card_processor_secret="s3cret"), None, bank.vault, CVV_KEY)  # type: ignore[arg-type]
    service.ledger, service.numbers, service.background = bank.ledger, bank.cards, bank.ledger
    return service


def _processor_request(bank: Bank, pan: str, reference: str, amount: int) -> dict[str, Any]:
    r = bank.request(pan, reference=reference, amount=amount)
    return {
        "reference": r.reference,
        "pan": r.pan,
        "expMonth": r.exp_month,
        "expYear": r.exp_year,
        "cvv": r.cvv,
        "amount": r.amount,
        "currency": r.currency,
        "merchantName": r.merchant_name,
        "mcc": r.mcc,
        "merchantCountry": r.merchant_country,
        "channel": r.channel,
    }


async def test_a_request_decided_while_a_copys_approval_is_being_released_waits_and_is_declined(bank: Bank) -> None:
    """A copy of the signed request decided first and hung up; while its hold was being
    released, the genuine request was answered "approved" from the record not yet
    released: the processor had an approval whose hold was gone (found in review). Now a
    decision of the reference waits for the release, and is declined as released."""
    import json

    from fjordbank.runtime.http import Exchange
    from run_services.cards import AUTHORIZATIONS

    service = _card_service(bank)
    pan = bank.add_card()
    data = _processor_request(bank, pan, "ref-x", 60_000)
    body = json.dumps(data).encode()
    status, copy = await service.authorize(data)
    assert (status, copy["approved"]) == (200, True)
    releasing, go_on = asyncio.Event(), asyncio.Event()
    real_transact = bank.docs.transact

    async def transact(fn, *, operation):  # the release's transaction takes a while
        if operation == "cards_release":
            releasing.set()
            await go_on.wait()
        return await real_transact(fn, operation=operation)

    bank.docs.transact = transact  # type: ignore[method-assign]
    hung_up = asyncio.create_task(service.unanswered(Exchange(AUTHORIZATIONS, body, 200, copy, 0.01), "not_written"))
    await releasing.wait()
    genuine = asyncio.create_task(service.authorize(data))
    await asyncio.sleep(0.05)
    assert not genuine.done()  # it waits for the release
    go_on.set()
    await hung_up
    _, answer = await genuine
    assert (answer["approved"], bank.account()["held"]) == (False, 0)


async def test_a_copys_lost_answer_keeps_the_hold_while_another_approval_of_it_is_on_its_way(bank: Bank) -> None:
    """The genuine request was decided (approved) before the copy's hang-up was known, its
    answer not yet written: the hold stays; had neither, it is released."""
    import json

    from fjordbank.runtime.http import Exchange
    from run_services.cards import AUTHORIZATIONS

    service = _card_service(bank)
    pan = bank.add_card()
    data = _processor_request(bank, pan, "ref-x", 60_000)
    body = json.dumps(data).encode()
    _, copy = await service.authorize(data)
    _, genuine = await service.authorize(data)
    assert copy["approved"] and genuine["approved"]
    await service.unanswered(Exchange(AUTHORIZATIONS, body, 200, copy, 0.01), "not_written")
    assert bank.account()["held"] == 60_000  # the genuine answer may yet reach the processor
    await service.unanswered(Exchange(AUTHORIZATIONS, body, 200, genuine, 3.0), "late")
    assert bank.account()["held"] == 0  # neither did
    assert not service.references.in_flight("ref-x")


async def test_an_authorisation_keeps_a_bounded_number_of_operations_of_each_kind(
    bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each refund, increment and partial reversal is kept on the record (a retry is
    answered the same), and the record is one document of at most 1 MiB: a terminal
    retrying a declined increment under new references grew it past that (found in review,
    2026-12-06), and every later write of the record would have failed with the money held."""
    from fjordbank.domain import card_settlement

    monkeypatch.setattr(card_settlement, "MAX_ENTRIES", 3)
    pan = bank.add_card()
    first = await bank.buy(pan)
    for n in range(3):  # declined: over the card's daily limit
        assert (await bank.ledger.increment("ref-1", increment_ref=f"inc-{n}", amount=10_000_000)).status == "declined"
    again = await bank.ledger.increment("ref-1", increment_ref="inc-0", amount=10_000_000)
    assert again.status == "declined" and again.reason == "over_daily_limit"  # a retry: answered the same
    assert (await bank.ledger.increment("ref-1", increment_ref="inc-4", amount=100)).reason == "too_many_operations"
    for n in range(3):
        assert (await bank.ledger.reduce("ref-1", amount=1, reversal_ref=f"rev-{n}")).status == "reversed"
    assert (await bank.ledger.reduce("ref-1", amount=1, reversal_ref="rev-4")).reason == "too_many_operations"
    await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=None)
    for n in range(3):
        assert (await bank.ledger.refund("ref-1", refund_ref=f"rfd-{n}", amount=1)).status == "refunded"
    assert (await bank.ledger.refund("ref-1", refund_ref="rfd-4", amount=1)).reason == "too_many_operations"
    record = bank.docs.data(f"cardAuthorizations/{first.auth_id}") or {}
    assert [len(record[k]) for k in ("increments", "reversals", "refunds")] == [3, 3, 3]


async def test_a_purchase_booked_in_the_past_for_demo_data_is_announced_captured_and_pushes_nothing() -> None:
    """bankctl's history books purchases on past days: the authorisation's event, staged in
    the card outbox, was published by the relay, a "Card purchase" push per backdated
    purchase (found in review, 2026-12-06)."""
    from bankctl.history import PastPurchase, book

    bank = make_bank()
    pan = bank.add_card()
    past = PastPurchase("hist-1", dt.date(2026, 7, 3), 12_300, "Netflix", "4899")
    assert await book(bank.docs, bank.events, "card_1", pan, (11, 2030), past) == "booked"
    assert await bank.ledger.relay() == {"pending": 0, "published": 0}
    assert bank.events.subjects() == [topology.SUBJECT_CARD_CAPTURED]


# ---- the processor API's timeouts ------------------------------------------------------------------
class _Wire:
    """One connection to the card API, in memory: the request fed, the answer and when it
    was written."""

    def __init__(self, path: str, data: dict[str, Any]) -> None:
        import json
        import time

        from fjordbank.domain import signatures

        body = json.dumps(data).encode()
        header = signatures.sign(b"s3cret", int(time.time()), body, path=path)
        self.reader = asyncio.StreamReader()
        self.reader.feed_data(
            f"POST {path} HTTP/1.1\r\nContent-Length: {len(body)}\r\n{signatures.HEADER}: {header}\r\n\r\n".encode()
            + body
        )
        self.data = b""
        self.written_at: float | None = None

    def write(self, data: bytes) -> None:
        self.data += data
        self.written_at = asyncio.get_running_loop().time()

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass

    def answer(self) -> tuple[int, dict[str, Any]]:
        import json

        head, _, body = self.data.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), json.loads(body)


async def _through_the_api(api: Any, path: str, data: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
    """A request through the card API server, hooks included: its answer and the seconds
    it took to be written (``api.handle`` returns only once the hooks are through)."""
    wire = _Wire(path, data)
    started = asyncio.get_running_loop().time()
    await api.handle(wire.reader, wire)  # type: ignore[arg-type]
    assert wire.written_at is not None
    return *wire.answer(), wire.written_at - started


def _processor_api(bank: Bank) -> Any:
    from types import SimpleNamespace

    from run_services.cards import processor_api

    settings = SimpleNamespace(card_api_port=8080, http_port=8080, http_host="127.0.0.1")
    return processor_api(settings, _card_service(bank))  # type: ignore[arg-type]


def _stalled(bank: Bank, operation: str, *, after_commit: bool) -> None:
    """``operation``'s transaction does not answer: before it commits, or after (the commit
    landed, its answer never comes)."""
    real = bank.docs.transact

    async def transact(fn, *, operation: str):  # type: ignore[no-untyped-def]
        if operation == stalled_operation and not after_commit:
            await asyncio.sleep(60)
        result = await real(fn, operation=operation)
        if operation == stalled_operation:
            await asyncio.sleep(60)
        return result

    stalled_operation = operation
    bank.docs.transact = transact  # type: ignore[method-assign]


async def test_an_authorisation_the_store_holds_up_is_answered_503_in_time_and_its_approval_released(
    bank: Bank,
) -> None:
    """Nothing bounded a processor's request: with the store not answering, the processor
    waited for the Firestore client's own waits (a minute or more) and had long declined in
    the issuer's stead (found in review, 2026-12-06). Now it is answered 503 "retry" within
    its 2 s; the approval committed before the cut is released as a late one is, and the
    processor's retry is answered from the record: declined, nothing held."""
    from run_services.cards import AUTHORIZATION_DEADLINE_SECONDS, AUTHORIZATION_TIMEOUT_SECONDS, AUTHORIZATIONS

    api = _processor_api(bank)
    pan = bank.add_card()
    data = _processor_request(bank, pan, "ref-1", 60_000)
    real = bank.docs.transact
    _stalled(bank, "cards_authorize", after_commit=True)
    status, answer, seconds = await _through_the_api(api, AUTHORIZATIONS, data)
    assert (status, answer) == (503, {"error": "timeout", "retryable": True})
    assert AUTHORIZATION_TIMEOUT_SECONDS <= seconds < AUTHORIZATION_DEADLINE_SECONDS
    record = bank.docs.data(f"cardAuthorizations/{authorization_id('ref-1')}") or {}
    assert (record["status"], record["reason"]) == ("reversed", "not_answered_in_time")
    assert bank.account()["held"] == 0 and bank.account()["available"] == bank.account()["balance"]
    bank.docs.transact = real  # type: ignore[method-assign]
    status, answer, _ = await _through_the_api(api, AUTHORIZATIONS, data)  # the processor's retry
    assert (status, answer["approved"], answer["reason"]) == (200, False, "not_answered_in_time")
    assert bank.account()["held"] == 0


async def test_an_authorisation_cut_off_before_it_committed_holds_nothing_even_if_its_commit_lands(
    bank: Bank,
) -> None:
    """Cut off before its commit was answered, the decision's fate is not known here: the
    reversal is recorded first (as the processor's own reversal of a request it timed out
    is), so neither the retry nor a commit that lands late holds any money."""
    from run_services.cards import AUTHORIZATIONS, UNANSWERED

    api = _processor_api(bank)
    pan = bank.add_card()
    data = _processor_request(bank, pan, "ref-2", 60_000)
    real = bank.docs.transact
    _stalled(bank, "cards_authorize", after_commit=False)
    released = UNANSWERED.labels("timed_out")._value.get()
    status, answer, _ = await _through_the_api(api, AUTHORIZATIONS, data)
    assert (status, answer["error"]) == (503, "timeout")
    record = bank.docs.data(f"cardAuthorizations/{authorization_id('ref-2')}") or {}
    assert (record["status"], record["reason"]) == ("reversed", "reversed_before_authorization")
    assert UNANSWERED.labels("timed_out")._value.get() == released  # no approval was released
    bank.docs.transact = real  # type: ignore[method-assign]
    late = await bank.cards.authorize(bank.request(pan, reference="ref-2", amount=60_000))
    assert (late.approved, late.reason, bank.account()["held"]) == (False, "reversed_before_authorization", 0)


async def test_an_authorisation_cut_off_mid_commit_whose_rollback_fails_is_released_not_tried_again(
    bank: Bank,
) -> None:
    """Cut off while its commit was in flight, the commit landed, and the rollback's error (the
    store away: transient) replaced the CancelledError: `_answered` took it for a store error
    and ran the handler again, no longer cancelled; that try failed too and answered 503, and
    the hook was told "late" with it, so the first try's approval was never released (found
    in review, 2026-12-06). Now the cancel goes on, and the hook releases by reference."""
    from google.api_core.exceptions import ServiceUnavailable

    from run_services.cards import AUTHORIZATIONS

    api = _processor_api(bank)
    pan = bank.add_card()
    data = _processor_request(bank, pan, "ref-3", 60_000)
    real = bank.docs.transact
    tries: list[str] = []

    async def transact(fn, *, operation: str):  # type: ignore[no-untyped-def]
        if operation != "cards_authorize":
            return await real(fn, operation=operation)
        tries.append(operation)
        if len(tries) > 1:
            raise ServiceUnavailable("the store is away")
        result = await real(fn, operation=operation)  # it landed; its answer never comes
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise ServiceUnavailable("the rollback failed") from None
        return result

    bank.docs.transact = transact  # type: ignore[method-assign]
    status, answer, _ = await _through_the_api(api, AUTHORIZATIONS, data)
    assert (status, answer) == (503, {"error": "timeout", "retryable": True})
    assert tries == ["cards_authorize"]  # not run again after the cut
    record = bank.docs.data(f"cardAuthorizations/{authorization_id('ref-3')}") or {}
    assert (record["status"], record["reason"]) == ("reversed", "not_answered_in_time")
    assert bank.account()["held"] == 0


async def test_an_approval_answered_after_the_cut_is_released_by_its_reference(bank: Bank) -> None:
    """A handler that answers an approval all the same after its cut is told TIMED_OUT with
    that answer: the approval counted as on its way is not, and its hold is released."""
    import json

    from fjordbank.runtime.http import TIMED_OUT, Exchange
    from run_services.cards import AUTHORIZATIONS

    service = _card_service(bank)
    pan = bank.add_card()
    data = _processor_request(bank, pan, "ref-4", 60_000)
    body = json.dumps(data).encode()
    status, answer = await service.authorize(data)
    assert (status, answer["approved"], service.references.in_flight("ref-4")) == (200, True, 1)
    await service.unanswered(Exchange(AUTHORIZATIONS, body, status, answer, 2.4), TIMED_OUT)
    assert service.references.in_flight("ref-4") == 0
    record = bank.docs.data(f"cardAuthorizations/{authorization_id('ref-4')}") or {}
    assert record["status"] == "reversed" and bank.account()["held"] == 0


async def test_a_capture_cut_off_at_its_timeout_is_answered_503_and_its_retry_as_it_was_decided(
    bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry a 503 asks for is safe: the capture committed before the cut is found by
    its captureReference and answered as decided, posted once; the release hook leaves
    captures alone."""
    from run_services import cards

    monkeypatch.setattr(cards, "SETTLEMENT_TIMEOUT_SECONDS", 0.3)
    api = _processor_api(bank)
    pan = bank.add_card()
    assert (await bank.buy(pan, amount=60_000)).approved
    real = bank.docs.transact
    _stalled(bank, "cards_capture", after_commit=True)
    capture = {"reference": "ref-1", "captureReference": "cap-1", "amount": 50_000}
    status, answer, seconds = await _through_the_api(api, "/v1/captures", capture)
    assert (status, answer, seconds < 0.6) == (503, {"error": "timeout", "retryable": True}, True)
    bank.docs.transact = real  # type: ignore[method-assign]
    status, answer, _ = await _through_the_api(api, "/v1/captures", capture)
    assert (status, answer["status"], answer["capturedAmount"]) == (200, "captured", 50_000)
    assert (bank.account()["balance"], bank.account()["held"]) == (100_000 - 50_000, 0)


async def test_the_card_service_s_store_waits_are_bounded_under_the_processor_s_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The card service's Firestore client had the client's own waits (60 s for a document
    or a commit, 300 s for a query: found in review, 2026-12-06)."""
    from run_services import cards

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")  # no credentials looked for; no call is made
    db = cards.card_store("demo-cards")  # on the running loop: its gRPC channel is made there
    assert db._firestore_api is not None  # made, with its transport
    transport = db._transport
    for rpc in ("get_document", "batch_get_documents", "begin_transaction", "commit", "rollback", "run_query"):
        assert (
            transport._wrapped_methods[getattr(transport, rpc)]._timeout.deadline == cards.STORE_CALL_DEADLINE_SECONDS
        ), rpc
    assert 0 < cards.STORE_CALL_DEADLINE_SECONDS < cards.AUTHORIZATION_TIMEOUT_SECONDS < 2.0


async def test_a_refused_refund_is_kept_and_one_posted_on_a_retry_closes_it(bank: Bank) -> None:
    """A refund the bank refused left no trace: the scheme clears it all the same, and the
    customer was never credited. Now it is kept as a refused capture is; and a refused
    capture or refund that a retry posts closes its refusal in the same commit ("posted"):
    left open, a reconciliation clearing the open ones posted it twice (found in review,
    2026-12-06)."""
    pan = bank.add_card()
    await bank.buy(pan, reference="ref-1", amount=25_000)
    early = await bank.ledger.refund("ref-1", refund_ref="rf-1", amount=5_000)
    assert (early.status, early.reason) == ("refused", "authorization_approved")
    assert await bank.ledger.note_refused_refund("ref-1", refund_ref="rf-1", amount=5_000, reason=early.reason)
    refusal = card_ledger.refusal_path(card_ledger.REFUND_REFUSALS, "ref-1", "rf-1")
    kept = bank.docs.data(refusal) or {}
    assert (kept["refundReference"], kept["amount"], kept["reason"], kept["status"]) == (
        "rf-1",
        5_000,
        "authorization_approved",
        "open",
    )
    assert (bank.docs.data(f"cardAuthorizations/{early.auth_id}") or {})["refusedRefunds"] == ["rf-1"]
    assert (await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=None)).status == "captured"
    again = await bank.ledger.refund("ref-1", refund_ref="rf-1", amount=5_000)  # the processor's retry
    assert again.status == "refunded" and bank.account()["balance"] == 80_000
    assert (bank.docs.data(refusal) or {})["status"] == "posted"


async def test_a_late_capture_refused_for_funds_and_posted_on_a_retry_closes_its_refusal(bank: Bank) -> None:
    pan = bank.add_card()
    old = await bank.buy(pan, reference="ref-old", amount=8_000)
    bank.clock.now = NOW + dt.timedelta(days=HOLD_DAYS, seconds=1)
    await bank.ledger.expire_holds()
    big = await bank.buy(pan, reference="ref-big", amount=95_000)  # what is left after it: 5,000
    assert big.approved
    late = await bank.ledger.capture("ref-old", capture_ref="cap-1", amount=8_000)
    assert (late.status, late.reason) == ("refused", "insufficient_funds")
    await bank.ledger.note_refused_capture("ref-old", capture_ref="cap-1", amount=8_000, reason=late.reason)
    refusal = card_ledger.refusal_path(card_ledger.CAPTURE_REFUSALS, "ref-old", "cap-1")
    assert (bank.docs.data(refusal) or {})["status"] == "open"
    assert (bank.docs.data(f"cardAuthorizations/{old.auth_id}") or {})["refusedCaptures"] == ["cap-1"]
    await bank.ledger.reverse("ref-big")  # the funds come back; the processor retries
    assert (await bank.ledger.capture("ref-old", capture_ref="cap-1", amount=8_000)).status == "captured"
    assert (bank.docs.data(refusal) or {})["status"] == "posted" and bank.account()["balance"] == 92_000
    # a capture posted that was never refused touches no refusal
    await bank.buy(pan, reference="ref-ok", amount=1_000)
    assert (await bank.ledger.capture("ref-ok", capture_ref="cap-9", amount=None)).status == "captured"
    assert bank.docs.data(card_ledger.refusal_path(card_ledger.CAPTURE_REFUSALS, "ref-ok", "cap-9")) is None


async def test_a_refusal_kept_after_a_retry_posted_it_is_posted_not_open(bank: Bank) -> None:
    """The processor retried while the refusal was being kept: the retry posted the refund,
    then the refusal was created "open" beside it, for a reconciliation to pay it twice
    (found in review, 2026-12-06). Kept in one unit of work with the record, it is "posted"."""
    pan = bank.add_card()
    await bank.buy(pan, reference="ref-1", amount=25_000)
    early = await bank.ledger.refund("ref-1", refund_ref="rf-1", amount=5_000)
    assert early.status == "refused"
    await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=None)
    assert (await bank.ledger.refund("ref-1", refund_ref="rf-1", amount=5_000)).status == "refunded"  # the retry
    assert not await bank.ledger.note_refused_refund("ref-1", refund_ref="rf-1", amount=5_000, reason=early.reason)
    kept = bank.docs.data(card_ledger.refusal_path(card_ledger.REFUND_REFUSALS, "ref-1", "rf-1")) or {}
    assert (kept["status"], kept["amount"], kept["refundReference"]) == ("posted", 5_000, "rf-1")


async def test_an_operation_posted_after_the_reconciliation_cleared_its_refusal_stays_cleared_and_says_so(
    bank: Bank, caplog: pytest.LogCaptureFixture
) -> None:
    pan = bank.add_card()
    await bank.buy(pan, reference="ref-1", amount=25_000)
    early = await bank.ledger.refund("ref-1", refund_ref="rf-1", amount=5_000)
    await bank.ledger.note_refused_refund("ref-1", refund_ref="rf-1", amount=5_000, reason=early.reason)
    path = card_ledger.refusal_path(card_ledger.REFUND_REFUSALS, "ref-1", "rf-1")
    bank.docs.put(path, {**(bank.docs.data(path) or {}), "status": "cleared"})  # credited by hand
    await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=None)
    assert (await bank.ledger.refund("ref-1", refund_ref="rf-1", amount=5_000)).status == "refunded"
    kept = bank.docs.data(path) or {}
    assert kept["status"] == "cleared" and kept["postedAfterClearing"] is True
    assert "a card operation the reconciliation cleared was posted by a retry" in caplog.text


async def test_refusals_past_the_record_s_bound_are_kept_and_said(bank: Bank, caplog: pytest.LogCaptureFixture) -> None:
    pan = bank.add_card()
    await bank.buy(pan, reference="ref-1", amount=25_000)
    for i in range(card_ledger.REFUSED_KEPT + 1):
        r = await bank.ledger.refund("ref-1", refund_ref=f"rf-{i}", amount=100)
        assert await bank.ledger.note_refused_refund("ref-1", refund_ref=f"rf-{i}", amount=100, reason=r.reason)
    record = bank.docs.data(f"cardAuthorizations/{r.auth_id}") or {}
    assert len(record["refusedRefunds"]) == card_ledger.REFUSED_KEPT
    assert "not named on its record (too many)" in caplog.text


async def test_a_reference_used_again_with_another_amount_is_kept_open(bank: Bank) -> None:
    """Refused as reference_reused, it was taken for posted (its reference was), hidden from
    the reconciliation and the metric, though the scheme settles the other amount (found in
    review, 2026-12-06)."""
    pan = bank.add_card()
    await bank.buy(pan, reference="ref-1", amount=25_000)
    assert (await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=20_000)).status == "captured"
    again = await bank.ledger.capture("ref-1", capture_ref="cap-1", amount=25_000)
    assert again.reason == "reference_reused"
    assert await bank.ledger.note_refused_capture("ref-1", capture_ref="cap-1", amount=25_000, reason=again.reason)
    path = card_ledger.refusal_path(card_ledger.CAPTURE_REFUSALS, "ref-1", "cap-1")
    assert (bank.docs.data(path) or {})["status"] == "open"
    assert (await bank.ledger.refund("ref-1", refund_ref="rf-1", amount=5_000)).status == "refunded"
    other = await bank.ledger.refund("ref-1", refund_ref="rf-1", amount=7_000)
    assert await bank.ledger.note_refused_refund("ref-1", refund_ref="rf-1", amount=7_000, reason=other.reason)
    assert (bank.docs.data(card_ledger.refusal_path(card_ledger.REFUND_REFUSALS, "ref-1", "rf-1")) or {})[
        "status"
    ] == "open"
