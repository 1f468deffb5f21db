"""The operator's paths: Admin SDK reads, and the ledger's admin path.

* `Admin`: reads with the Admin SDK (customers, accounts, the feed, cards), finding a
  customer by uid, e-mail or account number, and a device key enrolled for a user who is
  not onboarded (the demo's employer).
* `LedgerAdmin`: money entering the bank from outside (deposits, exactly once per deposit
  id) and accounts opened outside onboarding, through the ledger's own admin path
  (fjordbank.service_layer.ledger, on the document ports), from synchronous code: each call with its own async
  client and event loop. `LedgerSession` holds one of each instead, for code that awaits
  on the ledger itself (the tests' fixture).

The Google clients find the emulator in FIRESTORE_EMULATOR_HOST, which the tool sets
(bankctl's ``apply_environ``; the dev stack's processes and the tests' session have it).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from clientkit.auth import Auth
from clientkit.device import Device
from clientkit.errors import FIRESTORE, KitError, require_reachable
from clientkit.session import FirestoreErrors, firestore_errors
from fjordbank.adapters.documents import AsyncFirestoreDocuments
from fjordbank.adapters.firestore import ACCOUNTS, CARDS, CUSTOMERS, TRANSACTIONS, USERS, async_client, sync_client
from fjordbank.service_layer.ledger import Ledger
from fjordbank.service_layer.sca import SCA_KEYS

T = TypeVar("T")


class LedgerAdmin:
    """The ledger's admin path, each call with a client and an event loop of its own
    (``asyncio.run``): nothing stays open between calls or at exit, and any thread may call."""

    def __init__(self, project_id: str, firestore_host: str | None = None) -> None:
        self.project_id, self.firestore_host = project_id, firestore_host

    def errors(self, what: str) -> FirestoreErrors:
        return firestore_errors(what, self.firestore_host or "")

    def _call(self, what: str, op: Callable[[Ledger], Awaitable[T]]) -> T:
        async def run() -> T:
            ledger = Ledger(AsyncFirestoreDocuments(async_client(self.project_id)))
            await ledger.ensure_internal_accounts()
            return await op(ledger)

        with self.errors(what):
            return asyncio.run(run())

    def open_account(self, *, owner_uid: str, account_id: str, name: str) -> None:
        """An account outside onboarding (a test's, the demo's employer)."""
        self._call(
            "opening the account",
            lambda ledger: ledger.open_account(account_id=account_id, owner_uid=owner_uid, name=name),
        )

    def deposit(self, *, deposit_id: str, account_id: str, amount: int) -> bool:
        """Money from outside onto ``account_id``; False if this deposit id was posted before."""
        return self.deposit_many([(deposit_id, account_id, amount)]) == 1

    def deposit_many(self, items: list[tuple[str, str, int]]) -> int:
        """Deposits (deposit id, account, øre), each exactly once; how many were new."""
        return self._call("depositing", lambda ledger: ledger.deposit_many(items))


class LedgerSession(LedgerAdmin):
    """The ledger's admin path with one event loop and one client held (``ledger``; ``run``
    awaits on it): for code that awaits on the ledger itself, from one thread at a time
    (the tests). ``close`` at the end."""

    def __init__(self, project_id: str, firestore_host: str | None = None) -> None:
        super().__init__(project_id, firestore_host)
        self.loop = asyncio.new_event_loop()
        self.docs = AsyncFirestoreDocuments(async_client(project_id))
        self.ledger = Ledger(self.docs)
        self._lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            return self.loop.run_until_complete(coro)

    def _call(self, what: str, op: Callable[[Ledger], Awaitable[T]]) -> T:
        async def run() -> T:
            await self.ledger.ensure_internal_accounts()
            return await op(self.ledger)

        with self.errors(what):
            return self.run(run())

    def open_funded_account(self, uid: str, account_id: str, amount: int, name: str = "Brukskonto") -> str:
        """An account with an opening deposit of ``amount`` (deposit id ``opening-{account}``)."""
        self.open_account(owner_uid=uid, account_id=account_id, name=name)
        if amount:
            self.run(self.ledger.deposit(deposit_id=f"opening-{account_id}", account_id=account_id, amount=amount))
        return account_id

    def set_document(self, path: str, data: dict[str, Any]) -> None:
        """One document written through the admin path (a test's setup, e.g. a device key)."""

        async def write() -> None:
            batch = self.docs.batch()
            batch.set(path, data)
            await batch.commit()

        with self.errors("writing " + path):
            self.run(write())

    def close(self) -> None:
        self.loop.close()


UID = re.compile(r"(?!__.*__$)[A-Za-z0-9_-]{1,128}")  # a Firebase Auth uid as an operator names one: never a path


class Admin:
    """Admin SDK reads and the ledger's admin path (``ledger_admin``)."""

    def __init__(self, project_id: str, firestore_host: str) -> None:
        require_reachable(FIRESTORE, firestore_host)
        self.project_id, self.firestore_host = project_id, firestore_host
        self.db = sync_client(project_id)
        self.ledger_admin = LedgerAdmin(project_id, firestore_host)

    def errors(self, what: str) -> FirestoreErrors:
        return firestore_errors(what, self.firestore_host)

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
        """A customer's uid from a uid, an e-mail address or one of their account numbers
        (dots allowed). Anything else is refused before it reaches a document path: a '/'
        read another document, or failed the client's path check with a traceback (found
        in review, 2026-12-06)."""
        ref = ref.strip()
        number = ref.replace(".", "").replace(" ", "")
        if number.isdigit() and len(number) == 11:
            return self._owner_of(number)
        if "@" in ref:
            return self._uid_for_email(ref, auth)
        if not UID.fullmatch(ref):
            raise KitError(f"{ref!r} is no customer: a uid, an e-mail address or an account number")
        if self.customer(ref) is None and not self.accounts_of(ref):
            raise KitError(f"no customer {ref}")
        return ref

    def _owner_of(self, account_id: str) -> str:
        account = self.account(account_id)
        if account is None or not account.get("ownerUid"):
            raise KitError(f"no customer with account {account_id}")
        return account["ownerUid"]

    def _uid_for_email(self, email: str, auth: Auth | None) -> str:
        """The customer who signs in with ``email`` (Auth's: verified and unique). The
        e-mail on a customer's application is what they typed, neither verified nor unique:
        looked at first, an applicant who typed another customer's address was taken for
        them by `bankctl pay`, `receive`, `sanctions freeze`... (found in review,
        2026-12-06). Without Auth at hand, the one application that gave it; refused when
        more than one did."""
        if auth is not None:
            uid = auth.uid_for_email(email)
            if uid is None:
                raise KitError(f"no customer with e-mail {email} (nobody signs in with it)")
            return uid
        with self.errors("looking up the customer"):
            q = self.db.collection(CUSTOMERS).where(filter=FieldFilter("email", "==", email)).limit(2)
            found = [s.id for s in q.stream()]
        if len(found) > 1:
            raise KitError(f"more than one customer gave the e-mail {email} when applying: name the customer by uid")
        if not found:
            raise KitError(f"no customer with e-mail {email}")
        return found[0]

    def customers(self, limit: int = 100) -> list[dict]:
        with self.errors("listing customers"):
            q = self.db.collection(CUSTOMERS).order_by("appliedAt", direction=firestore.Query.DESCENDING).limit(limit)
            return [{"uid": s.id, **(s.to_dict() or {})} for s in q.stream()]

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
            return [{"id": s.id, **(s.to_dict() or {})} for s in q.stream()]

    def cards_of(self, uid: str) -> list[dict]:
        with self.errors("reading the cards"):
            q = self.db.collection(CARDS).where(filter=FieldFilter("ownerUid", "==", uid))
            return [{"cardId": s.id, **(s.to_dict() or {})} for s in q.stream()]

    def deposit_many(self, items: list[tuple[str, str, int]]) -> int:
        """Money from outside the bank onto accounts (deposit id, account, øre), exactly once
        per deposit id: the ledger's admin deposit path, as the opening balances."""
        return self.ledger_admin.deposit_many(items)

    def open_account(self, *, owner_uid: str, account_id: str, name: str) -> None:
        """The ledger's admin path for an account outside onboarding (the demo's employer)."""
        self.ledger_admin.open_account(owner_uid=owner_uid, account_id=account_id, name=name)

    def enrol_device(self, device: Device) -> None:
        """Admin path: a device key for a user who is not onboarded (the demo's employer)."""
        with self.errors("enrolling the device"):
            self.db.document(f"{USERS}/{device.uid}/{SCA_KEYS}/{device.key_id}").set(
                {"keyId": device.key_id, "publicKey": device.public_key, "createdAt": firestore.SERVER_TIMESTAMP}
            )
