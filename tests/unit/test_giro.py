"""Giro OCR lines and invoice fields as the phone's text recognition reads them: valid
and invalid check digits, typical misreads corrected, anything ambiguous refused."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjordbank.domain.giro import InvoiceRefused, amount_check_digit, parse_fields, parse_ocr_line
from fjordbank.domain.norway import kid_mod10_check, make_account_number

ACCOUNT = make_account_number("1503", "00", 37)  # a valid MOD11 number
KID = "123456789" + kid_mod10_check("123456789")
TODAY = date(2026, 11, 26)


def line(
    kid: str = KID, kroner: str = "1234", ore: str = "50", check: str | None = None, account: str = ACCOUNT
) -> str:
    check = str(amount_check_digit(kroner, ore)) if check is None else check
    return f"{kid}  #  {kroner} {ore} {check}  >  {account}#"


def refusal(fn, *args, **kw) -> tuple[str, str | None]:
    with pytest.raises(InvoiceRefused) as exc:
        fn(*args, **kw)
    return exc.value.code, exc.value.field


def test_a_clean_ocr_line_becomes_a_draft():
    draft = parse_ocr_line(line())
    assert (draft.to_account, draft.amount, draft.kid, draft.corrections) == (ACCOUNT, 123_450, KID, ())
    assert draft.to_json()["currency"] == "NOK"


def test_a_line_without_kid_and_with_formatted_account():
    formatted = f"{ACCOUNT[:4]}.{ACCOUNT[4:6]}.{ACCOUNT[6:]}"
    draft = parse_ocr_line(line(kid="", account=formatted))
    assert draft.kid is None and draft.to_account == ACCOUNT


def test_the_amount_check_digit_is_luhn_over_kroner_and_ore():
    assert amount_check_digit("1234", "50") == 9  # 123450: 1+4+3+8+5+0 = 21 -> 9
    assert amount_check_digit("0001234", "50") == 9  # leading zeros on the right-aligned field do not count


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (line(check=str((amount_check_digit("1234", "50") + 1) % 10)), ("amount_check_digit", "amount")),
        (line(account=ACCOUNT[:10] + str((int(ACCOUNT[10]) + 1) % 10)), ("invalid_account", "account")),
        (line(account=ACCOUNT[:10]), ("invalid_account", "account")),
        (line(kid=KID[:-1] + str((int(KID[-1]) + 1) % 10)), ("invalid_kid", "kid")),
        (line(kroner="12S4", check="0"), ("unreadable_character", "kroner")),  # S: 5 or S? refused, not guessed
        (line(account="1503B000037"), ("unreadable_character", "account")),
        ("1234 50 3 > " + ACCOUNT, ("invalid_ocr_line", None)),
        ("", ("invalid_ocr_line", None)),
        ("x" * 500, ("invalid_ocr_line", None)),
        (f"{KID} # 50 3 > {ACCOUNT}#", ("invalid_amount", "amount")),
        (line(kroner="0", ore="00"), ("invalid_amount", "amount")),
    ],
    ids=[
        "amount-check-digit",
        "account-check-digit",
        "account-10-digits",
        "kid-check-digit",
        "ambiguous-S",
        "ambiguous-B",
        "no-separators",
        "empty",
        "oversized",
        "no-kroner",
        "zero",
    ],
)
def test_invalid_lines_are_refused_with_a_precise_reason(text, reason):
    assert refusal(parse_ocr_line, text) == reason


def test_typical_misreads_are_corrected_and_reported():
    kroner, ore = "1204", "10"
    check = str(amount_check_digit(kroner, ore))
    misread_account = ACCOUNT.replace("0", "O", 1)
    text = f"{KID[:3]} {KID[3:]}  #  l2O4 1O {check}  >  {misread_account[:4]} {misread_account[4:]}#"
    draft = parse_ocr_line(text)
    assert (draft.amount, draft.to_account, draft.kid) == (120_410, ACCOUNT, KID)
    assert any("kroner: 'l'" in c for c in draft.corrections) and any("account: 'O'" in c for c in draft.corrections)


@given(st.integers(1, 99_999_999), st.integers(0, 99))
def test_any_amount_round_trips_through_an_ocr_line(kroner, ore):
    draft = parse_ocr_line(line(kroner=str(kroner), ore=f"{ore:02d}"))
    assert draft.amount == kroner * 100 + ore


@given(st.integers(1, 9_999_999), st.integers(0, 99), st.integers(1, 9))
def test_a_wrong_amount_check_digit_is_always_caught(kroner, ore, delta):
    good = amount_check_digit(str(kroner), f"{ore:02d}")
    assert refusal(parse_ocr_line, line(kroner=str(kroner), ore=f"{ore:02d}", check=str((good + delta) % 10)))[0] == (
        "amount_check_digit"
    )


def test_labelled_fields_become_a_draft():
    draft = parse_fields(
        {
            "account": f"{ACCOUNT[:4]} {ACCOUNT[4:6]} {ACCOUNT[6:]}",
            "kid": KID,
            "amount": "1 234,50",
            "dueDate": "15.12.2026",
        },
        today=TODAY,
    )
    assert (draft.to_account, draft.amount, draft.kid, draft.due_date) == (ACCOUNT, 123_450, KID, date(2026, 12, 15))


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"kid": KID, "amount": "100"}, ("invalid_request", None)),
        ({"account": ACCOUNT, "amount": "12,345"}, ("invalid_amount", "amount")),
        ({"account": ACCOUNT, "amount": "-100"}, ("invalid_amount", "amount")),
        ({"account": ACCOUNT}, ("missing_amount", "amount")),
        ({"account": ACCOUNT, "amount": "100", "dueDate": "31.02.2026"}, ("invalid_due_date", "dueDate")),
        ({"account": ACCOUNT, "amount": "100", "dueDate": "soon"}, ("invalid_due_date", "dueDate")),
        ({"account": ACCOUNT, "amount": "100", "iban": "NO93"}, ("invalid_request", None)),
        ({"account": ACCOUNT, "amount": 100}, ("invalid_request", "amount")),
    ],
    ids=[
        "no-account",
        "three-decimals",
        "negative",
        "no-amount",
        "impossible-date",
        "words",
        "unknown-field",
        "number",
    ],
)
def test_invalid_fields_are_refused(fields, reason):
    assert refusal(parse_fields, fields, today=TODAY) == reason


def test_a_past_due_date_is_paid_today():
    draft = parse_fields({"account": ACCOUNT, "amount": "100", "dueDate": "2026-01-01"}, today=TODAY)
    assert draft.due_date == TODAY
