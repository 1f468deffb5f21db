"""Norwegian identifiers (bank account numbers, KID, national identity numbers) and the
banking days.

All functions are pure: no I/O, no clock reads except the documented default
``today = date.today()`` of :func:`parse_national_id`.

Only ASCII digits 0-9 count as digits (``str.isdigit`` alone would also
accept e.g. Arabic-Indic digits). Error messages never contain a full account
or national identity number, so they are safe to log.

Sources for the rules implemented here:

* Account numbers: Bits/Finans Norge "kontonummer" MOD11 rule (weights
  5,4,3,2,7,6,5,4,3,2).
* KID: Nets/Mastercard Payment Services "OCR giro" specification, MOD10
  (Luhn) and MOD11 (weights 2..7 from the right, ``-`` for 10).
* Fødselsnummer and D-number: Skatteetaten, "Folkeregisteret, oppbygging av
  fødselsnummer"; the D-number range extension of 2021-06-24 ("Utvidelse av
  D-nummerserien"); and "Nytt fødselsnummer fra 2032"
  (skatteetaten.github.io/folkeregisteret-api-dokumentasjon/nytt-fodselsnummer-fra-2032/).
* Banking days: the public holidays of the Act on public holidays (lov om helligdager og
  helligdagsfred, 1995) and 1 and 17 May (lov om 1. og 17. mai som høgtidsdagar, 1947);
  Christmas Eve and New Year's Eve are not banking days either (Norges Bank's settlement
  system is closed, and Norwegian banks' price lists count neither).
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal, TypeGuard
from zoneinfo import ZoneInfo

from fjordbank.domain.errors import (
    InvalidAccountNumber,
    InvalidDateRange,
    InvalidDigits,
    InvalidKid,
    InvalidNationalId,
)

KidScheme = Literal["mod10", "mod11"]
NationalIdKind = Literal["fnr", "dnr"]
Sex = Literal["F", "M"]


# --------------------------------------------------------------------- helpers


def _is_ascii_digits(text: str) -> bool:
    """True if ``text`` is non-empty and consists of ASCII digits 0-9 only."""
    return text.isascii() and text.isdigit()


def _weighted_sum(digits: str, weights: Sequence[int]) -> int:
    """Sum of ``digit * weight`` pairwise, left to right."""
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True))


def _mod11_control(weighted_sum: int) -> int | None:
    """Classic MOD11 control digit: ``11 - (sum mod 11)``.

    Remainder 0 gives 0 (11 -> 0); remainder 1 would give 10, which is not a
    digit, so ``None`` is returned. Shared by account numbers and
    fødselsnummer.
    """
    remainder = weighted_sum % 11
    if remainder == 0:
        return 0
    if remainder == 1:
        return None
    return 11 - remainder


# ------------------------------------------------------------------------ Luhn


def luhn_check_digit(body: str) -> int:
    """Return the Luhn (MOD10) check digit to append to ``body``.

    From the right, every second digit of the body starting with the
    rightmost is doubled (subtracting 9 when the product exceeds 9); the check
    digit brings the total to a multiple of 10.

    Raises:
        InvalidDigits: if ``body`` is not a non-empty string of ASCII digits.
    """
    if not isinstance(body, str) or not _is_ascii_digits(body):
        raise InvalidDigits("Luhn body must be a non-empty string of ASCII digits")
    total = 0
    for index, char in enumerate(reversed(body)):
        digit = int(char)
        if index % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10


def is_luhn_valid(number: str) -> bool:
    """True if ``number`` (at least two ASCII digits) ends in its Luhn check digit."""
    if not isinstance(number, str) or len(number) < 2 or not _is_ascii_digits(number):
        return False
    return luhn_check_digit(number[:-1]) == int(number[-1])


# ------------------------------------------------------------- account numbers

ACCOUNT_WEIGHTS: tuple[int, ...] = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
"""MOD11 weights applied to the first 10 digits of an account number."""

_ACCOUNT_LAYOUT_RE = re.compile(r"[0-9]{4}[ .]?[0-9]{2}[ .]?[0-9]{5}")


def normalize_account_number(s: str) -> str:
    """Return the 11 bare digits of an account number written as typed by a person.

    Accepted: surrounding whitespace and, optionally, one space (or NBSP) or
    dot at each of the two conventional positions: ``"12345678903"``,
    ``"1234.56.78903"``, ``"1234 56 78903"``. The check digit is NOT verified
    here; use :func:`validate_account_number` for that.

    Raises:
        InvalidAccountNumber: on any other character, digit count or layout.
    """
    if not isinstance(s, str):
        raise InvalidAccountNumber(f"account number must be a str, got {type(s).__name__}")
    text = s.strip().replace("\u00a0", " ")
    if any(not (c.isascii() and (c.isdigit() or c in " .")) for c in text):
        raise InvalidAccountNumber("account number may contain only digits, spaces and dots")
    digits = text.replace(" ", "").replace(".", "")
    if len(digits) != 11:
        raise InvalidAccountNumber(f"account number must have 11 digits, got {len(digits)}")
    if _ACCOUNT_LAYOUT_RE.fullmatch(text) is None:
        raise InvalidAccountNumber("account number separators are only allowed as in XXXX.XX.XXXXX or XXXX XX XXXXX")
    return digits


def account_check_digit(first10: str) -> int | None:
    """MOD11 check digit for the first 10 digits of an account number.

    ``r = sum(digit_i * w_i) mod 11`` with weights 5,4,3,2,7,6,5,4,3,2;
    check digit is 0 if ``r == 0``, ``11 - r`` if ``r >= 2``, and ``None``
    if ``r == 1`` (no valid account number has those first 10 digits).

    Raises:
        InvalidAccountNumber: if ``first10`` is not exactly 10 ASCII digits.
    """
    if not isinstance(first10, str) or len(first10) != 10 or not _is_ascii_digits(first10):
        raise InvalidAccountNumber("account number body must be exactly 10 digits")
    return _mod11_control(_weighted_sum(first10, ACCOUNT_WEIGHTS))


def validate_account_number(s: str) -> str:
    """Return the normalized 11-digit account number, or raise.

    Raises:
        InvalidAccountNumber: bad characters/layout/length (see
            :func:`normalize_account_number`), first 10 digits that admit no
            check digit (MOD11 remainder 1), or a wrong check digit.
    """
    digits = normalize_account_number(s)
    expected = account_check_digit(digits[:10])
    if expected is None:
        raise InvalidAccountNumber("account number is impossible: MOD11 remainder 1 leaves no valid check digit")
    if int(digits[10]) != expected:
        raise InvalidAccountNumber(f"account number check digit is {digits[10]}, MOD11 requires {expected}")
    return digits


def is_valid_account_number(s: str) -> bool:
    """True if :func:`validate_account_number` accepts ``s``."""
    try:
        validate_account_number(s)
    except InvalidAccountNumber:
        return False
    return True


def is_account_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` has an account document's id's shape: 11 ASCII digits, as stored
    (a caller's id of another shape names no account, and is never looked up: one of
    2,000 digits made Firestore refuse the read, and the callable answered INTERNAL)."""
    return isinstance(value, str) and len(value) == 11 and _is_ascii_digits(value)


