"""A simulated counterparty bank: answers a pain.001 with a pain.002.

Pure function of its inputs (the file, the rules, the time and message id it is
given): no clock, no randomness, no I/O. Each transfer is checked in this order
and the first failing check decides:

1. creditor account closed                       -> RJCT ``AC04`` (ClosedAccountNumber)
2. creditor account unknown                      -> RJCT ``AC01`` (IncorrectAccountNumber)
3. payee requires a KID scheme (MOD10/MOD11) and
   the transfer's KID fails it, or it carries a
   message / nothing instead of a KID            -> RJCT ``RR09`` (InvalidStructuredCreditorReference)
4. otherwise                                     -> ``ACSC`` (settled)

A KID sent to a payee without a KID agreement is accepted (the bank passes it on).
A file that cannot be read is refused as a whole with
:class:`~fjordbank.domain.iso20022.InvalidPaymentFile` rather than answered.

The other banks as a process (the local stack's ``counterparty`` component), which answers
the clearing outbox by these rules: ``simulators.counterparty.bank``
(``python -m simulators.counterparty --help``); how its answers go out, also when a chaos
run has them sent twice or out of order: ``simulators.counterparty.answers``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from fjordbank.domain.errors import DomainError, InvalidAccountNumber
from fjordbank.domain.iso20022 import (
    REASON_CLOSED_ACCOUNT,
    REASON_INCORRECT_ACCOUNT,
    REASON_INVALID_CREDITOR_REFERENCE,
    CreditTransfer,
    StatusReport,
    TransactionStatus,
    build_pain002,
    parse_pain001,
    payment_groups,
)
from fjordbank.domain.norway import KidScheme, is_valid_kid, validate_account_number

__all__ = ["CounterpartyRules", "InvalidCounterpartyRules", "answer", "decide", "rules_from_json"]

KID_SCHEMES: frozenset[str] = frozenset({"mod10", "mod11"})
_JSON_KEYS = frozenset({"closed_accounts", "unknown_accounts", "kid_schemes"})


class InvalidCounterpartyRules(DomainError):
    """The simulated bank's rules are malformed (bad account number, unknown KID scheme, ...)."""

    code = "invalid_counterparty_rules"


def _account(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidCounterpartyRules(f"{what} must be account number strings, got {type(value).__name__}")
    try:
        return validate_account_number(value)
    except InvalidAccountNumber as exc:
        raise InvalidCounterpartyRules(f"{what}: {exc.message}") from exc


def _accounts(values: object, what: str) -> frozenset[str]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InvalidCounterpartyRules(f"{what} must be a collection of account numbers")
    return frozenset(_account(value, what) for value in values)


@dataclass(frozen=True)
class CounterpartyRules:
    """What the simulated bank knows about its own accounts.

    Account numbers may be given with separators; they are stored as 11 digits
    and must pass the MOD11 check (a typo would otherwise silently never match).

    Attributes:
        closed_accounts: accounts that exist but are closed (answer AC04).
        unknown_accounts: accounts the bank does not have (answer AC01).
        kid_schemes: payee account -> the KID scheme its agreement requires.
    """

    closed_accounts: frozenset[str] = field(default_factory=frozenset)
    unknown_accounts: frozenset[str] = field(default_factory=frozenset)
    kid_schemes: Mapping[str, KidScheme] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "closed_accounts", _accounts(self.closed_accounts, "closed_accounts"))
        object.__setattr__(self, "unknown_accounts", _accounts(self.unknown_accounts, "unknown_accounts"))
        if not isinstance(self.kid_schemes, Mapping):
            raise InvalidCounterpartyRules("kid_schemes must map account numbers to 'mod10' or 'mod11'")
        schemes: dict[str, KidScheme] = {}
        for account, scheme in self.kid_schemes.items():
            if scheme not in KID_SCHEMES:
                raise InvalidCounterpartyRules(f"KID scheme must be 'mod10' or 'mod11', got {scheme!r}")
            schemes[_account(account, "kid_schemes")] = scheme
        object.__setattr__(self, "kid_schemes", MappingProxyType(schemes))


def rules_from_json(data: dict) -> CounterpartyRules:
    """Build rules from decoded JSON.

    Shape (every key optional)::

        {"closed_accounts": ["1234.56.78903"],
         "unknown_accounts": ["86011117947"],
         "kid_schemes": {"12345678903": "mod10"}}

    Raises:
        InvalidCounterpartyRules: not an object, unknown keys, or bad values.
    """
    if not isinstance(data, dict):
        raise InvalidCounterpartyRules("counterparty rules must be a JSON object")
    unknown = set(data) - _JSON_KEYS
    if unknown:
        raise InvalidCounterpartyRules(f"unknown keys in counterparty rules: {sorted(map(str, unknown))}")
    kid_schemes = data.get("kid_schemes", {})
    if not isinstance(kid_schemes, dict):
        raise InvalidCounterpartyRules("kid_schemes must be a JSON object")
    return CounterpartyRules(
        closed_accounts=_accounts(data.get("closed_accounts", []), "closed_accounts"),
        unknown_accounts=_accounts(data.get("unknown_accounts", []), "unknown_accounts"),
        kid_schemes=kid_schemes,
    )


def decide(transfer: CreditTransfer, rules: CounterpartyRules) -> tuple[str | None, str | None]:
    """``(reason_code, additional_info)`` rejecting ``transfer``, or ``(None, None)`` to settle it."""
    account = transfer.creditor.account
    if account in rules.closed_accounts:
        return REASON_CLOSED_ACCOUNT, "creditor account is closed"
    if account in rules.unknown_accounts:
        return REASON_INCORRECT_ACCOUNT, "creditor account does not exist"
    scheme = rules.kid_schemes.get(account)
    if scheme is not None:
        label = scheme.upper()
        if transfer.kid is None:
            return REASON_INVALID_CREDITOR_REFERENCE, f"payee requires a {label} KID; none was given"
        if not is_valid_kid(transfer.kid, scheme=scheme):
            return REASON_INVALID_CREDITOR_REFERENCE, f"KID fails the payee's {label} check"
    return None, None


def answer(pain001: bytes, rules: CounterpartyRules, *, now: datetime, message_id: str) -> bytes:
    """Answer a pain.001 with a pain.002 settling or rejecting each transfer.

    Args:
        pain001: the payment file as received.
        rules: the counterparty's accounts and KID agreements.
        now: the report's creation time (timezone-aware).
        message_id: the report's MsgId (1-35 characters).

    Raises:
        InvalidPaymentFile: unreadable or inconsistent pain.001, or bad ``now`` /
            ``message_id``.
    """
    if not isinstance(rules, CounterpartyRules):
        raise InvalidCounterpartyRules(f"expected CounterpartyRules, got {type(rules).__name__}")
    batch = parse_pain001(pain001)
    statuses: list[TransactionStatus] = []
    for group in payment_groups(batch):
        for transfer in group.transfers:
            reason, info = decide(transfer, rules)
            statuses.append(
                TransactionStatus(
                    end_to_end_id=transfer.end_to_end_id,
                    status="ACSC" if reason is None else "RJCT",
                    reason_code=reason,
                    additional_info=info,
                    original_payment_information_id=group.payment_information_id,
                )
            )
    report = StatusReport(
        message_id=message_id,
        original_message_id=batch.message_id,
        created_at=now,
        statuses=tuple(statuses),
    )
    return build_pain002(report)
