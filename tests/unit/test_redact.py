"""Personal data is masked in log lines, whatever code wrote them."""

from __future__ import annotations

import io
import json
import logging

from hypothesis import given
from hypothesis import strategies as st

from fjordbank.domain.cards import make_pan
from fjordbank.domain.norway import is_valid_national_id, make_account_number, national_id_control_digits
from fjordbank.runtime import logs
from fjordbank.runtime.redact import RedactingFormatter, install, redact


def test_account_numbers_in_every_layout_keep_only_their_last_four_digits():
    number = make_account_number("9710", "00", 11)
    for text in (number, f"{number[:4]}.{number[4:6]}.{number[6:]}", f"{number[:4]} {number[4:6]} {number[6:]}"):
        assert redact(f"path=/accounts/{text} x") == f"path=/accounts/*******{number[-4:]} x"


def test_national_identity_numbers_are_masked():
    assert redact("nid 01019012345, ok") == "nid *******2345, ok"


def test_national_identity_numbers_written_six_and_five_are_masked():
    """Written as people write them, the birth date apart (found in review: passed
    unmasked, though SECURITY.md promises any layout)."""
    # a no-break space, as it is and as JSON writes it, and two spaces: passed unmasked
    # after the first fix (found in review, 2026-12-06)
    for sep in (" ", "-", "\u00a0", "\\u00a0", "  "):
        assert redact(f"nid 150685{sep}12345, ok") == "nid *******2345, ok"
        assert redact(f'{{"msg": "lookup failed\\n150685{sep}12345"}}') == '{"msg": "lookup failed\\n*******2345"}'


def test_national_identity_numbers_with_a_dotted_birth_date_or_split_digits_are_masked_when_they_hold():
    """As forms and letters print them (found in review, 2026-12-06: passed unmasked); only
    a number whose control digits hold, since a date before an amount reads the same (the
    first fix masked "Forfall 15.06.26 12345,00 kr")."""
    k1, k2 = national_id_control_digits("150685123")
    rest = f"123{k1}{k2}"
    for written in (
        f"15.06.85 {rest}",
        f"15.06.85-{rest}",
        f"15.06.1985 {rest}",
        f"150685 {rest[:3]} {rest[3:]}",
        f"15.06.85 {rest[:3]} {rest[3:]}",
        f"150685\\u00a0{rest[:3]}\\u00a0{rest[3:]}",
    ):
        assert redact(f"nid {written}, ok") == f"nid *******{rest[1:]}, ok", written
    # a number valid only under the 2032 rule (issued from 2032) is not taken for one in a
    # written layout: with them a date before an amount was masked four times as often
    # (found in review, 2026-12-06); written six and five it is masked as any such number
    assert is_valid_national_id("15068550049")
    for written in ("15.06.85 50049", "150685 500 49"):
        assert redact(f"nid {written}") == f"nid {written}", written
    assert redact("nid 150685 50049") == "nid *******0049"
    assert redact("Forfall 01.01.25 03071,00 kr") == "Forfall 01.01.25 03071,00 kr"
    bad = f"123{k1}{(k2 + 1) % 10}"
    for text in (
        f"nid 15.06.85 {bad}",
        "Forfall 15.06.26 12345,00 kr",
        "settled 06.12.26 10000 NOK",
        "kl. 16.23.09 12345 ms",
        "ver 10.11.12 20000",
        "on 15.06.85 1234",
        f"v1.15.06.85 {rest}",
        "150685 1234 5",
        f"150685 {bad[:3]} {bad[3:]}",
    ):
        assert redact(text) == text, text


@given(st.integers(0, 10**11 - 1), st.sampled_from([" ", "-"]))
def test_any_eleven_digit_number_written_six_and_five_is_masked(n, sep):
    digits = f"{n:011d}"
    written = f"{digits[:6]}{sep}{digits[6:]}"
    assert redact(f"x {written} y") == f"x *******{digits[-4:]} y"


def test_digits_in_other_layouts_than_six_and_five_are_left_alone():
    for text in (
        "1234567 12345",
        "12345 123456",
        "123456 1234",
        "123456 123456",
        "a123456 12345",
        "123456 12345b",
        "ref 2026-123456-12345",  # a part of a longer hyphen-joined run
        "ref 123456-12345-7",
        "uuid 0b4c9a2e-1234-5678-9abc-123456789012",
        "on 2026-12-05 10:00",
    ):
        assert redact(text) == text, text


