"""What the customer is told, free of I/O: push texts and the transaction-list entries
that payment states produce."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fjordbank.domain import reasons
from fjordbank.domain.categories import categorise, override_key
from fjordbank.domain.money import Money
from fjordbank.domain.norway import mask_account_number
from fjordbank.domain.payments import INCOMING as INCOMING_KIND
from fjordbank.domain.payments import PaymentEvent
from fjordbank.domain.payments import payer_name as incoming_payer

# Push kinds, each with its own user preference (marketing is off unless chosen).
PAYMENTS = "payments"
INCOMING = "incoming"
CARD = "card"
ONBOARDING = "onboarding"
MARKETING = "marketing"
DEFAULT_PREFERENCES = {PAYMENTS: True, INCOMING: True, CARD: True, ONBOARDING: True, MARKETING: False}
# Security notices (a device added to or removed from the customer's, the bank resetting
# them): always sent, whatever the settings say; the app has no preference for them
# (firestore.rules), since a customer who switched them off would not see a stranger's
# device being added.
SECURITY = "security"
ALWAYS_ON = frozenset({SECURITY})
RETURNED_TEXT = "returned by the receiving bank"

# Why a payment did not go through, as its push says it. Only these words go into a push:
# never the event's message, which for a payment another bank returned is that bank's own
# free text (pain.002 AddtlInf: a name, an account holder "unknown"), and never a raw ISO
# code (AM04, NARR). Both reached the lock screen until 2026-12 (found in review).
REASON_TEXTS = {
    "insufficient_funds": "not enough money on the account",
    "blocked_counterparty": "payments to this account are not allowed",
    "over_payment_limit": "above your limit per payment",
    "over_daily_limit": "above your daily limit",
    "velocity_limit": "too many payments in a short time",
    "new_payee_limit": "above the limit for a new payee in its first day",
    "payee_in_review": "the bank is checking the payee; nothing was paid",
    "AC04": "the receiving account is closed",
    "AC01": "the receiving account number is wrong",
    "invalid_kid": "the KID is wrong",
    "returned": RETURNED_TEXT,
    "unknown_to_account": "no account with this number in Fjordbank",
    "to_account_closed": "the receiving account is closed",
    "unknown_account": "no such account of yours",
    "account_closed": "the account is closed",
    "account_frozen": "the account is frozen",
    "same_account": "it was to the account it was from",
    "currency_mismatch": "the account does not hold kroner",
    "sca_required": "it needs confirming on your device",
    "sca_invalid": "the confirmation did not match the payment",
    "sca_reused": "the confirmation was for another payment",
    "sca_key_revoked": "the device that confirmed it was removed; confirm it again",
    "rate_limited": "too many payments at once; try again shortly",
    "busy": "the bank was busy; try again",
}
UNSPECIFIED_TEXT = "the bank could not complete it"


def reason_text(code: str | None) -> str:
    """The words of a push for a payment's reason (`REASON_TEXTS`): a request the bank
    could not read says so, a code from another bank the bank has no words for is a
    return, anything else is the bank's own general words."""
    if code in REASON_TEXTS:
        return REASON_TEXTS[code]
    known = reasons.BY_CODE.get(code or "")
    if known is None and code:
        return RETURNED_TEXT  # an ISO 20022 return reason from the other bank
    if known is not None and reasons.callable_status(known.code) == "INVALID_ARGUMENT":
        return "the payment request was not valid"
    return UNSPECIFIED_TEXT


@dataclass(frozen=True)
class Push:
    uid: str
    kind: str
    title: str
    body: str
    data: dict[str, str]
    dedupe_key: str  # one notification shown per key, however often it is queued (its collapse id)
    # News: a push that only tells what the feed shows too (money received, a payment
    # completed, a card purchase or refund), which the push function does not send once it
    # is late (fjordbank.service_layer.push.NEWS_MAX_AGE). Not news (the default): a payment
    # not completed or rejected, a card declined, the onboarding result, a security notice,
    # anything the customer must know or act on, never dropped for being late. Until 2026-12 the push
    # function dropped every late push but a security notice, a standing order's "Payment not
    # completed" and the onboarding result (which has no feed entry) among them (found in
    # review, 2026-12-06).
    news: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "kind": self.kind,
            "title": self.title,
            "body": self.body,
            "data": self.data,
            "dedupeKey": self.dedupe_key,
            "news": self.news,
        }


