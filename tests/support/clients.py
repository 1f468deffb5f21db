"""The tests' view of the stack's public surface: the client kit (clientkit/), shaped as the
tests use it, and the tests' own helpers (fresh account numbers, waiting for a condition).

* `Users`: the kit's Auth with the tests' defaults; each user a dict (uid, id_token,
  email, password), as the tests index it.
* `RawCallables`: the kit's callables, each answer as (HTTP status, body) after one try:
  the tests look at every refusal, a rate limit's 429 among them.
* `FirestoreAsUser`: the kit's Firestore REST client as a user (the rules apply).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from clientkit.auth import Auth, Identity
from clientkit.callables import KIT_TOKEN, Callables
from clientkit.endpoints import Endpoints
from clientkit.ids import unique
from clientkit.rest import FirestoreAsUser
from fjordbank.domain.norway import account_check_digit

__all__ = [
    "APP_ID",
    "FirestoreAsUser",
    "RawCallables",
    "Users",
    "endpoints_of",
    "new_account_number",
    "unique",
    "wait_for",
]

PASSWORD = "correct horse battery"  # every test user's unless a test gives another
APP_ID = "1:000:web:fjordbank-tester"  # the app the tests' App Check tokens are for
HTTP_TIMEOUT = 30.0  # seconds a test waits for an emulator's answer (a call may give its own)


def endpoints_of(stack) -> Endpoints:
    """The stack's emulators, for the kit."""
    return Endpoints.local(stack.s.project_id, stack.s.emulator_ports, http_timeout=HTTP_TIMEOUT)


def new_account_number(bank_reg: str = "9710") -> str:
    """A fresh, valid (MOD11) account number in the bank's own groups 90-99, which the bank
    never issues to customers (fjordbank.domain.accounts): no test account takes a number
    that onboarding could draw for a customer at the same time."""
    while True:
        body = f"{bank_reg}9{random.randrange(100_000):05d}"
        check = account_check_digit(body)
        if check is not None and body + str(check) not in _ISSUED:
            _ISSUED.add(body + str(check))
            return body + str(check)


# Numbers this test process handed out: the space is ~91,000 numbers, and a whole run opens
# thousands of accounts, so random draws met again (a CI run failed on AlreadyExists).
_ISSUED: set[str] = set()


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def _user(identity: Identity, password: str) -> dict:
    return {"uid": identity.uid, "id_token": identity.id_token, "email": identity.email, "password": password}


class Users:
    """Test users through the kit's Auth: a fresh e-mail address unless given."""

    def __init__(self, auth: Auth) -> None:
        self.kit = auth

    def sign_up(self, email: str | None = None, password: str = PASSWORD) -> dict:
        return _user(self.kit.sign_up(email or f"{unique('user')}@example.test", password), password)

    def sign_in(self, email: str, password: str = PASSWORD) -> dict:
        return _user(self.kit.sign_in(email, password), password)

    def make_operator(self) -> dict:
        """A user with the ``admin`` custom claim, signed in again so the token carries it."""
        user = self.sign_up()
        self.kit.set_claims(user["uid"], {"admin": True})
        return self.sign_in(user["email"], user["password"])


class RawCallables:
    """The kit's callables; each answer as it came: (HTTP status, body)."""

    def __init__(self, callables: Callables) -> None:
        self.kit = callables

    def call(
        self, name: str, data, id_token: str | None, *, app_check: str | None = KIT_TOKEN, timeout: float | None = None
    ) -> tuple[int, dict]:
        """``app_check``: the token to send instead of the kit's (None or "": none)."""
        answer = self.kit.send(name, data, id_token, app_check=app_check, timeout=timeout)
        return answer.status, answer.data
