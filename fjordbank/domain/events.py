"""The customer and card events and the card commands on NATS: typed and versioned.

Payment events are `fjordbank.domain.payments.PaymentEvent`; these are all the others. Each
is a frozen dataclass whose wire form (`Contract.to_json`) is its fields under their own
names, snake_case like the payment events' (one case for every message on NATS), plus
``v``, the version of its contract. ``contracts/events/<name>.v<version>.schema.json`` is
generated from these classes (``python -m fjordbank.contracts``).

Versions. Within a version a contract only grows: a new field comes with a default, so a
consumer reads the events published before it, and a consumer ignores the fields it does
not know, so older consumers read the events published after it. Removing, renaming or
retyping a field breaks one of them and needs the next version (`Contract.VERSION`, a new
schema file beside the old one; `fjordbank.contracts.compat` tells the two kinds of change
apart). A consumer refuses a version it does not know: the message goes to the dead-letter
stream rather than being misread.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self, Union, get_args, get_origin, get_type_hints

from fjordbank import topology
from fjordbank.domain.errors import DomainError, OtherVersion


class MalformedEvent(DomainError):
    """A message that is not an event of the contract its subject names (one of another
    version of it is `OtherVersion`)."""

    code = "malformed_event"


def conforms(value: object, annotation: Any) -> bool:
    """Whether a decoded JSON value is of the field type ``annotation``. The types events
    use: str, int (never a bool), bool, None, unions, Literal, dict[str, X] and Any."""
    origin = get_origin(annotation)
    if annotation is Any:
        return True
    if annotation is type(None) or annotation is None:
        return value is None
    if origin in (Union, types.UnionType):
        return any(conforms(value, arg) for arg in get_args(annotation))
    if origin is Literal:
        return any(type(value) is type(arg) and value == arg for arg in get_args(annotation))
    if origin is dict:
        key_type, value_type = get_args(annotation)
        return isinstance(value, dict) and all(
            conforms(k, key_type) and conforms(v, value_type) for k, v in value.items()
        )
    if annotation in (int, bool):
        return type(value) is annotation
    if annotation is str:
        return isinstance(value, str)
    raise TypeError(f"no JSON type for the annotation {annotation!r}")


def one_of(*values: str) -> dict[str, Any]:
    """A field's metadata: the only values it takes (checked by `Contract.from_json`, and an
    ``enum`` in the schema)."""
    return {"enum": values}


@dataclass(frozen=True)
class Contract:
    """An event or command on NATS. Subclasses set NAME (the schema file's name) and
    VERSION (``v`` on the wire)."""

    NAME: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    def to_json(self) -> dict[str, Any]:
        """The wire form: ``v`` and every field, an absent optional one as null."""
        return {"v": self.VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: object) -> Self:
        """A decoded message body: anything, checked here. Fields this version does not know
        are ignored (a newer revision of the same version added them); a field it knows must
        have its type, a required one must be there. Raises `MalformedEvent`."""
        if not isinstance(data, dict):
            raise MalformedEvent(f"a {cls.NAME} event is a JSON object")
        version = data.get("v")
        if type(version) is not int or version < 1:
            raise MalformedEvent(f"{cls.NAME} version {version!r} is not a version")
        if version != cls.VERSION:
            raise OtherVersion(f"{cls.NAME} version {version} is not {cls.VERSION}, the one this consumer reads")
        hints = _field_types(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                values[f.name] = _checked(cls.NAME, f, data[f.name], hints[f.name])
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                # a field with a default factory is optional in the schema too
                # (fjordbank.contracts.schema): an event without it takes the default
                raise MalformedEvent(f"{cls.NAME} event without its {f.name!r}")
        return cls(**values)


_FIELD_TYPES: dict[type[Contract], dict[str, Any]] = {}


def _field_types(cls: type[Contract]) -> dict[str, Any]:
    """A contract's field annotations, resolved once per class (decoding is per message)."""
    found = _FIELD_TYPES.get(cls)
    if found is None:
        found = _FIELD_TYPES[cls] = get_type_hints(cls)
    return found


def _checked(name: str, f: dataclasses.Field[Any], value: object, annotation: Any) -> object:
    if not conforms(value, annotation):
        raise MalformedEvent(f"{name}.{f.name} is not of type {annotation}")
    allowed = f.metadata.get("enum")
    if allowed is not None and value is not None and value not in allowed:
        raise MalformedEvent(f"{name}.{f.name} {value!r} is none of {list(allowed)}")
    return value


# ---- customers ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CustomerDecided(Contract):
    """An onboarding decision (customers.approved / review / rejected), without personal
    data: the user, the outcome and the first account."""

    NAME: ClassVar[str] = "customer"

    uid: str
    status: str = field(metadata=one_of("approved", "review", "rejected"))
    reason: str | None
    account_id: str | None = field(metadata={"doc": "the first account, when approved"})


@dataclass(frozen=True)
class AccountChanged(Contract):
    """An account opened or closed (customers.account_opened / account_closed)."""

    NAME: ClassVar[str] = "account"

    uid: str
    account_id: str
    type: str | None = field(metadata={"doc": "the kind of account opened (spending, savings); null when closed"})


@dataclass(frozen=True)
class DeviceChanged(Contract):
    """The customer's devices that confirm payments changed (customers.device_changed): a
    device key added with another's approval, enrolled after the bank reopened the
    enrolment, revoked by the customer, or every key revoked by the bank. Told to the
    customer on every device they have, so a device added by someone else is seen."""

    NAME: ClassVar[str] = "device"

    uid: str
    change: str = field(metadata=one_of("added", "enrolled", "revoked", "reset"))
    key_id: str = field(metadata={"doc": "the key added, enrolled or revoked; for reset, the key the bank expects"})
    approved_by: str | None = field(metadata={"doc": "the enrolled key that approved an added one"})
    changed_at: str | None = field(
        default=None, metadata={"doc": "when (ISO 8601, UTC): two resets expecting one key are two notices"}
    )


# ---- cards ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class IssueCard(Contract):
    """Command to the card service (cards.commands.issue): make the card's number in the
    vault and turn its document, written as "issuing", active."""

    NAME: ClassVar[str] = "issue_card"

    uid: str
    card_id: str
    account_id: str


@dataclass(frozen=True)
class ExpireCardHolds(Contract):
    """Command to the card service (cards.commands.expire-holds, the scheduled job):
    release the card holds past their expiry."""

    NAME: ClassVar[str] = "expire_card_holds"

    as_of: str = field(metadata={"doc": "when the job ran (ISO 8601, UTC)"})


@dataclass(frozen=True)
class CardIssued(Contract):
    """A card made in the vault (cards.issued): never more of its number than the last four."""

    NAME: ClassVar[str] = "card_issued"

    uid: str
    card_id: str
    account_id: str
    last4: str


@dataclass(frozen=True)
class CardUpdated(Contract):
    """A customer's change to a card (cards.updated): frozen or active again, new limits,
    or blocked (lost, stolen, damaged) when it is replaced. Only what changed is set."""

    NAME: ClassVar[str] = "card_updated"

    uid: str
    card_id: str
    status: str | None = field(default=None, metadata=one_of("active", "frozen", "blocked"))
    limits: dict[str, int] | None = field(default=None, metadata={"doc": "daily/online/abroad, øre"})
    reason: str | None = field(
        default=None, metadata={"doc": "why a card was blocked: lost, stolen, damaged, or account_closed"}
    )


AUTHORIZATION_STATUSES = ("approved", "declined", "captured", "reversed", "expired")


@dataclass(frozen=True)
class CardAuthorization(Contract):
    """A card authorisation decided or settled (cards.authorized / declined / captured /
    reversed / expired): never a PAN or CVV. The user, card, account and last four digits
    are null for a card number the bank does not know."""

    NAME: ClassVar[str] = "card_authorization"

    auth_id: str
    status: str = field(metadata=one_of(*AUTHORIZATION_STATUSES))
    reason: str | None
    uid: str | None
    card_id: str | None
    account_id: str | None
    last4: str | None
    amount: int = field(metadata={"doc": "øre: the authorised amount, the captured one for a capture"})
    currency: str
    merchant_name: str
    mcc: str
    merchant_country: str
    channel: str
    day: str = field(metadata={"doc": "the purchase's date in Norway (its booking date), YYYY-MM-DD"})
    late: bool = field(
        default=False,
        metadata={"doc": "a capture after its reservation expired (cards.captured): posted from the balance"},
    )


@dataclass(frozen=True)
class CardRefunded(Contract):
    """A merchant's refund of a captured card purchase (cards.refunded): money back to the
    purchase's account, never a PAN or CVV. One per refund: a purchase may be refunded in
    parts, up to what was captured."""

    NAME: ClassVar[str] = "card_refund"

    refund_id: str = field(
        metadata={"doc": "the refund's id: its feed entry's (accounts/{id}/transactions/{refundId})"}
    )
    auth_id: str = field(metadata={"doc": "the purchase's authorisation"})
    status: str = field(metadata=one_of("refunded"))
    uid: str
    card_id: str | None
    account_id: str
    last4: str | None
    amount: int = field(metadata={"doc": "øre given back by this refund"})
    currency: str
    merchant_name: str
    mcc: str
    merchant_country: str
    category: str | None = field(metadata={"doc": "the purchase's category as its feed entry was labelled"})
    day: str = field(metadata={"doc": "the refund's date in Norway (its booking date), YYYY-MM-DD"})


@dataclass(frozen=True)
class CardIncremented(Contract):
    """A merchant's incremental authorisation approved (cards.incremented): more held on a
    card purchase's reservation (a hotel's extra nights), never a PAN or CVV. One per
    increment; declined increments are not announced (the reservation is unchanged)."""

    NAME: ClassVar[str] = "card_increment"

    increment_id: str = field(metadata={"doc": "the increment's id (the record's increments key)"})
    auth_id: str = field(metadata={"doc": "the purchase's authorisation"})
    status: str = field(metadata=one_of("incremented"))
    uid: str
    card_id: str | None
    account_id: str
    last4: str | None
    amount: int = field(metadata={"doc": "øre held more by this increment"})
    authorized_amount: int = field(metadata={"doc": "øre the authorisation holds in all now"})
    currency: str
    merchant_name: str
    mcc: str
    merchant_country: str
    channel: str
    day: str = field(metadata={"doc": "the purchase's date in Norway (its booking date), YYYY-MM-DD"})


# What each customer and card subject carries (the payment subjects carry PaymentEvent).
SUBJECT_TYPES: dict[str, type[Contract]] = {
    topology.SUBJECT_CUSTOMER_APPROVED: CustomerDecided,
    topology.SUBJECT_CUSTOMER_REVIEW: CustomerDecided,
    topology.SUBJECT_CUSTOMER_REJECTED: CustomerDecided,
    topology.SUBJECT_ACCOUNT_OPENED: AccountChanged,
    topology.SUBJECT_ACCOUNT_CLOSED: AccountChanged,
    topology.SUBJECT_DEVICE_CHANGED: DeviceChanged,
    topology.SUBJECT_CARD_ISSUE: IssueCard,
    topology.SUBJECT_CARD_EXPIRE_HOLDS: ExpireCardHolds,
    topology.SUBJECT_CARD_ISSUED: CardIssued,
    topology.SUBJECT_CARD_UPDATED: CardUpdated,
    topology.SUBJECT_CARD_AUTHORIZED: CardAuthorization,
    topology.SUBJECT_CARD_DECLINED: CardAuthorization,
    topology.SUBJECT_CARD_CAPTURED: CardAuthorization,
    topology.SUBJECT_CARD_REVERSED: CardAuthorization,
    topology.SUBJECT_CARD_EXPIRED: CardAuthorization,
    topology.SUBJECT_CARD_REFUNDED: CardRefunded,
    topology.SUBJECT_CARD_INCREMENTED: CardIncremented,
}


def decode(subject: str, data: object) -> Contract:
    """The event a message on ``subject`` carries. Raises `MalformedEvent`."""
    kind = SUBJECT_TYPES.get(subject)
    if kind is None:
        raise MalformedEvent(f"no customer or card event is published on {subject}")
    return kind.from_json(data)
