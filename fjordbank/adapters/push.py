"""Push notifications through Firebase Cloud Messaging (FCM HTTP v1).

Two senders with one interface, `PushSender.send(token, title=, body=, data=, collapse_id=)
-> PushResult`:

* `FcmHttpSender` POSTs the v1 JSON itself; locally it talks to the FCM-compatible sink
  (`devstack.fcm_sink`, FCM has no emulator), e.g. http://127.0.0.1:9190.
* `FirebaseAdminSender` uses `firebase_admin.messaging` in production, its HTTP client
  told not to retry (`without_retries`).

Neither retries a send: what FCM could not take now is sent again by the caller later.

`send` does not raise for what FCM answers: the result says ok, or the error. A token FCM
no longer knows (UNREGISTERED, a token that is not a valid registration token, a token of
another sender) comes back with `unregistered=True`: the caller must delete it. A bad
payload (a data value that is no string and cannot be made one, a reserved data key) is
our bug and raises `InvalidPushPayload` before anything is sent.

``collapse_id`` makes a push sent twice show once: it is the Android notification's `tag`,
the APNs `apns-collapse-id` header and the web notification's `tag`, each of which replaces
a shown notification with the same id. (Not Android's `collapse_key`: FCM keeps at most
four of those per device, and it collapses pushes that were never shown.)

Device tokens are credentials of a kind: only their last 6 characters are ever logged.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol, runtime_checkable

import requests
from urllib3.util.retry import Retry

from fjordbank.adapters.firebase_app import LazyApp

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0  # seconds
_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
# Keys FCM reserves in the data payload.
_RESERVED_DATA_KEYS = frozenset({"from", "message_type", "notification"})
_RESERVED_DATA_PREFIXES = ("google", "gcm")


class InvalidPushPayload(ValueError):
    """The notification cannot be sent as given (our bug, not FCM's answer)."""


def token_hint(token: str) -> str:
    """What may be logged of a device token: its last 6 characters."""
    return "…" + token[-6:] if len(token) > 6 else "…"


@dataclass(frozen=True)
class PushResult:
    token: str = field(repr=False)  # kept out of repr, so logging a result never logs a token
    ok: bool
    message_id: str | None = None
    unregistered: bool = False
    error: str | None = None
    # FCM's error code as FCM spells it (UNREGISTERED, QUOTA_EXCEEDED, UNAVAILABLE, ...), or
    # TRANSPORT_ERROR / HTTP_<status> when there is none: the reason of fjb_push_results
    code: str | None = None

    @property
    def token_hint(self) -> str:
        return token_hint(self.token)


@runtime_checkable
class PushSender(Protocol):
    def send(
        self, token: str, *, title: str, body: str, data: Mapping[str, Any], collapse_id: str | None = None
    ) -> PushResult: ...


# ---------------------------------------------------------------- payload


def _data_value(key: str, value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            raise InvalidPushPayload(f"data[{key!r}] is not a finite number")
        return str(value)
    raise InvalidPushPayload(f"data[{key!r}] must be a string (or a number or bool), not {type(value).__name__}")


def normalize_data(data: Mapping[str, Any] | None) -> dict[str, str]:
    """FCM data payload: string keys FCM does not reserve, string values (numbers and bools converted)."""
    out: dict[str, str] = {}
    for key, value in (data or {}).items():
        if not isinstance(key, str) or not key:
            raise InvalidPushPayload(f"data keys must be non-empty strings, not {key!r}")
        if key in _RESERVED_DATA_KEYS or key.lower().startswith(_RESERVED_DATA_PREFIXES):
            raise InvalidPushPayload(f"data key {key!r} is reserved by FCM")
        out[key] = _data_value(key, value)
    return out


def _check(token: str, title: str, body: str) -> None:
    if not isinstance(token, str) or not token:
        raise InvalidPushPayload("token must be a non-empty string")
    if not isinstance(title, str) or not isinstance(body, str):
        raise InvalidPushPayload("title and body must be strings")


def fcm_v1_message(
    token: str, *, title: str, body: str, data: Mapping[str, Any] | None = None, collapse_id: str | None = None
) -> dict[str, Any]:
    """The `message` of an FCM HTTP v1 send request."""
    _check(token, title, body)
    message: dict[str, Any] = {
        "token": token,
        "notification": {"title": title, "body": body},
        "data": normalize_data(data),
        "android": {"priority": "high"},
        "apns": {"headers": {"apns-priority": "10"}, "payload": {"aps": {"sound": "default"}}},
    }
    if collapse_id:
        message["android"]["notification"] = {"tag": collapse_id}
        message["apns"]["headers"]["apns-collapse-id"] = collapse_id
        message["webpush"] = {"notification": {"tag": collapse_id}}
    return message


def _is_bad_token_message(message: str) -> bool:
    # FCM: 400 INVALID_ARGUMENT "The registration token is not a valid FCM registration token".
    # Other INVALID_ARGUMENTs are about the payload and say nothing about the token.
    return "registration token" in message.lower()


def fcm_error_code(status_code: int, payload: Any) -> str:
    """FCM's error code of a non-2xx v1 answer (its FcmError detail), else the answer's
    status (a gRPC code), else HTTP_<status>."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        for detail in error.get("details") or []:
            if isinstance(detail, dict) and detail.get("@type") == _FCM_ERROR_TYPE and detail.get("errorCode"):
                return str(detail["errorCode"])
        if error.get("status"):
            return str(error["status"])
    return f"HTTP_{status_code}"


def classify_fcm_error(status_code: int, payload: Any) -> tuple[bool, str]:
    """(unregistered, error text) for a non-2xx FCM v1 answer."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return False, f"HTTP {status_code}"
    status = str(error.get("status") or "")
    message = str(error.get("message") or "")
    error_code = ""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == _FCM_ERROR_TYPE:
            error_code = str(detail.get("errorCode") or "")
            break
    text = f"HTTP {status_code} {status or '?'}" + (f" {error_code}" if error_code else "") + f": {message}"
    # Only FCM's own error code counts: a bare 404 may be a wrong URL, and must not get tokens deleted.
    if error_code in ("UNREGISTERED", "SENDER_ID_MISMATCH"):
        return True, text
    if status_code == 400 and error_code == "INVALID_ARGUMENT" and _is_bad_token_message(message):
        return True, text
    return False, text


def _log_result(result: PushResult) -> PushResult:
    if result.ok:
        log.info("push sent to token %s: %s", result.token_hint, result.message_id)
    elif result.unregistered:
        log.info("push token %s is unregistered: %s", result.token_hint, result.error)
    else:
        log.warning("push to token %s failed: %s", result.token_hint, result.error)
    return result


# ---------------------------------------------------------------- senders


class FcmHttpSender(PushSender):
    """FCM HTTP v1 over `requests`: the local sink, or anything that speaks the same API."""

    def __init__(
        self,
        project_id: str,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.project_id = project_id
        self.url = f"{base_url.rstrip('/')}/v1/projects/{project_id}/messages:send"
        self.timeout = timeout
        self._session = session or requests.Session()
        self._headers = dict(headers or {})

    def send(
        self, token: str, *, title: str, body: str, data: Mapping[str, Any], collapse_id: str | None = None
    ) -> PushResult:
        request = {"message": fcm_v1_message(token, title=title, body=body, data=data, collapse_id=collapse_id)}
        try:
            resp = self._session.post(self.url, json=request, headers=self._headers, timeout=self.timeout)
        except requests.RequestException as exc:
            return _log_result(
                PushResult(token, ok=False, error=f"transport error: {type(exc).__name__}", code="TRANSPORT_ERROR")
            )
        try:
            payload = resp.json()
        except ValueError:
            payload = None
        if resp.ok:
            name = payload.get("name") if isinstance(payload, dict) else None
            if not isinstance(name, str) or not name:
                return _log_result(
                    PushResult(
                        token,
                        ok=False,
                        error=f"HTTP {resp.status_code}: answer without name",
                        code=f"HTTP_{resp.status_code}",
                    )
                )
            return _log_result(PushResult(token, ok=True, message_id=name))
        unregistered, error = classify_fcm_error(resp.status_code, payload)
        code = fcm_error_code(resp.status_code, payload)
        return _log_result(PushResult(token, ok=False, unregistered=unregistered, error=error, code=code))


class FirebaseAdminSender(PushSender):
    """`firebase_admin.messaging` (production). firebase_admin is imported only when sending,
    so this module imports (and this class constructs) without credentials."""

    def __init__(self, project_id: str, *, app: Any = None) -> None:
        self.project_id = project_id
        self._app = LazyApp(project_id, app=app)
        self._set_up: Any = None  # the app whose FCM client was told not to retry (`without_retries`)
        self._setting_up = threading.Lock()  # the sends run in threads: the client is set up once

    def _ready_app(self) -> Any:
        app = self._app.get()
        if self._set_up is not app:
            with self._setting_up:
                if self._set_up is not app:
                    without_retries(app)
                    self._set_up = app
        return app

    def send(
        self, token: str, *, title: str, body: str, data: Mapping[str, Any], collapse_id: str | None = None
    ) -> PushResult:
        from firebase_admin import exceptions, messaging

        _check(token, title, body)
        apns_headers = {"apns-priority": "10"} | ({"apns-collapse-id": collapse_id} if collapse_id else {})
        message = messaging.Message(
            notification=messaging.Notification(title=title, body=body),
            data=normalize_data(data),
            android=messaging.AndroidConfig(
                priority="high", notification=messaging.AndroidNotification(tag=collapse_id) if collapse_id else None
            ),
            apns=messaging.APNSConfig(
                headers=apns_headers,
                payload=messaging.APNSPayload(aps=messaging.Aps(sound="default")),
            ),
            webpush=messaging.WebpushConfig(notification=messaging.WebpushNotification(tag=collapse_id))
            if collapse_id
            else None,
        )
        # firebase-admin 7.x deprecates Message(token=...) in favour of `fid` (a Firebase
        # installation id). Our devices register FCM registration tokens, which FCM v1 still
        # takes as `token`; setting the attribute skips the constructor's DeprecationWarning.
        message.token = token
        app = self._ready_app()
        try:
            message_id = messaging.send(message, app=app)
        except (messaging.UnregisteredError, messaging.SenderIdMismatchError) as exc:
            return _log_result(
                PushResult(token, ok=False, unregistered=True, error=_firebase_error(exc), code=_firebase_code(exc))
            )
        except exceptions.InvalidArgumentError as exc:
            bad_token = _is_bad_token_message(str(exc))
            return _log_result(
                PushResult(
                    token, ok=False, unregistered=bad_token, error=_firebase_error(exc), code=_firebase_code(exc)
                )
            )
        except exceptions.FirebaseError as exc:
            return _log_result(PushResult(token, ok=False, error=_firebase_error(exc), code=_firebase_code(exc)))
        return _log_result(PushResult(token, ok=True, message_id=message_id))


# What the FCM client's HTTP session retries: nothing. firebase_admin (7.7.0) mounts urllib3's
# Retry on it (its _http_client.DEFAULT_RETRY_CONFIG, for any method): a 500 or 503 is sent
# again up to 4 times, and a 429 or 503 with Retry-After after sleeping what it says (up to
# 6 h). The app's httpTimeout bounds each request, not the sleeps: with Retry-After 2 one send
# was five POSTs in 8 s, with Retry-After 60 it is four minutes, and a run's sends went on
# past the push function's timeout, the platform cut the run before it recorded anything,
# and every push of the message was sent again at its next delivery (found in review,
# 2026-12-07). What is not sent now is tried
# again by the message's next delivery (fjordbank.service_layer.push.PushesNotSent), which
# sends only what is left. Not raised on a status either: FCM's answer is what says why.
NO_RETRIES = Retry(total=0, redirect=0, raise_on_status=False, respect_retry_after_header=False)
FCM_POOL = 100  # connections kept per host, as firebase_admin's own FCM adapter keeps


def without_retries(app: Any) -> None:
    """Make the FCM client of ``app`` (firebase_admin's, made now if it is not yet) send each
    request once (`NO_RETRIES`): every adapter mounted on its session, whatever prefix it
    was mounted for, replaced by one that does not retry.

    firebase_admin has no option for its retries (an app's options set its timeout only) and
    builds its messaging client per app, on first use, so this reaches its private client:
    ``messaging._get_messaging_service(app)._client.session``, a requests session, whose
    adapters are replaced through requests' own API. A firebase_admin that builds its client
    otherwise fails the unit test that sends through it to a local FCM
    (tests/unit/test_push_fcm_retries.py); at run time it is logged and the sends go on with
    the library's retries, which is better than sending none."""
    try:
        from firebase_admin import messaging

        session = messaging._get_messaging_service(app)._client.session
        prefixes = list(session.adapters)
    except (AttributeError, TypeError, ValueError) as exc:
        log.error("the FCM client's own retries were not turned off", extra={"error": repr(exc)})
        return
    for prefix in prefixes:
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=FCM_POOL, pool_maxsize=FCM_POOL, max_retries=NO_RETRIES
        )
        session.mount(prefix, adapter)


# firebase_admin.messaging's errors for FCM's own error codes (the rest carry a gRPC code)
_FIREBASE_CODES = {
    "UnregisteredError": "UNREGISTERED",
    "SenderIdMismatchError": "SENDER_ID_MISMATCH",
    "QuotaExceededError": "QUOTA_EXCEEDED",
    "ThirdPartyAuthError": "THIRD_PARTY_AUTH_ERROR",
}


def _firebase_code(exc: Exception) -> str:
    """FCM's code of a failed send. firebase_admin knows nine HTTP statuses and calls any
    other answer UNKNOWN (a 502 or 504 from a front end, with an HTML body): that one is
    told by its HTTP status (HTTP_5xx: tried again), and one with no answer at all (the
    connection cut mid-answer) is a transport error, as the HTTP sender calls it. So is
    firebase_admin's UNAVAILABLE without an answer (a connection not made, or cut): FCM's
    own UNAVAILABLE says it is overloaded, and stops the rest of a message's sends
    (fjordbank.service_layer.push.THROTTLED), where one broken connection should not."""
    name = type(exc).__name__
    code = _FIREBASE_CODES.get(name) or str(getattr(exc, "code", None) or name).upper()
    if code in ("UNKNOWN", "UNAVAILABLE"):
        response = getattr(exc, "http_response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            return code if code == "UNAVAILABLE" else f"HTTP_{status}"
        return "TRANSPORT_ERROR"
    return code


def _firebase_error(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__}{f' {code}' if code else ''}: {exc}"


def sender_from_config(project_id: str, sink_url: str | None) -> PushSender:
    """The local sink if its URL is given (the dev stack, tests), else Firebase Admin (production)."""
    if sink_url:
        return FcmHttpSender(project_id, sink_url)
    return FirebaseAdminSender(project_id)
