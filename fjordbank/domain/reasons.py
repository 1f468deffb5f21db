"""Every reason code the bank gives, in one place: what it means and where it appears.

A refusal anywhere carries one of these codes: a callable's ``details.reason``, a payment
request's ``reason.code``, a card authorisation's ``reason``, an onboarding decision's
``reason``. The README's table is rendered from this catalogue (``python -m
fjordbank.domain.reasons``), and tests/unit/test_reasons.py fails when the code gives a
reason that is not here, or this lists one the code no longer gives.

Callables answer with the status ``callable_status`` derives: ``invalid_*`` is the
caller's input (INVALID_ARGUMENT), ``unknown_*`` something the caller does not have: the
same answer for another customer's object as for a missing one (NOT_FOUND), a few have
their own status (STATUS below), the rest is a state that does not allow it
(FAILED_PRECONDITION).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

CALLABLE = "callable"  # HttpsError details.reason
PAYMENT = "payment"  # users/{uid}/paymentRequests/{id}: reason.code (rejected or failed)
CARD = "card"  # the card processor API's answer: reason of a decline or refusal
ONBOARDING = "onboarding"  # the decision's reason (customers/{uid}.reason)


@dataclass(frozen=True)
class Reason:
    code: str
    where: tuple[str, ...]
    meaning: str


def _r(code: str, where: str, meaning: str) -> Reason:
    return Reason(code, tuple(where.split()), meaning)


REASONS: tuple[Reason, ...] = (
    # -- any request -----------------------------------------------------------------------
    _r("app_check", CALLABLE, "the App Check token is missing or invalid (UNAUTHENTICATED)"),
    _r(
        "session_ended",
        CALLABLE,
        "the bank ended this session (a device removed with sign-out, a reset): sign in again (UNAUTHENTICATED)",
    ),
    _r("invalid_request", f"{CALLABLE} {CARD}", "the request is not an object with the expected fields and types"),
    _r("rate_limited", f"{CALLABLE} {PAYMENT}", "too many requests of this kind from this user; `retryAfter` seconds"),
    _r(
        "busy",
        f"{CALLABLE} {PAYMENT}",
        "contention or a slow database: try again after `retryAfter` (a change whose answer timed out may"
        " have been made: the same request again is answered as it stands)",
    ),
    # -- onboarding -------------------------------------------------------------------------
    _r("already_onboarded", CALLABLE, "this user has already applied"),
    _r("identity_in_use", CALLABLE, "the identity number belongs to another customer"),
    _r("invalid_national_id", CALLABLE, "not a valid fødselsnummer, D-number or 2032-rule number"),
    _r("birth_date_mismatch", CALLABLE, "dateOfBirth does not match the identity number"),
    _r("under_18", CALLABLE, "customers must be at least 18"),
    _r("invalid_name", CALLABLE, "a name (person or account) that is empty, too long or has control characters"),
    _r("invalid_date_of_birth", CALLABLE, "dateOfBirth is not a YYYY-MM-DD date in the past"),
    _r("invalid_address", CALLABLE, "the address needs street, postalCode and city"),
    _r("invalid_street", CALLABLE, "the street is not 1-100 characters of text"),
    _r("invalid_city", CALLABLE, "the city is not 1-60 characters of text"),
    _r("invalid_postal_code", CALLABLE, "a Norwegian postal code has 4 digits"),
    _r("invalid_phone", CALLABLE, "not a phone number (+47 and 8 digits for Norway)"),
    _r("invalid_email", CALLABLE, "not an e-mail address"),
    _r(
        "not_approved",
        ONBOARDING,
        "rejected by the screening; which list and why are the bank's own record (an applicant told"
        " a match could try spellings until one screened clear); in review, no reason is given",
    ),
    _r("unknown_customer", CALLABLE, "an operator's decision on a user who has not applied (or is not approved)"),
    _r("not_in_review", CALLABLE, "an operator's decision on an application that is not in review"),
    _r("not_rejected", CALLABLE, "an identity number is freed from a rejected application only"),
    _r("not_claimed", CALLABLE, "the rejected application holds no identity number to free"),
    _r(
        "invalid_reason",
        CALLABLE,
        "an operator's decision needs a reason of 1-200 printable characters, a reopening or a release one of 3-200",
    ),
    _r(
        "four_eyes",
        CALLABLE,
        "an operator decides no application, frees no identity number and reopens no device enrolment of their own:"
        " another operator does (PERMISSION_DENIED)",
    ),
    # -- accounts ---------------------------------------------------------------------------
    _r("not_a_customer", CALLABLE, "only approved customers open accounts and get cards (PERMISSION_DENIED)"),
    _r("invalid_kind", CALLABLE, "the account kind is not spending or savings"),
    _r("too_many_accounts", CALLABLE, "at most 5 open accounts, 50 in all (closed ones counted)"),
    _r(
        "request_id_reused",
        CALLABLE,
        "the requestId was used for another request (an account of another kind, a card on another account)",
    ),
    _r("registry_exhausted", CALLABLE, "no free account number was found; try again (RESOURCE_EXHAUSTED)"),
    _r("unknown_account", f"{CALLABLE} {PAYMENT} {CARD}", "no such account of yours (another's answers the same)"),
    _r("account_closed", f"{CALLABLE} {PAYMENT} {CARD}", "the account is closed"),
    _r(
        "account_frozen",
        f"{CALLABLE} {PAYMENT} {CARD}",
        "the account is frozen under financial sanctions: nothing is paid from it until the bank lifts it",
    ),
    _r("customer_frozen", CALLABLE, "the customer's accounts are frozen: no account is opened, no card issued"),
    _r("account_not_empty", CALLABLE, "an account closes only at zero balance with no holds"),
    _r("account_not_closed", CALLABLE, "a payout is of a closed account's money: an open account pays by a payment"),
    _r("nothing_to_pay_out", CALLABLE, "the closed account holds no money"),
    _r("money_in_transit", CALLABLE, "a payment from the account is on its way (it may come back); try again soon"),
    # -- payments ---------------------------------------------------------------------------
    _r("missing_field", f"{CALLABLE} {PAYMENT}", "a required field of the request is missing"),
    _r("unknown_field", f"{CALLABLE} {PAYMENT}", "the request has a field the contract does not know"),
    _r("unsupported_version", PAYMENT, "the request's `v` is not a contract version the bank reads"),
    _r("unsupported_currency", PAYMENT, "only NOK"),
    _r("invalid_request_id", f"{CALLABLE} {PAYMENT}", "the request id is not 8-64 letters, digits, '-' or '_'"),
    _r("invalid_from_account", f"{CALLABLE} {PAYMENT}", "fromAccount is not a valid account number (MOD11)"),
    _r("invalid_to_account", f"{CALLABLE} {PAYMENT}", "toAccount is not a valid account number (MOD11)"),
    _r("invalid_amount", f"{CALLABLE} {PAYMENT} {CARD}", "the amount is not a positive whole number of øre"),
    _r("amount_over_limit", f"{CALLABLE} {PAYMENT}", "the amount is above what one payment may be"),
    _r("invalid_message", f"{CALLABLE} {PAYMENT}", "the message is not text"),
    _r("message_too_long", f"{CALLABLE} {PAYMENT}", "the message is longer than 140 characters"),
    _r("kid_and_message", f"{CALLABLE} {PAYMENT}", "a payment has a KID or a message, not both"),
    _r("invalid_kid", f"{CALLABLE} {PAYMENT}", "the KID's form or check character is wrong (MOD10/MOD11)"),
    _r("invalid_due_date", f"{CALLABLE} {PAYMENT}", "the due date is not a date"),
    _r("due_date_in_past", f"{CALLABLE} {PAYMENT}", "the due date is before today"),
    _r("due_date_too_far", f"{CALLABLE} {PAYMENT}", "the due date is more than 366 days ahead"),
    _r("invalid_payee_name", f"{CALLABLE} {PAYMENT}", "payeeName is not 1-70 characters of text"),
    _r("invalid_sca", f"{CALLABLE} {PAYMENT}", "sca is not {keyId, signature}"),
    _r(
        "sca_required",
        f"{CALLABLE} {PAYMENT}",
        "confirm on the device: a new payee, a large amount, a card unfrozen or its limits raised",
    ),
    _r(
        "sca_invalid",
        f"{CALLABLE} {PAYMENT}",
        "the confirmation's key or signature does not match this payment or change",
    ),
    _r("sca_reused", f"{CALLABLE} {PAYMENT}", "the confirmation was used for another payment or change"),
    _r(
        "sca_key_revoked",
        PAYMENT,
        "the device that confirmed a scheduled payment or a standing order was removed before its due date: "
        "confirm it again (the standing order has ended)",
    ),
    _r("unknown_to_account", f"{CALLABLE} {PAYMENT}", "no account with this number in Fjordbank"),
    _r("to_account_closed", f"{CALLABLE} {PAYMENT}", "the payee's account is closed"),
    _r("same_account", f"{CALLABLE} {PAYMENT}", "from- and to-account are the same"),
    _r("too_many_scheduled", PAYMENT, "the customer has 200 payments waiting for their due dates: pay or cancel one"),
    _r("currency_mismatch", f"{CALLABLE} {PAYMENT} {CARD}", "the account does not hold the payment's currency"),
    _r("insufficient_funds", f"{PAYMENT} {CARD}", "the available balance is too low"),
    _r(
        "blocked_counterparty",
        PAYMENT,
        "payments to this account are not allowed (screening: a blocked account, or a payee found listed)",
    ),
    _r(
        "payee_in_review",
        PAYMENT,
        "the bank checks the payee (its name is like one on the sanctions list; not told): nothing paid, pay later",
    ),
    _r("over_payment_limit", PAYMENT, "above the limit per payment (screening, 500 000 kr)"),
    _r("over_daily_limit", f"{PAYMENT} {CARD}", "above the daily limit (payments: screening; cards: the card's)"),
    _r("velocity_limit", PAYMENT, "too many payments in a short time (screening)"),
    _r("new_payee_limit", PAYMENT, "payments to a new payee in its first day are above its limit (screening)"),
    _r("publish_pending", PAYMENT, "status received: accepted but not yet handed on; the bank sends it on by itself"),
    _r("returned", PAYMENT, "the other bank returned the payment without a reason code"),
    # -- scheduled payments and standing orders ------------------------------------------------
    _r("malformed_request", CALLABLE, "the standing order is not an object"),
    _r("invalid_order_id", CALLABLE, "orderId is not 8-40 letters, digits, '-' or '_'"),
    _r("invalid_frequency", CALLABLE, "frequency is not weekly or monthly"),
    _r("invalid_start_date", CALLABLE, "startDate is not a date"),
    _r("invalid_end_date", CALLABLE, "endDate is not a date"),
    _r("invalid_next_due", CALLABLE, "nextDue is not a date"),
    _r("start_date_in_past", CALLABLE, "startDate is before today"),
    _r("next_due_in_past", CALLABLE, "nextDue is before today"),
    _r(
        "next_due_already_run",
        CALLABLE,
        "nextDue is on or before the last due date the order ran (each date runs once)",
    ),
    _r("end_before_start", CALLABLE, "endDate is before the start or the next due date"),
    _r("next_due_after_end", CALLABLE, "nextDue is after the standing order's endDate (nothing falls due after it)"),
    _r("end_date_too_far", CALLABLE, "dates at most 10 years ahead"),
    _r("nothing_to_change", CALLABLE, "a change needs amount, nextDue or endDate"),
    _r("order_exists", CALLABLE, "another standing order has this id"),
    _r("order_changed", CALLABLE, "the order ran or changed while the change was made: look at it again"),
    _r("too_many_standing_orders", CALLABLE, "the customer has 100 active standing orders: stop one first"),
    _r("unknown_order", CALLABLE, "no such standing order of yours"),
    _r("order_not_active", CALLABLE, "the standing order has ended or was cancelled"),
    _r("unknown_request", CALLABLE, "no such payment request of yours"),
    _r("not_scheduled", CALLABLE, "the payment is no longer waiting for its due date"),
    # -- cards ------------------------------------------------------------------------------
    _r("too_many_cards", CALLABLE, "at most 2 usable cards per account"),
    _r("unknown_card", CALLABLE, "no such card of yours (another's answers the same)"),
    _r("card_not_active", f"{CALLABLE} {CARD}", "the card is not active (ordered, blocked or replaced)"),
    _r("invalid_limits", CALLABLE, "limits are whole øre, online and abroad at most the daily limit"),
    _r("card_changed", CALLABLE, "the card changed while the change was confirmed: confirm it again"),
    _r("invalid_card", CARD, "the card number is not valid (Luhn) or not ours"),
    _r("card_blocked", CARD, "the card is blocked (lost, stolen, replaced or too many wrong CVVs)"),
    _r("card_frozen", CARD, "the customer has frozen the card"),
    _r("card_expired", CARD, "the card has expired"),
    _r("invalid_expiry", CARD, "the expiry date does not match the card"),
    _r("cvv_mismatch", CARD, "the CVV does not match the card"),
    _r("cvv_required", CARD, "an online purchase needs the CVV, and so does a card with no chip at a terminal"),
    _r("atm_not_supported", CARD, "a virtual card has no chip or PIN: no cash from an ATM"),
    _r("over_online_limit", CARD, "above the card's daily online limit"),
    _r("over_abroad_limit", CARD, "above the card's daily limit abroad"),
    _r("duplicate_reference", CARD, "another authorisation has this processor reference"),
    _r("reversed_before_authorization", CARD, "the reversal overtook its authorisation: nothing is held"),
    _r(
        "not_answered_in_time",
        CARD,
        "an approval whose answer the processor did not take was released: the same request again is declined",
    ),
    _r(
        "unknown_authorization",
        CARD,
        "a capture, refund, increment or reversal of an authorisation the bank does not have",
    ),
    _r("already_captured", CARD, "the authorisation was captured already"),
    _r("no_active_hold", CARD, "a capture of a hold that was released or has expired"),
    _r("invalid_capture", CARD, "a capture must be positive and at most the amount held"),
    _r(
        "authorization_expired",
        CARD,
        "its reservation has expired: not extended by an increment, refunded only once captured",
    ),
    # the other states an authorisation's record can be in when the processor asks for what
    # it does not allow (a refund of one not captured, a capture of one reversed, ...)
    _r("authorization_approved", CARD, "approved and not captured: a refund needs a capture first"),
    _r("authorization_captured", CARD, "captured already: no increment or reversal of it"),
    _r("authorization_reversed", CARD, "reversed by the merchant: nothing to capture, increment or refund"),
    _r("authorization_declined", CARD, "declined: nothing was authorised"),
    _r("not_due", CARD, "the expiry job's: a reservation extended (an increment) since the job found it due"),
    _r("refund_exceeds_capture", CARD, "refunds of a purchase in all at most what was captured"),
    _r(
        "too_many_operations",
        CARD,
        "an authorisation keeps at most 100 refunds, increments and partial reversals of each kind",
    ),
    _r(
        "reference_reused",
        CARD,
        "a capture's, a refund's, an increment's or a partial reversal's reference sent again with another amount",
    ),
    _r("reversal_over_hold", CARD, "a partial reversal of more than the authorisation still holds"),
    _r("duplicate_hold", f"{PAYMENT} {CARD}", "this payment or authorisation already holds funds"),
    _r("bad_signature", CARD, "the processor's request signature (HMAC) is missing or wrong"),
    _r("unsupported_scheme", CARD, "bad_signature's reason: the v1 scheme (sign the method and path: v2)"),
    _r("stale_timestamp", CARD, "bad_signature's reason: the signature's time is over 5 minutes off"),
    _r("not_configured", CARD, "bad_signature's reason: the card service has no shared secret (ours)"),
    # -- devices, invoices, insights ----------------------------------------------------------
    _r("invalid_key", CALLABLE, "keyId or publicKey is not a valid device key (ECDSA P-256, SPKI DER, base64)"),
    _r("sca_key_exists", CALLABLE, "this customer already has a device key (ALREADY_EXISTS)"),
    _r(
        "enrolment_closed",
        CALLABLE,
        "a device is enrolled at onboarding; another with one you have, or through the bank",
    ),
    _r("invalid_approval", CALLABLE, "a new device's approval is not {keyId, signature} of an enrolled device"),
    _r("too_many_devices", CALLABLE, "a customer has at most 5 device keys: revoke one first"),
    _r("device_key_revoked", CALLABLE, "this device key id was revoked for good: make a new key"),
    _r(
        "device_key_enrolled",
        CALLABLE,
        "the bank cannot reopen for a device key enrolled now (a reset revokes it): make a new key",
    ),
    _r("unknown_device_key", CALLABLE, "no such device key of yours (NOT_FOUND)"),
    _r("unexpected_device_key", CALLABLE, "the bank reopened the enrolment for another device key"),
    _r("invalid_fingerprint", CALLABLE, "a device key's fingerprint is 16 hex digits (as the device shows it)"),
    _r("invalid_ocr_line", CALLABLE, "not a giro's OCR line ('KID # kroner øre check > account #')"),
    _r("unreadable_character", CALLABLE, "a character that is neither a digit nor a correctable misread: rescan"),
    _r("amount_check_digit", CALLABLE, "the amount's check digit is wrong: a misread amount"),
    _r("invalid_account", CALLABLE, "the scanned account number's check digit is wrong: a misread"),
    _r("invalid_category", CALLABLE, "not one of the categories a customer can choose"),
    _r("invalid_transaction", CALLABLE, "accountId and transactionId are required"),
    _r("unknown_transaction", CALLABLE, "no such transaction on your accounts"),
    _r("not_spending", CALLABLE, "only spending can be recategorised"),
    _r("invalid_merchant_key", CALLABLE, "merchantKey is required"),
    _r("unknown_subscription", CALLABLE, "no such subscription of yours"),
)

# Codes that never reach the app or the processor: base classes (each instance carries a
# precise code from the catalogue), the pipeline's own checks of its messages, and
# validators whose errors the paths above turn into a catalogued reason.
INTERNAL = frozenset(
    {
        "domain_error",
        "refused",
        "account_refused",
        "card_refused",
        "invoice_refused",
        "onboarding_refused",
        "payment_rejected",
        "sca_refused",
        "ledger_error",
        "malformed_event",  # an event on NATS the services cannot read: dead-lettered
        "other_version",  # an event of another release's contract version: given back, then dead-lettered
        "unexpected_step",
        "unbalanced_posting",  # a bug in the bank: debits must equal credits
        "invalid_payment_file",  # a pain.001/pain.002 file that fails its schema
        "invalid_sanctions_list",
        "held_decision_refused",  # a compliance officer's decision on a held payment (the operator's tool)
        # a compliance officer's decision on a customer's sanctions alert (the operator's tool)
        "alert_decision_refused",
        "alert_not_open",
        "alert_changed",  # the alert was written since the officer listed it (--seen)
        "invalid_account_number",  # -> invalid_from_account, invalid_to_account, invalid_account
        "invalid_digits",  # -> invalid_kid, invalid_national_id, invalid_amount ...
        "invalid_currency",  # -> unsupported_currency
        "invalid_date_range",
        # the screening's outcomes, kept in the bank's own record of the application (kyc),
        # never told to the applicant (`fjordbank.domain.onboarding.told`)
        "sanctions_match",
        "possible_sanctions_match",
    }
)

# Callables' statuses other than the prefix rules' (see the module's text).
STATUS = {
    "app_check": "UNAUTHENTICATED",
    "session_ended": "UNAUTHENTICATED",
    "not_a_customer": "PERMISSION_DENIED",
    "four_eyes": "PERMISSION_DENIED",
    "registry_exhausted": "RESOURCE_EXHAUSTED",
    "rate_limited": "RESOURCE_EXHAUSTED",
    "busy": "RESOURCE_EXHAUSTED",
    "already_onboarded": "ALREADY_EXISTS",
    "identity_in_use": "ALREADY_EXISTS",
    "sca_key_exists": "ALREADY_EXISTS",
    "birth_date_mismatch": "INVALID_ARGUMENT",
    "amount_check_digit": "INVALID_ARGUMENT",
    "unreadable_character": "INVALID_ARGUMENT",
    "missing_field": "INVALID_ARGUMENT",
    "unknown_field": "INVALID_ARGUMENT",  # the caller's input, not an object it does not have
}

BY_CODE = {reason.code: reason for reason in REASONS}


def callable_status(code: str) -> str:
    """The gRPC-style status a callable answers a refusal with (FunctionsErrorCode's name)."""
    if code in STATUS:
        return STATUS[code]
    if code.startswith("invalid_"):
        return "INVALID_ARGUMENT"
    if code.startswith("unknown_"):
        return "NOT_FOUND"
    return "FAILED_PRECONDITION"


def markdown_table() -> str:
    """The README's table of reasons."""
    lines = ["| reason | where | callable status | meaning |", "|---|---|---|---|"]
    for reason in REASONS:
        status = callable_status(reason.code) if CALLABLE in reason.where else ""
        lines.append(f"| `{reason.code}` | {', '.join(reason.where)} | {status} | {reason.meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
