"""Talk to the bank the way its customers and its operators do.

* `Http`: the one HTTP helper under `Auth` and `Callables`: the configured timeout
  (FJB_HTTP_TIMEOUT), transport errors as one-line errors naming the emulator, and a
  bounded retry with backoff of an answer "busy, try again" (HTTP 429 / RESOURCE_EXHAUSTED
  with reason rate_limited, contention or busy, after retryAfter seconds when given).
* `Auth`: the Auth emulator's REST API (sign up, sign in, and, on the emulator only, sign
  in as any user with an unsigned custom token: the operator acting as a demo customer).
* `Callables`: the app's callables through the Functions emulator, with an App Check
  debug token as the app's debug provider would send.
* `Device`: the customer's phone for strong customer authentication: a P-256 key kept in
  the stack's state directory (0600), so later commands can confirm payments.
* `AppSession`: the customer in the app: Firestore with the customer's ID token, so the
  security rules apply exactly as to the app.
* `Admin`: the operator's paths: Admin SDK reads, the ledger's admin deposit path.
* `Cards`: the card network's side: the card processor simulator and the vault (local
  stack only: the operator plays the cardholder and the merchant).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import itertools
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from bankctl import errors
from bankctl.config import Config
from bankctl.errors import CommandError, Refused, StackUnreachable, require_reachable, talking_to
from fjordbank.adapters.firestore import ACCOUNTS, CARDS, PAYMENT_REQUESTS, TRANSACTIONS, USERS
from fjordbank.domain import sca
from fjordbank.domain.payments import TERMINAL

API_KEY = "fake-api-key"  # the Auth emulator accepts any key
CUSTOMERS = "customers"
SCA_KEYS = "scaKeys"
_rnd = random.SystemRandom()


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def random_birth_date() -> dt.date:
    return dt.date(1960, 1, 1) + dt.timedelta(days=_rnd.randrange(365 * 38))


# ---- HTTP ---------------------------------------------------------------------------------------
BUSY_REASONS = frozenset({"rate_limited", "contention", "busy"})  # refused now, fine a little later
BUSY_RETRIES = 4  # at most this many tries again of a "busy" answer
BUSY_MAX_WAIT = 30.0  # seconds: a longer retryAfter is not waited for (the refusal is reported)


@dataclass(frozen=True)
class Answer:
    status: int
    data: dict | None  # the JSON object answered, None if the body was not one
    tries: int = 1  # a "busy" answer is the last of this many

    @property
    def tried(self) -> str:
        return f" (tried {self.tries} times)" if self.tries > 1 else ""

    @property
    def error(self) -> dict:
        error = (self.data or {}).get("error")
        return error if isinstance(error, dict) else {}

    @property
    def details(self) -> dict:
        details = self.error.get("details")
        return details if isinstance(details, dict) else {}


def busy_wait(answer: Answer, attempt: int) -> float | None:
    """Seconds to wait before trying again if ``answer`` says "busy" (HTTP 429 or
    RESOURCE_EXHAUSTED, without a reason or with one of BUSY_REASONS), else None."""
    if attempt >= BUSY_RETRIES:
        return None
    if answer.status != 429 and answer.error.get("status") != "RESOURCE_EXHAUSTED":
        return None
    reason = answer.details.get("reason")
    if reason is not None and reason not in BUSY_REASONS:
        return None  # e.g. registry_exhausted: trying again does not help
    retry_after = answer.details.get("retryAfter")
    if isinstance(retry_after, int | float) and not isinstance(retry_after, bool) and retry_after >= 0:
        return None if retry_after > BUSY_MAX_WAIT else max(float(retry_after), 0.2) + _rnd.uniform(0, 0.2)
    return min(8.0, 0.5 * 2**attempt) * _rnd.uniform(1.0, 1.25)


class Http:
    """bankctl's one HTTP helper: POSTs of JSON to one part of the stack (``what`` at
    ``host``) with the configured timeout; its transport errors become one-line errors
    naming it; a "busy" answer is tried again (`busy_wait`, bounded)."""

    def __init__(self, what: str, host: str, timeout: float, session: requests.Session | None = None) -> None:
        self.what, self.host, self.timeout = what, host, timeout
        self.session = session or requests.Session()

    def post(self, url: str, body: dict, headers: dict | None = None) -> Answer:
        for attempt in itertools.count():
            answer = self._post_once(url, body, headers or {})
            wait = busy_wait(answer, attempt)
            if wait is None:
                return dataclasses.replace(answer, tries=attempt + 1)
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _post_once(self, url: str, body: dict, headers: dict) -> Answer:
        with talking_to(self.what, self.host, timeout=self.timeout):
            resp = self.session.post(url, json=body, headers=headers, timeout=self.timeout)
        try:
            data = resp.json()
        except ValueError:
            data = None
        return Answer(resp.status_code, data if isinstance(data, dict) else None)

    def failed(self, answer: Answer, name: str) -> StackUnreachable:
        """An answer that is the server's failure (5xx), not the bank's refusal."""
        message = answer.error.get("message")
        return StackUnreachable(
            self.what,
            self.host,
            f"answered HTTP {answer.status} to {name}" + (f": {message}" if message else "") + answer.tried,
        )


# ---- Auth --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    uid: str
    id_token: str
    email: str | None = None


class Auth:
    """The Auth emulator's REST API."""

    def __init__(self, config: Config, session: requests.Session | None = None) -> None:
        self.host = config.auth_host
        self.project = config.project_id
        self.base = f"http://{self.host}/identitytoolkit.googleapis.com/v1"
        self.http = Http(errors.AUTH, self.host, config.http_timeout, session)

    def _post(self, path: str, body: dict, *, admin: bool = False) -> dict:
        headers = {"Authorization": "Bearer owner"} if admin else {}
        answer = self.http.post(f"{self.base}/{path}?key={API_KEY}", body, headers)
        if answer.status >= 500:
            raise self.http.failed(answer, path.rpartition("/")[2])
        if answer.status != 200:
            message = answer.error.get("message") or f"HTTP {answer.status}"
            raise Refused("sign-in", message.split(" ")[0], "")
        return answer.data or {}

    def sign_up(self, email: str, password: str) -> Identity:
        data = self._post("accounts:signUp", {"email": email, "password": password, "returnSecureToken": True})
        return Identity(data["localId"], data["idToken"], email)

    def sign_in(self, email: str, password: str) -> Identity:
        body = {"email": email, "password": password, "returnSecureToken": True}
        data = self._post("accounts:signInWithPassword", body)
        return Identity(data["localId"], data["idToken"], email)

    def sign_in_as(self, uid: str) -> Identity:
        """An ID token for ``uid`` from an unsigned custom token, which only the emulator
        accepts (what firebase_admin's create_custom_token makes against the emulator)."""

        def b64(obj: dict) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

        now = int(time.time())
        issuer = "firebase-auth-emulator@example.com"
        claims = {
            "iss": issuer,
            "sub": issuer,
            "aud": "https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit",
            "uid": uid,
            "iat": now,
            "exp": now + 3600,
        }
        token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
        data = self._post("accounts:signInWithCustomToken", {"token": token, "returnSecureToken": True})
        return Identity(uid, data["idToken"])

    def uid_for_email(self, email: str) -> str | None:
        data = self._post(f"projects/{self.project}/accounts:lookup", {"email": [email]}, admin=True)
        users = data.get("users") or []
        return users[0]["localId"] if users else None

    def email_for_uid(self, uid: str) -> str | None:
        data = self._post(f"projects/{self.project}/accounts:lookup", {"localId": [uid]}, admin=True)
        users = data.get("users") or []
        return users[0].get("email") if users else None


