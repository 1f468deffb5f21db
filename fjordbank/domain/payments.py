"""Payment requests (contract v1) and the payment lifecycle, free of I/O.

The app creates ``users/{uid}/paymentRequests/{requestId}`` with the fields of
`contracts/payment_request.v1.schema.json`; the document id is the client's idempotency
key. `parse_request` checks everything that needs no database; the edge then checks
ownership and the accounts' state, and publishes a `PaymentRequested` event.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fjordbank import topology
from fjordbank.domain.errors import DomainError, OtherVersion
from fjordbank.domain.iso20022 import is_payment_text_char, to_payment_text
from fjordbank.domain.money import MAX_MINOR
from fjordbank.domain.norway import (
    is_valid_kid,
    next_banking_day,
    normalize_account_number,
    today_in_norway,
    validate_account_number,
    validate_kid,
)

CONTRACT_VERSION = 1  # the app's payment request (contracts/payment_request.v1.schema.json)
# The payment event on NATS (contracts/events/payment.v<N>.schema.json), carried as its
# payment's ``v``. 2: payments from other banks (kind ``incoming``, steps ``arrived`` and
# ``unapplied``); a consumer of v1 refuses those, so the consumers (ledger, notifier,
# insights) are deployed before clearing starts reading pacs.008 files. A v1 event still in
# the stream is a v2 one without them. 3: clearing's ``held`` (a payment from another bank
# held for sanctions review, booked into suspense): the ledger is deployed before clearing.
EVENT_VERSION = 3
CURRENCY = "NOK"
MAX_AMOUNT_MINOR = 100_000_000  # 1,000,000.00 NOK per payment (the contract's ceiling)
MAX_MESSAGE_LENGTH = 140  # ISO 20022 unstructured remittance information
# A payment is scheduled at most this far ahead (Norwegian banks take about a year): a typo
# (2062 for 2026) is refused rather than kept for decades.
MAX_DUE_DAYS = 366
# Every id a client names that becomes a document id refuses __...__: Firestore reserves such
# ids and answers a read or write naming one INVALID_ARGUMENT, a bare error where a refusal
# with its reason belongs (and a payment request the trigger could then never answer).
RESERVED_ID = "(?!__.*__$)"
REQUEST_ID_PATTERN = re.compile(rf"{RESERVED_ID}[A-Za-z0-9_-]{{8,64}}")  # use with fullmatch
# The request ids the bank makes for the payments it starts (a standing order's due date:
# fjordbank.domain.standing_orders.occurrence_request_id): an app's request may not take
# one, or its payment would have the same payment id as the order's.
BANK_REQUEST_PREFIX = "so-"
DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # fromisoformat alone also takes 20250630

REQUIRED_FIELDS = frozenset({"v", "fromAccount", "toAccount", "amount", "currency"})
OPTIONAL_FIELDS = frozenset({"message", "kid", "dueDate", "sca", "payeeName"})
MAX_NAME_LENGTH = 70  # ISO 20022 Max70Text: the creditor's name in pain.001
SCA_KEY_ID = re.compile(rf"{RESERVED_ID}[A-Za-z0-9_-]{{8,64}}")
BODY_FIELDS = REQUIRED_FIELDS | OPTIONAL_FIELDS

# Lifecycle states and their order; a projection never moves a request backwards.
#   requested -> approved | rejected -> reserved (external: funds held) -> submitted
#   -> settled | returned -> completed | failed
STATUS_RANK = {
    "received": 0,  # stored by the app; not yet published (publish pending)
    "scheduled": 1,  # due later; the scheduler submits it on its due date
    "requested": 2,
    "approved": 3,
    "reserved": 4,
    "submitted": 5,
    "settled": 6,
    "returned": 6,
    "completed": 9,
    "failed": 9,
    "rejected": 9,
    "cancelled": 9,  # a scheduled payment the customer cancelled before its due date
}
TERMINAL = frozenset({"completed", "failed", "rejected", "cancelled"})
# The one state whose reason says only why it waits (publish_pending: the request is to be
# published again). The state after it clears that reason: the app shows any reason as an
# error, so a payment published after all showed "Paid" with it.
WAITING = "received"
# The ledger's legs of an internal payment (topology.CREDIT, topology.REFUND) and its
# notice to the payee's partition (topology.CREDITED): events on NATS between partitions,
# never a status of the app's request (no rank).
LEDGER_LEGS = frozenset({topology.CREDIT, topology.REFUND, topology.CREDITED})
# An incoming payment's steps before its final state: clearing's ``arrived`` and ``held``
# and the ledger's ``unapplied`` (never shown: nobody here asked for it, a credit that could
# not be applied goes back to the payer's bank, not to a customer's feed, and a payee is
# never told of money held for sanctions review).
INCOMING_STEPS = frozenset({topology.ARRIVED, topology.UNAPPLIED, topology.HELD})
# The payee of a payment from another bank to an account that is not here (no such
# account, or not opened, when the credit came): its event only carries its return, and the
# ledger credits no one with it, even an account opened under that number since.
NO_PAYEE = "-"
# States nobody shows as they happen: the next service answers each at once with the next
# state (screening's approved -> the ledger's reserved, credit or failed; the ledger's
# reserved -> clearing's submitted, even with the channel to the clearing house down;
# clearing's settled -> completed and returned -> failed, the ledger's), so the notifier does
# not consume them and the request document is written once instead of twice (the notifier's
# filter, fjordbank/topology.py). Each is stamped with the time it was published
# (`passing`, ``detail.passedAt``: fjordbank.runtime.events.publish), the next service carries
# the detail on to its answer, and the notifier writes that time into the request's
# timeline with the next state it shows.
PASSED_AT = "passedAt"
# In ``detail`` from the edge on (each service carries its event's detail on to the next):
# the app's request document exists (users/{uid}/paymentRequests/{request_id}) for every
# payment the edge publishes, so the notifier may write a final state there without reading
# it first (fjordbank.service_layer.notifier.guessed_version). Absent: none (a standing
# order's payment, shown in a view of its own) or not known (a state whose producer starts
# a new detail: clearing's answers): the notifier reads.
ON_REQUEST = "onRequest"
# In ``detail`` from the edge on, for an internal payment: the payee's uid (its to-account's
# owner, read by the edge to check the account; an account's owner never changes), so the
# services that need it (screening: is it the payer's own account; the notifier and
# insights: whose feed and economy the payee's side goes to) do not read the account again
# (fjordbank.service_layer.owners). Absent (a standing order's payment, a payment the
# scheduler submits on its due date): they read it.
PAYEE_UID = "payeeUid"
# In ``detail`` of a payment from another bank (`INCOMING`), from clearing on: the payer's
# name as the pacs.008 gives it (what the payee's feed and push say it came from). In the
# detail, beside the transfer's ids, not in the payment, whose fields every kind shares.
PAYER_NAME = "payerName"
# In the detail of the ``arrived`` a compliance officer's release publishes (True): only such
# an arrived pays a credit held for review out of suspense. Another (an instance that read
# the file with a list not yet naming the payer, in a rollout) leaves it held.
RELEASED_FROM_HOLD = "releasedFromHold"


def payer_name(event: PaymentEvent) -> str | None:
    """The payer's name an incoming payment's event carries (`PAYER_NAME`), None if none."""
    name = (event.detail or {}).get(PAYER_NAME)
    return name if isinstance(name, str) and name else None


UNSHOWN = frozenset({"approved", "reserved", "settled", "returned"})
INTERNAL = "internal"  # both accounts in this bank: debited and credited by the ledger, no clearing
EXTERNAL = "external"  # to another bank: held, cleared in a pain.001 file, then posted or released
# From another bank to a Fjordbank customer, delivered by the clearing house in a pacs.008
# (fjordbank.domain.pacs): clearing publishes it as ``arrived`` in the payee's partition, the
# ledger credits the payee (``completed``) or cannot (``unapplied``: clearing sends it back
# in a pacs.004). Its ``uid`` is the payee's (the customer whose payment it is: no customer
# here made it), ``from_account`` the payer's account at the other bank, and its detail
# names the payer (`PAYER_NAME`) and the transfer in the file (for its return). Every step
# of it is routed by the payee's account.
INCOMING = "incoming"
KINDS = (INTERNAL, EXTERNAL, INCOMING)


class PaymentRejected(DomainError):
    """A request the bank refuses; ``code`` is the precise reason written on the document."""

    code = "payment_rejected"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def payment_id_for(uid: str, request_id: str) -> str:
    """Globally unique and stable: the same request always maps to the same payment.

    A digest rather than a join, so no uid/request-id pair can collide with another
    (uids set through the Admin SDK may contain any separator). Events carry the uid and
    request id next to it for tracing."""
    digest = hashlib.sha256(f"{uid}\x00{request_id}".encode()).hexdigest()
    return f"p{digest[:34]}"  # 35 characters: fits ISO 20022's EndToEndId


def body_hash(body: dict[str, Any]) -> str:
    """Fingerprint of the client's body fields only (not of anything the backend added)."""
    canonical = {k: body[k] for k in sorted(BODY_FIELDS) if k in body}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class PaymentRequest:
    from_account: str
    to_account: str
    amount: int
    currency: str
    message: str | None
    kid: str | None
    due_date: date
    sca: dict[str, Any] | None = None  # {"keyId", "signature"}: the device's confirmation (domain.sca)
    payee_name: str | None = None


