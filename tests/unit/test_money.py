"""Unit and property tests for fjordbank.domain.money."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjordbank.domain.errors import (
    CurrencyMismatch,
    DomainError,
    InvalidAmount,
    InvalidCurrency,
)
from fjordbank.domain.money import MAX_MINOR, NBSP, NOK, Money

# ------------------------------------------------------------------ construction


def test_money_holds_minor_units_and_currency() -> None:
    m = Money(123450, "NOK")
    assert m.minor == 123450
    assert m.currency == "NOK"
    assert Money.nok(5) == Money(5, NOK)
    assert Money.zero() == Money(0, "NOK")
    assert Money.zero("EUR") == Money(0, "EUR")


def test_money_is_immutable_and_slotted() -> None:
    m = Money.nok(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.minor = 2  # type: ignore[misc]
    assert not hasattr(m, "__dict__")
    assert hash(m) == hash(Money.nok(1))


@pytest.mark.parametrize("bad", [1.0, 0.1, True, False, Decimal("12.50"), "100", None])
def test_money_rejects_non_int_minor(bad: object) -> None:
    with pytest.raises(InvalidAmount) as excinfo:
        Money(bad, "NOK")  # type: ignore[arg-type]
    assert excinfo.value.code == "invalid_amount"
    assert isinstance(excinfo.value, DomainError)


def test_money_enforces_sanity_bound() -> None:
    assert Money(MAX_MINOR, "NOK").minor == MAX_MINOR
    assert Money(-MAX_MINOR, "NOK").minor == -MAX_MINOR
    with pytest.raises(InvalidAmount, match="sanity bound"):
        Money(MAX_MINOR + 1, "NOK")
    with pytest.raises(InvalidAmount):
        Money.nok(MAX_MINOR) + Money.nok(1)


@pytest.mark.parametrize("bad", ["nok", "NO", "NOKK", "N0K", "ØRE", "", None, 578])
def test_money_rejects_bad_currency(bad: object) -> None:
    with pytest.raises(InvalidCurrency) as excinfo:
        Money(1, bad)  # type: ignore[arg-type]
    assert excinfo.value.code == "invalid_currency"


# -------------------------------------------------------------------- arithmetic


def test_add_sub_neg() -> None:
    assert Money.nok(150) + Money.nok(250) == Money.nok(400)
    assert Money.nok(150) - Money.nok(250) == Money.nok(-100)
    assert -Money.nok(7) == Money.nok(-7)


def test_arithmetic_across_currencies_raises() -> None:
    with pytest.raises(CurrencyMismatch, match="NOK and SEK") as excinfo:
        Money(1, "NOK") + Money(1, "SEK")
    assert excinfo.value.code == "currency_mismatch"
    with pytest.raises(CurrencyMismatch):
        Money(1, "NOK") - Money(1, "SEK")


def test_arithmetic_with_plain_numbers_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        Money.nok(1) + 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        Money.nok(1) - 0.5  # type: ignore[operator]


def test_ordering_and_equality() -> None:
    assert Money.nok(1) < Money.nok(2) <= Money.nok(2)
    assert Money.nok(3) > Money.nok(2) >= Money.nok(2)
    assert max([Money.nok(5), Money.nok(9), Money.nok(1)]) == Money.nok(9)
    assert Money(1, "NOK") != Money(1, "SEK")
    with pytest.raises(CurrencyMismatch):
        _ = Money(1, "NOK") < Money(2, "SEK")
    with pytest.raises(TypeError):
        _ = Money.nok(1) < 2  # type: ignore[operator]


# ----------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "minor"),
    [
        ("1234,50", 123450),
        ("1 234,50", 123450),
        ("1234.50", 123450),
        ("1234", 123400),
        ("kr 1 234,50", 123450),
        ("Kr. 1 234,50", 123450),
        ("1 234,50 kr", 123450),
        ("NOK 1234,5", 123450),
        ("1.234,50", 123450),
        ("1.234.567,89", 123456789),
        (f"1{NBSP}234{NBSP}567,00", 123456700),
        ("1\u202f234,05", 123405),
        ("100,-", 10000),
        ("0,01", 1),
        ("  42  ", 4200),
        ("0", 0),
        ("-0,00", 0),
    ],
)
def test_parse_nok_accepts_norwegian_forms(text: str, minor: int) -> None:
    assert Money.parse_nok(text) == Money.nok(minor)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1234,567", "more than 2 decimals"),
        ("1.234", "more than 2 decimals"),  # ambiguous: never silently 1234 kr
        ("12,3456", "more than 2 decimals"),
        ("1,234.50", "1 or 2 digits"),
        ("1234,", "1 or 2 digits"),
        ("1,2,3", "more than one decimal comma"),
        ("12 34,00", "grouped in threes"),
        ("1 234.567,00", "grouped in threes"),
        (",50", "whole kroner"),
        ("1e3", "unexpected character"),
        ("12a", "unexpected character"),
        ("\u0661\u0662", "unexpected character"),  # Arabic-Indic digits
        ("", "empty"),
        ("   ", "empty"),
        ("kr", "no digits"),
        ("kr 5 kr", "unexpected character"),
        ("5-3", "leading sign"),
        ("1" * 70, "longer than"),
    ],
)
def test_parse_nok_rejects_malformed(text: str, reason: str) -> None:
    with pytest.raises(InvalidAmount, match=reason):
        Money.parse_nok(text)


def test_parse_nok_rejects_negative_unless_allowed() -> None:
    with pytest.raises(InvalidAmount, match="negative"):
        Money.parse_nok("-1 234,50")
    assert Money.parse_nok("-1 234,50", allow_negative=True) == Money.nok(-123450)
    assert Money.parse_nok("kr \u22125", allow_negative=True) == Money.nok(-500)


def test_parse_nok_rejects_out_of_range() -> None:
    with pytest.raises(InvalidAmount, match="sanity bound"):
        Money.parse_nok("10000000000000,01")
    assert Money.parse_nok("10000000000000").minor == MAX_MINOR


@pytest.mark.parametrize("bad", [1234.5, 1234, None, b"12"])
def test_parse_nok_rejects_non_text(bad: object) -> None:
    with pytest.raises(InvalidAmount, match="must be a str"):
        Money.parse_nok(bad)  # type: ignore[arg-type]


# -------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("minor", "text"),
    [
        (123450, "1 234,50 kr"),
        (0, "0,00 kr"),
        (5, "0,05 kr"),
        (-5, "-0,05 kr"),
        (100000000, "1 000 000,00 kr"),
        (99999, "999,99 kr"),
    ],
)
def test_format_nok_uses_nbsp(minor: int, text: str) -> None:
    formatted = Money.nok(minor).format_nok()
    assert formatted == text.replace(" ", NBSP)
    assert " " not in formatted


def test_format_nok_refuses_other_currencies() -> None:
    with pytest.raises(CurrencyMismatch):
        Money(100, "EUR").format_nok()


# ------------------------------------------------------------- property tests

amounts = st.integers(min_value=-MAX_MINOR, max_value=MAX_MINOR)
third = st.integers(min_value=-(MAX_MINOR // 3), max_value=MAX_MINOR // 3)
currencies = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3)


@given(a=third, b=third, c=third, currency=currencies)
def test_addition_is_associative_and_commutative(a: int, b: int, c: int, currency: str) -> None:
    x, y, z = Money(a, currency), Money(b, currency), Money(c, currency)
    assert (x + y) + z == x + (y + z)
    assert x + y == y + x
    assert (x + y) - y == x
    assert x - x == Money.zero(currency)
    assert (x - y) - z == x - (y + z)


@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_no_float_is_ever_accepted(value: float) -> None:
    with pytest.raises(InvalidAmount):
        Money(value, "NOK")  # type: ignore[arg-type]


@given(minor=amounts)
def test_parse_format_round_trip(minor: int) -> None:
    money = Money.nok(minor)
    assert Money.parse_nok(money.format_nok(), allow_negative=True) == money


@given(
    kroner=st.integers(min_value=0, max_value=MAX_MINOR // 100 - 1),
    ore=st.integers(min_value=0, max_value=99),
    style=st.sampled_from(["plain_comma", "plain_dot", "spaced", "dotted", "kr_prefix"]),
)
def test_parse_nok_styles_agree(kroner: int, ore: int, style: str) -> None:
    grouped = f"{kroner:,}"
    text = {
        "plain_comma": f"{kroner},{ore:02d}",
        "plain_dot": f"{kroner}.{ore:02d}",
        "spaced": f"{grouped.replace(',', ' ')},{ore:02d}",
        "dotted": f"{grouped.replace(',', '.')},{ore:02d}",
        "kr_prefix": f"kr {grouped.replace(',', ' ')},{ore:02d}",
    }[style]
    assert Money.parse_nok(text) == Money.nok(kroner * 100 + ore)


@given(a=amounts, b=amounts)
def test_ordering_matches_minor_units(a: int, b: int) -> None:
    x, y = Money.nok(a), Money.nok(b)
    assert (x < y) == (a < b)
    assert (x <= y) == (a <= b)
    assert (x == y) == (a == b)