# ---- callables ---------------------------------------------------------------------------------
class Callables:
    """The app's callables, as the Firebase SDK calls them, with an App Check debug token."""

    def __init__(self, config: Config, session: requests.Session | None = None) -> None:
        self.host = config.functions_host
        self.base = f"http://{self.host}/{config.project_id}/{config.region}"
        secret_file = config.state_dir / "app-check-debug.json"
        try:
            secret = json.loads(secret_file.read_text())["secret"]
        except (OSError, ValueError, KeyError):
            raise CommandError(f"no App Check debug secret in {secret_file} (is the stack up? run `make up`)") from None
        from fjordbank.adapters.app_check import mint_debug_token

        self.app_check = mint_debug_token(secret, config.project_id, app_id="1:000:web:fjordbank-bankctl")
        self.http = Http(errors.FUNCTIONS, self.host, config.http_timeout, session)

    def call(self, name: str, data: dict, identity: Identity) -> dict:
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {identity.id_token}",
            "X-Firebase-AppCheck": self.app_check,
        }
        answer = self.http.post(f"{self.base}/{name}", {"data": data}, headers)
        if answer.status >= 500:
            raise self.http.failed(answer, name)
        if answer.data is None:
            raise CommandError(f"{name}: HTTP {answer.status} without an answer (does the function exist?)")
        if "error" in answer.data:
            error = answer.error
            message = error.get("message", "") + answer.tried
            raise Refused(name, answer.details.get("reason") or error.get("status"), message)
        return answer.data.get("result", {})


