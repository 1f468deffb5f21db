"""Fjordbank's Firebase functions: the edge between the app and the NATS cluster.

Thin: each function parses its trigger, calls a use case in fjordbank.service_layer and
translates errors. The shared `fjordbank` package is copied into this folder by the up
command and by `firebase deploy`'s predeploy hook, so the folder deploys on its own.
"""

from __future__ import annotations

import logging
import threading

import firebase_admin
from firebase_functions import firestore_fn, https_fn, options, pubsub_fn

from fjordbank.adapters import app_check
from fjordbank.adapters.firestore import sync_client
from fjordbank.adapters.publisher import SyncPublisher
from fjordbank.adapters.pubsub import JOBS_TOPIC, PUSH_TOPIC
from fjordbank.adapters.push import sender_from_config
from fjordbank.config import load_settings
from fjordbank.domain import giro
from fjordbank.domain import standing_orders as order_terms
from fjordbank.domain.errors import DomainError
from fjordbank.domain.norway import today_in_norway
from fjordbank.runtime import redact
from fjordbank.service_layer import (
    accounts,
    cards,
    edge,
    insights,
    onboarding,
    push,
    ratelimits,
    sca,
    scheduled,
    standing_orders,
)

options.set_global_options(region="europe-west1", memory=options.MemoryOption.MB_512, max_instances=50)
logging.basicConfig(level=logging.INFO)
redact.install()  # account, identity and card numbers masked in every log line

_lock = threading.Lock()
_deps: dict = {}

# Callables verify the caller's ID token through the default Firebase app. Credentials are
# resolved lazily; against the emulator suite none are needed (FIREBASE_AUTH_EMULATOR_HOST).
_settings = load_settings(identity="edge")
if not firebase_admin._apps:
    firebase_admin.initialize_app(options={"projectId": _settings.project_id})

# App Check on every callable: in production the SDK verifies the token before the function
# runs; in the emulator (no App Check service) `_caller` verifies the debug path's token.
CALLABLE = {"enforce_app_check": not _settings.functions_emulator, "secrets": ["FJB_NATS_PASSWORD"]}


def deps() -> tuple:
    """One Firestore client and one NATS connection per function instance, made on first use."""
    with _lock:
        if not _deps:
            settings = load_settings(identity="edge")
            _deps["db"] = sync_client(settings.project_id)
            _deps["publisher"] = SyncPublisher(settings.nats, name="edge")
            _deps["settings"] = settings
        return _deps["db"], _deps["publisher"], _deps["settings"]


def sanctions():
    """The sanctions list, parsed once per instance (FJB_SANCTIONS_LIST)."""
    _db, _publisher, settings = deps()
    if not settings.sanctions_list_configured and not settings.functions_emulator:
        # fail closed: screening against the fictional sample would approve everyone
        raise RuntimeError("FJB_SANCTIONS_LIST must name the real consolidated list outside the emulator")
    with _lock:
        if "sanctions" not in _deps:
            _deps["sanctions"] = onboarding.load_sanctions(settings.sanctions_list)
        return _deps["sanctions"]


@firestore_fn.on_document_created(document="users/{uid}/paymentRequests/{requestId}", secrets=["FJB_NATS_PASSWORD"])
def on_payment_request(event: firestore_fn.Event[firestore_fn.DocumentSnapshot | None]) -> None:
    if event.data is None:
        return
    db, publisher, settings = deps()
    edge.handle_payment_request(
        db,
        publisher,
        uid=event.params["uid"],
        request_id=event.params["requestId"],
        body=event.data.to_dict() or {},
        bank_regs=settings.bank_regs,
        sca_threshold=settings.sca_threshold,
    )


@pubsub_fn.on_message_published(topic=PUSH_TOPIC)
def on_push(event: pubsub_fn.CloudEvent[pubsub_fn.MessagePublishedData]) -> None:
    """Send the pushes the notifier queued (a batch per message) through FCM (the local
    sink in development)."""
    db, _publisher, settings = deps()
    with _lock:
        if "push_sender" not in _deps:
            _deps["push_sender"] = sender_from_config(settings.project_id, settings.fcm_sink_url)
    push.deliver_batch(db, _deps["push_sender"], event.data.message.json or {})


