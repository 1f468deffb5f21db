"""A signed-in customer in the app: Firestore with the customer's ID token, through the
Google client (as the app's SDK: queries, and listening to a document until it changes).

The security rules apply exactly as to the app. The Google client finds the emulator in
FIRESTORE_EMULATOR_HOST: the tool that makes sessions points it there (bankctl's
``apply_environ``). Google API errors become one-line errors (`firestore_errors`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from clientkit.auth import Identity
from clientkit.device import Device
from clientkit.errors import FIRESTORE, KitError, database_error, require_reachable, transport_error
from clientkit.payments import optional_fields, payment_request
from fjordbank.adapters.firestore import ACCOUNTS, PAYMENT_REQUESTS, USERS
from fjordbank.domain.payments import TERMINAL
from fjordbank.domain.sca import DEFAULT_THRESHOLD


class _UserCredentials(AnonymousCredentials):
    """The emulator channel sends ``id_token`` as the bearer: the rules see this user."""

    def __init__(self, id_token: str) -> None:
        super().__init__()
        self.id_token = id_token


def firestore_errors(what: str, host: str) -> FirestoreErrors:
    """A context manager turning Google API errors into one-line errors."""
    return FirestoreErrors(what, host)


class FirestoreErrors:
    """Google API errors inside become one-line errors that say what was being done."""

    def __init__(self, what: str, host: str) -> None:
        self.what, self.host = what, host

    def __enter__(self) -> FirestoreErrors:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        """Never swallows: an error inside is raised again, as a one-line one if it is Google's."""
        if exc is None or isinstance(exc, KitError) or not isinstance(exc, Exception):
            return False
        exc = database_error(exc)  # a document port's error says what Firestore said
        error = transport_error(exc, FIRESTORE, self.host)
        if error is not None:
            raise error.within(self.what) from None
        if not isinstance(exc, gexc.GoogleAPIError):
            return False
        if isinstance(exc, gexc.PermissionDenied):
            raise KitError(f"{self.what}: the security rules refused it") from None
        message = getattr(exc, "message", None) or str(exc)
        raise KitError(f"{self.what}: {message.splitlines()[0]}") from None


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
    """A signed-in customer in the app, with their phone (``device``) if the tool has it."""

    def __init__(
        self,
        project_id: str,
        firestore_host: str,
        identity: Identity,
        device: Device | None,
        *,
        sca_threshold: int = DEFAULT_THRESHOLD,
    ) -> None:
        require_reachable(FIRESTORE, firestore_host)
        self.firestore_host = firestore_host
        self.identity = identity
        self.uid = identity.uid
        self.device = device
        self.sca_threshold = sca_threshold
        self.db = firestore.Client(project=project_id, credentials=_UserCredentials(identity.id_token))

    def errors(self, what: str) -> FirestoreErrors:
        return firestore_errors(what, self.firestore_host)

    def requests(self) -> firestore.CollectionReference:
        return self.db.collection(USERS).document(self.uid).collection(PAYMENT_REQUESTS)

    def accounts(self) -> list[dict]:
        with self.errors("reading the customer's accounts"):
            q = self.db.collection(ACCOUNTS).where(filter=FieldFilter("ownerUid", "==", self.uid))
            return sorted((s.to_dict() for s in q.stream()), key=lambda a: a["accountId"])

    def needs_sca(self, to_account: str, amount: int, own_accounts: Iterable[str]) -> bool:
        """What the app knows: above the threshold, or a payee it has not paid before
        (neither the customer's own account nor one of their completed payments)."""
        if amount > self.sca_threshold:
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
        payee_name: str | None = None,
        confirm: bool = True,
        request_id: str | None = None,
    ) -> str:
        """Create the payment request as the app does (`clientkit.payments`); ``confirm``:
        sign it on the device (SCA)."""
        request_id = request_id or f"cli-{uuid.uuid4().hex[:12]}"
        if confirm and self.device is None:
            raise KitError(f"no device key for {self.uid}: this session cannot confirm payments")
        body = payment_request(
            request_id,
            from_account=from_account,
            to_account=to_account,
            amount=amount,
            fields=optional_fields(message=message, kid=kid, due_date=due_date, payee_name=payee_name),
            device=self.device if confirm else None,
        )
        with self.errors("creating the payment request"):
            try:
                self.requests().document(request_id).create(body)
            except gexc.AlreadyExists:
                # the client's own retry of a commit that was made but whose answer was lost
                # (UNAVAILABLE) finds the document: it is this payment when it holds this
                # body, and "exists already" made `bankctl pay` fail on a payment it had
                # made, for an operator to pay it again under a new id (found in review,
                # 2026-12-07)
                snap = self.requests().document(request_id).get()
                stored = snap.to_dict() if snap.exists else None
                if stored is None or any(stored.get(k) != v for k, v in body.items()):
                    raise KitError(f"payment request {request_id} exists already") from None
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
        watcher = _StatusWatch(until, on_status)
        with self.errors("listening to the payment request"):
            watch = self.requests().document(request_id).on_snapshot(watcher.on_snapshot)
        try:
            if not watcher.done.wait(timeout):
                status = (watcher.doc or {}).get("status", "not seen")
                raise KitError(f"payment request {request_id} not final after {timeout:.0f} s (status: {status})")
        finally:
            watch.unsubscribe()
        doc = watcher.doc or {}
        return PaymentResult(request_id, doc["status"], doc, watcher.at - started)

    def close(self) -> None:
        self.db.close()


class _StatusWatch:
    """The statuses one request document goes through, as its snapshots arrive."""

    def __init__(self, until: frozenset[str], on_status: Callable[[str, dict], None] | None) -> None:
        self.until, self.on_status = until, on_status
        self.done = threading.Event()
        self.doc: dict | None = None
        self.at = 0.0  # monotonic time of the status in ``until``
        self.seen: list[str] = []

    def on_snapshot(self, docs: list, _changes: object, _read_time: object) -> None:
        for snap in docs:
            if snap.exists:
                self._saw(snap.to_dict())

    def _saw(self, doc: dict) -> None:
        status = doc.get("status")
        if status and status not in self.seen:
            self.seen.append(status)
            if self.on_status:
                self.on_status(status, doc)
        self.doc = doc
        if status in self.until:
            self.at = time.monotonic()
            self.done.set()