# ---- the phone's key for strong customer authentication ------------------------------------------
@dataclass
class Device:
    uid: str
    key_id: str
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def new(cls, uid: str) -> Device:
        return cls(uid, unique("bankctl-"), ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_key(self) -> str:
        return sca.public_key_b64(self.key)

    def confirm(self, request_id: str, amount: int, currency: str, to_account: str) -> dict:
        """The phone's signature over exactly this payment."""
        return {
            "keyId": self.key_id,
            "signature": sca.sign(self.key, sca.challenge(request_id, amount, currency, to_account)),
        }

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.uid}.json"
        pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"uid": self.uid, "keyId": self.key_id, "privateKey": pem}, f)
        return path

    @classmethod
    def load(cls, directory: Path, uid: str) -> Device | None:
        path = directory / f"{uid}.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        key = serialization.load_pem_private_key(data["privateKey"].encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CommandError(f"{path} does not hold a P-256 key")
        return cls(uid, data["keyId"], key)


# ---- Firestore ---------------------------------------------------------------------------------
class _UserCredentials(AnonymousCredentials):
    """The emulator channel sends ``id_token`` as the bearer: the rules see this user."""

    def __init__(self, id_token: str) -> None:
        super().__init__()
        self.id_token = id_token


def firestore_errors(what: str, host: str):
    """A context manager turning Google API errors into one-line command errors."""
    return _FirestoreErrors(what, host)


class _FirestoreErrors:
    def __init__(self, what: str, host: str) -> None:
        self.what, self.host = what, host

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, CommandError) or not isinstance(exc, Exception):
            return False
        exc = errors.database_error(exc)
        error = errors.transport_error(exc, errors.FIRESTORE, self.host)
        if error is not None:
            raise error.within(self.what) from None
        if not isinstance(exc, gexc.GoogleAPIError):
            return False
        if isinstance(exc, gexc.PermissionDenied):
            raise CommandError(f"{self.what}: the security rules refused it") from None
        message = getattr(exc, "message", None) or str(exc)
        raise CommandError(f"{self.what}: {message.splitlines()[0]}") from None


@dataclass
class PaymentResult:
    request_id: str
    status: str
    doc: dict
    seconds: float

    @property
    def reason(self) -> str | None:
        reason = self.doc.get("reason")
        return reason.get("code") if isinstance(reason, dict) else reason