def make_account_number(bank_reg: str, account_group: str, serial: int) -> str:
    """Build a valid 11-digit account number ``RRRRGGSSSSK``.

    Args:
        bank_reg: 4-digit bank registration number (e.g. ``"1234"``).
        account_group: 2-digit account group (e.g. ``"56"``).
        serial: customer serial number 0..9999, zero-padded to 4 digits.

    Raises:
        InvalidAccountNumber: on malformed parts, or when the MOD11 remainder
            is 1 so that no check digit exists (pick another serial).
    """
    if not isinstance(bank_reg, str) or len(bank_reg) != 4 or not _is_ascii_digits(bank_reg):
        raise InvalidAccountNumber("bank registration number must be exactly 4 digits")
    if not isinstance(account_group, str) or len(account_group) != 2 or not _is_ascii_digits(account_group):
        raise InvalidAccountNumber("account group must be exactly 2 digits")
    if isinstance(serial, bool) or not isinstance(serial, int) or not 0 <= serial <= 9999:
        raise InvalidAccountNumber("account serial must be an int from 0 to 9999")
    first10 = f"{bank_reg}{account_group}{serial:04d}"
    check = account_check_digit(first10)
    if check is None:
        raise InvalidAccountNumber(f"serial {serial:04d} gives MOD11 remainder 1: no valid check digit exists")
    return f"{first10}{check}"


