"""Customer accounts, free of I/O: numbers from the bank's registry range, names, limits.

Account numbers are issued in order from the bank's registration number: BBBB GG SSSS C
(bank registration, account group, serial, MOD11 check digit). A serial whose check digit
would be impossible (remainder 1) is skipped, so every issued number is valid and unique.
"""

from __future__ import annotations

import unicodedata

from fjordbank.domain.errors import Refused
from fjordbank.domain.norway import account_check_digit

SPENDING = "spending"
SAVINGS = "savings"
KINDS = (SPENDING, SAVINGS)
MAX_OPEN_ACCOUNTS = 5
MAX_NAME_LENGTH = 40
DEFAULT_NAMES = {SPENDING: "Brukskonto", SAVINGS: "Sparekonto"}


class AccountRefused(Refused):
    """An account operation the bank refuses; ``code`` is the precise reason."""

    code = "account_refused"


def issue_number(bank_reg: str, sequence: int) -> tuple[str, int]:
    """The account number for registry position ``sequence`` (or the next that has a valid
    check digit), and the position after it. Groups 00-99 of 10,000 serials each."""
    if len(bank_reg) != 4 or not bank_reg.isdigit():
        raise ValueError("bank registration numbers have 4 digits")
    while sequence < 1_000_000:
        body = f"{bank_reg}{sequence // 10_000:02d}{sequence % 10_000:04d}"
        check = account_check_digit(body)
        if check is not None:
            return body + str(check), sequence + 1
        sequence += 1
    raise AccountRefused("registry_exhausted", f"no account numbers left in {bank_reg}")


def validate_name(name: object) -> str:
    if not isinstance(name, str):
        raise AccountRefused("invalid_name", "the account name must be text")
    name = unicodedata.normalize("NFC", name).strip()
    if not 0 < len(name) <= MAX_NAME_LENGTH:
        raise AccountRefused("invalid_name", f"the account name must be 1-{MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise AccountRefused("invalid_name", "the account name has control characters")
    return name


def validate_kind(kind: object) -> str:
    if kind not in KINDS:
        raise AccountRefused("invalid_kind", f"the account kind must be one of {', '.join(KINDS)}")
    return kind  # type: ignore[return-value]


def check_closable(data: dict) -> None:
    if data.get("status") != "open":
        raise AccountRefused("account_closed", "the account is already closed")
    if data.get("balance", 0) != 0 or data.get("held", 0) != 0:
        raise AccountRefused("account_not_empty", "an account closes only at zero balance with no holds")
