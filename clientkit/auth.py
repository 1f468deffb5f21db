"""The Auth emulator's REST API, as the Firebase SDK and the Admin SDK call it.

Sign up and sign in with e-mail and password; on the emulator only, sign in as any user
with an unsigned custom token (`sign_in_as`: an operator acting as a customer), look users
up and set custom claims (the admin API, ``Bearer owner``). A refusal is `Refused` with
the emulator's code (EMAIL_EXISTS, INVALID_PASSWORD, ...); a server failure (5xx) is
`StackUnreachable`.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass

import requests

from clientkit.endpoints import API_KEY, Endpoints
from clientkit.errors import AUTH, Refused
from clientkit.http import Http

EMULATOR_ISSUER = "firebase-auth-emulator@example.com"
TOOLKIT_AUDIENCE = "https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit"


@dataclass(frozen=True)
class Identity:
    """A signed-in user: what the app holds after signing in."""

    uid: str
    id_token: str
    email: str | None = None


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def unsigned_custom_token(uid: str, now: float | None = None) -> str:
    """A custom token for ``uid`` without a signature, which only the emulator accepts
    (what firebase_admin's create_custom_token makes against the emulator)."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": EMULATOR_ISSUER,
        "sub": EMULATOR_ISSUER,
        "aud": TOOLKIT_AUDIENCE,
        "uid": uid,
        "iat": issued,
        "exp": issued + 3600,
    }
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def refusal_code(message: str | None, status: int) -> str:
    """The emulator's code of a refusal: the first word of its message ("EMAIL_EXISTS",
    "WEAK_PASSWORD : Password should be ..."), else the HTTP status."""
    return (message or f"HTTP {status}").split(" ")[0]


class Auth:
    """The Auth emulator's REST API."""

    def __init__(self, endpoints: Endpoints, session: requests.Session | None = None) -> None:
        self.host = endpoints.auth_host
        self.project = endpoints.project_id
        self.base = f"http://{self.host}/identitytoolkit.googleapis.com/v1"
        self.http = Http(AUTH, self.host, endpoints.http_timeout, session)

    def _post(self, path: str, body: dict, *, admin: bool = False) -> dict:
        headers = {"Authorization": "Bearer owner"} if admin else {}
        answer = self.http.post(f"{self.base}/{path}?key={API_KEY}", body, headers)
        if answer.status >= 500:
            raise self.http.failed(answer, path.rpartition("/")[2])
        if answer.status != 200:
            raise Refused("sign-in", refusal_code(answer.error.get("message"), answer.status), "")
        return answer.data or {}

    def _with_password(self, endpoint: str, email: str, password: str) -> Identity:
        body = {"email": email, "password": password, "returnSecureToken": True}
        data = self._post(f"accounts:{endpoint}", body)
        return Identity(data["localId"], data["idToken"], email)

    def sign_up(self, email: str, password: str) -> Identity:
        return self._with_password("signUp", email, password)

    def sign_in(self, email: str, password: str) -> Identity:
        return self._with_password("signInWithPassword", email, password)

    def sign_in_as(self, uid: str) -> Identity:
        """An ID token for ``uid`` (the emulator's custom-token sign-in)."""
        body = {"token": unsigned_custom_token(uid), "returnSecureToken": True}
        data = self._post("accounts:signInWithCustomToken", body)
        return Identity(uid, data["idToken"])

    def _lookup(self, key: str, value: str) -> dict | None:
        data = self._post(f"projects/{self.project}/accounts:lookup", {key: [value]}, admin=True)
        users = data.get("users") or []
        return users[0] if users else None

    def uid_for_email(self, email: str) -> str | None:
        user = self._lookup("email", email)
        return user["localId"] if user else None

    def email_for_uid(self, uid: str) -> str | None:
        user = self._lookup("localId", uid)
        return user.get("email") if user else None

    def takes(self, id_token: str) -> bool:
        """Whether Auth still takes the ID token: False once every session of its user was
        ended (their refresh tokens revoked) after it was issued, or the user is gone."""
        try:
            self._post("accounts:lookup", {"idToken": id_token})
        except Refused:
            return False
        return True

    def set_claims(self, uid: str, claims: dict) -> None:
        """Custom claims on the user (as the Admin SDK sets them); they are in the ID
        tokens of the user's next sign-in."""
        body = {"localId": uid, "customAttributes": json.dumps(claims)}
        self._post(f"projects/{self.project}/accounts:update", body, admin=True)
