"""Unit and property tests for fjordbank.domain.norway.

Every example number below was checked by computing its weighted sums (see the
independent reference implementations ``_ref_*`` at the bottom of the "helpers"
section), not copied on trust.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fjordbank.domain.errors import (
    DomainError,
    InvalidAccountNumber,
    InvalidDateRange,
    InvalidDigits,
    InvalidKid,
    InvalidNationalId,
)
from fjordbank.domain.norway import (
    account_check_digit,
    age_on,
    bank_holidays,
    easter_sunday,
    format_account_number,
    is_banking_day,
    is_luhn_valid,
    is_valid_account_number,
    is_valid_kid,
    is_valid_national_id,
    kid_mod10_check,
    kid_mod11_check,
    luhn_check_digit,
    make_account_number,
    mask_account_number,
    mask_national_id,
    national_id_control_digits,
    next_banking_day,
    normalize_account_number,
    parse_national_id,
    split_kid,
    validate_account_number,
    validate_kid,
)

TODAY = date(2025, 11, 26)

# ----------------------------------------------------------------------- helpers
# Independent reference implementations, written from the published rules and
# deliberately not sharing code with the module under test.

_ACC_W = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_K1_W = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_K2_W = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def _wsum(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True))


def _ref_account_ok(number: str) -> bool:
    r = _wsum(number[:10], _ACC_W) % 11
    return r != 1 and (0 if r == 0 else 11 - r) == int(number[10])


def _ref_k1_remainder(number: str) -> int:
    return (_wsum(number[:9], _K1_W) + int(number[9])) % 11


def _ref_k2_ok(number: str) -> bool:
    return (_wsum(number[:10], _K2_W) + int(number[10])) % 11 == 0


def _ref_luhn_ok(number: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(number)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


# --------------------------------------------------------------- account numbers


@pytest.mark.parametrize("number", ["86011117947", "12345678903", "15034056789"])
def test_reference_agrees_with_examples(number: str) -> None:
    assert _ref_account_ok(number)


@pytest.mark.parametrize(
    "text",
    [
        "86011117947",
        "8601.11.17947",
        "8601 11 17947",
        "  8601.11.17947 ",
        "8601\u00a011\u00a017947",
        "1234.56.78903",
        "1503.40.56789",
    ],
)
def test_valid_account_numbers(text: str) -> None:
    assert is_valid_account_number(text)
    digits = validate_account_number(text)
    assert len(digits) == 11
    assert digits.isdigit()


def test_normalize_and_format_account_number() -> None:
    assert normalize_account_number(" 8601 11 17947 ") == "86011117947"
    assert format_account_number("86011117947") == "8601.11.17947"
    assert format_account_number("8601 11 17947") == "8601.11.17947"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("86011117948", "check digit is 8, MOD11 requires 7"),
        ("97100512345", "check digit is 5, MOD11 requires 7"),
        ("8601-11-17947", "only digits, spaces and dots"),
        ("8601.11.1794a", "only digits, spaces and dots"),
        ("860111179470", "11 digits, got 12"),
        ("8601.11.1794", "11 digits, got 10"),
        ("", "11 digits, got 0"),
        ("86.0111.17947", "separators"),
        ("8601..1117947", "separators"),
        (
            "\u0668\u0666\u0660\u0661\u0661\u0661\u0661\u0667\u0669\u0664\u0667",
            "only digits",
        ),
    ],
)
def test_invalid_account_numbers(text: str, reason: str) -> None:
    assert not is_valid_account_number(text)
    with pytest.raises(InvalidAccountNumber, match=reason) as excinfo:
        validate_account_number(text)
    assert excinfo.value.code == "invalid_account_number"
    assert isinstance(excinfo.value, DomainError)


def test_account_number_with_remainder_one_is_impossible() -> None:
    # 0000000005: 5 * 2 = 10, 10 mod 11 = 10 -> check 1;
    # 0000000030: 3 * 3 = 9 -> check 2; 0000000300: 3 * 4 = 12, r = 1 -> none.
    assert account_check_digit("0000000005") == 1
    assert account_check_digit("0000000030") == 2
    assert account_check_digit("0000000300") is None
    assert account_check_digit("0000000000") == 0
    for last in "0123456789":
        assert not is_valid_account_number(f"0000000300{last}")
    with pytest.raises(InvalidAccountNumber, match="remainder 1"):
        validate_account_number("00000003000")


def test_make_account_number() -> None:
    assert make_account_number("8601", "11", 1794) == "86011117947"
    assert make_account_number("1234", "56", 7890) == "12345678903"
    assert make_account_number("0000", "00", 0) == "00000000000"
    with pytest.raises(InvalidAccountNumber, match="remainder 1"):
        make_account_number("0000", "00", 300)


@pytest.mark.parametrize(
    ("bank_reg", "group", "serial", "reason"),
    [
        ("860", "11", 1794, "4 digits"),
        ("86O1", "11", 1794, "4 digits"),
        ("8601", "1", 1794, "2 digits"),
        ("8601", "11", 10000, "0 to 9999"),
        ("8601", "11", -1, "0 to 9999"),
        ("8601", "11", True, "0 to 9999"),
        ("8601", "11", "1794", "0 to 9999"),
    ],
)
def test_make_account_number_rejects_bad_parts(bank_reg: str, group: str, serial: int, reason: str) -> None:
    with pytest.raises(InvalidAccountNumber, match=reason):
        make_account_number(bank_reg, group, serial)


def test_mask_account_number() -> None:
    assert mask_account_number("1234.56.78903") == "****.**.*8903"
    assert mask_account_number("86011117947") == "****.**.*7947"
    assert mask_account_number("86011117948") == "****.**.*7948"  # layout only
    with pytest.raises(InvalidAccountNumber):
        mask_account_number("1234")


def test_account_check_digit_rejects_bad_body() -> None:
    with pytest.raises(InvalidAccountNumber, match="10 digits"):
        account_check_digit("123456789")


account_parts = st.tuples(
    st.from_regex(r"[0-9]{4}", fullmatch=True),
    st.from_regex(r"[0-9]{2}", fullmatch=True),
    st.integers(min_value=0, max_value=9999),
)


def _make_or_skip(parts: tuple[str, str, int]) -> str:
    bank_reg, group, serial = parts
    assume(account_check_digit(f"{bank_reg}{group}{serial:04d}") is not None)
    return make_account_number(bank_reg, group, serial)


@given(parts=account_parts)
def test_generated_account_numbers_validate(parts: tuple[str, str, int]) -> None:
    number = _make_or_skip(parts)
    assert _ref_account_ok(number)
    assert validate_account_number(number) == number
    assert validate_account_number(format_account_number(number)) == number


@given(
    parts=account_parts,
    position=st.integers(min_value=0, max_value=10),
    delta=st.integers(min_value=1, max_value=9),
)
def test_any_single_digit_change_is_detected(parts: tuple[str, str, int], position: int, delta: int) -> None:
    number = _make_or_skip(parts)
    changed_digit = str((int(number[position]) + delta) % 10)
    mutated = number[:position] + changed_digit + number[position + 1 :]
    assert not is_valid_account_number(mutated)


# -------------------------------------------------------------------------- Luhn


@pytest.mark.parametrize("number", ["79927398713", "4111111111111111", "5555555555554444"])
def test_luhn_known_valid_numbers(number: str) -> None:
    assert _ref_luhn_ok(number)
    assert is_luhn_valid(number)
    assert luhn_check_digit(number[:-1]) == int(number[-1])


@pytest.mark.parametrize("number", ["79927398710", "4111111111111112", "1", "", "12a4", "١٢"])
def test_luhn_invalid_numbers(number: str) -> None:
    assert not is_luhn_valid(number)


def test_luhn_check_digit_rejects_non_digits() -> None:
    with pytest.raises(InvalidDigits):
        luhn_check_digit("")
    with pytest.raises(InvalidDigits):
        luhn_check_digit("12 3")


@given(
    body=st.from_regex(r"[0-9]{1,30}", fullmatch=True),
    position=st.integers(min_value=0),
    delta=st.integers(min_value=1, max_value=9),
)
def test_luhn_detects_single_digit_errors(body: str, position: int, delta: int) -> None:
    number = body + str(luhn_check_digit(body))
    assert is_luhn_valid(number)
    assert _ref_luhn_ok(number)
    position %= len(number)
    mutated = number[:position] + str((int(number[position]) + delta) % 10)
    mutated += number[position + 1 :]
    assert not is_luhn_valid(mutated)


# --------------------------------------------------------------------------- KID


def test_kid_check_characters() -> None:
    # MOD11, from the right 2,3,4,5,6,7,2...:
    # 1234567: 7*2+6*3+5*4+4*5+3*6+2*7+1*2 = 106, 106 mod 11 = 7 -> 4
    assert kid_mod11_check("1234567") == "4"
    # 123456789012 -> 5 (MOD11) and 8 (MOD10)
    assert kid_mod11_check("123456789012") == "5"
    assert kid_mod10_check("123456789012") == "8"
    # 1000005: 5*2 + 1*2 = 12, 12 mod 11 = 1 -> '-'
    assert kid_mod11_check("1000005") == "-"
    # 123456: 6*2+5*3+4*4+3*5+2*6+1*7 = 77, 77 mod 11 = 0 -> '0'
    assert kid_mod11_check("123456") == "0"
    assert kid_mod10_check("7992739871") == "3"


@pytest.mark.parametrize(
    "kid",
    ["1234567890128", "1234567890125", "1000005-", "79927398713", "26", "27"],
)
def test_valid_kids(kid: str) -> None:
    assert is_valid_kid(kid)
    assert validate_kid(f" {kid} ") == kid


def test_kid_scheme_restriction() -> None:
    assert is_valid_kid("1234567890128", scheme="mod10")
    assert not is_valid_kid("1234567890128", scheme="mod11")
    assert is_valid_kid("1234567890125", scheme="mod11")
    assert not is_valid_kid("1234567890125", scheme="mod10")
    assert is_valid_kid("1000005-", scheme="mod11")
    with pytest.raises(InvalidKid, match="MOD10 check digit is '-'"):
        validate_kid("1000005-", scheme="mod10")
    for unknown in ("MOD10", "luhn", ""):  # a scheme it does not know never means no check at all
        with pytest.raises(ValueError, match="unknown KID scheme"):
            is_valid_kid("1234567890", scheme=unknown)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kid", "reason"),
    [
        ("1234567890120", "neither MOD10 \\('8'\\) nor MOD11 \\('5'\\)"),
        ("1000006-", "neither"),
        ("7", "2-25 characters long, got 1"),
        ("", "2-25 characters long, got 0"),
        ("1" * 26, "2-25 characters long, got 26"),
        ("12-4", "digits only"),
        ("12 345", "digits only"),
        ("-", "2-25 characters long"),
        ("--", "digits only"),
        ("1234a", "digits only"),
    ],
)
def test_invalid_kids(kid: str, reason: str) -> None:
    assert not is_valid_kid(kid)
    with pytest.raises(InvalidKid, match=reason) as excinfo:
        validate_kid(kid)
    assert excinfo.value.code == "invalid_kid"


def test_split_kid_checks_the_form_only() -> None:
    # the form every path shares (payment request, scanner): 2-25 characters, digits, '-' only last
    assert split_kid(" 1000005- ") == ("1000005", "-")
    assert split_kid("1000006-") == ("1000006", "-")  # form only: validate_kid refuses its check
    for kid in ("7", "1-2", "-1", "--", "1" * 26, "12 34", 1234):
        with pytest.raises(InvalidKid):
            split_kid(kid)  # type: ignore[arg-type]


def test_kid_check_rejects_bad_body() -> None:
    with pytest.raises(InvalidKid):
        kid_mod10_check("")
    with pytest.raises(InvalidKid):
        kid_mod11_check("12x")
    with pytest.raises(InvalidKid, match="at most 24"):
        kid_mod11_check("1" * 25)


kid_bodies = st.from_regex(r"[0-9]{1,24}", fullmatch=True)


@given(body=kid_bodies)
def test_generated_kids_validate(body: str) -> None:
    assert is_valid_kid(body + kid_mod10_check(body), scheme="mod10")
    assert is_valid_kid(body + kid_mod11_check(body), scheme="mod11")
    assert is_valid_kid(body + kid_mod11_check(body))


@given(
    body=kid_bodies,
    scheme=st.sampled_from(["mod10", "mod11"]),
    position=st.integers(min_value=0),
    delta=st.integers(min_value=1, max_value=9),
)
def test_kid_single_body_digit_change_detected(body: str, scheme: str, position: int, delta: int) -> None:
    check = kid_mod10_check(body) if scheme == "mod10" else kid_mod11_check(body)
    position %= len(body)
    mutated = body[:position] + str((int(body[position]) + delta) % 10)
    mutated += body[position + 1 :]
    assert not is_valid_kid(mutated + check, scheme=scheme)  # type: ignore[arg-type]


# ------------------------------------------------------- national identity numbers


def test_reference_remainders_of_examples() -> None:
    # classic: k1 remainder 0 and k2 remainder 0
    for number in ["02016126007", "31129956715", "02013299997", "30108299920"]:
        assert _ref_k1_remainder(number) == 0
        assert _ref_k2_ok(number)
    # Skatteetaten's 2032 examples: k1 remainder 1..3, k2 classic
    assert _ref_k1_remainder("30108299939") == 1
    assert _ref_k2_ok("30108299939")
    assert _ref_k1_remainder("02013299903") == 2
    assert _ref_k2_ok("02013299903")
    # Skatteetaten's (fictional) nynorsk example fails k1 under both rules
    assert _ref_k1_remainder("01129955131") == 9


def test_fnr_matematikk_org_example() -> None:
    # 020161 26007 is worked through on matematikk.org: woman born 2 Jan 1961.
    nid = parse_national_id("02016126007", today=TODAY)
    assert nid.number == "02016126007"
    assert nid.kind == "fnr"
    assert nid.birth_date == date(1961, 1, 2)
    assert nid.sex == "F"
    assert nid.uses_2032_rule is False
    assert nid.synthetic is False


def test_fnr_born_1800s() -> None:
    # fnrinfo.no example 311299 567 15: individual 567 with YY 99 -> 1899.
    nid = parse_national_id("31129956715", today=TODAY)
    assert nid.birth_date == date(1899, 12, 31)
    assert nid.sex == "M"


def test_fnr_born_2000s_and_900_series() -> None:
    assert parse_national_id("01010550048", today=TODAY).birth_date == date(2005, 1, 1)
    # 999 with YY 82: 900-999 and YY 40-99 -> 1982
    nid = parse_national_id("30108299920", today=TODAY)
    assert nid.birth_date == date(1982, 10, 30)
    assert nid.sex == "M"


def test_century_decides_leap_day() -> None:
    # 29.02.00: individual 500 -> 2000 (leap year) is fine ...
    assert parse_national_id("29020050088", today=TODAY).birth_date == date(2000, 2, 29)
    # ... individual 123 -> 1900, which was not a leap year.
    with pytest.raises(InvalidNationalId, match="not a real calendar date"):
        parse_national_id("29020012380", today=TODAY)


def test_d_number() -> None:
    # 430220 141 03: day 43 -> 3, D-number born 3 Feb 1920 (000-199, YY <= 39).
    nid = parse_national_id("43022014103", today=TODAY)
    assert nid.kind == "dnr"
    assert nid.birth_date == date(1920, 2, 3)
    assert nid.sex == "M"


def test_d_number_extended_2021_ranges() -> None:
    # 812 with YY 60 is unused for fødselsnummer but a 1960 D-number since 2021.
    assert parse_national_id("45016081268", today=TODAY).birth_date == date(1960, 1, 5)
    with pytest.raises(InvalidNationalId, match="individual number range"):
        parse_national_id("05016081274", today=TODAY)
    # 300 with YY 25 -> 2025 under the 2021 table ...
    assert parse_national_id("41012530062", today=TODAY).birth_date == date(2025, 1, 1)
    # ... but an older D-number (1900s) when 2025 would be in the future.
    assert parse_national_id("41012530062", today=date(2024, 6, 1)).birth_date == date(1925, 1, 1)
    assert parse_national_id("41013530090", today=TODAY).birth_date == date(1935, 1, 1)


def test_a_d_number_in_200_499_may_be_of_either_century() -> None:
    """Skatteetaten's 2021 extension gave D-numbers 200-499 of YY 00-39 to the 2000s only
    from August 2021; one issued before belongs to the 1900s (the classic table), and the
    number does not say which. The 2000s reading stays ``birth_date``; the 1900s one is
    given too (found in review, 2026-12-06: a D-number of someone born 1920 read as 2020)."""
    nid = parse_national_id("41012025082", today=date(2025, 6, 1))
    assert (nid.kind, nid.birth_date, nid.older_birth_date) == ("dnr", date(2020, 1, 1), date(1920, 1, 1))
    assert nid.birth_dates == (date(2020, 1, 1), date(1920, 1, 1))
    assert parse_national_id("41012020005", today=TODAY).birth_dates == (date(2020, 1, 1), date(1920, 1, 1))
    # a 2000s reading in the future leaves the 1900s one only, as before
    nid = parse_national_id("41012530062", today=date(2024, 6, 1))
    assert (nid.birth_date, nid.older_birth_date, nid.birth_dates) == (date(1925, 1, 1), None, (date(1925, 1, 1),))
    # 29.02.00 is a date in 2000; in 1900, a common year, a D-number's 29.02 is read as 28.02
    assert parse_national_id("69020020083", today=TODAY).birth_dates == (date(2000, 2, 29), date(1900, 2, 28))


@pytest.mark.parametrize(
    "number",
    [
        "43022014103",  # D-number, 141: 1900s only
        "45016081268",  # D-number, 812 with YY 60: 1900s only
        "01012020011",  # fødselsnummer, 200-499: 1900s, and nothing else
        "29020050088",  # fødselsnummer, 500: 2000s
        "30108299939",  # 2032 rule: its own reading (module notes)
    ],
)
def test_other_numbers_have_one_birth_date(number: str) -> None:
    nid = parse_national_id(number, today=TODAY)
    assert (nid.older_birth_date, nid.birth_dates) == (None, (nid.birth_date,))


def _d_number_date(born: date, year: int) -> date:
    """``born`` in ``year``, 29.02 of a common year read as 28.02 (a D-number's registration day)."""
    return (
        date(year, 2, 28)
        if (born.month, born.day) == (2, 29) and not calendar.isleap(year)
        else born.replace(year=year)
    )


@given(
    born=st.dates(min_value=date(1900, 1, 1), max_value=date(2039, 12, 31)),
    individual=st.integers(0, 999),
)
def test_generated_classic_d_numbers_give_every_reading_of_their_century(born: date, individual: int) -> None:
    first9 = f"{born.day + 40:02d}{born:%m%y}{individual:03d}"
    control = national_id_control_digits(first9)
    assume(control is not None and born.year % 100 <= 39)
    assert control is not None
    number = f"{first9}{control[0]}{control[1]}"
    in_1900s, in_2000s = (_d_number_date(born, century + born.year % 100) for century in (1900, 2000))
    readings = [d for d, issued in ((in_2000s, individual >= 200), (in_1900s, individual <= 499)) if issued]
    readings = [d for d in readings if d <= TODAY]
    if not readings:
        assert not is_valid_national_id(number, today=TODAY)
        return
    assert parse_national_id(number, today=TODAY).birth_dates == tuple(readings)


def test_2032_rule_number_accepted() -> None:
    # Skatteetaten's example "Person 2 født 30.10.1982 får fødselsnummer i 2032".
    nid = parse_national_id("30108299939", today=TODAY)
    assert nid.uses_2032_rule is True
    assert nid.birth_date == date(1982, 10, 30)
    assert nid.sex is None  # 2032-rule numbers are gender-neutral


def test_2032_rule_numbers_from_skatteetaten_2032_example() -> None:
    today = date(2032, 3, 1)
    classic = parse_national_id("02013299997", today=today)
    assert classic.uses_2032_rule is False
    assert classic.birth_date == date(2032, 1, 2)
    for number in ("02013299903", "02013299911"):
        nid = parse_national_id(number, today=today)
        assert nid.uses_2032_rule is True
        assert nid.birth_date == date(2032, 1, 2)


@pytest.mark.parametrize(
    ("number", "born"),
    [
        ("12038589979", date(1985, 3, 12)),  # individual 899: no classic range for 1985
        ("12034874989", date(1948, 3, 12)),  # individual 700: none for 1948
        ("12033599739", date(1935, 3, 12)),  # individual 999: classically 2035, in the future
    ],
)
def test_from_2032_a_number_with_first_remainder_0_outside_the_classic_ranges_is_read_by_the_new_rule(
    number: str, born: date
) -> None:
    """From 2032 every number issued carries no century, whoever it is for (Skatteetaten);
    one whose first control digit has remainder 0 looks classic. Before 2032 such a number
    is refused, as none was issued."""
    assert _ref_k1_remainder(number) == 0
    nid = parse_national_id(number, today=date(2033, 6, 1))
    assert (nid.birth_date, nid.uses_2032_rule, nid.sex) == (born, True, None)
    with pytest.raises(InvalidNationalId):
        parse_national_id(number, today=date(2031, 12, 31))
    # a classic number in an issued range keeps its classic reading (and its sex)
    classic = parse_national_id("02013299997", today=date(2033, 6, 1))
    assert (classic.uses_2032_rule, classic.birth_date) == (False, date(2032, 1, 2))


def test_2032_rule_relaxes_only_k1() -> None:
    # 3010829992?: k2 = 0 is the only valid value; remainder 1 (k2 = 1) is NOT
    # accepted, because Skatteetaten keeps k2 on the classic rule.
    assert _ref_k1_remainder("30108299921") == 0
    with pytest.raises(InvalidNationalId, match="second control digit"):
        parse_national_id("30108299921", today=TODAY)
    # k1 remainder 4 is outside {0,1,2,3}
    with pytest.raises(InvalidNationalId, match="first control digit"):
        parse_national_id("30108299963", today=TODAY)


def test_synthetic_numbers_need_opt_in() -> None:
    with pytest.raises(InvalidNationalId, match="synthetic"):
        parse_national_id("01819012365", today=TODAY)
    nid = parse_national_id("01819012365", today=TODAY, allow_synthetic=True)
    assert nid.synthetic is True
    assert nid.birth_date == date(1990, 1, 1)
    dnr = parse_national_id("41819012359", today=TODAY, allow_synthetic=True)
    assert (dnr.kind, dnr.synthetic, dnr.birth_date) == ("dnr", True, date(1990, 1, 1))


def test_h_numbers_rejected() -> None:
    assert national_id_control_digits("014180400") == (9, 9)
    with pytest.raises(InvalidNationalId, match="H-numbers"):
        parse_national_id("01418040099", today=TODAY)


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("0201612600", "11 digits, got 10"),
        ("020161260070", "11 digits, got 12"),
        ("0201612600a", "only digits"),
        ("020161 26007", "only digits"),
        ("", "only digits"),
        ("02016126008", "second control digit"),
        ("02016126047", "first control digit"),
        ("01129955131", "first control digit"),
        ("31029012302", "not a real calendar date"),
        ("02013299997", "in the future"),
    ],
)
def test_invalid_national_ids(number: str, reason: str) -> None:
    assert not is_valid_national_id(number, today=TODAY)
    with pytest.raises(InvalidNationalId, match=reason) as excinfo:
        parse_national_id(number, today=TODAY)
    assert excinfo.value.code == "invalid_national_id"
    assert number == "" or number[6:] not in excinfo.value.message


