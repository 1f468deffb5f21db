"""Domain errors.

Every error raised by :mod:`fjordbank.domain` derives from :class:`DomainError`.
Each subclass stands for exactly one condition and carries a stable,
machine-readable ``code`` (snake_case) that adapters may map to API responses,
plus a human-readable message.

Messages never echo a full account number or national identity number, so
they are safe to log.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class of all domain errors.

    Attributes:
        code: Machine-readable reason code (snake_case), constant per class.
        message: Human-readable explanation of what was wrong.
    """

    code: str = "domain_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class Refused(DomainError):
    """Something the bank refuses to do, with the precise reason as ``code`` (per instance,
    not per class) and, where it concerns one input field, that ``field``. Each area has
    its subclass (accounts, cards, onboarding, invoices, SCA) so callers catch their own."""

    code = "refused"

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class InvalidAmount(DomainError):
    """A money amount is malformed, fractional beyond øre, negative or out of range."""

    code = "invalid_amount"


class InvalidCurrency(DomainError):
    """A currency code is not three upper-case ASCII letters (ISO 4217 form)."""

    code = "invalid_currency"


class CurrencyMismatch(DomainError):
    """Two amounts in different currencies were combined or compared."""

    code = "currency_mismatch"


class InvalidDigits(DomainError):
    """A check-digit helper got something other than a non-empty run of ASCII digits."""

    code = "invalid_digits"


class InvalidAccountNumber(DomainError):
    """A Norwegian bank account number is malformed or fails the MOD11 check."""

    code = "invalid_account_number"


class InvalidKid(DomainError):
    """A KID (customer identification on giros) is malformed or fails its check."""

    code = "invalid_kid"


class InvalidNationalId(DomainError):
    """A fødselsnummer or D-number is malformed, has a bad date or control digits."""

    code = "invalid_national_id"


class InvalidDateRange(DomainError):
    """Two dates are in an impossible order (e.g. an age asked before birth)."""

    code = "invalid_date_range"


class Busy(DomainError):
    """The bank could not finish the request now: other changes to the same data won every
    try, or the database did not answer in time. The app tries again after ``retry_after``
    seconds. Not "nothing was changed": a commit whose answer timed out may have landed
    (found in review, 2026-12-06), so a request sent again is answered as it stands (an
    idempotency key's, a replacement's, an account's state)."""

    code = "busy"

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__(f"the bank is busy; try again in {retry_after} s")
        self.retry_after = retry_after


class OtherVersion(DomainError):
    """A message of another version of its contract than this code reads: written by
    another release of its producer (a later one, or, for a message still in the stream
    after a rollout, an earlier one). Not malformed: during a rollout an instance of the
    other release's consumer reads it, so the runtime gives it back for a while rather
    than dead-lettering it at once (fjordbank.runtime.events)."""

    code = "other_version"