@pubsub_fn.on_message_published(topic=JOBS_TOPIC, secrets=["FJB_NATS_PASSWORD"])
def on_scheduled_job(event: pubsub_fn.CloudEvent[pubsub_fn.MessagePublishedData]) -> None:
    """Scheduled jobs: Cloud Scheduler publishes {"job": NAME} (locally: bankctl jobs run)."""
    db, publisher, _settings = deps()
    message = event.data.message.json or {}
    scheduled.run_job(db, publisher, str(message.get("job", "")), bank_regs=_settings.bank_regs)


# ---- callables: the app's synchronous operations ------------------------------------------
REFUSAL_CODES = {
    "not_a_customer": https_fn.FunctionsErrorCode.PERMISSION_DENIED,
    "registry_exhausted": https_fn.FunctionsErrorCode.RESOURCE_EXHAUSTED,
    "already_onboarded": https_fn.FunctionsErrorCode.ALREADY_EXISTS,
    "identity_in_use": https_fn.FunctionsErrorCode.ALREADY_EXISTS,
    "birth_date_mismatch": https_fn.FunctionsErrorCode.INVALID_ARGUMENT,
    "under_18": https_fn.FunctionsErrorCode.FAILED_PRECONDITION,
    "sca_key_exists": https_fn.FunctionsErrorCode.ALREADY_EXISTS,
    "amount_check_digit": https_fn.FunctionsErrorCode.INVALID_ARGUMENT,
    "unreadable_character": https_fn.FunctionsErrorCode.INVALID_ARGUMENT,
    "missing_amount": https_fn.FunctionsErrorCode.INVALID_ARGUMENT,
}


def _caller(req: https_fn.CallableRequest, allowed: set[str], *, limit: str | None = None) -> tuple[str, dict]:
    """The verified caller's uid and the request data, refused unless the app passed App
    Check, the caller is signed in, the data is an object with only ``allowed`` keys (no
    mass assignment) and the caller is within the rate limit of ``limit``."""
    if not _app_verified(req):
        raise https_fn.HttpsError(
            https_fn.FunctionsErrorCode.UNAUTHENTICATED, "App Check token missing or invalid", {"reason": "app_check"}
        )
    if req.auth is None:
        raise https_fn.HttpsError(https_fn.FunctionsErrorCode.UNAUTHENTICATED, "sign in first")
    data = req.data if isinstance(req.data, dict) else None
    if data is None or set(data) - allowed:
        raise https_fn.HttpsError(
            https_fn.FunctionsErrorCode.INVALID_ARGUMENT,
            f"expected an object with only {sorted(allowed)}",
            {"reason": "invalid_request"},
        )
    if limit is not None:
        db = deps()[0]
        try:
            ratelimits.check(db, req.auth.uid, limit)
        except ratelimits.RateLimited as exc:
            raise https_fn.HttpsError(
                https_fn.FunctionsErrorCode.RESOURCE_EXHAUSTED,
                exc.message,
                {"reason": exc.code, "retryAfter": round(exc.retry_after)},
            ) from exc
    return req.auth.uid, data


def _app_verified(req: https_fn.CallableRequest) -> bool:
    if not _settings.functions_emulator:
        return req.app is not None  # the SDK refused the call before us otherwise
    token = req.raw_request.headers.get(app_check.HEADER)
    claims = app_check.verify_debug_token(
        token, secret=_settings.app_check_debug_secret, project_id=_settings.project_id
    )
    return claims is not None


def _answer(operation):
    """Run a use case; a domain refusal becomes an HttpsError with its reason."""
    try:
        return operation()
    except DomainError as exc:
        raise _refused(exc) from exc


def _refused(exc: DomainError) -> https_fn.HttpsError:
    """A refusal with its reason code: invalid_* is the caller's input, unknown_* is
    something the caller does not have (the same for others' objects), the rest is a
    state that does not allow it."""
    code = REFUSAL_CODES.get(exc.code)
    if code is None and exc.code.startswith("invalid_"):
        code = https_fn.FunctionsErrorCode.INVALID_ARGUMENT
    elif code is None and exc.code.startswith("unknown_"):
        code = https_fn.FunctionsErrorCode.NOT_FOUND
    details = {"reason": exc.code}
    if getattr(exc, "field", None):
        details["field"] = exc.field
    return https_fn.HttpsError(code or https_fn.FunctionsErrorCode.FAILED_PRECONDITION, exc.message, details)


