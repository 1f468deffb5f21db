"""Account numbers from the registry range, names and closing rules (no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjordbank.domain.accounts import AccountRefused, check_closable, issue_number, validate_kind, validate_name
from fjordbank.domain.norway import account_check_digit, is_valid_account_number


@given(st.integers(0, 999_000))
def test_every_issued_number_is_valid_in_the_bank_range_and_moves_forward(sequence):
    number, following = issue_number("9710", sequence)
    assert is_valid_account_number(number) and number.startswith("9710")
    assert following > sequence
    assert int(number[4:10]) == following - 1  # group and serial are the position taken


def test_positions_with_an_impossible_check_digit_are_skipped_and_numbers_never_repeat():
    seen, sequence = set(), 0
    for _ in range(2_000):
        number, sequence = issue_number("9710", sequence)
        assert number not in seen
        seen.add(number)
    skipped = [p for p in range(sequence) if account_check_digit(f"9710{p // 10_000:02d}{p % 10_000:04d}") is None]
    assert len(seen) + len(skipped) == sequence and skipped


def test_the_registry_range_ends():
    with pytest.raises(AccountRefused) as exc:
        issue_number("9710", 1_000_000)
    assert exc.value.code == "registry_exhausted"


@pytest.mark.parametrize("name", ["Brukskonto", "  Ferie 2027 ", "Bolig – sparing", "Æ" * 40])
def test_good_names_are_kept_trimmed(name):
    assert validate_name(name) == name.strip()


@pytest.mark.parametrize("name", ["", "   ", "x" * 41, "bad\nname", "tab\tname", None, 42, ["a"]])
def test_bad_names_are_refused(name):
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
