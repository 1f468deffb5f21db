"""Unit tests for fjordbank.service_layer.economy (the insights service's use case: "my
economy" and subscriptions kept from what is booked), on the in-memory documents
(tests/support/memory.py): what the app reads.

The promises: a booking is counted once however often it arrives (in one batch, in a later
one, as its payment's event and again in a replay); the customer's own category for a
merchant moves its bookings when they are booked again; a regular charge is listed as a
subscription, a customer's "not a subscription" sticks, a broken pattern is taken off the
list; an internal payment is booked for the payer from the payer's partition and for the
payee from the payee's, and a transfer between one's own accounts counts nowhere. The work
per batch: one read and one commit in a unit of work named ``insights_apply``, reading no
item and no month (money in creates its item, a charge's is on it in the merchant's
history, months incremented); a charge booked before is known from its history, and only a
batch with money in booked before (or a charge to move) is done again, reading them.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from fjordbank.domain import economy as em
from fjordbank.domain.bookings import Booking
from fjordbank.domain.economy_booking import EARLY_REFUNDS, EARLY_REFUNDS_KEPT, LISTED
from fjordbank.domain.norway import make_account_number
from fjordbank.domain.payments import INTERNAL, PaymentEvent, PaymentRequested, requested_in_app
from fjordbank.service_layer import economy, insights
from fjordbank.service_layer.owners import Owners
from fjordbank.topology import CREDITED
from tests.support.memory import AsyncMemoryDocuments, MemoryDocuments
from tests.support.recording import RecordingDocuments

UID = "u1"
ACCOUNT = make_account_number("1234", "56", 7891)
SAVINGS = make_account_number("1234", "56", 7894)
BOB = make_account_number("1234", "56", 7893)
NETFLIX = "m:netflix-com"
MONTH = "users/u1/economy/2026-11"


def card(tx: str, date: str, amount: int, merchant: str = "NETFLIX.COM", mcc: str = "4899") -> Booking:
    return Booking(UID, tx, ACCOUNT, date, amount, "out", "card", merchant_name=merchant, mcc=mcc)


MONTHLY = [card(f"n{i}", f"2026-{m:02d}-09", 12_900) for i, m in enumerate((8, 9, 10, 11))]


def payment(status: str, to: str, pid: str = "p" + "a" * 34) -> PaymentEvent:
    requested = PaymentRequested(
        payment_id=pid,
        uid=UID,
        request_id="req-1",
        kind=INTERNAL,
        from_account=ACCOUNT,
        to_account=to,
        amount=300_000,
        currency="NOK",
        message="Lønn",
        kid=None,
        due_date="2026-11-25",
        body_hash="0" * 64,
        requested_at="2026-11-25T08:00:00Z",
    )
    return PaymentEvent(requested, status, None, None)


def store() -> AsyncMemoryDocuments:
    docs = AsyncMemoryDocuments()
    docs.store.apply(
        [("set", f"accounts/{a}", {"ownerUid": o}, False) for a, o in [(ACCOUNT, UID), (SAVINGS, UID), (BOB, "bob")]]
    )
    return docs


def doc(docs: AsyncMemoryDocuments, path: str) -> dict[str, Any] | None:
    found = docs.store.doc(path)
    return None if found is None else found.data


def put(docs: AsyncMemoryDocuments, path: str, data: dict[str, Any]) -> None:
    docs.store.apply([("set", path, data, True)])  # merged, as the callables write


def charge(docs: AsyncMemoryDocuments, key: str, tx_id: str) -> dict[str, Any]:
    """A charge in the merchant's history (a charge out's item: its category)."""
    history = doc(docs, f"users/{UID}/merchantHistory/{key}") or {}
    return next(c for c in history.get("charges", []) if c["id"] == tx_id)


async def book(docs: AsyncMemoryDocuments, *batches: list[Booking]) -> list[economy.Applied]:
    return [await economy.apply_bookings(docs, batch) for batch in batches]


def choose(docs: AsyncMemoryDocuments, key: str, category: str, tx_id: str = "n3") -> None:
    """The customer picks ``category`` for the merchant of a spending entry in the feed,
    through the callable (its override, and its history's choice)."""
    put(docs, f"accounts/{ACCOUNT}/transactions/{tx_id}", {"direction": "out", "kind": "card", "merchantKey": key})
    insights.recategorise(MemoryDocuments(store=docs.store), UID, ACCOUNT, tx_id, category)


# -------------------------------------------------------------------------- counted once


async def test_a_booking_is_counted_once_however_often_it_arrives() -> None:
    docs = store()
    rema = card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")
    first, again, twice = await book(docs, [rema], [rema], [rema, rema])
    assert (first.changed_months, again.changed_months, twice.changed_months) == (1, 0, 0)
    month = doc(docs, MONTH) or {}
    assert (month["count"], month["spending"], month["spent"], month["savings"]) == (
        1,
        {"groceries": 45_000},
        45_000,
        -45_000,
    )
    assert charge(docs, "m:rema-1000", "c1") == {
        "id": "c1",
        "date": "2026-11-02",
        "amount": 45_000,
        "category": "groceries",
    }
    assert doc(docs, "users/u1/economyItems/c1") is None  # a charge out's item is its charge


async def test_a_redelivery_rewrites_no_item_and_no_month() -> None:
    docs = store()
    rema = card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")
    await book(docs, [rema])
    items_and_months = {p: v for p, v in docs.store.docs.items() if "/economy" in p}
    await book(docs, [rema])
    assert {p: v for p, v in docs.store.docs.items() if "/economy" in p} == items_and_months  # same versions


async def test_a_replay_of_a_payment_s_events_gives_the_same_figures() -> None:
    docs = store()
    owners = Owners(docs)
    events = [payment("completed", BOB), payment(CREDITED, BOB)]
    for _ in range(2):  # delivered, then every event again
        await book(docs, await economy.payment_bookings(owners, events))
    assert (doc(docs, MONTH) or {})["spending"] == {"transfers": 300_000}
    assert (doc(docs, "users/bob/economy/2026-11") or {})["income"] == 300_000
    assert (doc(docs, MONTH) or {})["count"] == (doc(docs, "users/bob/economy/2026-11") or {})["count"] == 1


# ---------------------------------------------------------------------- recategorisation


async def test_a_merchant_recategorised_by_the_customer_moves_its_bookings() -> None:
    docs = store()
    await book(docs, [MONTHLY[3]])
    assert (doc(docs, MONTH) or {})["spending"] == {"subscriptions": 12_900}
    choose(docs, NETFLIX, "entertainment")  # moves it at once
    month = doc(docs, MONTH) or {}
    assert (month["spending"], month["count"]) == ({"entertainment": 12_900}, 1)
    assert charge(docs, NETFLIX, "n3")["category"] == "entertainment"
    [again] = await book(docs, [MONTHLY[3]])  # booked again (a replay): nothing moves twice
    assert again.changed_months == 0
    await book(docs, [card("n4", "2026-11-29", 12_900)])  # a later charge is the customer's category too
    assert (doc(docs, MONTH) or {})["spending"] == {"entertainment": 25_800}


async def test_a_choice_made_before_the_merchants_first_charge_is_booked_applies_to_it() -> None:
    """The feed can show a charge before insights has booked it: a choice then makes the
    merchant's history, which the charge finds."""
    docs = recorded()
    choose(docs, NETFLIX, "entertainment")
    history = doc(docs, f"users/u1/merchantHistory/{NETFLIX}") or {}
    assert (history["charges"], history["chosenCategory"]) == ([], "entertainment")
    await book(docs, [MONTHLY[3]])
    [unit] = docs.units
    # it says the choice: no override read (how a subscription is listed: its document's to
    # say, once, since the choice did not write that on the history)
    assert [collections(r) for r in unit.reads] == [{"merchantHistory": 1}, {"subscriptions": 1}]
    assert (doc(docs, MONTH) or {})["spending"] == {"entertainment": 12_900}
    history = doc(docs, f"users/u1/merchantHistory/{NETFLIX}") or {}
    assert (history["chosenCategory"], history[LISTED]) == ("entertainment", None)  # says both from now on


# --------------------------------------------------------------------------- subscriptions


async def test_a_monthly_charge_is_detected_as_a_subscription() -> None:
    docs = store()
    applied = await book(docs, *[[c] for c in MONTHLY])
    assert [a.subscriptions_written for a in applied] == [0, 0, 1, 1]  # found from the third charge on
    sub = doc(docs, f"users/u1/subscriptions/{NETFLIX}") or {}
    assert (sub["interval"], sub["amount"], sub["status"], sub["category"]) == (
        "monthly",
        12_900,
        "active",
        "subscriptions",
    )
    assert sub["merchantName"] == "NETFLIX.COM" and "updatedAt" in sub
    history = doc(docs, f"users/u1/merchantHistory/{NETFLIX}") or {}
    assert [c["id"] for c in history["charges"]] == ["n0", "n1", "n2", "n3"]


async def test_a_dismissed_subscription_stays_dismissed_however_many_charges_follow() -> None:
    docs = store()
    await book(docs, *[[c] for c in MONTHLY[:3]])
    insights.set_subscription_status(MemoryDocuments(store=docs.store), "u1", NETFLIX, "dismissed")  # the callable
    await book(docs, [MONTHLY[3]], [card("n4", "2026-12-09", 12_900)])
    sub = doc(docs, f"users/u1/subscriptions/{NETFLIX}") or {}
    assert (sub["status"], sub["occurrences"]) == ("dismissed", 5)
    assert (doc(docs, f"users/u1/merchantHistory/{NETFLIX}") or {})[LISTED] == "dismissed"  # its copy, read instead


async def test_a_broken_pattern_is_taken_off_the_list() -> None:
    docs = store()
    path = f"users/u1/subscriptions/{NETFLIX}"
    put(docs, path, {"status": "active", "key": NETFLIX})
    put(
        docs, f"users/u1/merchantHistory/{NETFLIX}", {"charges": [{"id": "n0", "date": "2026-08-09", "amount": 12_900}]}
    )
    await book(docs, [card("odd", "2026-11-20", 99_000)])  # another price, another day: no pattern
    assert doc(docs, path) is None


# ------------------------------------------------------------------ payments and captures


async def test_an_internal_payment_is_booked_for_each_side_in_its_own_partition() -> None:
    docs = store()
    owners = Owners(docs)
    payer = await economy.payment_bookings(owners, [payment("completed", BOB)])
    payee = await economy.payment_bookings(owners, [payment(CREDITED, BOB)])
    assert [(b.uid, b.direction, b.account_id) for b in payer] == [(UID, "out", ACCOUNT)]
    assert [(b.uid, b.direction, b.account_id) for b in payee] == [("bob", "in", BOB)]
    assert await economy.payment_bookings(owners, [payment("submitted", BOB)]) == []  # not booked yet


async def test_a_payee_the_event_tells_is_booked_without_reading_its_account() -> None:
    unknown = "97100000999"  # no account document: only the event says whose it is
    told = requested_in_app(payment(CREDITED, unknown), payee_uid="carol")
    payee = await economy.payment_bookings(Owners(store()), [told])
    assert [(b.uid, b.direction, b.account_id) for b in payee] == [("carol", "in", unknown)]
    assert await economy.payment_bookings(Owners(store()), [payment(CREDITED, unknown)]) == []


async def test_a_transfer_between_own_accounts_counts_nowhere() -> None:
    docs = store()
    booked = await economy.payment_bookings(Owners(docs), [payment("completed", SAVINGS)])
    assert [b.own_transfer for b in booked] == [True]
    [applied] = await book(docs, booked)
    assert applied == economy.Applied(0, 0)
    assert not any(p.startswith("users/") for p in docs.store.docs)


async def test_a_card_capture_is_booked_and_anything_else_is_not() -> None:
    capture = {
        "status": "captured",
        "uid": UID,
        "auth_id": "auth-1",
        "account_id": ACCOUNT,
        "day": "2026-11-26",
        "amount": 10_000,
        "merchant_name": "KIWI 123",
        "mcc": "5411",
    }
    [booked] = economy.card_bookings([capture, {**capture, "status": "approved"}, {**capture, "amount": 0}])
    assert (booked.uid, booked.tx_id, booked.amount, booked.key) == (UID, "auth-1", 10_000, "m:kiwi")


def refund_event(refund_id: str = "rf1", amount: int = 15_000, **changes: Any) -> dict[str, Any]:
    """cards.refunded's wire form: part of a purchase at REMA 1000 given back."""
    return {
        "status": "refunded",
        "refund_id": refund_id,
        "auth_id": "c1",
        "uid": UID,
        "account_id": ACCOUNT,
        "day": "2026-11-20",
        "amount": amount,
        "merchant_name": "REMA 1000",
        "mcc": "5411",
        "category": "groceries",
        **changes,
    }


async def test_a_refund_takes_its_amount_off_the_purchase_s_category_once() -> None:
    docs = store()
    await book(docs, [card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")])
    [refund] = economy.card_bookings([refund_event()])
    first, again = await book(docs, [refund], [refund])  # delivered, and again
    assert (first.changed_months, again.changed_months) == (1, 0)
    month = doc(docs, MONTH) or {}
    assert (month["spending"], month["spent"], month["income"], month["count"]) == ({"groceries": 30_000}, 30_000, 0, 2)
    item = doc(docs, "users/u1/economyItems/rf1") or {}
    assert (item["category"], item["amount"], item["key"]) == ("groceries", -15_000, "m:rema-1000")
    history = doc(docs, "users/u1/merchantHistory/m:rema-1000") or {}
    assert [c["id"] for c in history["charges"]] == ["c1"]  # a refund is no charge
    # a whole refund in a later month than its purchase: that month's category goes below 0
    [later] = economy.card_bookings([refund_event("rf2", 30_000, day="2026-12-01")])
    await book(docs, [later])
    assert (doc(docs, "users/u1/economy/2026-12") or {})["spending"] == {"groceries": -30_000}


async def test_a_refund_moves_with_its_merchant_when_the_customer_recategorises() -> None:
    docs = store()
    await book(docs, [card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")])
    await book(docs, economy.card_bookings([refund_event()]))
    put(
        docs,
        f"accounts/{ACCOUNT}/transactions/rf1",
        {"direction": "in", "kind": "card_refund", "merchantKey": "m:rema-1000", "category": "groceries"},
    )
    choose(docs, "m:rema-1000", "restaurants", tx_id="c1")
    month = doc(docs, MONTH) or {}
    assert month["spending"] == {"restaurants": 30_000}
    assert (doc(docs, f"accounts/{ACCOUNT}/transactions/rf1") or {})["category"] == "restaurants"


async def test_a_redelivered_refund_after_a_recategorisation_stays_in_the_new_category() -> None:
    docs = store()
    await book(docs, [card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")])
    [refund] = economy.card_bookings([refund_event()])  # labelled groceries when refunded
    await book(docs, [refund])
    put(
        docs,
        f"accounts/{ACCOUNT}/transactions/rf1",
        {"direction": "in", "kind": "card_refund", "merchantKey": "m:rema-1000", "category": "groceries"},
    )
    choose(docs, "m:rema-1000", "restaurants", tx_id="c1")
    assert (doc(docs, MONTH) or {})["spending"] == {"restaurants": 30_000}
    await book(docs, [refund])  # redelivered: it stays where the recategorisation moved it
    assert (doc(docs, MONTH) or {})["spending"] == {"restaurants": 30_000}
    assert doc(docs, "users/u1/subscriptions/m:rema-1000") is None


async def test_a_refund_booked_after_a_recategorisation_it_raced_goes_to_the_chosen_category() -> None:
    docs = store()
    purchase = card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")
    await book(docs, [purchase])
    choose(docs, "m:rema-1000", "restaurants", tx_id="c1")
    [refund] = economy.card_bookings([refund_event()])  # labelled before the choice
    await book(docs, [refund])
    recomputed = em.recompute([purchase, refund], {"m:rema-1000": "restaurants"})
    assert (doc(docs, MONTH) or {})["spending"] == recomputed["2026-11"].spending == {"restaurants": 30_000}


async def test_a_whole_refund_booked_in_a_later_batch_agrees_with_the_recomputation() -> None:
    """The later batch increments the month without reading it, which leaves groceries at 0:
    a month read takes a category at 0 for none, as the recomputation has it (found by review)."""
    docs = store()
    await book(docs, [card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")])  # cards.captured
    await book(docs, economy.card_bookings([refund_event(amount=45_000)]))  # cards.refunded, later
    refunded = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
    record = {
        "ownerUid": UID,
        "status": "captured",
        "capturedAmount": 45_000,
        "accountId": ACCOUNT,
        "merchantName": "REMA 1000",
        "mcc": "5411",
        "spendDay": "2026-11-02",
        "refunds": {"rf1": {"amount": 45_000, "category": "groceries", "refundedAt": refunded}},
    }
    docs.store.apply([("set", "cardAuthorizations/c1", record, False)])
    assert insights.economy_differences(MemoryDocuments(store=docs.store), UID) == []
    assert insights.stored_economy(MemoryDocuments(store=docs.store), UID)["2026-11"].spending == {}


def test_a_refund_event_is_booked_and_anything_else_is_not() -> None:
    [booked] = economy.card_bookings(
        [refund_event(), refund_event(amount=0), refund_event(refund_id=None), refund_event(status="approved")]
    )
    assert (booked.tx_id, booked.amount, booked.refund, booked.category) == ("rf1", 15_000, True, "groceries")
    assert em.item_of(booked) == em.Item("2026-11", "out", "groceries", -15_000)


def test_the_months_recomputed_count_refunds_as_the_incremental_path_does() -> None:
    purchase = card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")
    [refund] = economy.card_bookings([refund_event()])
    [month] = em.recompute([purchase, refund]).values()
    assert (month.spending, month.count) == ({"groceries": 30_000}, 2)


# ------------------------------------------------------------------------ the work per batch


def recorded() -> RecordingDocuments:
    """The documents of `store`, recording what each unit of work reads and writes."""
    docs = RecordingDocuments()
    docs.store = store().store
    return docs


def collections(paths: list[str]) -> dict[str, int]:
    """How many of ``paths`` are in each of the customer's collections."""
    return dict(Counter(p.split("/")[2] for p in paths))


def economy_docs(docs: AsyncMemoryDocuments) -> dict[str, dict[str, Any]]:
    """The items and months, without their timestamps."""
    return {
        p: {k: v for k, v in data.items() if k != "updatedAt"}
        for p, (data, _) in docs.store.docs.items()
        if p.split("/")[2:3] in (["economy"], ["economyItems"])
    }


async def test_a_fresh_batch_reads_no_item_and_no_month_and_creates_its_items() -> None:
    docs = recorded()
    salary = Booking(UID, "salary", ACCOUNT, "2026-11-25", 4_500_000, "in", "payment", counterparty_account=BOB)
    await book(docs, [*MONTHLY, salary])
    [unit] = docs.units
    assert unit.operation == economy.OPERATION
    # the merchant's history (no subscription: none without a history), then, since it has
    # none yet to say the customer's category, its override: no item, no month; one commit
    assert [collections(r) for r in unit.reads] == [{"merchantHistory": 1}, {"categoryOverrides": 1}]
    # money in creates its item; the charges' items are on them, in the history
    assert [p for kind, p in unit.writes if kind == "create"] == ["users/u1/economyItems/salary"]
    assert [c["category"] for c in (doc(docs, f"users/u1/merchantHistory/{NETFLIX}") or {})["charges"]] == [
        "subscriptions"
    ] * 4
    assert collections([p for kind, p in unit.writes if kind == "set"]) == {
        "economy": 4,  # the months, as increments
        "merchantHistory": 1,
        "subscriptions": 1,
    }
    month = doc(docs, MONTH) or {}
    assert {k: v for k, v in month.items() if k != "updatedAt"} == {
        "month": "2026-11",
        "income": 4_500_000,
        "spending": {"subscriptions": 12_900},
        "spent": 12_900,
        "savings": 4_487_100,
        "count": 2,
    }


async def test_a_redelivered_batch_of_charges_is_counted_once_from_their_histories() -> None:
    docs = recorded()
    rema = card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")
    await book(docs, [rema, MONTHLY[3]])
    docs.forget()
    batch = [rema, MONTHLY[3], card("c2", "2026-11-03", 5_000, "REMA 1000", "5411")]
    # (every choice on its history: a history that says None has none; before, the override is read)
    again = await economy.apply_bookings(docs, batch, choices_on_histories=True)
    assert again.changed_months == 1  # the new one's
    [unit] = docs.units  # the charges booked before are in their histories: one read, one commit
    assert [collections(r) for r in unit.reads] == [{"merchantHistory": 2}]  # they say the choice: no override
    assert not any(kind == "create" for kind, _ in unit.writes)
    month = doc(docs, MONTH) or {}
    assert (month["count"], month["spending"]) == (3, {"groceries": 50_000, "subscriptions": 12_900})


async def test_a_redelivered_batch_of_money_in_is_counted_once_and_read_only_then() -> None:
    docs = recorded()
    salary = Booking(UID, "salary", ACCOUNT, "2026-11-25", 4_500_000, "in", "payment", counterparty_account=BOB)
    refund = Booking(UID, "refund", ACCOUNT, "2026-11-26", 5_000, "in", "payment", counterparty_account=SAVINGS)
    await book(docs, [salary])
    before = economy_docs(docs)
    docs.forget()
    [again] = await book(docs, [salary, refund])
    assert again.changed_months == 1  # the new one's
    optimistic, redone = docs.units
    assert collections([p for kind, p in optimistic.writes if kind == "create"]) == {"economyItems": 2}
    assert collections(redone.reads[0]) == {"economyItems": 2, "economy": 1}
    assert not any(kind == "create" for kind, _ in redone.writes)
    written = [p for _, p in redone.writes]
    assert collections(written)["economyItems"] == 1 and "users/u1/economyItems/refund" in written  # the new one only
    month = doc(docs, MONTH) or {}
    assert (month["count"], month["income"]) == (2, 4_505_000)
    assert economy_docs(docs)["users/u1/economyItems/salary"] == before["users/u1/economyItems/salary"]


async def test_a_booking_twice_in_a_fresh_batch_is_booked_once() -> None:
    docs = recorded()
    [applied] = await book(docs, [*MONTHLY, MONTHLY[0]])
    [unit] = docs.units  # not taken as booked before: its charge is in the history once
    assert applied.changed_months == 4
    assert [c["id"] for c in (doc(docs, f"users/u1/merchantHistory/{NETFLIX}") or {})["charges"]].count("n0") == 1
    assert unit.written("users/u1/economy/2026-08") == 1
    assert (doc(docs, "users/u1/economy/2026-08") or {})["count"] == 1
    assert (doc(docs, "users/u1/economy/2026-08") or {})["spending"] == {"subscriptions": 12_900}


async def test_a_booking_twice_in_a_redone_batch_is_booked_once() -> None:
    docs = recorded()
    rema = card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")
    kiwi = card("c2", "2026-11-03", 5_000, "KIWI 7", "5411")
    await book(docs, [rema], [rema, kiwi, kiwi, rema])
    month = doc(docs, MONTH) or {}
    assert (month["count"], month["spending"], month["spent"]) == (2, {"groceries": 50_000}, 50_000)


async def test_a_recategorisation_after_the_optimistic_path_still_moves_the_amount() -> None:
    docs = recorded()
    await book(docs, [MONTHLY[3], card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")])
    # a choice from before the merchant's history said it (a history written before the
    # field, the override document only): the override is read and the amount moved
    history = f"users/u1/merchantHistory/{NETFLIX}"
    docs.store.apply(
        [("set", history, {k: v for k, v in (doc(docs, history) or {}).items() if k != "chosenCategory"}, False)]
    )
    put(docs, f"users/u1/categoryOverrides/{NETFLIX}", {"category": "entertainment", "key": NETFLIX})
    docs.forget()
    [moved] = await book(docs, [MONTHLY[3]])
    assert moved.changed_months == 1 and len(docs.units) == 2  # its charge was there: done again, reading its month
    month = doc(docs, MONTH) or {}
    # no "subscriptions": 0 left behind (a month written whole on this path, not incremented)
    assert month["spending"] == {"entertainment": 12_900, "groceries": 45_000}
    assert (month["count"], month["spent"], month["savings"]) == (2, 57_900, -57_900)
    assert charge(docs, NETFLIX, "n3")["category"] == "entertainment"


MIXED = [
    Booking(UID, "salary", ACCOUNT, "2026-11-25", 4_500_000, "in", "payment", counterparty_account=BOB),
    card("c1", "2026-11-02", 45_000, "REMA 1000", "5411"),
    card("c2", "2026-10-30", 12_900),
    Booking(UID, "rent", ACCOUNT, "2026-11-01", 1_200_000, "out", "payment", counterparty_account=BOB),
    Booking(
        UID, "own", ACCOUNT, "2026-11-26", 500_000, "out", "payment", counterparty_account=SAVINGS, own_transfer=True
    ),
    card("c3", "2026-11-12", 89_000, "Egon Karl Johan", "5812"),
    Booking("bob", "gift", BOB, "2026-11-20", 20_000, "in", "payment", counterparty_account=ACCOUNT),
]


async def test_the_months_are_what_reading_them_gave_for_mixed_batches() -> None:
    """Income, spending in several categories, two months, two customers, an own transfer,
    a booking twice and batches that overlap: the documents written with increments are the
    ones read and written whole gave before (and a recomputation)."""
    batches = [MIXED[:3], [*MIXED[2:6], MIXED[3]], MIXED, MIXED[5:]]
    now, then = store(), store()
    for batch in batches:
        await economy.apply_bookings(now, batch)
        await economy._apply(then, batch, replays=True)  # every item and month read, as before
    assert economy_docs(now) == economy_docs(then)
    for uid in (UID, "bob"):
        recomputed = em.recompute([b for b in MIXED if b.uid == uid])
        for month, figures in recomputed.items():
            stored = doc(now, f"users/{uid}/economy/{month}") or {}
            assert em.Month.from_dict(stored).figures() == figures.figures()


async def test_a_month_of_income_only_has_every_figure_but_no_spending_map() -> None:
    """A month started by increments has no empty ``spending`` (an empty map merged would
    wipe the categories on Firestore); whoever reads it takes none as empty."""
    docs = store()
    await book(docs, [MIXED[-1]])
    month = doc(docs, "users/bob/economy/2026-11") or {}
    assert {k: v for k, v in month.items() if k != "updatedAt"} == {
        "month": "2026-11",
        "income": 20_000,
        "spent": 0,
        "savings": 20_000,
        "count": 1,
    }
    assert em.Month.from_dict(month).to_dict()["spending"] == {}


async def test_own_transfers_alone_read_nothing() -> None:
    docs = recorded()
    booked = [
        Booking(
            UID, "t1", ACCOUNT, "2026-11-04", 300, "out", "payment", counterparty_account=SAVINGS, own_transfer=True
        )
    ]
    await book(docs, booked)
    [unit] = docs.units
    assert unit.reads == [] and unit.writes == [] and docs.attempts == {economy.OPERATION: 1}


# ---- a charge refunded in full (found in review, 2026-12-05) ------------------------------------
def _netflix(status: str, tx: str, day: str, **more: Any) -> dict[str, Any]:
    """cards.captured's (or cards.refunded's) wire form: 129 kr at NETFLIX.COM."""
    event = {"status": status, "uid": "u1", "account_id": "12345678903", "day": day, "amount": 12_900}
    return {**event, "merchant_name": "NETFLIX.COM", "mcc": "4899", **more} | (
        {"auth_id": tx} if status == "captured" else {"refund_id": tx}
    )


async def test_a_charge_refunded_in_full_does_not_keep_the_subscription_off_the_list():
    """Charged twice by mistake in October, the extra charge given back: the refund never
    touched the merchant's history, whose duplicate then read as another charge of about
    the price inside the chain's span, and the subscription stayed off the list for as
    long as the history kept it (60 charges: five years)."""
    from tests.support.memory import AsyncMemoryDocuments

    docs = AsyncMemoryDocuments()
    listed = "users/u1/subscriptions/m:netflix-com"

    async def book(*events: dict[str, Any]) -> None:
        await economy.apply_bookings(docs, economy.card_bookings(list(events)))

    for n, month in enumerate(("2026-07", "2026-08", "2026-09", "2026-10")):
        await book(_netflix("captured", f"a{n}", f"{month}-09"))
    assert docs.store.doc(listed) is not None
    await book(_netflix("captured", "dup", "2026-10-09"))
    refund = _netflix("refunded", "rf-dup", "2026-10-12", auth_id="dup", category="subscriptions")
    await book(refund)
    await book(refund)  # delivered again: noted once
    history = docs.store.doc("users/u1/merchantHistory/m:netflix-com").data  # type: ignore[union-attr]
    assert [c.get("refunds") for c in history["charges"] if c["id"] == "dup"] == [{"rf-dup": 12_900}]
    await book(_netflix("captured", "b0", "2026-11-09"))
    found = docs.store.doc(listed)
    assert found is not None and found.data["status"] == "active" and found.data["nextExpected"] == "2026-12-09"
    october = docs.store.doc("users/u1/economy/2026-10").data  # type: ignore[union-attr]
    assert october["spending"] == {"subscriptions": 12_900}  # the month's charge; the duplicate given back


async def test_a_refund_booked_before_its_charge_is_noted_on_the_charge_when_it_comes():
    """Two charges made twice by mistake, each refund booked before its capture (a capture
    the card service published late, or one handed back with a delay): the refunds were
    passed over, both duplicates counted as charges, and the subscription went off the list
    (found in review, 2026-12-06). Now each waits on the history for its charge."""
    from tests.support.memory import AsyncMemoryDocuments

    docs = AsyncMemoryDocuments()
    history = "users/u1/merchantHistory/m:netflix-com"

    async def book(*events: dict[str, Any]) -> None:
        await economy.apply_bookings(docs, economy.card_bookings(list(events)))

    for n, month in enumerate(("2026-05", "2026-06", "2026-07", "2026-08", "2026-09")):
        await book(_netflix("captured", f"a{n}", f"{month}-09"))
    for dup, day in (("dup1", "2026-07-09"), ("dup2", "2026-09-09")):
        refund = _netflix("refunded", f"rf-{dup}", day, auth_id=dup, category="subscriptions")
        await book(refund)
        await book(refund)  # delivered again: kept once
        waiting = {f"rf-{dup}": {"purchase": dup, "amount": 12_900, "date": day}}
        assert docs.store.doc(history).data[EARLY_REFUNDS] == waiting  # type: ignore[union-attr]
        await book(_netflix("captured", dup, day))
        assert docs.store.doc(history).data[EARLY_REFUNDS] == {}  # type: ignore[union-attr]
    await book(_netflix("captured", "b0", "2026-10-09"))
    noted = {c["id"]: c.get("refunds") for c in docs.store.doc(history).data["charges"]}  # type: ignore[union-attr]
    assert (noted["dup1"], noted["dup2"]) == ({"rf-dup1": 12_900}, {"rf-dup2": 12_900})
    listed = docs.store.doc("users/u1/subscriptions/m:netflix-com")
    assert listed is not None and listed.data["status"] == "active"


async def test_refunds_whose_charges_never_come_keep_only_the_newest_waiting():
    from tests.support.memory import AsyncMemoryDocuments

    docs = AsyncMemoryDocuments()
    refunds = [
        _netflix("refunded", f"rf{n:02d}", f"2026-10-{n + 1:02d}", auth_id=f"gone{n:02d}", category="subscriptions")
        for n in range(EARLY_REFUNDS_KEPT + 5)
    ]
    await economy.apply_bookings(docs, economy.card_bookings(refunds))
    waiting = docs.store.doc("users/u1/merchantHistory/m:netflix-com").data[EARLY_REFUNDS]  # type: ignore[union-attr]
    assert sorted(waiting) == [f"rf{n:02d}" for n in range(5, EARLY_REFUNDS_KEPT + 5)]  # the latest days'


async def test_a_refund_on_a_history_written_before_it_said_its_listing_keeps_the_customers_dismissal():
    """A history from before ``subscriptionStatus``: its listing is its subscription
    document's, read for a charge only; a refund-only batch rewrote the history and listed
    the dismissed subscription as active again (found in review of the refunds change)."""
    from tests.support.memory import AsyncMemoryDocuments

    docs = AsyncMemoryDocuments()
    history, subscription = "users/u1/merchantHistory/m:netflix-com", "users/u1/subscriptions/m:netflix-com"
    charges = [{"id": f"a{n}", "date": f"2026-{m:02d}-09", "amount": 12_900} for n, m in enumerate((7, 8, 9, 10))]
    batch = docs.batch()
    batch.set(history, {"key": "m:netflix-com", "name": "NETFLIX.COM", "charges": charges})
    batch.set(subscription, {"key": "m:netflix-com", "status": "dismissed", "interval": "monthly"})
    await batch.commit()
    refund = _netflix("refunded", "rf1", "2026-10-20", auth_id="a3", category="subscriptions") | {"amount": 2_000}
    await economy.apply_bookings(docs, economy.card_bookings([refund]))
    assert docs.store.doc(subscription).data["status"] == "dismissed"  # type: ignore[union-attr]
    assert docs.store.doc(history).data[LISTED] == "dismissed"  # type: ignore[union-attr]