def test_error_messages_and_repr_do_not_leak_the_number() -> None:
    nid = parse_national_id("02016126007", today=TODAY)
    assert "26007" not in repr(nid)
    assert "020161*****" in repr(nid)


def test_national_id_control_digits() -> None:
    assert national_id_control_digits("020161260") == (0, 7)
    assert national_id_control_digits("010190123") is None
    with pytest.raises(InvalidNationalId):
        national_id_control_digits("12345678")


def test_mask_national_id() -> None:
    assert mask_national_id("02016126007") == "020161*****"
    assert mask_national_id(" 43022014103 ") == "430220*****"
    with pytest.raises(InvalidNationalId):
        mask_national_id("0201612600")


def test_age_on() -> None:
    born = date(1961, 1, 2)
    assert age_on(born, date(1961, 1, 2)) == 0
    assert age_on(born, date(2025, 1, 1)) == 63
    assert age_on(born, date(2025, 1, 2)) == 64
    leapling = date(2000, 2, 29)
    assert age_on(leapling, date(2001, 2, 28)) == 0
    assert age_on(leapling, date(2001, 3, 1)) == 1
    assert age_on(leapling, date(2004, 2, 29)) == 4
    with pytest.raises(InvalidDateRange) as excinfo:
        age_on(born, date(1960, 12, 31))
    assert excinfo.value.code == "invalid_date_range"