@https_fn.on_call(**CALLABLE)
def accounts_open(req: https_fn.CallableRequest) -> dict:
    uid, data = _caller(req, {"kind", "name"}, limit="accounts")
    db, publisher, settings = deps()
    try:
        number = accounts.open_account(
            db, uid, kind=data.get("kind"), name=data.get("name"), bank_reg=settings.bank_regs[0], publisher=publisher
        )
    except DomainError as exc:
        raise _refused(exc) from exc
    return {"accountId": number}


@https_fn.on_call(**CALLABLE)
def accounts_rename(req: https_fn.CallableRequest) -> dict:
    uid, data = _caller(req, {"accountId", "name"}, limit="accounts")
    db, _publisher, _settings = deps()
    try:
        accounts.rename_account(db, uid, account_id=data.get("accountId"), name=data.get("name"))
    except DomainError as exc:
        raise _refused(exc) from exc
    return {"ok": True}


@https_fn.on_call(**CALLABLE)
def accounts_close(req: https_fn.CallableRequest) -> dict:
    uid, data = _caller(req, {"accountId"}, limit="accounts")
    db, publisher, _settings = deps()
    try:
        accounts.close_account(db, uid, account_id=data.get("accountId"), publisher=publisher)
    except DomainError as exc:
        raise _refused(exc) from exc
    return {"ok": True}


@https_fn.on_call(**CALLABLE)
def onboarding_submit(req: https_fn.CallableRequest) -> dict:
    """An application: name, nationalId, dateOfBirth, address, phone, email. Answers the
    decision (approved with the first account, review, or rejected with a reason)."""
    uid, data = _caller(req, set(onboarding.rules.FIELDS), limit="onboarding")
    db, publisher, settings = deps()
    try:
        return onboarding.submit(
            db,
            publisher,
            uid,
            data,
            sanctions=sanctions(),
            bank_reg=settings.bank_regs[0],
            allow_synthetic=settings.allow_synthetic_ids,
        )
    except DomainError as exc:
        raise _refused(exc) from exc


@https_fn.on_call(**CALLABLE)
def onboarding_decide(req: https_fn.CallableRequest) -> dict:
    """An operator approves or rejects an application in review (needs the admin claim)."""
    operator, data = _caller(req, {"uid", "decision", "reason"})
    if req.auth.token.get("admin") is not True:
        raise https_fn.HttpsError(https_fn.FunctionsErrorCode.PERMISSION_DENIED, "operators only")
    if data.get("decision") not in ("approve", "reject") or not isinstance(data.get("uid"), str):
        raise https_fn.HttpsError(
            https_fn.FunctionsErrorCode.INVALID_ARGUMENT,
            "uid and decision approve|reject",
            {"reason": "invalid_request"},
        )
    db, publisher, settings = deps()
    try:
        return onboarding.decide_review(
            db,
            publisher,
            data["uid"],
            approve=data["decision"] == "approve",
            operator=operator,
            reason=data.get("reason"),
            bank_reg=settings.bank_regs[0],
        )
    except DomainError as exc:
        raise _refused(exc) from exc


@https_fn.on_call(**CALLABLE)
def cards_issue(req: https_fn.CallableRequest) -> dict:
    uid, data = _caller(req, {"accountId"}, limit="cards")
    db, publisher, _settings = deps()
    return {"cardId": _answer(lambda: cards.issue_card(db, publisher, uid, account_id=data.get("accountId")))}


@https_fn.on_call(**CALLABLE)
def cards_freeze(req: https_fn.CallableRequest) -> dict:
    uid, data = _caller(req, {"cardId", "frozen"}, limit="cards")
    db, publisher, _settings = deps()
    return {
        "status": _answer(
            lambda: cards.set_frozen(db, publisher, uid, card_id=data.get("cardId"), frozen=data.get("frozen"))
        )
    }


@https_fn.on_call(**CALLABLE)
def cards_limits(req: https_fn.CallableRequest) -> dict:
    uid, data = _caller(req, {"cardId", "limits"}, limit="cards")
    db, publisher, _settings = deps()
    return {
        "limits": _answer(
            lambda: cards.set_limits(db, publisher, uid, card_id=data.get("cardId"), limits=data.get("limits"))
        )
    }


@https_fn.on_call(**CALLABLE)
def cards_replace(req: https_fn.CallableRequest) -> dict:
    uid, data = _caller(req, {"cardId", "reason"}, limit="cards")
    db, publisher, _settings = deps()
    return {
        "cardId": _answer(
            lambda: cards.replace_card(db, publisher, uid, card_id=data.get("cardId"), reason=data.get("reason"))
        )
    }