def format_account_number(s: str) -> str:
    """Return a valid account number in display form ``XXXX.XX.XXXXX``.

    Raises:
        InvalidAccountNumber: as :func:`validate_account_number`.
    """
    digits = validate_account_number(s)
    return f"{digits[:4]}.{digits[4:6]}.{digits[6:]}"


def mask_account_number(s: str) -> str:
    """Mask for logs, showing only the last 4 digits: ``"****.**.*8903"``.

    Only the layout is checked (11 digits), not the check digit, so that
    rejected input can be logged too.

    Raises:
        InvalidAccountNumber: if ``s`` does not normalize to 11 digits.
    """
    digits = normalize_account_number(s)
    return f"****.**.*{digits[7:]}"


# ------------------------------------------------------------------------- KID

KID_MIN_LENGTH = 2
KID_MAX_LENGTH = 25
_KID_MOD11_WEIGHTS = (2, 3, 4, 5, 6, 7)


def _require_kid_body(body: str) -> None:
    """A KID body (without check character) is 1..24 ASCII digits."""
    if not isinstance(body, str) or not _is_ascii_digits(body):
        raise InvalidKid("KID body must be a non-empty string of digits")
    if len(body) > KID_MAX_LENGTH - 1:
        raise InvalidKid(f"KID body must be at most {KID_MAX_LENGTH - 1} digits")


def kid_mod10_check(body: str) -> str:
    """MOD10 (Luhn) KID check digit for ``body``, as a one-character string.

    Raises:
        InvalidKid: if ``body`` is not 1..24 digits.
    """
    _require_kid_body(body)
    return str(luhn_check_digit(body))


def kid_mod11_check(body: str) -> str:
    """MOD11 KID check character for ``body``: ``"0"``-``"9"`` or ``"-"``.

    Weights 2,3,4,5,6,7 repeat from the rightmost body digit leftwards;
    ``r = sum mod 11``; check is ``"0"`` if ``r == 0``, ``"-"`` if ``r == 1``
    (11 - 1 = 10 has no digit; ``-`` is a valid KID check character),
    otherwise ``str(11 - r)``.

    Raises:
        InvalidKid: if ``body`` is not 1..24 digits.
    """
    _require_kid_body(body)
    total = sum(
        int(char) * _KID_MOD11_WEIGHTS[index % len(_KID_MOD11_WEIGHTS)] for index, char in enumerate(reversed(body))
    )
    remainder = total % 11
    if remainder == 0:
        return "0"
    if remainder == 1:
        return "-"
    return str(11 - remainder)


def split_kid(kid: str) -> tuple[str, str]:
    """The body and the check character of a KID in valid form, surrounding whitespace
    ignored; the check character itself is not verified here (see :func:`validate_kid`).

    The form: 2..25 characters, all ASCII digits except that the last (the check
    character) may be ``-``, which MOD11 gives for remainder 1.

    Raises:
        InvalidKid: on a non-str, wrong length or characters.
    """
    if not isinstance(kid, str):
        raise InvalidKid(f"KID must be a str, got {type(kid).__name__}")
    text = kid.strip()
    if not KID_MIN_LENGTH <= len(text) <= KID_MAX_LENGTH:
        raise InvalidKid(f"KID must be {KID_MIN_LENGTH}-{KID_MAX_LENGTH} characters long, got {len(text)}")
    body, check = text[:-1], text[-1]
    if not _is_ascii_digits(body) or not (check == "-" or _is_ascii_digits(check)):
        raise InvalidKid("KID must be digits only; only the last (MOD11 check) may be '-'")
    return body, check