def test_card_numbers_keep_bin_and_last_four():
    pan = make_pan("499210")
    assert redact(f"card {pan}.") == f"card {pan[:6]}******{pan[-4:]}."


def test_a_card_number_printed_in_groups_is_masked_too():
    pan = make_pan("499210")
    for sep in (" ", "-"):
        grouped = sep.join(pan[i : i + 4] for i in range(0, 16, 4))
        assert redact(f"card {grouped}.") == f"card {pan[:6]}******{pan[-4:]}."


def test_a_number_after_a_line_break_or_a_tab_in_a_json_log_line_is_masked(capsys):
    """A log line is masked once serialised, where a newline before a number is the two
    characters backslash and n: the letter n may not pass for part of the number's word."""
    pan = make_pan("499210")
    logs.setup("test")
    log = logging.getLogger("t")
    log.error("two lines:\n%s", pan)
    log.error("tabbed:\t%s and\n97100000011", pan)
    try:
        raise ValueError(f"vault lookup failed for\n{pan}")
    except ValueError:
        log.exception("handler failed")
    out = capsys.readouterr().out
    assert pan not in out and "97100000011" not in out and out.count(pan[-4:]) == 3


def test_ids_amounts_and_timestamps_are_left_alone():
    text = "payment p31234567890123abc ca0123456789012 amount 1234567 at 1732590000123 seq 12345678901234"
    assert redact(text) == text


@given(st.integers(0, 10**11 - 1))
def test_any_standalone_eleven_digit_number_is_masked(n):
    digits = f"{n:011d}"
    assert digits not in redact(f"x {digits} y")


def test_service_json_logs_are_masked(capsys):
    logs.setup("test")
    logging.getLogger("t").info("closing", extra={"account": "97100000011", "nid": "01019012345"})
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (line["account"], line["nid"]) == ("*******0011", "*******2345")


def test_install_wraps_a_plain_handler_once():
    stream = io.StringIO()
    logger = logging.getLogger("redact-test")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    install(logger)
    install(logger)
    assert isinstance(handler.formatter, RedactingFormatter) and not isinstance(
        handler.formatter.inner, RedactingFormatter
    )
    try:
        raise ValueError("409 entity already exists: path=/accounts/97100000001")
    except ValueError:
        logger.exception("unhandled")
    assert "97100000001" not in stream.getvalue() and "*******0001" in stream.getvalue()


def test_ibans_accounts_apart_by_hyphens_or_four_and_seven_and_cards_in_mixed_groups_are_masked():
    """Found in review, 2026-12-07: an IBAN (its left edge a letter, taken for the inside
    of an id), an account number written with hyphens, a card number in groups
    apart by mixed separators or two spaces, and a card number after a URL's escape
    (``pan%3D...``) passed unmasked."""
    number = make_account_number("8601", "11", 1794)
    iban = f"NO93{number}"
    assert redact(f"creditor {iban} rejected") == f"creditor NO93*******{number[-4:]} rejected"
    assert redact(f"<IBAN>{iban}</IBAN>") == f"<IBAN>NO93*******{number[-4:]}</IBAN>"
    printed = f"NO93 {number[:4]} {number[4:8]} {number[8:]}"
    assert redact(f"iban {printed}.") == f"iban NO93*******{number[-4:]}."
    assert redact(f"iban {iban.lower()}") == f"iban no93*******{number[-4:]}"
    written = f"{number[:4]}-{number[4:6]}-{number[6:]}"
    assert redact(f"konto {written} ok") == f"konto *******{number[-4:]} ok", written
    pan = make_pan("459876", "123456789")
    masked = f"{pan[:6]}******{pan[-4:]}"
    for written in (f"{pan[:4]} {pan[4:8]}-{pan[8:12]} {pan[12:]}", f"{pan[:4]}  {pan[4:8]}  {pan[8:12]}  {pan[12:]}"):
        assert redact(f"card {written} x") == f"card {masked} x", written
    assert redact(f"q=pan%3D{pan}&x=1") == f"q=pan%3D{masked}&x=1"
    # what is none of them stays: a date, a reference of hyphen-joined digits, an id
    for kept in ("2026-12-07", "ref 2026-123456-12345", "p3f1a86011117947", "NO12 kroner"):
        assert redact(kept) == kept, kept


