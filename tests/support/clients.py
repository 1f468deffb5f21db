"""Talk to the stack the way the app and the admin path do."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import requests

from fjordbank.domain.norway import account_check_digit

API_KEY = "fake-api-key"  # the Auth emulator accepts any key


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


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


class AuthEmulator:
    def __init__(self, host: str) -> None:
        self.base = f"http://{host}/identitytoolkit.googleapis.com/v1"

    def _password_call(self, endpoint: str, email: str, password: str) -> dict:
        resp = requests.post(
            f"{self.base}/accounts:{endpoint}?key={API_KEY}",
            json={"email": email, "password": password, "returnSecureToken": True},
            timeout=10,
        )
        resp.raise_for_status()
        data = resp.json()
        return {"uid": data["localId"], "id_token": data["idToken"], "email": email, "password": password}

    def sign_up(self, email: str | None = None, password: str = "correct horse battery") -> dict:
        return self._password_call("signUp", email or f"{unique('user')}@example.test", password)

    def sign_in(self, email: str, password: str = "correct horse battery") -> dict:
        return self._password_call("signInWithPassword", email, password)

    def make_operator(self, project: str) -> dict:
        """A user with the ``admin`` custom claim (set through the emulator's admin API, as
        the Admin SDK would), signed in again so the token carries it."""
        user = self.sign_up()
        resp = requests.post(
            f"{self.base}/projects/{project}/accounts:update",
            json={"localId": user["uid"], "customAttributes": json.dumps({"admin": True})},
            headers={"Authorization": "Bearer owner"},
            timeout=10,
        )
        resp.raise_for_status()
        return self.sign_in(user["email"], user["password"])


def _to_value(v: Any) -> dict:
    if isinstance(v, bool):
        return {"booleanValue": v}
    if isinstance(v, int):
        return {"integerValue": str(v)}
    if isinstance(v, float):  # only to prove that the rules refuse non-integer amounts
        return {"doubleValue": v}
    if isinstance(v, str):
        return {"stringValue": v}
    if v is None:
        return {"nullValue": None}
    if isinstance(v, dict):
        return {"mapValue": {"fields": {k: _to_value(x) for k, x in v.items()}}}
    if isinstance(v, list):
        return {"arrayValue": {"values": [_to_value(x) for x in v]}}
    raise TypeError(f"no Firestore REST encoding for {type(v)}")


def _from_value(v: dict) -> Any:
    ((kind, value),) = v.items()
    if kind == "integerValue":
        return int(value)
    if kind == "mapValue":
        return {k: _from_value(x) for k, x in value.get("fields", {}).items()}
    if kind == "arrayValue":
        return [_from_value(x) for x in value.get("values", [])]
    if kind == "nullValue":
        return None
    return value


class FirestoreAsUser:
    """The Firestore REST API with a user's ID token: the security rules apply."""

    def __init__(self, host: str, project: str, id_token: str | None) -> None:
        self.base = f"http://{host}/v1/projects/{project}/databases/(default)/documents"
        self.headers = {"Authorization": f"Bearer {id_token}"} if id_token else {}

    def create(self, collection_path: str, doc_id: str, fields: dict) -> requests.Response:
        return requests.post(
            f"{self.base}/{collection_path}?documentId={doc_id}",
            json={"fields": {k: _to_value(v) for k, v in fields.items()}},
            headers=self.headers,
            timeout=10,
        )

    def delete(self, path: str) -> requests.Response:
        return requests.delete(f"{self.base}/{path}", headers=self.headers, timeout=10)

    def patch(self, path: str, fields: dict) -> requests.Response:
        """A merge write of ``fields`` (what the SDK's set(..., {merge: true}) sends)."""
        params = [("updateMask.fieldPaths", k) for k in fields]
        return requests.patch(
            f"{self.base}/{path}",
            params=params,
            json={"fields": {k: _to_value(v) for k, v in fields.items()}},
            headers=self.headers,
            timeout=10,
        )

    def get(self, path: str) -> tuple[int, dict | None]:
        resp = requests.get(f"{self.base}/{path}", headers=self.headers, timeout=10)
        if resp.status_code != 200:
            return resp.status_code, None
        return 200, {k: _from_value(v) for k, v in resp.json().get("fields", {}).items()}


class Callables:
    """The app's callables through the Functions emulator, as the Firebase SDK calls them."""

    def __init__(self, host: str, project: str, region: str = "europe-west1", app_check: str | None = None) -> None:
        self.base = f"http://{host}/{project}/{region}"
        self.app_check = app_check  # the App Check token the app sends with every call

    def call(
        self, name: str, data, id_token: str | None, *, app_check: str | None = "default", timeout: float = 30
    ) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if id_token:
            headers["Authorization"] = f"Bearer {id_token}"
        token = self.app_check if app_check == "default" else app_check
        if token:
            headers["X-Firebase-AppCheck"] = token
        resp = requests.post(f"{self.base}/{name}", json={"data": data}, headers=headers, timeout=timeout)
        return resp.status_code, resp.json()
