"""Debit cards, free of I/O: numbers, expiry, CVV, limits and the authorisation decision.

* A PAN is the bank's BIN, an account-independent random serial and a Luhn check digit.
* A card is valid through the last day of its expiry month (MM/YY), four years ahead.
* The CVV is never stored: like an issuer's HSM, the card service derives it from the PAN
  and expiry with a secret key, so it can be shown once at issue and verified later.
* Limits are per Oslo calendar day and per card: ``daily`` for everything, ``online`` for
  card-not-present purchases, ``abroad`` for merchants outside Norway; 0 blocks that use.
* An authorisation is decided on the card alone here (status, channel, expiry, CVV,
  limits); the ledger decides available funds when it places the hold, atomically with the
  decision.
* A virtual card (every card issued today) takes no cash: an ATM verifies the cardholder
  by a chip and PIN it does not have.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeGuard

from fjordbank.domain.errors import Refused
from fjordbank.domain.norway import is_luhn_valid, luhn_check_digit

PAN_LENGTH = 16
ACTIVE = "active"
FROZEN = "frozen"
BLOCKED = "blocked"  # lost/stolen and replaced: never usable again
ISSUING = "issuing"
CARD_VALID_YEARS = 4
HOLD_DAYS = 7  # an authorisation not captured by then is released
MAX_AMOUNT = 100_000_000  # øre: 1 000 000 NOK, the most one authorisation (or increment) asks
CHANNELS = ("pos", "online", "atm")
LIMIT_KINDS = ("daily", "online", "abroad")
DEFAULT_LIMITS = {"daily": 2_000_000, "online": 1_000_000, "abroad": 500_000}  # øre: 20 000 / 10 000 / 5 000 NOK
MAX_LIMITS = {"daily": 10_000_000, "online": 5_000_000, "abroad": 5_000_000}
HOME_COUNTRY = "NO"
CHECK_FAILURES = frozenset({"cvv_mismatch", "invalid_expiry"})  # a guess at what is printed on the card
MAX_FAILED_CHECKS = 5  # per card and day, then the card is frozen
VIRTUAL_DEBIT = "virtual-debit"  # every card issued today: a number in the app, no chip and no PIN
NO_CASH = frozenset({VIRTUAL_DEBIT})  # card types an ATM cannot verify the cardholder of


class CardRefused(Refused):
    """A card operation the bank refuses; ``code`` is the precise reason."""

    code = "card_refused"


# ---- numbers ------------------------------------------------------------------------------
def make_pan(bin_prefix: str, serial: str | None = None) -> str:
    """A 16-digit PAN: BIN + serial + Luhn digit. The serial is random unless given."""
    if not re.fullmatch(r"[0-9]{6,8}", bin_prefix):
        raise ValueError("a BIN has 6-8 digits")
    width = PAN_LENGTH - 1 - len(bin_prefix)
    serial = serial if serial is not None else "".join(secrets.choice("0123456789") for _ in range(width))
    if not re.fullmatch(rf"[0-9]{{{width}}}", serial):
        raise ValueError(f"the serial must have {width} digits")
    body = bin_prefix + serial
    return body + str(luhn_check_digit(body))


def is_valid_pan(pan: object) -> bool:
    return isinstance(pan, str) and bool(re.fullmatch(r"[0-9]{16}", pan)) and is_luhn_valid(pan)


def mask_pan(pan: str) -> str:
    """First six and last four, as PCI DSS allows: 459876******1234."""
    return f"{pan[:6]}{'*' * (len(pan) - 10)}{pan[-4:]}"


def expiry_for(issued: date, years: int = CARD_VALID_YEARS) -> tuple[int, int]:
    """(month, four-digit year) of a card issued on ``issued``."""
    return issued.month, issued.year + years


def is_expired(exp_month: int, exp_year: int, today: date) -> bool:
    """A card is valid through the last day of its expiry month."""
    return (today.year, today.month) > (exp_year, exp_month)


def derive_cvv(key: bytes, pan: str, exp_month: int, exp_year: int) -> str:
    """Three digits from HMAC-SHA256(key, PAN|MMYY); never stored, recomputed to verify."""
    mac = hmac.new(key, f"{pan}|{exp_month:02d}{exp_year % 100:02d}".encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(mac[:8], 'big') % 1000:03d}"


def pan_fingerprint(key: bytes, pan: str) -> str:
    """A keyed hash to find a card by its PAN without storing the PAN in clear."""
    return hmac.new(key, b"pan|" + pan.encode(), hashlib.sha256).hexdigest()


# ---- limits -------------------------------------------------------------------------------
def validate_limits(raw: object, current: dict[str, int] | None = None) -> dict[str, int]:
    """New limits (a subset of daily/online/abroad, in øre) merged over ``current``."""
    if not isinstance(raw, dict) or not raw or set(raw) - set(LIMIT_KINDS):
        raise CardRefused("invalid_limits", f"limits is an object with some of {list(LIMIT_KINDS)}")
    merged = dict(current or DEFAULT_LIMITS)
    for kind, value in raw.items():
        if type(value) is not int or not 0 <= value <= MAX_LIMITS[kind]:
            raise CardRefused("invalid_limits", f"{kind} must be whole øre from 0 to {MAX_LIMITS[kind]}")
        merged[kind] = value
    if merged["online"] > merged["daily"] or merged["abroad"] > merged["daily"]:
        raise CardRefused("invalid_limits", "online and abroad limits cannot exceed the daily limit")
    return merged


@dataclass
class Spend:
    """What a card has authorised on one day (øre), by kind of use."""

    daily: int = 0
    online: int = 0
    abroad: int = 0

    def add(self, req: AuthorizationRequest, sign: int = 1) -> None:
        self.count(req.amount, channel=req.channel, merchant_country=req.merchant_country, sign=sign)

    def count(self, amount: int, *, channel: str, merchant_country: str, sign: int = 1) -> None:
        """Count ``amount`` (or give it back, sign -1) in the buckets it belongs to."""
        self.daily += sign * amount
        if channel == "online":
            self.online += sign * amount
        if merchant_country != HOME_COUNTRY:
            self.abroad += sign * amount

    def to_dict(self) -> dict[str, Any]:
        return {"daily": self.daily, "online": self.online, "abroad": self.abroad}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Spend:
        data = data or {}
        return cls(int(data.get("daily", 0)), int(data.get("online", 0)), int(data.get("abroad", 0)))


# ---- authorisation ------------------------------------------------------------------------
@dataclass(frozen=True)
class AuthorizationRequest:
    """What the card processor sends. ``amount`` is in øre, the NOK billing amount (the
    processor converts foreign purchases)."""

    reference: str  # the processor's unique reference: idempotency key
    pan: str = field(repr=False)
    exp_month: int
    exp_year: int
    cvv: str | None = field(repr=False)
    amount: int
    currency: str
    merchant_name: str
    mcc: str
    merchant_country: str
    channel: str

    def fingerprint(self, card_id: str | None) -> str:
        """The request's content, to tell a retry from a different request. The card is
        named by its id, never by its number: an unkeyed hash of a PAN can be reversed by
        trying the ~10^9 numbers a BIN leaves."""
        text = "|".join(
            [
                self.reference,
                card_id or "-",
                str(self.amount),
                self.currency,
                self.merchant_name,
                self.mcc,
                self.merchant_country,
                self.channel,
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def public(self) -> dict[str, Any]:
        """The request without PAN or CVV: what may be stored, logged and published."""
        return {
            "reference": self.reference,
            "amount": self.amount,
            "currency": self.currency,
            "merchantName": self.merchant_name,
            "mcc": self.mcc,
            "merchantCountry": self.merchant_country,
            "channel": self.channel,
        }


REQUEST_FIELDS = frozenset(
    {
        "reference",
        "pan",
        "expMonth",
        "expYear",
        "cvv",
        "amount",
        "currency",
        "merchantName",
        "mcc",
        "merchantCountry",
        "channel",
    }
)


def parse_authorization(data: object) -> AuthorizationRequest:
    if not isinstance(data, dict) or set(data) - REQUEST_FIELDS:
        raise CardRefused("invalid_request", f"an authorisation has only {sorted(REQUEST_FIELDS)}")
    reference = data.get("reference")
    if not is_reference(reference):
        raise CardRefused("invalid_request", "reference must be 1-64 printable characters")
    pan = data.get("pan")
    if not is_valid_pan(pan):
        raise CardRefused("invalid_card", "the card number is not valid")
    exp_month, exp_year = data.get("expMonth"), data.get("expYear")
    if (
        type(exp_month) is not int
        or not 1 <= exp_month <= 12
        or type(exp_year) is not int
        or not 2000 <= exp_year <= 2100
    ):
        raise CardRefused("invalid_request", "expMonth and expYear must be a month and a four-digit year")
    cvv = data.get("cvv")
    if cvv is not None and (not isinstance(cvv, str) or not re.fullmatch(r"[0-9]{3}", cvv)):
        raise CardRefused("invalid_request", "cvv must be three digits")
    amount = data.get("amount")
    if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
        raise CardRefused("invalid_amount", "amount must be whole øre, 1 to 1 000 000 NOK")
    if data.get("currency") != "NOK":
        raise CardRefused("invalid_request", "the billing currency is NOK")
    name = data.get("merchantName")
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or not name.isprintable():
        raise CardRefused("invalid_request", "merchantName must be 1-64 printable characters")
    mcc = data.get("mcc")
    if not isinstance(mcc, str) or not re.fullmatch(r"[0-9]{4}", mcc):
        raise CardRefused("invalid_request", "mcc must be four digits")
    country = data.get("merchantCountry")
    if not isinstance(country, str) or not re.fullmatch(r"[A-Z]{2}", country):
        raise CardRefused("invalid_request", "merchantCountry must be an ISO 3166 alpha-2 code")
    channel = data.get("channel")
    if channel not in CHANNELS:
        raise CardRefused("invalid_request", f"channel must be one of {list(CHANNELS)}")
    return AuthorizationRequest(
        reference=reference,
        pan=pan,  # type: ignore[arg-type]
        exp_month=exp_month,
        exp_year=exp_year,
        cvv=cvv,
        amount=amount,
        currency="NOK",
        merchant_name=name,
        mcc=mcc,
        merchant_country=country,
        channel=channel,
    )


@dataclass(frozen=True)
class CardState:
    card_id: str
    status: str
    exp_month: int
    exp_year: int
    limits: dict[str, int]
    card_type: str = VIRTUAL_DEBIT

    @classmethod
    def from_doc(cls, data: dict[str, Any]) -> CardState:
        return cls(
            card_id=data["cardId"],
            status=data.get("status", ISSUING),
            exp_month=data.get("expMonth", 0),
            exp_year=data.get("expYear", 0),
            limits={**DEFAULT_LIMITS, **(data.get("limits") or {})},
            card_type=data.get("type") or VIRTUAL_DEBIT,
        )


def decide(card: CardState, req: AuthorizationRequest, spent: Spend, *, today: date, cvv_ok: bool | None) -> str | None:
    """The decline reason, or None when the card may be used (funds are the ledger's to
    decide). ``cvv_ok`` is None when the request carried no CVV."""
    if (unusable := _unusable(card)) is not None:
        return unusable
    if req.channel == "atm" and card.card_type in NO_CASH:
        # an ATM verifies the cardholder by the chip and PIN a virtual card does not have:
        # without them the number and expiry alone would take cash. Refused before the
        # expiry and CVV are looked at, so an ATM cannot be used to guess them either.
        return "atm_not_supported"
    if (req.exp_month, req.exp_year) != (card.exp_month, card.exp_year):
        return "invalid_expiry"
    if is_expired(card.exp_month, card.exp_year, today):
        return "card_expired"
    if cvv_ok is False:
        return "cvv_mismatch"
    if cvv_ok is None and (req.channel == "online" or (req.channel == "pos" and card.card_type in NO_CASH)):
        # a card with no chip is at a terminal only by its number keyed in, the card not
        # present: without its CVV the number and expiry alone were approved, past the
        # failed-check freeze (found in review, 2026-12-06)
        return "cvv_required"
    return _over_limit(card, spent, req.amount, channel=req.channel, merchant_country=req.merchant_country)


def decide_increment(
    card: CardState, spent: Spend, amount: int, *, channel: str, merchant_country: str, today: date
) -> str | None:
    """The decline reason of an incremental authorisation (a hotel or a car rental holding
    more on a reservation it has), or None: the card must still be usable and unexpired,
    and ``amount`` more must fit its limits over ``spent``, the spend of the original
    authorisation's day (where the whole reservation is counted, and given back from when
    it ends). There is no expiry or CVV in such a request: the cardholder is not there."""
    if (unusable := _unusable(card)) is not None:
        return unusable
    if is_expired(card.exp_month, card.exp_year, today):
        return "card_expired"
    return _over_limit(card, spent, amount, channel=channel, merchant_country=merchant_country)


def _unusable(card: CardState) -> str | None:
    if card.status == BLOCKED:
        return "card_blocked"
    if card.status == FROZEN:
        return "card_frozen"
    if card.status != ACTIVE:
        return "card_not_active"
    return None


def _over_limit(card: CardState, spent: Spend, amount: int, *, channel: str, merchant_country: str) -> str | None:
    if spent.daily + amount > card.limits["daily"]:
        return "over_daily_limit"
    if channel == "online" and spent.online + amount > card.limits["online"]:
        return "over_online_limit"
    if merchant_country != HOME_COUNTRY and spent.abroad + amount > card.limits["abroad"]:
        return "over_abroad_limit"
    return None


def is_reference(value: object) -> TypeGuard[str]:
    """A processor's reference (of an authorisation, or of a capture): 1-64 printable
    characters (no control characters, no lone surrogates)."""
    return isinstance(value, str) and 1 <= len(value) <= 64 and value.isprintable()


def authorization_id(reference: str) -> str:
    """Document id of an authorisation: derived from the processor's reference."""
    return "ca" + hashlib.sha256(reference.encode()).hexdigest()[:32]