def test_the_layouts_the_review_of_the_first_fix_found_are_masked_and_decimals_and_references_are_not():
    """The review of that fix (2026-12-07): an IBAN after a JSON escape or a URL's escape
    and a card number in groups apart by no-break spaces, dots or %20 passed; a decimal
    and a reference were masked."""
    number = make_account_number("8601", "11", 1794)
    masked = f"*******{number[-4:]}"
    assert redact(json.dumps({"msg": f"bad creditor\nNO93{number}"})) == json.dumps(
        {"msg": f"bad creditor\nNO93{masked}"}
    )
    assert redact(f"GET /pay?iban%3DNO93{number}&x=1") == f"GET /pay?iban%3DNO93{masked}&x=1"
    pan = make_pan("459876", "123456789")
    groups = [pan[i : i + 4] for i in range(0, 16, 4)]
    card = f"{pan[:6]}******{pan[-4:]}"
    for apart in ("\u00a0", ".", "%20"):
        assert redact(f"card {apart.join(groups)} x") == f"card {card} x", apart
    assert redact(json.dumps("\u00a0".join(groups))) == f'"{card}"'
    # pairs of ordinary numbers (the review of the second fix: masked as account numbers)
    for kept in (
        "elapsed 1234.5678901 s",
        "invoice INV-2026-0012345 paid",
        "ref 2026-123456-12345",
        "1234.56 kr",
        "amounts 1500.00 25000.00 settled",
        "sizes 1024 1048576 bytes",
        "range 1234-56 12345",
    ):
        assert redact(kept) == kept, kept


def test_e_mail_addresses_keep_only_a_first_letter_and_the_top_level_domain():
    for text, masked in (
        ("contact kari.nordmann@example.no saved", "contact k***@***.no saved"),
        ('{"email": "ola+bank@post.nordmann.com"}', '{"email": "o***@***.com"}'),
        ("Æsa.Ødegård@eksempel.no", "Æ***@***.no"),
    ):
        assert redact(text) == masked
    service_account = "as ledger@fjordbank-prod.iam.gserviceaccount.com"  # the deploy's, no person's
    assert redact(service_account) == service_account


def test_phone_numbers_keep_only_their_last_two_digits():
    for text in ("+47 912 34 567", "+4791234567", "0047 91234567", "+47-912-34-567", "912 34 567", "91 23 45 67"):
        masked = redact(f"tel {text}.")
        assert "34" not in masked and masked.endswith("67."), (text, masked)
    assert redact('{"phone": "+4591234567"}') == '{"phone": "+********67"}'


def test_numbers_that_are_no_phone_numbers_are_left_alone():
    # eight digits together are also an amount in øre; 00 and digits a zero-padded number;
    # a time zone, thousands groups, an ISO time
    text = "amount 91234567 seq 0012345678 at 2026-12-07T22:00:00+01:00 +0100 total 1 234 567 kr 4 123 456"
    assert redact(text) == text


def test_a_card_number_in_groups_apart_by_tabs_is_masked():
    pan = make_pan("459876", "123456789")
    groups = [pan[i : i + 4] for i in range(0, 16, 4)]
    for sep in ("\t", "\\t"):
        assert redact(f"pan {sep.join(groups)}") == f"pan {pan[:6]}******{pan[-4:]}"


def test_a_phone_number_followed_by_another_number_is_masked_and_keeps_its_own_last_digits():
    """Found in review (2026-12-07): a number after it took the match past its end (left
    whole), or into it (the 2 of "2 times" kept); eleven digits written together with a
    country code were masked as an account number's, keeping four."""
    for text, masked in (
        ("+47 912 34 567 2026-12-07", "+********67 2026-12-07"),
        ("+4791234567 100000 kr", "+********67 100000 kr"),
        ("912 34 567 2026", "******67 2026"),
        ("+47 912 34 567 2 times", "+********67 2 times"),
        ("+46701234567", "+*********67"),
    ):
        assert redact(text) == masked, text


def test_e_mail_addresses_written_in_a_url_in_punycode_or_with_an_apostrophe_are_masked():
    for text, masked in (
        ("mailto=kari%40example.no", "mailto=k***@***.no"),
        ("ivan@пример.xn--p1ai", "i***@***.xn--p1ai"),
        ("o'brien@example.ie", "o***@***.ie"),
    ):
        assert redact(text) == masked, text


def test_a_number_with_a_letter_after_it_is_no_phone_number_and_a_url_encoded_plus_is():
    """Found in the review of the first version (2026-12-07)."""
    for text in ("+12345678ms", "retry +1 2026-12-07T10:00:00Z", '{"delta":+12345678e3}', "ab/+12345678Qz"):
        assert redact(text) == text
    assert redact("phone=%2B4791234567") == "phone=%2B********67"