def check_sca_shape(sca: object) -> None:
    """A confirmation as the app sends it (None: none): ``{keyId, signature}``, the
    signature's text ASCII (base64), or PaymentRejected(invalid_sca)."""
    if sca is None:
        return
    _require(
        isinstance(sca, dict)
        and set(sca) == {"keyId", "signature"}
        and isinstance(sca["keyId"], str)
        and bool(SCA_KEY_ID.fullmatch(sca["keyId"]))
        and isinstance(sca["signature"], str)
        and 0 < len(sca["signature"]) <= 200
        and sca["signature"].isascii(),
        "invalid_sca",
        "sca must be {keyId, signature}",
    )


def _require(cond: bool, code: str, message: str) -> None:
    if not cond:
        raise PaymentRejected(code, message)


def check_app_request_id(request_id: str) -> None:
    """An app's request id is none of those the bank makes (`BANK_REQUEST_PREFIX`)."""
    _require(
        not request_id.startswith(BANK_REQUEST_PREFIX),
        "invalid_request_id",
        f"request ids starting {BANK_REQUEST_PREFIX!r} are the bank's own",
    )


def parse_request(
    body: dict[str, Any],
    *,
    request_id: str,
    today: date,
) -> PaymentRequest:
    """Validate the app's document against contract v1. Raises `PaymentRejected`."""
    _require(isinstance(body, dict), "malformed_request", "the request is not an object")
    _require(
        isinstance(request_id, str) and bool(REQUEST_ID_PATTERN.fullmatch(request_id)),
        "invalid_request_id",
        "the request id must be 8-64 letters, digits, '-' or '_'",
    )
    unknown = set(body) - BODY_FIELDS
    _require(not unknown, "unknown_field", f"unknown field(s): {', '.join(sorted(unknown))}")
    missing = REQUIRED_FIELDS - set(body)
    _require(not missing, "missing_field", f"missing field(s): {', '.join(sorted(missing))}")
    _require(
        body["v"] == CONTRACT_VERSION and type(body["v"]) is int,
        "unsupported_version",
        f"contract version must be {CONTRACT_VERSION}",
    )

    amount = parse_amount(body["amount"])
    _require(body["currency"] == CURRENCY, "unsupported_currency", "only NOK is supported")

    from_account = _account(body["fromAccount"], "invalid_from_account")
    to_account = _account(body["toAccount"], "invalid_to_account")
    _require(from_account != to_account, "same_account", "from- and to-account are the same")

    message, kid = body.get("message"), body.get("kid")
    _require(
        message is None or kid is None,
        "kid_and_message",
        "give a KID or a message, not both",
    )
    if message is not None:
        # as the payee will read it: a phone's ’ “ – as ' " -, a Sami Č as C (to_payment_text)
        message = to_payment_text(message) if isinstance(message, str) else message
        _require(
            isinstance(message, str) and 0 < len(message.strip()) and all(map(is_payment_text_char, message)),
            "invalid_message",
            "message must be Latin text (ISO 8859-15: æ, ø, å and the Western European letters),"
            " without line breaks, tabs, emoji or other control characters",
        )
        _require(
            len(message) <= MAX_MESSAGE_LENGTH,
            "message_too_long",
            f"message above {MAX_MESSAGE_LENGTH} characters (an … counts as three)",
        )
    if kid is not None:
        _require(
            isinstance(kid, str) and is_valid_kid(kid),
            "invalid_kid",
            "the KID's check digit is wrong",
        )
        kid = validate_kid(kid)

    due = body.get("dueDate")
    if due is None:
        due_date = today
    else:
        _require(
            isinstance(due, str) and bool(DATE_PATTERN.fullmatch(due)),
            "invalid_due_date",
            "dueDate must be YYYY-MM-DD",
        )
        try:
            due_date = date.fromisoformat(due)
        except ValueError:
            raise PaymentRejected("invalid_due_date", "dueDate must be YYYY-MM-DD") from None
        _require(due_date >= today, "due_date_in_past", "dueDate is before today")
        _require(
            due_date <= today + timedelta(days=MAX_DUE_DAYS),
            "due_date_too_far",
            f"dueDate at most {MAX_DUE_DAYS} days ahead",
        )
    sca = body.get("sca")
    check_sca_shape(sca)
    payee_name = body.get("payeeName")
    if payee_name is not None:
        payee_name = to_payment_text(payee_name) if isinstance(payee_name, str) else payee_name
        _require(
            isinstance(payee_name, str)
            and bool(payee_name.strip())
            and len(payee_name) <= MAX_NAME_LENGTH
            and all(map(is_payment_text_char, payee_name)),
            "invalid_payee_name",
            f"payeeName must be 1-{MAX_NAME_LENGTH} characters of Latin text (ISO 8859-15: æ, ø, å ...)",
        )
        payee_name = " ".join(payee_name.split())
    return PaymentRequest(from_account, to_account, amount, CURRENCY, message, kid, due_date, sca, payee_name)