class AppSession:
    """A signed-in customer in the app: Firestore with their ID token (the rules apply)."""

    def __init__(self, config: Config, identity: Identity, device: Device | None) -> None:
        require_reachable(errors.FIRESTORE, config.firestore_host)
        self.config = config
        self.identity = identity
        self.uid = identity.uid
        self.device = device
        self.db = firestore.Client(project=config.project_id, credentials=_UserCredentials(identity.id_token))

    def errors(self, what: str):
        return firestore_errors(what, self.config.firestore_host)

    def requests(self):
        return self.db.collection(USERS).document(self.uid).collection(PAYMENT_REQUESTS)

    def accounts(self) -> list[dict]:
        with self.errors("reading the customer's accounts"):
            q = self.db.collection(ACCOUNTS).where(filter=FieldFilter("ownerUid", "==", self.uid))
            return sorted((s.to_dict() for s in q.stream()), key=lambda a: a["accountId"])

    def needs_sca(self, to_account: str, amount: int, own_accounts: Iterable[str]) -> bool:
        """What the app knows: above the threshold, or a payee it has not paid before
        (neither the customer's own account nor one of their completed payments)."""
        if amount > self.config.sca_threshold:
            return True
        if to_account in set(own_accounts):
            return False
        with self.errors("reading the customer's earlier payments"):
            q = self.requests().where(filter=FieldFilter("toAccount", "==", to_account))
            return not any(s.get("status") == "completed" for s in q.stream())

    def request_payment(
        self,
        *,
        from_account: str,
        to_account: str,
        amount: int,
        message: str | None = None,
        kid: str | None = None,
        due_date: str | None = None,
        confirm: bool = True,
        request_id: str | None = None,
    ) -> str:
        """Create users/{uid}/paymentRequests/{id} as the app does (contract v1); the id is
        the idempotency key. ``confirm``: sign it on the device (SCA)."""
        request_id = request_id or unique("cli-")
        body: dict = {"v": 1, "fromAccount": from_account, "toAccount": to_account, "amount": amount, "currency": "NOK"}
        if message is not None:
            body["message"] = message
        if kid is not None:
            body["kid"] = kid
        if due_date is not None:
            body["dueDate"] = due_date
        if confirm:
            if self.device is None:
                raise CommandError(
                    f"no device key for {self.uid} in {self.config.devices_dir} (only customers made by bankctl "
                    "here can confirm payments; pass --no-sca to send it unconfirmed)"
                )
            body["sca"] = self.device.confirm(request_id, amount, "NOK", to_account)
        with self.errors("creating the payment request"):
            try:
                self.requests().document(request_id).create(body)
            except gexc.AlreadyExists:
                raise CommandError(f"payment request {request_id} exists already") from None
        return request_id

    def get_request(self, request_id: str) -> dict | None:
        with self.errors("reading the payment request"):
            snap = self.requests().document(request_id).get()
        return snap.to_dict() if snap.exists else None

    def wait(
        self,
        request_id: str,
        *,
        timeout: float = 60,
        until: frozenset[str] = TERMINAL,
        on_status: Callable[[str, dict], None] | None = None,
        started: float | None = None,
    ) -> PaymentResult:
        """Listen to the request document (as the app does) until its status is in ``until``."""
        started = started or time.monotonic()
        done = threading.Event()
        last: dict = {}
        seen: list[str] = []

        def on_snapshot(docs, _changes, _read_time) -> None:
            for snap in docs:
                if not snap.exists:
                    continue
                doc = snap.to_dict()
                status = doc.get("status")
                if status and status not in seen:
                    seen.append(status)
                    if on_status:
                        on_status(status, doc)
                last["doc"] = doc
                if status in until:
                    last["at"] = time.monotonic()
                    done.set()

        with self.errors("listening to the payment request"):
            watch = self.requests().document(request_id).on_snapshot(on_snapshot)
        try:
            if not done.wait(timeout):
                status = (last.get("doc") or {}).get("status", "not seen")
                raise CommandError(f"payment request {request_id} not final after {timeout:.0f} s (status: {status})")
        finally:
            watch.unsubscribe()
        doc = last["doc"]
        return PaymentResult(request_id, doc["status"], doc, last["at"] - started)

    def close(self) -> None:
        self.db.close()


