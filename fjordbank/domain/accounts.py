"""Customer accounts, free of I/O: numbers from the bank's registry range, names, limits.

Account numbers are BBBB GG SSSS C (bank registration, account group, serial, MOD11 check
digit). A customer's number is drawn at random from groups 00-89 and claimed by the
adapter only if no account has it yet: no shared counter, so concurrent openings never
touch one document (a registry counter did, and every approval contended on it).
Groups 90-99 are kept for the bank's own use (test and demo accounts). A serial whose
check digit would be impossible (MOD11 remainder 1) is never issued.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from fjordbank.domain.errors import Refused
from fjordbank.domain.norway import account_check_digit

SPENDING = "spending"
SAVINGS = "savings"
KINDS = (SPENDING, SAVINGS)
MAX_OPEN_ACCOUNTS = 5
# Accounts a customer may have opened in all, the closed ones counted: a closed account
# keeps its document, so its number is never drawn again, and a customer opening and
# closing in a loop (20 a minute under the rate limit) used up a registry's numbers in
# weeks, every other customer's opening then refused (found in review, 2026-12-07). Past
# it, customer service opens one by hand.
MAX_ACCOUNTS_EVER = 50
MAX_NAME_LENGTH = 40
DEFAULT_NAMES = {SPENDING: "Brukskonto", SAVINGS: "Sparekonto"}


class AccountRefused(Refused):
    """An account operation the bank refuses; ``code`` is the precise reason."""

    code = "account_refused"


CUSTOMER_GROUPS = 90  # groups 00-89; 90-99 are the bank's own
POSITIONS = CUSTOMER_GROUPS * 10_000  # draws run over 0 .. POSITIONS - 1
MAX_DRAWS = 16  # a free number is found in one draw until the range is nearly full


def number_at(bank_reg: str, position: int) -> str | None:
    """The customer account number at ``position`` (a draw in ``range(POSITIONS)``), or
    None where that serial has no valid check digit."""
    if len(bank_reg) != 4 or not bank_reg.isdigit():
        raise ValueError("bank registration numbers have 4 digits")
    if not 0 <= position < POSITIONS:
        raise ValueError(f"positions run from 0 to {POSITIONS - 1}")
    body = f"{bank_reg}{position // 10_000:02d}{position % 10_000:04d}"
    check = account_check_digit(body)
    return None if check is None else body + str(check)


def registry_exhausted(bank_reg: str) -> AccountRefused:
    return AccountRefused("registry_exhausted", f"no free account number found in {bank_reg}; try again")


def validate_name(name: object) -> str:
    if not isinstance(name, str):
        raise AccountRefused("invalid_name", "the account name must be text")
    name = unicodedata.normalize("NFC", name).strip()
    # line and paragraph separators (U+2028, U+2029) broke the name over lines in the feed
    # as a newline would (found in review, 2026-12-07): refused with the control characters
    if any(unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp") for ch in name):
        raise AccountRefused("invalid_name", "the account name has control characters")
    name = " ".join(name.split())  # runs of spaces as one, as an onboarding name's
    if not 0 < len(name) <= MAX_NAME_LENGTH:
        raise AccountRefused("invalid_name", f"the account name must be 1-{MAX_NAME_LENGTH} characters")
    return name


REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


def validate_request_id(request_id: object) -> str | None:
    """The app's idempotency key of an account opening (None: none given)."""
    if request_id is None:
        return None
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        raise AccountRefused("invalid_request_id", "requestId must be 8-64 letters, digits, '-' or '_'")
    return request_id


def validate_kind(kind: object) -> str:
    if kind not in KINDS:
        raise AccountRefused("invalid_kind", f"the account kind must be one of {', '.join(KINDS)}")
    return kind


def check_closable(data: dict[str, Any]) -> None:
    if data.get("status") == "frozen":  # its money stays where it is until compliance lifts the freeze
        raise AccountRefused("account_frozen", "the account is frozen")
    if data.get("status") != "open":
        raise AccountRefused("account_closed", "the account is already closed")
    if data.get("balance", 0) != 0 or data.get("held", 0) != 0:
        raise AccountRefused("account_not_empty", "an account closes only at zero balance with no holds")


def paid_out_already(source: dict[str, Any]) -> bool:
    """A closed account with nothing left to pay out (nothing came in since its last payout)."""
    return source.get("status") == "closed" and int(source.get("balance", 0)) - int(source.get("held", 0)) <= 0


def payout_amount(source: dict[str, Any], target: dict[str, Any]) -> int:
    """What a closed account of the customer's pays out to their open account ``target``:
    all of its available balance. A closed account can still be given money (a merchant's
    card refund is the customer's whatever the account's status); this is how it gets
    out. Raises `AccountRefused`."""
    if source.get("status") != "closed":
        raise AccountRefused("account_not_closed", "an open account pays by a payment")
    amount = int(source.get("balance", 0)) - int(source.get("held", 0))
    if amount <= 0:
        raise AccountRefused("nothing_to_pay_out", "the closed account holds no money")
    if target.get("status") == "frozen":  # the customer's money stays where it is under a freeze
        raise AccountRefused("account_frozen", "the account to pay out to is frozen")
    if target.get("status") != "open":
        raise AccountRefused("to_account_closed", "the account to pay out to is not open")
    if target.get("currency") != source.get("currency"):
        raise AccountRefused("currency_mismatch", "the accounts hold different currencies")
    return amount
