"""My economy: the incremental figures equal a recomputation, whatever the order, however
often a booking is applied, and after recategorisation."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from fjordbank.domain import bookings, economy
from fjordbank.domain.bookings import Booking
from fjordbank.domain.payments import PaymentEvent, PaymentRequested

UID = "u1"


def card(tx: str, date: str, amount: int, merchant: str, mcc: str) -> Booking:
    return Booking(UID, tx, "12345678903", date, amount, "out", "card", merchant_name=merchant, mcc=mcc)


def payment(tx: str, date: str, amount: int, direction: str, *, kid=None, own=False) -> Booking:
    return Booking(
        UID,
        tx,
        "12345678903",
        date,
        amount,
        direction,
        "payment",
        counterparty_account="86011117947",
        kid=kid,
        own_transfer=own,
    )


HISTORY = [
    payment("salary-1", "2026-10-25", 4_500_000, "in"),
    card("c1", "2026-10-02", 45_000, "REMA 1000 MAJORSTUEN", "5411"),
    card("c2", "2026-10-09", 12_900, "NETFLIX.COM", "4899"),
    card("c3", "2026-11-02", 51_000, "Rema 1000 Majorstuen 23", "5411"),
    card("c4", "2026-11-03", 89_000, "Egon Karl Johan", "5812"),
    payment("rent-11", "2026-11-01", 1_200_000, "out"),
    payment("power-11", "2026-11-15", 180_000, "out", kid="1234567890003"),
    payment("savings-11", "2026-11-26", 500_000, "out", own=True),
    payment("salary-2", "2026-11-25", 4_500_000, "in"),
]


def apply_incrementally(history, overrides=None, *, state=None):
    months, items = state or ({}, {})
    for b in history:
        new = economy.item_of(b, overrides)
        old = items.get(b.tx_id)
        if economy.apply(months, old, new):
            items[b.tx_id] = new
    return months, items


def figures(months):
    return {m: v.figures() for m, v in months.items() if v.count}


def test_month_figures():
    months = economy.recompute(HISTORY)
    nov = months["2026-11"]
    assert nov.income == 4_500_000
    assert nov.spending == {"groceries": 51_000, "restaurants": 89_000, "transfers": 1_200_000, "bills": 180_000}
    assert nov.spent == 1_520_000
    assert nov.savings == 4_500_000 - 1_520_000
    assert nov.count == 5  # the transfer to an own savings account is not counted
    oct_ = months["2026-10"]
    assert oct_.spending == {"groceries": 45_000, "subscriptions": 12_900}


def test_comparison_with_the_previous_month():
    months = economy.recompute(HISTORY)
    diff = economy.compare(months["2026-11"], months["2026-10"])
    assert diff["previousMonth"] == "2026-10"
    assert diff["income"] == 0
    assert diff["spending"]["groceries"] == 6_000
    assert diff["spending"]["subscriptions"] == -12_900
    assert diff["spent"] == 1_520_000 - 57_900
    first = economy.compare(months["2026-10"], None)
    assert first["previousMonth"] == "2026-09" and first["income"] == 4_500_000
    assert economy.previous_month("2026-01") == "2025-12"


def test_redelivered_bookings_change_nothing():
    months, items = apply_incrementally(HISTORY)
    again, _ = apply_incrementally(HISTORY + HISTORY[::-1], state=(months, items))
    assert figures(again) == figures(economy.recompute(HISTORY))


def test_recategorisation_moves_the_amounts_and_equals_a_recomputation():
    months, items = apply_incrementally(HISTORY)
    overrides = {"m:rema-1000-majorstuen": "restaurants"}
    apply_incrementally(HISTORY, overrides, state=(months, items))
    expected = economy.recompute(HISTORY, overrides)
    assert figures(months) == figures(expected)
    assert "groceries" not in months["2026-11"].spending
    assert months["2026-11"].spending["restaurants"] == 51_000 + 89_000


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=1, max_value=3))
def test_any_order_and_any_number_of_deliveries_equal_a_recomputation(seed, copies):
    rng = random.Random(seed)
    deliveries = [b for b in HISTORY for _ in range(rng.randint(1, copies))]
    rng.shuffle(deliveries)
    months, _ = apply_incrementally(deliveries)
    assert figures(months) == figures(economy.recompute(HISTORY))


def test_month_documents_round_trip():
    months = economy.recompute(HISTORY)
    for month in months.values():
        assert economy.Month.from_dict(month.to_dict()).figures() == month.figures()


def _requested(**overrides) -> PaymentRequested:
    base = {
        "payment_id": "p1",
        "uid": "payer",
        "request_id": "r1",
        "kind": "internal",
        "from_account": "12345678903",
        "to_account": "86011117947",
        "amount": 10_000,
        "currency": "NOK",
        "message": None,
        "kid": None,
        "due_date": "2026-11-20",
        "body_hash": "h",
        "requested_at": "2026-11-19T10:00:00+00:00",
    }
    return PaymentRequested(**{**base, **overrides})


def test_a_completed_internal_payment_is_booked_for_payer_and_payee():
    event = PaymentEvent(_requested(), "completed")
    payer, payee = bookings.from_payment(event, payee_uid="payee")
    assert (payer.uid, payer.direction, payer.account_id, payer.date) == ("payer", "out", "12345678903", "2026-11-20")
    assert (payee.uid, payee.direction, payee.account_id) == ("payee", "in", "86011117947")
    assert economy.item_of(payee).category == "income"
    assert bookings.from_payment(PaymentEvent(_requested(), "reserved"), payee_uid="payee") == []
    own = bookings.from_payment(event, payee_uid="payer")
    assert all(b.own_transfer for b in own) and all(economy.item_of(b) is None for b in own)
    external = bookings.from_payment(PaymentEvent(_requested(kind="external"), "completed"), payee_uid=None)
    assert [b.direction for b in external] == ["out"]


def test_each_partition_books_its_own_customers_side_of_an_internal_payment():
    """The payer's partition applies the payer's side on ``completed``, the payee's partition
    the payee's on ``credited``: no customer's economy is written from two partitions."""
    completed = PaymentEvent(_requested(), "completed")
    [payer] = bookings.for_partition(completed, payee_uid="payee")
    [payee] = bookings.for_partition(PaymentEvent(_requested(), "credited"), payee_uid="payee")
    assert (payer.uid, payer.direction) == ("payer", "out")
    assert (payee.uid, payee.direction, payee.account_id) == ("payee", "in", "86011117947")
    assert [payer, payee] == bookings.from_payment(completed, payee_uid="payee")  # the same bookings, split
    assert bookings.for_partition(PaymentEvent(_requested(), "credited"), payee_uid=None) == []
    assert bookings.for_partition(PaymentEvent(_requested(), "credit"), payee_uid="payee") == []
    external = PaymentEvent(_requested(kind="external"), "completed")
    assert [b.direction for b in bookings.for_partition(external, payee_uid=None)] == ["out"]


def test_a_card_capture_is_booked_on_its_day():
    event = {
        "status": "captured",
        "uid": "u",
        "auth_id": "a1",
        "account_id": "12345678903",
        "amount": 4500,
        "merchant_name": "KIWI 123",
        "mcc": "5411",
        "day": "2026-11-26",
    }
    [b] = bookings.from_card_capture(event)
    assert (b.date, b.amount, b.key) == ("2026-11-26", 4500, "m:kiwi")
    assert economy.item_of(b).category == "groceries"
    for broken in ({"amount": 0}, {"amount": 1.5}, {"day": None}, {"uid": None}, {"status": "reversed"}):
        assert bookings.from_card_capture({**event, **broken}) == []