def validate_kid(kid: str, *, scheme: KidScheme | None = None) -> str:
    """Return ``kid`` without surrounding whitespace if it is a valid KID.

    A KID is 2..25 characters: digits, the last of which is a check
    character. With ``scheme=None`` it is valid if EITHER the MOD10 or the
    MOD11 check matches (the payee's agreement decides which one applies; pass
    ``scheme`` when known, since accepting both weakens error detection).

    Raises:
        InvalidKid: on wrong length, characters or check character.
    """
    if scheme not in (None, "mod10", "mod11"):
        raise ValueError(f"unknown KID scheme {scheme!r}: 'mod10', 'mod11' or None")  # never no check at all
    body, check = split_kid(kid)
    text = body + check
    mod10 = kid_mod10_check(body)
    mod11 = kid_mod11_check(body)
    if scheme == "mod10" and check != mod10:
        raise InvalidKid(f"KID MOD10 check digit is {check!r}, expected {mod10!r}")
    if scheme == "mod11" and check != mod11:
        raise InvalidKid(f"KID MOD11 check character is {check!r}, expected {mod11!r}")
    if scheme is None and check not in (mod10, mod11):
        raise InvalidKid(f"KID check character {check!r} matches neither MOD10 ({mod10!r}) nor MOD11 ({mod11!r})")
    return text


def is_valid_kid(kid: str, *, scheme: KidScheme | None = None) -> bool:
    """True if :func:`validate_kid` accepts ``kid``."""
    try:
        validate_kid(kid, scheme=scheme)
    except InvalidKid:
        return False
    return True


# ---------------------------------------------------- national identity numbers
#
# Layout DDMMYYIIIK1K2: birth date, individual number III, control digits.
#
# Control digits, classic rule (all numbers issued before 2032):
#   k1 = 11 - (sum(d_i * w_i, w = 3,7,6,1,8,9,4,5,2) mod 11) over digits 1-9
#   k2 = 11 - (sum(d_i * w_i, w = 5,4,3,2,7,6,5,4,3,2) mod 11) over digits 1-10
#   where 11 becomes 0 and 10 means "this number cannot be issued".
#   Equivalently: (S1 + k1) mod 11 == 0 and (S2 + k2) mod 11 == 0, with
#   S1/S2 the weighted sums above (k1 itself is weighted 2 inside S2).
#
# 2032 rule (Skatteetaten, "Nytt fødselsnummer fra 2032"; numbers issued from
# 2032-01-01, for any birth date): ONLY k1 is relaxed. k1 is valid when
#   (S1 + k1) mod 11 in {0, 1, 2, 3}
# i.e. k1 = {11, 12, 13, 14} - (S1 mod 11), reduced by 11 when above 10, and a
# result of 10 is still rejected. k2 is computed exactly as before (one valid
# value, from the k1 actually present). The classic rule is the special case
# remainder 0. Relaxing k2 to remainders 0..3 as well would contradict
# Skatteetaten's published text ("k2 beregnes likt som før med kun 1 - ett -
# gyldig siffer"), its worked example 301082 999 39 and NAV's reference
# validator (navikt/fnrvalidator); such numbers are rejected here.
# A number issued from 2032 whose k1 happens to hit remainder 0 cannot be told
# apart from a classic one; it is decoded by the classic rules below, and from
# 2032 on, one those rules refuse (an individual number outside the ranges of its
# year, or a date in the future) is read by the 2032 rule instead.
#
# Kinds:
#   * fødselsnummer ("fnr"): DD = 01-31.
#   * D-number ("dnr"): DD + 40 (41-71).
#   * H-number (MM + 40): help numbers assigned by health services, not by
#     Folkeregisteret. REJECTED: a bank must identify customers by fnr/dnr.
#   * Synthetic test numbers from Skatteetaten's test data (Tenor): MM + 80
#     (81-92), possibly combined with DD + 40. REJECTED unless
#     ``allow_synthetic=True`` (for test environments only).
#
# Century of birth, classic fødselsnummer table:
#   000-499           -> 1900-1999
#   500-749, YY 54-99 -> 1854-1899
#   500-999, YY 00-39 -> 2000-2039
#   900-999, YY 40-99 -> 1940-1999
#   anything else (500-749 with YY 40-53, 750-899 with YY 40-99) is unused.
# D-numbers follow Skatteetaten's extended table of 2021-06-24:
#   YY 00-39: 000-199 -> 1900s, 200-999 -> 2000s
#   YY 40-99: 500-599 -> 1800s (YY >= 54), other individual numbers -> 1900s
#   (so a pre-2021 D-number in 600-749 for someone born 1854-1899 is read as
#   1900s; nobody born then is alive).
#   A D-number in 200-499 with YY 00-39 issued before the 2021 extension (in use
#   from August 2021) belongs to the 1900s, by the classic table, and the number
#   does not say when it was issued. The 1900s reading is ``birth_date`` when the
#   2000s one would place the birth date after ``today``; otherwise ``birth_date``
#   is the 2000s reading and ``older_birth_date`` the 1900s one, and a caller
#   holding a birth date (onboarding) takes either (found in review, 2026-12-06:
#   a D-number of someone born 1920 was read as 2020 only).
# 2032-rule numbers are accepted before 2032 too, on purpose: Skatteetaten asks every
# system to take them before the first is issued (its test data carries them now), and a
# parser that refused them until a date would need a release on that date. The price: a
# number mistyped in its first control digit passes that check four times as often until
# then; onboarding still holds the number to the birth date given (decided in review,
# 2026-12-07; the log redaction, which guesses, does not take them before 2032).
# 2032-rule numbers: the individual number no longer encodes the century (nor
# sex), so the birth date is taken as the latest DDMMYY date that is not after
# ``today``, and sex is None. The authoritative birth date and sex are always
# the ones registered in Folkeregisteret; derived values are best-effort.
# A D-number is dated on its registration day and month when no number was free on
# the birth date (UDI), with the birth year: one registered on 29 February for
# someone born in a common year carries 29.02.YY, and is read as 28.02.YY.