def customer_session(config: Config, auth: Auth, uid: str) -> AppSession:
    """Act as customer ``uid`` in the app (the emulator's custom-token sign-in) with the
    device key bankctl keeps for them, if any."""
    return AppSession(config, auth.sign_in_as(uid), Device.load(config.devices_dir, uid))


# ---- the operator's paths -------------------------------------------------------------------
class Admin:
    """Admin SDK reads and the ledger's admin path (opening balances)."""

    def __init__(self, config: Config) -> None:
        from bankctl.config import apply_environ
        from fjordbank.adapters.firestore import sync_client

        require_reachable(errors.FIRESTORE, config.firestore_host)
        apply_environ(config)
        self.config = config
        self.db = sync_client(config.project_id)

    def errors(self, what: str):
        return firestore_errors(what, self.config.firestore_host)

    def customer(self, uid: str) -> dict | None:
        with self.errors("reading the customer"):
            snap = self.db.collection(CUSTOMERS).document(uid).get()
        return snap.to_dict() if snap.exists else None

    def accounts_of(self, uid: str) -> list[dict]:
        with self.errors("reading the accounts"):
            q = self.db.collection(ACCOUNTS).where(filter=FieldFilter("ownerUid", "==", uid))
            return sorted((s.to_dict() for s in q.stream()), key=lambda a: a["accountId"])

    def account(self, account_id: str) -> dict | None:
        with self.errors("reading the account"):
            snap = self.db.collection(ACCOUNTS).document(account_id).get()
        return snap.to_dict() if snap.exists else None

    def resolve_customer(self, ref: str, auth: Auth | None = None) -> str:
        """A customer's uid from a uid, an e-mail address or one of their account numbers."""
        ref = ref.strip()
        if ref.isdigit() and len(ref) == 11:
            account = self.account(ref)
            if account is None or not account.get("ownerUid"):
                raise CommandError(f"no customer with account {ref}")
            return account["ownerUid"]
        if "@" in ref:
            with self.errors("looking up the customer"):
                q = self.db.collection(CUSTOMERS).where(filter=FieldFilter("email", "==", ref)).limit(1)
                found = [s.id for s in q.stream()]
            if found:
                return found[0]
            uid = auth.uid_for_email(ref) if auth else None
            if uid is None:
                raise CommandError(f"no customer with e-mail {ref}")
            return uid
        if self.customer(ref) is None and not self.accounts_of(ref):
            raise CommandError(f"no customer {ref}")
        return ref

    def customers(self, limit: int = 100) -> list[dict]:
        with self.errors("listing customers"):
            q = self.db.collection(CUSTOMERS).order_by("appliedAt", direction=firestore.Query.DESCENDING).limit(limit)
            return [{"uid": s.id, **s.to_dict()} for s in q.stream()]

    def feed(self, account_id: str, limit: int) -> list[dict]:
        """The account's transaction feed, newest first (by booking time, as the app pages it)."""
        with self.errors("reading the transaction feed"):
            q = (
                self.db.collection(ACCOUNTS)
                .document(account_id)
                .collection(TRANSACTIONS)
                .order_by("bookedAt", direction=firestore.Query.DESCENDING)
                .limit(limit)
            )
            return [{"id": s.id, **s.to_dict()} for s in q.stream()]

    def cards_of(self, uid: str) -> list[dict]:
        with self.errors("reading the cards"):
            q = self.db.collection(CARDS).where(filter=FieldFilter("ownerUid", "==", uid))
            return [{"cardId": s.id, **s.to_dict()} for s in q.stream()]

    def deposit_many(self, items: list[tuple[str, str, int]]) -> int:
        """Money from outside the bank onto accounts (deposit id, account, øre), exactly once
        per deposit id: the ledger's admin deposit path, as the tests' opening balances."""
        from fjordbank.adapters.documents import AsyncFirestoreDocuments
        from fjordbank.adapters.firestore import async_client
        from fjordbank.service_layer.ledger import Ledger

        async def run() -> int:
            ledger = Ledger(AsyncFirestoreDocuments(async_client(self.config.project_id)))
            await ledger.ensure_internal_accounts()
            return await ledger.deposit_many(items)

        with self.errors("depositing"):
            return asyncio.run(run())

    def open_account(self, *, owner_uid: str, account_id: str, name: str) -> None:
        """The ledger's admin path for an account outside onboarding (the demo's employer)."""
        from fjordbank.adapters.documents import AsyncFirestoreDocuments
        from fjordbank.adapters.firestore import async_client
        from fjordbank.service_layer.ledger import Ledger

        async def run() -> None:
            ledger = Ledger(AsyncFirestoreDocuments(async_client(self.config.project_id)))
            await ledger.ensure_internal_accounts()
            await ledger.open_account(account_id=account_id, owner_uid=owner_uid, name=name)

        with self.errors("opening the account"):
            asyncio.run(run())

    def enrol_device(self, device: Device) -> None:
        """Admin path: a device key for a user who is not onboarded (the demo's employer)."""
        with self.errors("enrolling the device"):
            self.db.document(f"{USERS}/{device.uid}/{SCA_KEYS}/{device.key_id}").set(
                {"keyId": device.key_id, "publicKey": device.public_key, "createdAt": firestore.SERVER_TIMESTAMP}
            )


