"""Transaction categories: MCC for card purchases, payee rules for payments, the
customer's choice sticking per merchant."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjordbank.domain.categories import CATEGORIES, categorise, mcc_category, merchant_key, override_key


@pytest.mark.parametrize(
    ("mcc", "category"),
    [
        ("5411", "groceries"),  # supermarkets
        ("5812", "restaurants"),
        ("5814", "restaurants"),  # fast food
        ("4111", "transport"),  # Ruter
        ("4784", "transport"),  # bompenger
        ("5541", "transport"),  # fuel
        ("5552", "transport"),  # electric vehicle charging
        ("7512", "transport"),  # car rental, the generic code
        ("4511", "travel"),  # airlines
        ("7011", "travel"),  # hotels
        ("5912", "health"),  # apotek
        ("5815", "subscriptions"),  # digital media
        ("4899", "subscriptions"),  # streaming
        ("6011", "cash"),  # ATM
        ("5651", "shopping"),
        ("7832", "entertainment"),  # cinema
        ("4900", "housing"),  # electricity
        ("0742", "other"),  # veterinary: no category of its own
        (None, "other"),
        ("12", "other"),
        ("abcd", "other"),
    ],
)
def test_card_purchases_are_categorised_by_mcc(mcc, category):
    assert mcc_category(mcc) == category


@given(st.integers(0, 9999))
def test_every_mcc_has_a_known_category(code):
    assert mcc_category(f"{code:04d}") in CATEGORIES


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("REMA 1000 MAJORSTUEN 23", "Rema 1000 Majorstuen"),
        ("Kiwi Grünerløkka", "KIWI GRUNERLØKKA"),
        ("Narvesen Oslo S.", "narvesen oslo s"),
        ("SPOTIFY AB", "Spotify AB"),
    ],
)
def test_one_merchant_one_key(a, b):
    assert merchant_key(a) == merchant_key(b)


def test_different_merchants_different_keys():
    assert merchant_key("Rema 1000") != merchant_key("Coop Extra")
    assert merchant_key("Rema 1000") == "rema-1000"


def test_merchants_named_in_another_script_or_with_no_letter_are_told_apart():
    """All of these were "unknown" (or their store number, "12"): one key, so one category
    choice, one history and one subscription for every such merchant a customer paid."""
    names = [
        "Яндекс Такси",
        "Пятёрочка",
        "セブンイレブン",
        "ΣΚΛΑΒΕΝΙΤΗΣ 12",
        "***",
        "+++",
        "*** 12",
        "+++ 12",
        "1881",
        "Rema 1000",
    ]
    keys = [merchant_key(n) for n in names]
    assert len(set(keys)) == len(keys) and "unknown" not in keys and "12" not in keys
    assert merchant_key("ПЯТЁРОЧКА 0417") == merchant_key("Пятёрочка") == "пятерочка"  # one merchant, one key
    assert merchant_key("ΣΚΛΑΒΕΝΙΤΗΣ 12") == merchant_key("Σκλαβενίτης")
    assert merchant_key("1881") == "1881" and merchant_key("Kiwi Grünerløkka") == "kiwi-grunerløkka"  # as before
    assert merchant_key("1881*") == merchant_key("(1881)") == "1881" and merchant_key("7–11") == "7"  # as before
    assert merchant_key("") == merchant_key("  ") == "unknown"
    assert all(len("m:" + k) <= 120 and "/" not in k for k in keys)  # a document id the callables take


def test_payments_use_payee_rules_then_kid_then_transfers():
    rules = {"15030000037": "housing"}
    assert categorise(direction="out", kind="payment", counterparty_account="15030000037", payee_rules=rules) == (
        "housing"
    )
    assert categorise(direction="out", kind="payment", counterparty_account="12345678903", kid="1234567897") == "bills"
    assert categorise(direction="out", kind="payment", counterparty_account="12345678903") == "transfers"
    assert categorise(direction="in", kind="payment", counterparty_account="12345678903") == "income"


def test_a_customers_choice_sticks_for_the_merchant_and_wins():
    key = override_key(kind="card", merchant_name="REMA 1000 MAJORSTUEN 23", counterparty_account=None)
    overrides = {key: "restaurants"}
    for spelling in ("Rema 1000 Majorstuen", "REMA 1000 MAJORSTUEN 7"):
        assert categorise(direction="out", kind="card", mcc="5411", merchant_name=spelling, overrides=overrides) == (
            "restaurants"
        )
    assert categorise(direction="out", kind="card", mcc="5411", merchant_name="Kiwi", overrides=overrides) == (
        "groceries"
    )
    payee = override_key(kind="payment", merchant_name=None, counterparty_account="12345678903")
    assert categorise(
        direction="out", kind="payment", counterparty_account="12345678903", overrides={payee: "housing"}
    ) == ("housing")


def test_an_unknown_category_in_an_override_is_ignored():
    key = override_key(kind="card", merchant_name="Kiwi", counterparty_account=None)
    assert categorise(direction="out", kind="card", mcc="5411", merchant_name="Kiwi", overrides={key: "pizza"}) == (
        "groceries"
    )


def test_money_in_is_income_whatever_the_customer_chose_for_that_account():
    """A customer recategorises only spending; a choice for a payee never makes that
    payee's payments back spending."""
    payee = override_key(kind="payment", merchant_name=None, counterparty_account="12345678903")
    assert categorise(
        direction="in", kind="payment", counterparty_account="12345678903", overrides={payee: "housing"}
    ) == ("income")