NATIONAL_ID_K1_WEIGHTS: tuple[int, ...] = (3, 7, 6, 1, 8, 9, 4, 5, 2)
NATIONAL_ID_K2_WEIGHTS: tuple[int, ...] = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
K1_REMAINDERS_2032: frozenset[int] = frozenset({0, 1, 2, 3})
"""Accepted values of ``(S1 + k1) mod 11`` under the 2032 rule (0 = classic)."""


@dataclass(frozen=True, slots=True, repr=False)
class NationalId:
    """A parsed, validated Norwegian fødselsnummer or D-number.

    Attributes:
        number: the 11 digits.
        kind: ``"fnr"`` (fødselsnummer) or ``"dnr"`` (D-number).
        birth_date: birth date derived from the number (best-effort for
            2032-rule numbers, see module notes).
        sex: ``"F"`` if the individual number is even, ``"M"`` if odd; ``None``
            for 2032-rule numbers, which are gender-neutral.
        uses_2032_rule: True if k1 is valid only under the 2032 rule
            (remainder 1-3), False if it satisfies the classic rule.
        synthetic: True for Skatteetaten synthetic test numbers (month + 80).
        older_birth_date: the 1900s reading of a D-number whose century the number
            does not settle (200-499 with YY 00-39, see module notes) when
            ``birth_date`` is its 2000s reading; None for every other number.

    ``repr`` shows only the masked number, so instances are safe to log.
    """

    number: str
    kind: NationalIdKind
    birth_date: date
    sex: Sex | None
    uses_2032_rule: bool
    synthetic: bool = False
    older_birth_date: date | None = None

    @property
    def birth_dates(self) -> tuple[date, ...]:
        """Every birth date the number may be read as: ``birth_date`` first."""
        return (self.birth_date,) if self.older_birth_date is None else (self.birth_date, self.older_birth_date)

    def __repr__(self) -> str:
        return (
            f"NationalId(number={mask_national_id(self.number)!r}, kind={self.kind!r}, "
            f"uses_2032_rule={self.uses_2032_rule}, synthetic={self.synthetic})"
        )