def _amount(minor: int) -> str:
    return Money.nok(minor).format_nok()


def payment_pushes(event: PaymentEvent, *, payee_uid: str | None) -> list[Push]:
    """Pushes for a payment reaching ``event.status`` (only final states push)."""
    p = event.payment
    data = {"paymentId": p.payment_id, "requestId": p.request_id, "status": event.status}
    pushes: list[Push] = []
    if p.kind == INCOMING_KIND:  # from another bank to ``p.uid``: only its arrival is told
        if event.status == "completed":
            # the amount only: the payer's name is the feed entry's, not the lock screen's
            # (SECURITY.md: a push carries amounts and masked account numbers)
            pushes.append(
                Push(
                    p.uid,
                    INCOMING,
                    "Money received",
                    f"You received {_amount(p.amount)}",
                    {**data, "status": "received"},
                    f"{p.payment_id}:received",
                    news=True,
                )
            )
        return pushes
    if event.status == "completed":
        pushes.append(
            Push(
                p.uid,
                PAYMENTS,
                "Payment completed",
                f"{_amount(p.amount)} to {mask_account_number(p.to_account)}",
                data,
                f"{p.payment_id}:completed",
                news=True,
            )
        )
        if p.kind == "internal" and payee_uid and payee_uid != p.uid:
            pushes.append(
                Push(
                    payee_uid,
                    INCOMING,
                    "Money received",
                    f"You received {_amount(p.amount)}",
                    {**data, "status": "received"},
                    f"{p.payment_id}:received",
                    news=True,
                )
            )
    elif event.status in ("failed", "rejected"):
        why = reason_text(event.reason)
        pushes.append(
            Push(
                p.uid,
                PAYMENTS,
                "Payment not completed",
                f"{_amount(p.amount)}: {why}",
                data,
                f"{p.payment_id}:{event.status}",
            )
        )
    return pushes


# The status a payment's feed entry shows in each payment state that has one.
ENTRY_STATUS = {
    "reserved": "pending",
    "submitted": "pending",
    "settled": "pending",
    "completed": "posted",
    "failed": "cancelled",
    "returned": "cancelled",
}


def transaction_entries(
    event: PaymentEvent,
    *,
    payee_uid: str | None,
    overrides: dict[tuple[str, str], str] | None = None,
    payer_name: str | None = None,
) -> dict[str, dict[str, Any]]:
    """account id -> the entry its transaction list shows for this payment now.

    The counterparty's name: the payee's as the payer typed it, the payer's (``payer_name``,
    the customer's name) on the payee's entry. ``overrides``: the customers' own categories,
    by (uid, key of the payee). Each entry has its booking date (``date``, Europe/Oslo) and
    the key its category is chosen by."""
    p = event.payment
    status = ENTRY_STATUS.get(event.status)
    if status is None:
        return {}
    overrides = overrides or {}
    own_transfer = payee_uid == p.uid  # between the customer's own accounts: neither spending nor income

    def entry(
        uid: str, direction: str, sign: int, counterparty: str, name: str | None, status: str, reason: str | None
    ) -> dict[str, Any]:
        key = override_key(kind="payment", merchant_name=None, counterparty_account=counterparty)
        category = (
            "transfers"
            if own_transfer
            else categorise(
                direction=direction,
                kind="payment",
                counterparty_account=counterparty,
                kid=p.kid if direction == "out" else None,
                overrides={key: overrides[(uid, key)]} if (uid, key) in overrides else None,
            )
        )
        return {
            "paymentId": p.payment_id,
            "amount": sign * p.amount,
            "currency": p.currency,
            "direction": direction,
            "counterpartyAccount": counterparty,
            "counterpartyName": name,
            "message": p.message,
            "kid": p.kid,
            "status": status,
            "reason": reason,
            "kind": "payment",
            "category": category,
            "merchantKey": key,
            "date": p.booking_date,
        }

    if p.kind == INCOMING_KIND:  # the payee's entry only: the payer is another bank's customer
        if event.status != "completed":
            return {}
        return {p.to_account: entry(p.uid, "in", 1, p.from_account, incoming_payer(event), "posted", None)}
    entries = {p.from_account: entry(p.uid, "out", -1, p.to_account, p.payee_name, status, event.reason)}
    if p.kind == "internal" and event.status == "completed" and payee_uid is not None:
        entries[p.to_account] = entry(payee_uid, "in", 1, p.from_account, payer_name, "posted", None)
    return entries


