"""Account numbers from the registry range, names and closing rules (no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjordbank.domain.accounts import (
    CUSTOMER_GROUPS,
    POSITIONS,
    AccountRefused,
    check_closable,
    number_at,
    registry_exhausted,
    validate_kind,
    validate_name,
)
from fjordbank.domain.norway import account_check_digit, is_valid_account_number


@given(st.integers(0, POSITIONS - 1))
def test_every_number_drawn_is_valid_in_the_customer_groups_or_none(position):
    number = number_at("9710", position)
    body = f"9710{position // 10_000:02d}{position % 10_000:04d}"
    if account_check_digit(body) is None:
        assert number is None  # MOD11 remainder 1: never issued
    else:
        assert number == body + str(account_check_digit(body)) and is_valid_account_number(number)
        assert int(number[4:6]) < CUSTOMER_GROUPS  # 90-99 are the bank's own


def test_positions_map_to_distinct_numbers():
    numbers = [number_at("9710", p) for p in range(0, POSITIONS, 97)]
    issued = [n for n in numbers if n is not None]
    assert len(set(issued)) == len(issued) and len(issued) > 0.85 * len(numbers)


@pytest.mark.parametrize("position", [-1, POSITIONS])
def test_positions_outside_the_customer_groups_are_refused(position):
    with pytest.raises(ValueError):
        number_at("9710", position)


def test_an_exhausted_registry_is_a_refusal_with_its_reason():
    assert registry_exhausted("9710").code == "registry_exhausted"
    assert isinstance(registry_exhausted("9710"), AccountRefused)


@pytest.mark.parametrize("name", ["Brukskonto", "  Ferie 2027 ", "Bolig – sparing", "Æ" * 40])
def test_good_names_are_kept_trimmed(name):
    assert validate_name(name) == name.strip()


def test_runs_of_spaces_in_a_name_are_one():
    assert validate_name("Ferie   2027") == "Ferie 2027"


@pytest.mark.parametrize(
    "name", ["", "   ", "x" * 41, "bad\nname", "tab\tname", None, 42, ["a"], "line\u2028break", "para\u2029graph"]
)
def test_bad_names_are_refused(name):  # line and paragraph separators too (found in review, 2026-12-07)
    with pytest.raises(AccountRefused) as exc:
        validate_name(name)
    assert exc.value.code == "invalid_name"


@pytest.mark.parametrize("kind", ["gold", "", None, "SAVINGS"])
def test_only_known_kinds(kind):
    with pytest.raises(AccountRefused):
        validate_kind(kind)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"status": "open", "balance": 1, "held": 0}, "account_not_empty"),
        ({"status": "open", "balance": 0, "held": 5}, "account_not_empty"),
        ({"status": "open", "balance": -1, "held": 0}, "account_not_empty"),
        ({"status": "closed", "balance": 0, "held": 0}, "account_closed"),
    ],
)
def test_accounts_close_only_open_and_empty(data, code):
    with pytest.raises(AccountRefused) as exc:
        check_closable(data)
    assert exc.value.code == code


def test_an_open_empty_account_may_close():
    check_closable({"status": "open", "balance": 0, "held": 0})