def national_id_control_digits(first9: str) -> tuple[int, int] | None:
    """Classic (pre-2032) control digits k1, k2 for the first 9 digits.

    Returns ``None`` when either would be 10, i.e. the 9 digits cannot form a
    number under the classic rule.

    Raises:
        InvalidNationalId: if ``first9`` is not exactly 9 ASCII digits.
    """
    if not isinstance(first9, str) or len(first9) != 9 or not _is_ascii_digits(first9):
        raise InvalidNationalId("national identity number body must be exactly 9 digits")
    k1 = _mod11_control(_weighted_sum(first9, NATIONAL_ID_K1_WEIGHTS))
    if k1 is None:
        return None
    k2 = _mod11_control(_weighted_sum(f"{first9}{k1}", NATIONAL_ID_K2_WEIGHTS))
    if k2 is None:
        return None
    return k1, k2


def _require_eleven_digits(s: object) -> str:
    """Strip surrounding whitespace and require exactly 11 ASCII digits."""
    if not isinstance(s, str):
        raise InvalidNationalId(f"national identity number must be a str, got {type(s).__name__}")
    text = s.strip()
    if not text or not _is_ascii_digits(text):
        raise InvalidNationalId("national identity number must contain only digits")
    if len(text) != 11:
        raise InvalidNationalId(f"national identity number must have 11 digits, got {len(text)}")
    return text


def _check_control_digits(number: str) -> bool:
    """Verify k1 (classic or 2032 rule) and k2; True if k1 needs the 2032 rule."""
    k1_remainder = (_weighted_sum(number[:9], NATIONAL_ID_K1_WEIGHTS) + int(number[9])) % 11
    if k1_remainder not in K1_REMAINDERS_2032:
        raise InvalidNationalId("first control digit (k1) is wrong under both the classic and the 2032 MOD11 rule")
    expected_k2 = _mod11_control(_weighted_sum(number[:10], NATIONAL_ID_K2_WEIGHTS))
    if expected_k2 is None:
        raise InvalidNationalId("second control digit (k2) is impossible: MOD11 remainder 1 for the first 10 digits")
    if int(number[10]) != expected_k2:
        raise InvalidNationalId("second control digit (k2) is wrong")
    return k1_remainder != 0


def _decode_kind_day_month(number: str, *, allow_synthetic: bool) -> tuple[NationalIdKind, int, int, bool]:
    """Return (kind, day, month, synthetic) with the D/synthetic offsets removed."""
    day, month = int(number[0:2]), int(number[2:4])
    kind: NationalIdKind = "fnr"
    if 41 <= day <= 71:
        kind, day = "dnr", day - 40
    elif not 1 <= day <= 31:
        raise InvalidNationalId("day field must be 01-31 (fødselsnummer) or 41-71 (D-number)")
    synthetic = False
    if 81 <= month <= 92:
        if not allow_synthetic:
            raise InvalidNationalId("synthetic test numbers (month + 80) are not accepted")
        synthetic, month = True, month - 80
    elif 41 <= month <= 52:
        raise InvalidNationalId("H-numbers (month + 40) are not accepted")
    elif not 1 <= month <= 12:
        raise InvalidNationalId("month field must be 01-12")
    return kind, day, month, synthetic


RULE_2032_FROM = date(2032, 1, 1)  # numbers issued from then carry no century (Skatteetaten)


def _fnr_century(individual: int, yy: int) -> int:
    """Century of a classic fødselsnummer from its individual number and year."""
    if individual <= 499:
        return 1900
    if individual <= 749 and yy >= 54:
        return 1800
    if yy <= 39:
        return 2000
    if individual >= 900:
        return 1900
    raise InvalidNationalId("individual number range is not issued for that birth year")