# -------------------------------------------------- national id property tests


@st.composite
def classic_fnr(draw: st.DrawFn) -> tuple[str, date]:
    """A classic-rule fødselsnummer and its birth date, per the century table."""
    born = draw(st.dates(min_value=date(1854, 1, 1), max_value=TODAY))
    if born.year < 1900:
        individual = draw(st.integers(500, 749))
    elif born.year < 2000:
        ranges = [(0, 499), (900, 999)] if born.year >= 1940 else [(0, 499)]
        low, high = draw(st.sampled_from(ranges))
        individual = draw(st.integers(low, high))
    else:
        individual = draw(st.integers(500, 999))
    first9 = f"{born:%d%m%y}{individual:03d}"
    control = national_id_control_digits(first9)
    assume(control is not None)
    assert control is not None
    return f"{first9}{control[0]}{control[1]}", born


@given(sample=classic_fnr())
def test_generated_fnr_validate(sample: tuple[str, date]) -> None:
    number, born = sample
    assert _ref_k1_remainder(number) == 0
    assert _ref_k2_ok(number)
    nid = parse_national_id(number, today=TODAY)
    assert (nid.kind, nid.birth_date, nid.uses_2032_rule) == ("fnr", born, False)
    assert nid.sex == ("F" if int(number[8]) % 2 == 0 else "M")
    assert age_on(nid.birth_date, TODAY) == age_on(born, TODAY)