CARD_REASON_TEXTS = {
    "card_frozen": "the card is frozen",
    "card_blocked": "the card is blocked",
    "card_expired": "the card has expired",
    "insufficient_funds": "not enough money on the account",
    "over_daily_limit": "above the card's daily limit",
    "over_online_limit": "above the card's online limit",
    "over_abroad_limit": "above the card's limit abroad",
    "cvv_mismatch": "wrong security code",
    "cvv_required": "the security code is missing",
    "invalid_expiry": "wrong expiry date",
    "atm_not_supported": "a virtual card cannot take cash from an ATM",
    "account_closed": "the account is closed",
}


def card_pushes(event: dict[str, Any]) -> list[Push]:
    """A push for a card authorisation approved or declined (cards.authorized/declined),
    and for an approved one's reservation released without a capture (cards.reversed: the
    till or the processor undid it; cards.expired: the merchant never collected it).
    ``event`` is the wire form of a `fjordbank.domain.events.CardAuthorization`.

    Each has its own collapse id (the dedupe key, per authorisation and status): the
    release does not replace the approval on the phone but is shown beside it, naming the
    same amount. A shared id would have the phone show whichever send lands
    last, and nothing orders them (one notifier batch sends on many threads; a retried
    message resends the approval after the release), so the stale "Card purchase" could
    win. An expired reservation can still be charged (a hotel's or car rental's late
    capture is posted), so its text says so rather than promise the money back, and that
    late capture is told when it comes (cards.captured with ``late``; a capture within its
    reservation pushes nothing: the approval told it). A merchant's refund is told too
    (cards.refunded), each refund under its own collapse id, and so is a reservation the
    merchant increased (cards.incremented: the amount more and what is reserved in all).

    The title and body, shown on the lock screen, carry the amounts and the card's last four
    digits only (SECURITY.md): the merchant's name is in the data payload (``merchantName``),
    which the app shows once it is opened. Every card push named the merchant in its body
    until 2026-12 (found in review): a purchase at a pharmacy or a clinic, read off a locked
    phone."""
    uid, status = event.get("uid"), event.get("status")
    if status == "captured" and event.get("late") is not True:
        return []  # a capture within its reservation: the approval's push told it
    if not uid or status not in ("approved", "declined", "captured", "reversed", "expired", "refunded", "incremented"):
        return []
    amount = event.get("amount")
    what = _amount(amount) if type(amount) is int else "A purchase"
    data = {"authorizationId": str(event.get("auth_id")), "cardId": str(event.get("card_id")), "status": status}
    merchant = event.get("merchant_name")
    if isinstance(merchant, str) and merchant:
        data["merchantName"] = merchant  # for the app once opened, not the lock screen
    key = f"{event.get('auth_id')}:{status}"
    if status == "approved":
        title, body = "Card purchase", f"{what} with the card ending {event.get('last4')}"
    elif status == "reversed":
        title, body = "Card purchase cancelled", f"{what}: the amount is no longer reserved"
    elif status == "captured":  # late: told "Reservation ended", then charged
        title, body = "Card purchase charged", f"{what}: the merchant charged it after its reservation ended"
    elif status == "expired":
        title, body = "Reservation ended", f"{what}: no longer reserved, but the merchant can still charge it later"
    elif status == "refunded":
        title, body = "Refund", f"{what} {'was ' if type(amount) is not int else ''}refunded to your account"
        data["refundId"] = str(event.get("refund_id"))
        key = f"{key}:{event.get('refund_id')}"  # one per refund of the purchase
    elif status == "incremented":
        total = event.get("authorized_amount")
        more = f"{_amount(amount)} more" if type(amount) is int else "More"
        title, body = (
            "Reservation increased",
            f"{more} reserved on the card ending {event.get('last4')}"
            + (f": {_amount(total)} in all" if type(total) is int else ""),
        )
        data["incrementId"] = str(event.get("increment_id"))
        key = f"{key}:{event.get('increment_id')}"  # one per increment of the reservation
    else:
        why = CARD_REASON_TEXTS.get(event.get("reason") or "", "the bank declined it")
        title, body = "Card purchase declined", f"{what}: {why}"
    # a decline may be someone else trying the card: the customer is told however late
    return [Push(uid, CARD, title, body, data, key, news=status != "declined")]