def _dnr_century(individual: int, yy: int) -> int:
    """Century of a classic D-number (Skatteetaten's 2021 extended table)."""
    if yy <= 39:
        return 1900 if individual <= 199 else 2000
    if 500 <= individual <= 599:
        if yy >= 54:
            return 1800
        raise InvalidNationalId("individual number range is not issued for that birth year")
    return 1900


def _make_date(year: int, month: int, day: int) -> date:
    """``date(year, month, day)`` or InvalidNationalId for an impossible date."""
    try:
        return date(year, month, day)
    except ValueError:
        raise InvalidNationalId("birth date is not a real calendar date") from None


def _dnr_date(year: int, month: int, day: int) -> date:
    """A D-number's date (module notes): 29.02 of a common year, its registration day on a
    leap year, is read as 28.02; any other impossible date is InvalidNationalId."""
    if (month, day) == (2, 29) and not calendar.isleap(year):
        return date(year, 2, 28)
    return _make_date(year, month, day)


def _latest_date_not_after(today: date, yy: int, month: int, day: int, kind: NationalIdKind = "fnr") -> date:
    """Latest of 20YY-MM-DD and 19YY-MM-DD that is a real date not after ``today`` (a
    D-number's as `_dnr_date` reads it)."""
    for century in (2000, 1900):
        try:
            candidate = _dnr_date(century + yy, month, day) if kind == "dnr" else date(century + yy, month, day)
        except (ValueError, InvalidNationalId):
            continue
        if candidate <= today:
            return candidate
    raise InvalidNationalId("birth date is not a real calendar date")


def _birth_date(
    number: str,
    kind: NationalIdKind,
    day: int,
    month: int,
    *,
    uses_2032_rule: bool,
    today: date,
) -> date:
    """Birth date per the century rules in the module notes."""
    yy, individual = int(number[4:6]), int(number[6:9])
    if uses_2032_rule:
        return _latest_date_not_after(today, yy, month, day, kind)
    if kind == "fnr":
        return _make_date(_fnr_century(individual, yy) + yy, month, day)
    century = _dnr_century(individual, yy)
    if century == 2000 and individual <= 499:
        born = _dnr_date(2000 + yy, month, day)
        return born if born <= today else _dnr_date(1900 + yy, month, day)
    return _dnr_date(century + yy, month, day)


def _pre_2021_dnr_date(number: str, kind: NationalIdKind, day: int, month: int, born: date) -> date | None:
    """The 1900s reading of a classic D-number issued before the 2021 extension, when
    ``born`` is its 2000s reading and the individual number is one the extension gave the
    2000s (200-499, YY 00-39: module notes); None for any other number."""
    yy, individual = int(number[4:6]), int(number[6:9])
    if kind != "dnr" or born.year < 2000 or yy > 39 or not 200 <= individual <= 499:
        return None
    return _dnr_date(1900 + yy, month, day)


def parse_national_id(s: str, *, today: date | None = None, allow_synthetic: bool = False) -> NationalId:
    """Parse and validate a fødselsnummer or D-number (see module notes for rules).

    Args:
        s: the number; surrounding whitespace is ignored, nothing else is.
        today: reference date for rejecting future birth dates and for
            resolving the century of 2032-rule numbers; defaults to
            ``date.today()``.
        allow_synthetic: accept Skatteetaten synthetic test numbers
            (month + 80). Keep False in production.

    Raises:
        InvalidNationalId: wrong length, non-digits, bad control digits,
            H-number, synthetic number (unless allowed), impossible day/month,
            unused individual number range, or a birth date after ``today``.
    """
    number = _require_eleven_digits(s)
    uses_2032_rule = _check_control_digits(number)
    kind, day, month, synthetic = _decode_kind_day_month(number, allow_synthetic=allow_synthetic)
    reference = date.today() if today is None else today
    try:
        born = _birth_date(number, kind, day, month, uses_2032_rule=uses_2032_rule, today=reference)
        if born > reference:
            raise InvalidNationalId("birth date is in the future")
    except InvalidNationalId:
        if uses_2032_rule or reference < RULE_2032_FROM:
            raise
        # From 2032 the individual number no longer gives the century, for every number
        # issued then, whatever the birth year; one of those whose first control digit
        # has remainder 0 looks like a classic number. When the classic reading finds no
        # issued range (or a future date), it is such a number: read by the 2032 rule.
        born = _latest_date_not_after(reference, int(number[4:6]), month, day, kind)
        uses_2032_rule = True
    sex: Sex | None = None
    older = None
    if not uses_2032_rule:
        sex = "F" if int(number[8]) % 2 == 0 else "M"
        older = _pre_2021_dnr_date(number, kind, day, month, born)
    return NationalId(number, kind, born, sex, uses_2032_rule, synthetic, older)