@given(sample=classic_fnr())
def test_generated_dnr_validate(sample: tuple[str, date]) -> None:
    fnr, born = sample
    individual = int(fnr[6:9])
    # Keep to ranges where the classic and the 2021 D-number tables agree.
    assume(not (born.year < 1900 and individual >= 600))
    assume(not (1900 <= born.year < 1940 and individual >= 200))
    first9 = f"{int(fnr[0]) + 4}{fnr[1:9]}"
    control = national_id_control_digits(first9)
    assume(control is not None)
    assert control is not None
    nid = parse_national_id(f"{first9}{control[0]}{control[1]}", today=TODAY)
    assert (nid.kind, nid.birth_date) == ("dnr", born)


@given(
    born=st.dates(min_value=TODAY - timedelta(days=365 * 99), max_value=TODAY),
    individual=st.integers(0, 999),
    remainder=st.integers(1, 3),
)
def test_generated_2032_rule_numbers_validate(born: date, individual: int, remainder: int) -> None:
    first9 = f"{born:%d%m%y}{individual:03d}"
    k1 = (remainder - _wsum(first9, _K1_W)) % 11
    assume(k1 != 10)
    r2 = _wsum(f"{first9}{k1}", _K2_W) % 11
    assume(r2 != 1)
    number = f"{first9}{k1}{(11 - r2) % 11}"
    nid = parse_national_id(number, today=TODAY)
    assert nid.uses_2032_rule is True
    assert nid.birth_date == born
    assert nid.sex is None