def parse_amount(amount: object) -> int:
    """A payment's amount: a positive integer number of øre, at most the contract's ceiling."""
    if type(amount) is not int:  # not isinstance: a bool is no amount
        raise PaymentRejected("invalid_amount", "amount must be an integer number of øre")
    _require(amount > 0, "invalid_amount", "amount must be positive")
    _require(amount <= MAX_AMOUNT_MINOR, "amount_over_limit", f"amount above {MAX_AMOUNT_MINOR} øre")
    return amount


def _account(value: object, code: str) -> str:
    if not isinstance(value, str):
        raise PaymentRejected(code, "account number must be a string")
    try:
        return validate_account_number(normalize_account_number(value))
    except DomainError as exc:
        raise PaymentRejected(code, exc.message) from None


@dataclass(frozen=True)
class PaymentRequested:
    """The payment as the edge accepted it; every later event carries it unchanged."""

    payment_id: str
    uid: str
    request_id: str
    kind: str  # internal | external | incoming
    from_account: str
    to_account: str
    amount: int
    currency: str
    message: str | None
    kid: str | None
    due_date: str
    body_hash: str
    requested_at: str
    v: int = EVENT_VERSION
    payee_name: str | None = None  # as the customer typed it (optional; events before it have none)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def booking_date(self) -> str:
        """The day the payment is made, in Norway (YYYY-MM-DD): the feed's date and the
        month of "my economy". One requested for a later date is made on that date's
        banking day (a due date on a weekend or a holiday: the next banking day); one made
        on the day it was requested (an immediate payment, instant at any hour, or a
        standing order's payment, which the job requests on the banking day it pays) on
        that day. From the event alone, so a replay books the same day."""
        due = date.fromisoformat(self.due_date)
        try:
            at = datetime.fromisoformat(self.requested_at.replace("Z", "+00:00"))
        except ValueError:
            return self.due_date
        requested = today_in_norway(at if at.tzinfo else at.replace(tzinfo=UTC))
        return (next_banking_day(due) if due > requested else requested).isoformat()

    @classmethod
    def from_json(cls, data: object) -> PaymentRequested:
        """The event's payment as decoded JSON: anything, checked here."""
        _later_version_first(data)
        if not isinstance(data, dict):
            raise PaymentRejected("malformed_event", "the payment is not an object")
        fields = set(cls.__dataclass_fields__)
        unknown = set(data) - fields
        if unknown:
            raise PaymentRejected("malformed_event", f"unknown event field(s): {sorted(unknown)}")
        missing = fields - set(data) - {"v", "payee_name"}
        if missing:
            raise PaymentRejected("malformed_event", f"missing event field(s): {sorted(missing)}")
        _check_version(data.get("v", EVENT_VERSION))
        event = cls(**data)
        if event.kind not in KINDS:
            raise PaymentRejected("malformed_event", f"unknown payment kind {event.kind!r}")
        # the contract's ceiling is what a customer here may pay; another bank's customer
        # may pay more (a house sale), up to what the ledger holds (money.MAX_MINOR)
        ceiling = MAX_MINOR if event.kind == INCOMING else MAX_AMOUNT_MINOR
        if type(event.amount) is not int or not 0 < event.amount <= ceiling:
            raise PaymentRejected("malformed_event", "event amount must be a positive int within the ceiling")
        _check_event_fields(event)
        return event