@https_fn.on_call(**CALLABLE)
def sca_register_key(req: https_fn.CallableRequest) -> dict:
    """The device's public key for strong customer authentication (ECDSA P-256, SPKI DER in
    base64), registered once, at onboarding."""
    uid, data = _caller(req, {"keyId", "publicKey"}, limit="accounts")
    db, _publisher, _settings = deps()
    return {
        "keyId": _answer(lambda: sca.register_key(db, uid, key_id=data.get("keyId"), public_key=data.get("publicKey")))
    }


@https_fn.on_call(**CALLABLE)
def invoices_scan(req: https_fn.CallableRequest) -> dict:
    """A payment draft from what the app's text recognition read on a giro: its OCR line
    (``ocrLine``) or its labelled fields (``fields``). Nothing is stored or paid: the app
    shows the draft, and the customer pays it as any payment request."""
    _uid, data = _caller(req, {"ocrLine", "fields"}, limit="invoices")
    if len(data) != 1:
        raise https_fn.HttpsError(
            https_fn.FunctionsErrorCode.INVALID_ARGUMENT, "give ocrLine or fields", {"reason": "invalid_request"}
        )
    if "ocrLine" in data:
        return _answer(lambda: giro.parse_ocr_line(data["ocrLine"])).to_json()
    return _answer(lambda: giro.parse_fields(data["fields"], today=today_in_norway())).to_json()


# ---- scheduled payments, standing orders, insights -------------------------------------------
@https_fn.on_call(**CALLABLE)
def standing_orders_create(req: https_fn.CallableRequest) -> dict:
    """A weekly or monthly payment from ``startDate`` until ``endDate`` (or cancelled);
    ``orderId`` is the app's idempotency key. Confirmed with ``sca`` like a payment."""
    uid, data = _caller(req, set(order_terms.CREATE_FIELDS), limit="payments")
    db, _publisher, settings = deps()
    return standing_orders.public(
        _answer(
            lambda: standing_orders.create(
                db, uid, data, bank_regs=settings.bank_regs, sca_threshold=settings.sca_threshold
            )
        )
    )


@https_fn.on_call(**CALLABLE)
def standing_orders_update(req: https_fn.CallableRequest) -> dict:
    """Change an active order's ``amount``, ``endDate`` or ``nextDue`` before it runs."""
    uid, data = _caller(req, set(order_terms.CHANGE_FIELDS), limit="payments")
    db, _publisher, settings = deps()
    return standing_orders.public(
        _answer(lambda: standing_orders.change(db, uid, data, sca_threshold=settings.sca_threshold))
    )


@https_fn.on_call(**CALLABLE)
def standing_orders_cancel(req: https_fn.CallableRequest) -> dict:
    uid, data = _caller(req, {"orderId"}, limit="payments")
    db, _publisher, _settings = deps()
    return standing_orders.public(_answer(lambda: standing_orders.cancel(db, uid, data.get("orderId"))))


@https_fn.on_call(**CALLABLE)
def payments_cancel_scheduled(req: https_fn.CallableRequest) -> dict:
    """Cancel a payment request that waits for its due date."""
    uid, data = _caller(req, {"requestId"}, limit="payments")
    db, _publisher, _settings = deps()
    return _answer(lambda: standing_orders.cancel_scheduled(db, uid, data.get("requestId")))


@https_fn.on_call(**CALLABLE)
def transactions_recategorise(req: https_fn.CallableRequest) -> dict:
    """The customer's category for a transaction's merchant: it sticks for that merchant."""
    uid, data = _caller(req, {"accountId", "transactionId", "category"}, limit="accounts")
    db, _publisher, _settings = deps()
    return _answer(
        lambda: insights.recategorise(db, uid, data.get("accountId"), data.get("transactionId"), data.get("category"))
    )


@https_fn.on_call(**CALLABLE)
def subscriptions_dismiss(req: https_fn.CallableRequest) -> dict:
    """ "Not a subscription": the detected subscription is no longer listed as one."""
    uid, data = _caller(req, {"merchantKey", "restore"}, limit="accounts")
    db, _publisher, _settings = deps()
    status = "active" if data.get("restore") is True else "dismissed"
    return _answer(lambda: insights.set_subscription_status(db, uid, data.get("merchantKey"), status))