def onboarding_pushes(event: dict[str, Any]) -> list[Push]:
    """The onboarding result (customers.approved / review / rejected): ``event`` is the wire
    form of a `fjordbank.domain.events.CustomerDecided`."""
    uid, status = event.get("uid"), event.get("status")
    texts = {
        "approved": ("Welcome to Fjordbank", "Your account is open and ready to use."),
        "review": ("We are checking your application", "We will tell you as soon as it is decided."),
        "rejected": ("Your application", "We could not open an account for you. Contact us to know more."),
    }
    if not uid or status not in texts:
        return []
    title, body = texts[status]
    return [Push(uid, ONBOARDING, title, body, {"status": status}, f"customer:{uid}:{status}")]


DEVICE_TEXTS = {
    "added": (
        "A new device can confirm your payments",
        "Another of your devices approved it. If this was not you, remove it under Devices and call us.",
    ),
    "enrolled": (
        "Your new device is set up",
        "The device the bank let you enrol can now confirm payments. If this was not you, call us at once.",
    ),
    "revoked": (
        "A device was removed",
        "It can no longer confirm your payments. If this was not you, call us.",
    ),
    "reset": (
        "The bank reset your devices",
        "None of them confirms payments until your new one is enrolled. If you did not ask us, call us at once.",
    ),
}


def device_pushes(event: dict[str, Any]) -> list[Push]:
    """A security notice for a change to the customer's devices (customers.device_changed):
    ``event`` is the wire form of a `fjordbank.domain.events.DeviceChanged`. Sent to every
    device the customer has, the one changed included, and never muted (`ALWAYS_ON`). Each
    change is a notice of its own (its time in the key: a second reset is not folded into
    the first on the phone). A reset's push does not name the key the bank expects: a lost
    phone still registered would learn it."""
    uid, change, key_id, at = event.get("uid"), event.get("change"), event.get("key_id"), event.get("changed_at")
    if not uid or change not in DEVICE_TEXTS or not isinstance(key_id, str):
        return []
    title, body = DEVICE_TEXTS[change]
    data = {"change": change} if change == "reset" else {"change": change, "keyId": key_id}
    key = ":".join(["device", uid, change, key_id, *([at] if isinstance(at, str) else [])])
    return [Push(uid, SECURITY, title, body, data, key)]


class Queued(Protocol):
    """A push as the notifier made it or as the push function reads it back (its kind and data)."""

    @property
    def kind(self) -> str: ...

    @property
    def data(self) -> Mapping[str, Any]: ...


def superseded(push: Queued, customer_status: object) -> bool:
    """An onboarding push of "we are checking your application" whose customer is decided
    since: the review's event can reach the notifier after the decision's when its first
    publish failed and the outbox relay sent the decision's (never tried) first, and the
    customer would read "checking" after "welcome". The decisions are final, so only the
    review's push can be out of date."""
    return awaits_decision(push) and customer_status in ("approved", "rejected")


def awaits_decision(push: Queued) -> bool:
    """An onboarding push of "we are checking your application": the one `superseded` may
    find out of date."""
    return push.kind == ONBOARDING and push.data.get("status") == "review"


def customer_pushes(event: dict[str, Any]) -> list[Push]:
    """The pushes of a customers.* event the notifier reads: an onboarding result, or a
    change to the customer's devices (the wire forms differ: ``status`` or ``change``)."""
    return device_pushes(event) if "change" in event else onboarding_pushes(event)