def is_valid_national_id(s: str, *, today: date | None = None, allow_synthetic: bool = False) -> bool:
    """True if :func:`parse_national_id` accepts ``s``."""
    try:
        parse_national_id(s, today=today, allow_synthetic=allow_synthetic)
    except InvalidNationalId:
        return False
    return True


def age_on(birth_date: date, on_date: date) -> int:
    """Completed years of age on ``on_date``.

    The age increases on the birthday. Someone born 29 February is treated as
    turning a year older on 1 March in common years (28 February is still
    before the birthday).

    Raises:
        InvalidDateRange: if ``on_date`` is before ``birth_date``.
    """
    if on_date < birth_date:
        raise InvalidDateRange("cannot compute an age on a date before the birth date")
    years = on_date.year - birth_date.year
    if (on_date.month, on_date.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def mask_national_id(s: str) -> str:
    """Mask for logs as ``"DDMMYY*****"`` (birth-date part kept, personnummer hidden).

    Only the format (11 digits) is checked, not control digits.

    Raises:
        InvalidNationalId: if ``s`` is not 11 digits.
    """
    return f"{_require_eleven_digits(s)[:6]}*****"


# ------------------------------------------------------------------------- dates

OSLO = ZoneInfo("Europe/Oslo")


def today_in_norway(now: datetime | None = None) -> date:
    """The calendar day in Norway (Europe/Oslo) at ``now`` (UTC now by default): the day
    due dates, daily limits and card spend are counted in."""
    return (now or datetime.now(UTC)).astimezone(OSLO).date()


def easter_sunday(year: int) -> date:
    """Easter Sunday in the Gregorian calendar (the anonymous Gregorian algorithm,
    Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return date(year, month, day + 1)


@functools.lru_cache(maxsize=64)
def bank_holidays(year: int) -> frozenset[date]:
    """The weekdays-or-not on which Norwegian banks do not settle: the public holidays
    (New Year's Day, Maundy Thursday, Good Friday, Easter Monday, 1 May, 17 May, Ascension
    Day, Whit Monday, Christmas Day, Boxing Day; Easter and Whit Sunday are Sundays), and
    Christmas Eve and New Year's Eve. Kept per year (subscription detection asks
    `is_banking_day` thousands of times a detection, and reckoning Easter each time made it
    four times slower, found in review, 2026-12-06); a frozenset, so the one kept cannot be
    changed by a caller."""
    easter = easter_sunday(year)
    moving = (-3, -2, 1, 39, 50)  # Maundy Thursday, Good Friday, Easter Monday, Ascension, Whit Monday
    fixed = ((1, 1), (5, 1), (5, 17), (12, 24), (12, 25), (12, 26), (12, 31))
    return frozenset([date(year, m, d) for m, d in fixed] + [date.fromordinal(easter.toordinal() + n) for n in moving])


def is_banking_day(day: date) -> bool:
    """Monday to Friday, and not a bank holiday (`bank_holidays`)."""
    return day.weekday() < 5 and day not in bank_holidays(day.year)


def next_banking_day(day: date) -> date:
    """``day`` if it is a banking day, else the first banking day after it: the day a
    payment due on ``day`` is made (Norwegian banks move a due date on a weekend or a
    holiday to the next banking day)."""
    while not is_banking_day(day):
        day = date.fromordinal(day.toordinal() + 1)
    return day