# ---- cards: the operator plays the card network --------------------------------------------
class Cards:
    def __init__(self, config: Config, timeout: float = 5.0) -> None:
        """``timeout``: how long the processor waits for a decision (then: issuer_timeout)."""
        self.config = config
        secrets_file = config.stack_settings.card_secrets_file
        try:
            self.keys = json.loads(secrets_file.read_text())
        except (OSError, ValueError):
            raise CommandError(f"no card secrets in {secrets_file} (is the stack up? run `make up`)") from None
        from simulators.card_processor import CardProcessor

        self.processor = CardProcessor(config.card_api_url, self.keys["processorSecret"].encode(), timeout=timeout)
        self.processor_timeout = max(self.processor.timeout, self.processor.patient_timeout)

    def details(self, card_id: str) -> dict:
        """What is printed on the card (read from the vault with the card service's keys)."""
        from simulators.card_processor import card_as_printed

        vault = str(self.config.state_dir / "vault" / "cards.db")
        printed = card_as_printed(vault, self.keys["vaultKey"], self.keys["cvvKey"], card_id)
        if printed is None:
            raise CommandError(f"card {card_id} is not in the vault")
        return printed

    def purchase(self, card: dict, *, reference: str, amount: int, merchant: str, mcc: str, **kw) -> dict:
        """Authorise and capture one purchase (idempotent by ``reference``: a retry of a
        captured one is answered with its status "captured")."""
        with talking_to(errors.CARDS, self.config.card_api_url, timeout=self.processor_timeout):
            return self._purchase(card, reference=reference, amount=amount, merchant=merchant, mcc=mcc, **kw)

    def _purchase(self, card: dict, *, reference: str, amount: int, merchant: str, mcc: str, **kw) -> dict:
        try:
            answer = self.processor.authorize(
                pan=card["pan"],
                exp_month=card["exp_month"],
                exp_year=card["exp_year"],
                cvv=card["cvv"],
                amount=amount,
                merchant_name=merchant,
                mcc=mcc,
                reference=reference,
                **kw,
            )
            if answer.get("approved") or answer.get("status") == "authorized":
                status, _body = self.processor.capture(reference, capture_reference=f"cap-{reference}")
                answer["captured"] = status == 200
        except RuntimeError as exc:  # its reversal after a timeout was not delivered
            raise StackUnreachable(errors.CARDS, self.config.card_api_url, f"did not answer: {exc}") from None
        return answer