def _later_version_first(payment: object) -> None:
    """`OtherVersion` for a payment of a later version, before anything else is checked: a
    later version adds or removes a field, a status or a kind (the contract is closed, so
    any such change is a new version), and each of those was refused as malformed and
    dead-lettered before the version was read (found in review, 2026-12-07)."""
    version = payment.get("v") if isinstance(payment, dict) else None
    if type(version) is int and version > EVENT_VERSION:
        raise OtherVersion(f"payment version {version} is newer than {EVENT_VERSION}, the one this consumer reads")


def _check_version(version: object) -> None:
    """A payment's ``v``: absent (an event before it) or a version (the earlier ones'
    fields are read as today's; a later one was refused by `_later_version_first`): a
    consumer read ``"banana"`` as well (found in review, 2026-12-07)."""
    if type(version) is not int or version < 1:
        raise PaymentRejected("malformed_event", f"the payment's version {version!r} is not a version")


_EVENT_TEXT = ("payment_id", "uid", "request_id", "currency", "body_hash", "requested_at")
_EVENT_OPTIONAL_TEXT = ("message", "kid", "payee_name")
_EVENT_ACCOUNT = re.compile(r"[0-9]{11}")
_EVENT_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _check_event_fields(event: PaymentRequested) -> None:
    """The fields every consumer reads, of the types and shapes the edge made them: a
    message that is not can never be processed, and is refused at once (dead-lettered)
    rather than failing its batch until its deliveries run out."""
    if not all(isinstance(getattr(event, name), str) for name in _EVENT_TEXT):
        raise PaymentRejected("malformed_event", f"event fields {', '.join(_EVENT_TEXT)} must be text")
    if not all(isinstance(getattr(event, name), str | None) for name in _EVENT_OPTIONAL_TEXT):
        raise PaymentRejected("malformed_event", f"event fields {', '.join(_EVENT_OPTIONAL_TEXT)} must be text or null")
    for account in (event.from_account, event.to_account):
        if not isinstance(account, str) or not _EVENT_ACCOUNT.fullmatch(account):
            raise PaymentRejected("malformed_event", "event accounts must be 11-digit account numbers")
    if not isinstance(event.due_date, str) or not _EVENT_DATE.fullmatch(event.due_date):
        raise PaymentRejected("malformed_event", "event due_date must be a date (YYYY-MM-DD)")
    try:
        date.fromisoformat(event.due_date)
    except ValueError:
        raise PaymentRejected("malformed_event", f"event due_date {event.due_date!r} is no date") from None


