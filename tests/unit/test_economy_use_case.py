"""Unit tests for fjordbank.service_layer.economy (the insights service's use case: "my
economy" and subscriptions kept from what is booked), on the in-memory documents
(tests/support/memory.py): what the app reads.

The promises: a booking is counted once however often it arrives (in one batch, in a later
one, as its payment's event and again in a replay); the customer's own category for a
merchant moves its bookings when they are booked again; a regular charge is listed as a
subscription, a customer's "not a subscription" sticks, a broken pattern is taken off the
list; an internal payment is booked for the payer from the payer's partition and for the
payee from the payee's, and a transfer between one's own accounts counts nowhere. The work
per batch: one read and one commit in a unit of work named ``insights_apply``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fjordbank.domain.bookings import Booking
from fjordbank.domain.norway import make_account_number
from fjordbank.domain.payments import INTERNAL, PaymentEvent, PaymentRequested
from fjordbank.service_layer import economy
from fjordbank.service_layer.owners import Owners
from fjordbank.service_layer.ports import Doc
from fjordbank.topology import CREDITED
from tests.support.memory import AsyncMemoryDocuments, AsyncMemoryUnitOfWork

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


async def book(docs: AsyncMemoryDocuments, *batches: list[Booking]) -> list[economy.Applied]:
    return [await economy.apply_bookings(docs, batch) for batch in batches]


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
    item = doc(docs, "users/u1/economyItems/c1") or {}
    assert (item["amount"], item["category"], item["accountId"], item["key"]) == (
        45_000,
        "groceries",
        ACCOUNT,
        "m:rema-1000",
    )


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
    put(docs, f"users/u1/categoryOverrides/{NETFLIX}", {"category": "entertainment", "key": NETFLIX})
    [moved] = await book(docs, [MONTHLY[3]])  # booked again (a replay, or the next charge's batch)
    assert moved.changed_months == 1
    month = doc(docs, MONTH) or {}
    assert (month["spending"], month["count"]) == ({"entertainment": 12_900}, 1)
    assert (doc(docs, "users/u1/economyItems/n3") or {})["category"] == "entertainment"
    await book(docs, [card("n4", "2026-11-29", 12_900)])  # a later charge is the customer's category too
    assert (doc(docs, MONTH) or {})["spending"] == {"entertainment": 25_800}


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
    put(docs, f"users/u1/subscriptions/{NETFLIX}", {"status": "dismissed"})  # "not a subscription"
    await book(docs, [MONTHLY[3]], [card("n4", "2026-12-09", 12_900)])
    sub = doc(docs, f"users/u1/subscriptions/{NETFLIX}") or {}
    assert (sub["status"], sub["occurrences"]) == ("dismissed", 5)


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


# ------------------------------------------------------------------------ the work per batch


class Counted(AsyncMemoryDocuments):
    """The memory documents, counting each unit of work's reads."""

    def __init__(self) -> None:
        super().__init__()
        self.unit_reads: list[list[str]] = []

    async def transact(self, fn: Any, *, operation: str) -> Any:
        async def counted(uow: AsyncMemoryUnitOfWork) -> Any:
            real = uow.get_many

            async def get_many(paths: Sequence[str]) -> dict[str, Doc | None]:
                self.unit_reads.append(list(paths))
                return await real(paths)

            uow.get_many = get_many
            return await fn(uow)

        return await super().transact(counted, operation=operation)


async def test_a_batch_is_one_unit_of_work_with_one_read_of_each_document_it_needs() -> None:
    docs = Counted()
    await book(docs, [*MONTHLY, MONTHLY[0]])
    assert docs.attempts == {economy.OPERATION: 1}
    [paths] = docs.unit_reads
    # four items and their four months; the merchant's override, history and subscription
    assert len(paths) == len(set(paths)) == 4 + 4 + 3
    assert {p.split("/")[2] for p in paths} == {
        "economyItems",
        "categoryOverrides",
        "economy",
        "merchantHistory",
        "subscriptions",
    }


async def test_own_transfers_alone_read_nothing() -> None:
    docs = Counted()
    booked = [
        Booking(
            UID, "t1", ACCOUNT, "2026-11-04", 300, "out", "payment", counterparty_account=SAVINGS, own_transfer=True
        )
    ]
    await book(docs, booked)
    assert docs.unit_reads == [] and docs.attempts == {economy.OPERATION: 1}