@given(sample=classic_fnr(), position=st.integers(0, 10), delta=st.integers(1, 9))
def test_fnr_any_single_digit_change_detected(sample: tuple[str, date], position: int, delta: int) -> None:
    number, _ = sample
    mutated = number[:position] + str((int(number[position]) + delta) % 10)
    mutated += number[position + 1 :]
    # k2 alone guards every position (weights 2..7 are all units mod 11).
    assert not _ref_k2_ok(mutated) or _ref_k1_remainder(mutated) not in (0, 1, 2, 3)
    assert not is_valid_national_id(mutated, today=TODAY, allow_synthetic=True)


# ---- banking days --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("year", "easter"),
    [(2024, date(2024, 3, 31)), (2025, date(2025, 4, 20)), (2026, date(2026, 4, 5)), (2027, date(2027, 3, 28)),
     (2038, date(2038, 4, 25)), (2285, date(2285, 3, 22))],
)  # fmt: skip
def test_easter_sunday_is_the_gregorian_one(year: int, easter: date) -> None:
    assert easter_sunday(year) == easter  # 2285: the earliest possible date


def test_the_bank_holidays_of_2027() -> None:
    assert sorted(bank_holidays(2027)) == [
        date(2027, 1, 1),
        date(2027, 3, 25),  # Maundy Thursday
        date(2027, 3, 26),  # Good Friday
        date(2027, 3, 29),  # Easter Monday
        date(2027, 5, 1),
        date(2027, 5, 6),  # Ascension Day
        date(2027, 5, 17),  # Constitution Day, and Whit Monday this year
        date(2027, 12, 24),
        date(2027, 12, 25),
        date(2027, 12, 26),
        date(2027, 12, 31),
    ]