@dataclass(frozen=True)
class PaymentEvent:
    """One step of a payment's lifecycle on NATS: subject ``payments.<status>.<partition>``, message id
    ``<payment id>:<status>`` (so a step is stored once however often it is published; a
    payment from another bank's ``arrived`` adds its body hash's first 16 characters)."""

    payment: PaymentRequested
    status: str
    reason: str | None = None
    message: str | None = None
    detail: dict[str, Any] | None = None  # step data, e.g. the clearing file id

    @property
    def subject(self) -> str:
        # the payer's partition last: one payer's steps go through one instance, in order
        # (the ledger's credit leg: the payee's, topology.step_account)
        p = self.payment
        if p.kind == INCOMING:  # the payer's account is at another bank: all in the payee's partition
            return topology.payment_subject(self.status, p.to_account)
        return topology.payment_subject(self.status, topology.step_account(self.status, p.from_account, p.to_account))

    @property
    def msg_id(self) -> str:
        base = f"{self.payment.payment_id}:{self.status}"
        if self.payment.kind == INCOMING and self.status == topology.ARRIVED:
            # two different credits under one key (a bank using a TxId twice on one day) are
            # two messages: the ledger refuses the second, whose record differs (dead-lettered
            # for an operator), where JetStream's duplicate window would have dropped it unseen
            base = f"{base}:{self.payment.body_hash[:16]}"
            if (self.detail or {}).get(RELEASED_FROM_HOLD):
                # an officer's release within two minutes of an arrived another instance
                # published (which leaves the hold standing) is not dropped as its duplicate
                base += ":release"
        return base

    def to_json(self) -> dict[str, Any]:
        return {
            "payment": self.payment.to_json(),
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "detail": self.detail or {},
        }

    @classmethod
    def from_json(cls, data: object) -> PaymentEvent:
        """A decoded message body: anything, checked here; a later version's first (its
        fields, statuses or envelope may be what this code does not know)."""
        _later_version_first(data.get("payment") if isinstance(data, dict) else None)
        if not isinstance(data, dict) or set(data) - {"payment", "status", "reason", "message", "detail"}:
            raise PaymentRejected("malformed_event", "not a payment event")
        status = data.get("status")
        if status not in STATUS_RANK and status not in LEDGER_LEGS | INCOMING_STEPS:
            raise PaymentRejected("malformed_event", f"unknown status {status!r}")
        detail, reason, message = data.get("detail") or {}, data.get("reason"), data.get("message")
        if not isinstance(detail, dict) or not all(isinstance(v, str | None) for v in (reason, message)):
            raise PaymentRejected("malformed_event", "detail must be an object, reason and message text or null")
        return cls(
            payment=PaymentRequested.from_json(data.get("payment")),
            status=status,
            reason=reason,
            message=message,
            detail=detail,
        )


