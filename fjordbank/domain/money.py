"""Money as an exact integer count of minor units (øre for NOK).

Rules enforced here:

* Amounts are ``int`` minor units only. ``float``, ``bool``, ``Decimal`` and
  every other type are rejected by the constructor, so binary floating point
  can never leak into a balance.
* Currencies are ISO 4217 alphabetic codes: exactly three upper-case ASCII
  letters. Whether a code is actually assigned by ISO is not checked here.
* ``abs(minor) <= MAX_MINOR`` always holds, so arithmetic overflow beyond any
  realistic amount is detected instead of silently accepted.
* Arithmetic and ordering between different currencies raise
  :class:`CurrencyMismatch`; equality between them is simply ``False``.

Formatting uses the Norwegian convention (Språkrådet): a space as thousands
separator, a comma as decimal separator and the unit after the amount, as in
``"1 234,50 kr"``. Every space written by :meth:`Money.format_nok` is a
NO-BREAK SPACE (U+00A0, :data:`NBSP`) so that a UI never wraps an amount
across lines. :meth:`Money.parse_nok` accepts ordinary spaces, NBSP and
NARROW NO-BREAK SPACE (U+202F) alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fjordbank.domain.errors import CurrencyMismatch, InvalidAmount, InvalidCurrency

MAX_MINOR: int = 10**15
"""Sanity bound on ``abs(minor)``: 10^15 øre = 10 000 000 000 000 kr."""

NOK: str = "NOK"
"""ISO 4217 code of the Norwegian krone (1 krone = 100 øre)."""

NBSP: str = "\u00a0"
"""NO-BREAK SPACE, the only space character :meth:`Money.format_nok` emits."""

_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_PREFIX_MARKER_RE = re.compile(r"^(?:kr\.?|nok)\s*", re.IGNORECASE)
_SUFFIX_MARKER_RE = re.compile(r"\s*(?:kr\.?|nok)$", re.IGNORECASE)
_PLAIN_INT_RE = re.compile(r"[0-9]+")
_SPACE_GROUPED_RE = re.compile(r"[0-9]{1,3}(?: [0-9]{3})+")
_DOT_GROUPED_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{3})+")
_FRACTION_RE = re.compile(r"[0-9]{1,2}")
_ALLOWED_BODY_CHARS = frozenset("0123456789 .,-")
_MINUS_SIGNS = ("-", "\u2212")
_MAX_TEXT_LENGTH = 64


def _check_minor(minor: object) -> None:
    """Reject anything but a plain ``int`` within ``±MAX_MINOR``."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise InvalidAmount(f"amount must be an int number of minor units, got {type(minor).__name__}")
    if abs(minor) > MAX_MINOR:
        raise InvalidAmount(f"amount exceeds the sanity bound of {MAX_MINOR} minor units")


def _check_currency(currency: object) -> None:
    """Require an ISO 4217 style code: exactly three upper-case ASCII letters."""
    if not isinstance(currency, str) or _CURRENCY_RE.fullmatch(currency) is None:
        raise InvalidCurrency(f"currency must be three upper-case letters (ISO 4217), got {currency!r}")