def test_the_bank_holidays_of_a_year_are_reckoned_once_and_cannot_be_changed() -> None:
    """Subscription detection asks whether a day is a banking day thousands of times a
    detection; reckoning a year's holidays (Easter among them) on every question made it
    four times slower (found in review, 2026-12-06). The year's set is kept, and it is a
    frozenset: no caller can change the one every other caller is given."""
    first = bank_holidays(2031)
    assert bank_holidays(2031) is first
    assert isinstance(first, frozenset)
    assert bank_holidays.cache_info().hits >= 1


@pytest.mark.parametrize(
    ("day", "paid_on"),
    [
        (date(2027, 5, 1), date(2027, 5, 3)),  # a Saturday and 1 May: the Monday
        (date(2027, 5, 17), date(2027, 5, 18)),  # Constitution Day, a Monday
        (date(2027, 3, 25), date(2027, 3, 30)),  # Maundy Thursday to Easter Monday
        (date(2026, 12, 24), date(2026, 12, 28)),  # Christmas Eve to the Sunday after Boxing Day
        (date(2026, 12, 31), date(2027, 1, 4)),  # New Year's Eve, New Year's Day, a weekend
        (date(2027, 5, 14), date(2027, 5, 14)),  # Whit Monday is the 17th too: a Friday before is paid
        (date(2027, 5, 6), date(2027, 5, 7)),  # Ascension Day
        (date(2028, 6, 5), date(2028, 6, 6)),  # Whit Monday 2028
        (date(2027, 3, 10), date(2027, 3, 10)),  # an ordinary Wednesday
    ],
)
def test_a_date_is_paid_on_its_banking_day(day: date, paid_on: date) -> None:
    assert next_banking_day(day) == paid_on
    assert is_banking_day(paid_on) and (day == paid_on) == is_banking_day(day)


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)))
def test_the_next_banking_day_is_the_first_on_or_after_the_date(day: date) -> None:
    paid = next_banking_day(day)
    assert paid >= day and is_banking_day(paid) and paid - day <= timedelta(days=5)
    assert not any(is_banking_day(day + timedelta(days=n)) for n in range((paid - day).days))
    assert easter_sunday(day.year).weekday() == 6


def test_a_d_number_registered_on_29_february_of_someone_born_in_a_common_year_is_read() -> None:
    """UDI dates a D-number on its registration day and month when none is free on the
    birth date, with the birth year: registered 29.02.2024 for someone born in 1985, it
    carries 29.02.85 and was refused as no calendar date, so its holder could not become a
    customer. A fødselsnummer carries the birth date itself: 29.02.85 stays refused."""
    nid = parse_national_id("69028500068", today=date(2026, 11, 26))
    assert (nid.kind, nid.birth_date) == ("dnr", date(1985, 2, 28))
    with pytest.raises(InvalidNationalId, match="not a real calendar date"):
        parse_national_id("29028500074", today=date(2026, 11, 26))