def passing(event: PaymentEvent, at: datetime) -> PaymentEvent:
    """``event`` with the time its state was reached in ``detail.passedAt`` (`PASSED_AT`), for
    a state the notifier does not consume (`UNSHOWN`): the time the app's timeline shows for
    it. The detail's other fields stay."""
    detail = dict(event.detail or {})
    detail[PASSED_AT] = {**_passed(detail), event.status: at.astimezone(UTC).isoformat()}
    return replace(event, detail=detail)


def requested_in_app(event: PaymentEvent, *, payee_uid: str | None = None) -> PaymentEvent:
    """``event`` marked as a payment with an app request document (`ON_REQUEST`), and with
    its payee's uid when the edge knows it (`PAYEE_UID`)."""
    told = {PAYEE_UID: payee_uid} if payee_uid else {}
    return replace(event, detail={**(event.detail or {}), ON_REQUEST: True, **told})


def told_owners(events: Iterable[PaymentEvent]) -> dict[str, str]:
    """to-account -> its owner, as internal payments' events tell it (`PAYEE_UID`)."""
    out: dict[str, str] = {}
    for event in events:
        uid = (event.detail or {}).get(PAYEE_UID)
        if event.payment.kind == INTERNAL and isinstance(uid, str) and uid:
            out[event.payment.to_account] = uid
    return out


def on_request(event: PaymentEvent) -> bool:
    """Whether ``event`` says its payment has an app request document (`ON_REQUEST`)."""
    return (event.detail or {}).get(ON_REQUEST) is True


def passed_at(event: PaymentEvent) -> dict[str, datetime]:
    """The states ``event`` passed through unshown, and when (`passing`); a malformed entry
    is left out (it only costs the timeline that entry)."""
    passed: dict[str, datetime] = {}
    for status, at in _passed(event.detail or {}).items():
        if status in UNSHOWN and isinstance(at, str):
            try:
                when = datetime.fromisoformat(at)
            except ValueError:
                continue
            if when.tzinfo is not None:
                passed[status] = when
    return passed


def _passed(detail: dict[str, Any]) -> dict[str, Any]:
    found = detail.get(PASSED_AT)
    return dict(found) if isinstance(found, dict) else {}


def may_advance(current: str | None, new: str) -> bool:
    """A projection may move a request only forward, and never out of a terminal state.
    A ``current`` that is no known state (a corrupted document) counts as none."""
    if not isinstance(current, str) or current not in STATUS_RANK:
        current = None
    if current in TERMINAL:
        return False
    return STATUS_RANK[new] > STATUS_RANK.get(current or "", -1)


def projection_update(
    current: dict[str, Any] | None,
    status: str,
    *,
    reason: str | None = None,
    message: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The fields to write on a request document to show ``status``, or None when the
    document already shows this state or a later one (idempotent, order-proof)."""
    if current is None or not may_advance(current.get("status"), status):
        return None
    update = {**(extra or {}), "status": status, "statusRank": STATUS_RANK[status]}
    if reason is not None:
        update["reason"] = {"code": reason, "message": message or reason}
    elif current.get("status") == WAITING and current.get("reason") is not None:
        update["reason"] = None  # see WAITING
    return update