@dataclass(frozen=True, slots=True)
class Money:
    """An immutable amount of ``minor`` units (øre for NOK) in ``currency``."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        _check_minor(self.minor)
        _check_currency(self.currency)

    # ------------------------------------------------------------------ factories

    @classmethod
    def nok(cls, minor: int) -> Money:
        """Return ``minor`` øre as Norwegian kroner."""
        return cls(minor, NOK)

    @classmethod
    def zero(cls, currency: str = NOK) -> Money:
        """Return the zero amount in ``currency`` (a start value for sums)."""
        return cls(0, currency)

    @classmethod
    def parse_nok(cls, text: str, *, allow_negative: bool = False) -> Money:
        """Parse a Norwegian kroner string into exact øre.

        Accepted forms (case-insensitive ``kr``, ``kr.`` or ``NOK`` marker
        either before or after the number, not both):

        * ``"1234"``, ``"1234,5"``, ``"1234,50"``, ``"1234.50"``
        * ``"1 234,50"`` (space, NBSP or U+202F between groups of three digits)
        * ``"1.234,50"``, ``"1.234.567"`` (dot between groups of three digits)
        * ``"kr 1 234,50"``, ``"1 234,50 kr"``, ``"NOK 1234"``
        * ``"100,-"`` (Norwegian shorthand for whole kroner)
        * a leading ``-`` or U+2212 MINUS SIGN, only if ``allow_negative``

        Disambiguation of ``.``: it is a thousands separator only when a
        comma decimal separator follows or when it occurs more than once;
        a single dot without a comma is a decimal point. ``"1.234"`` is
        therefore read as 1,234 kr and rejected for having three decimals
        rather than silently becoming 1 234 kr.

        Conversion is pure string/integer arithmetic; no float is involved.

        Raises:
            InvalidAmount: malformed text, more than two decimals, a negative
                amount when ``allow_negative`` is false, or ``|amount|`` above
                :data:`MAX_MINOR`.
        """
        negative, body = _split_sign(_strip_currency_marker(_require_text(text)))
        kroner_text, ore_text = _split_decimal(body)
        minor = _kroner_digits(kroner_text) * 100 + _ore_value(ore_text)
        if negative and minor != 0:
            if not allow_negative:
                raise InvalidAmount("negative amounts are not allowed here")
            minor = -minor
        return cls(minor, NOK)  # the constructor enforces MAX_MINOR

    # ---------------------------------------------------------------- formatting

    def format_nok(self) -> str:
        """Format as Norwegian kroner, e.g. ``"1 234,50 kr"`` or ``"-0,05 kr"``.

        All spaces are NO-BREAK SPACE (U+00A0). The result round-trips through
        :meth:`parse_nok` (with ``allow_negative=True`` for negative amounts).

        Raises:
            CurrencyMismatch: if the amount is not in NOK.
        """
        if self.currency != NOK:
            raise CurrencyMismatch(f"cannot format {self.currency} as Norwegian kroner")
        sign = "-" if self.minor < 0 else ""
        kroner, ore = divmod(abs(self.minor), 100)
        grouped = f"{kroner:,}".replace(",", NBSP)
        return f"{sign}{grouped},{ore:02d}{NBSP}kr"

    # ---------------------------------------------------------------- arithmetic

    def __add__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._require_same_currency(other, "add")
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._require_same_currency(other, "subtract")
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    # ------------------------------------------------------------------ ordering

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._require_same_currency(other, "compare")
        return self.minor < other.minor

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._require_same_currency(other, "compare")
        return self.minor <= other.minor

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._require_same_currency(other, "compare")
        return self.minor > other.minor

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._require_same_currency(other, "compare")
        return self.minor >= other.minor

    def _require_same_currency(self, other: Money, verb: str) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatch(f"cannot {verb} {self.currency} and {other.currency}")


# -------------------------------------------------------------- parse helpers


def _require_text(text: object) -> str:
    """Return ``text`` stripped, rejecting non-strings, empty and overlong input."""
    if not isinstance(text, str):
        raise InvalidAmount(f"amount text must be a str, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise InvalidAmount("amount text is empty")
    if len(stripped) > _MAX_TEXT_LENGTH:
        raise InvalidAmount(f"amount text is longer than {_MAX_TEXT_LENGTH} characters")
    return stripped


def _strip_currency_marker(text: str) -> str:
    """Remove one ``kr``/``kr.``/``NOK`` marker, leading or trailing."""
    without_prefix = _PREFIX_MARKER_RE.sub("", text, count=1)
    if without_prefix != text:
        return without_prefix
    return _SUFFIX_MARKER_RE.sub("", text, count=1)


def _split_sign(text: str) -> tuple[bool, str]:
    """Split an optional leading minus sign off and normalise group spaces."""
    negative = text.startswith(_MINUS_SIGNS)
    body = text[1:].lstrip() if negative else text
    body = body.replace(NBSP, " ").replace("\u202f", " ")
    if not body:
        raise InvalidAmount("amount has no digits")
    bad = sorted(set(body) - _ALLOWED_BODY_CHARS)
    if bad:
        raise InvalidAmount(f"amount contains unexpected character(s): {''.join(bad)!r}")
    return negative, body


def _split_decimal(body: str) -> tuple[str, str]:
    """Split ``body`` into (kroner part, øre digits); see :meth:`Money.parse_nok`."""
    if body.endswith((",-", ".-")):
        return body[:-2], ""
    if "-" in body:
        raise InvalidAmount("a '-' is only allowed as a leading sign or in the ',-' suffix")
    commas = body.count(",")
    if commas > 1:
        raise InvalidAmount("amount has more than one decimal comma")
    if commas == 1:
        kroner, fraction = body.split(",")
    elif body.count(".") == 1:
        kroner, fraction = body.split(".")
    else:
        return body, ""
    if len(fraction) > 2 and fraction.isdigit():
        raise InvalidAmount("amount has more than 2 decimals (øre is the smallest unit)")
    if _FRACTION_RE.fullmatch(fraction) is None:
        raise InvalidAmount("decimal separator must be followed by 1 or 2 digits")
    return kroner, fraction


def _kroner_digits(kroner: str) -> int:
    """Return the whole-kroner value of a plain or consistently grouped digit run."""
    if _PLAIN_INT_RE.fullmatch(kroner) is None and not (
        _SPACE_GROUPED_RE.fullmatch(kroner) or _DOT_GROUPED_RE.fullmatch(kroner)
    ):
        raise InvalidAmount("whole kroner must be digits, optionally grouped in threes by spaces or dots")
    return int(kroner.replace(" ", "").replace(".", ""))


def _ore_value(fraction: str) -> int:
    """Return øre for a 0-2 digit fraction: ``"5"`` is 50 øre, ``"05"`` is 5 øre."""
    return int(fraction.ljust(2, "0")) if fraction else 0
