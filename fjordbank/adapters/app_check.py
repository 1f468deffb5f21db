"""App Check on the callables.

In production the Functions SDK verifies the ``X-Firebase-AppCheck`` token against
Google's keys (``enforce_app_check=True``) before the function runs. The emulator suite
has no App Check service and this machine no route to Google's keys, so locally the
callables take the emulator's debug path instead: a token signed (HS256) with the stack's
generated debug secret (``FJB_APP_CHECK_DEBUG_SECRET``), audience this project, not
expired — what the App Check debug provider gives a test build after its exchange. The
debug path is used only inside the Functions emulator (``FUNCTIONS_EMULATOR=true``).
"""

from __future__ import annotations

import time
from typing import Any

import jwt

HEADER = "X-Firebase-AppCheck"
ISSUER = "fjordbank-app-check-debug"


def mint_debug_token(secret: str, project_id: str, app_id: str = "1:000:web:fjordbank-tester", ttl: int = 3600) -> str:
    """A debug App Check token (for tests and the reference app's local exchange)."""
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": app_id, "aud": [f"projects/{project_id}"], "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_debug_token(token: str | None, *, secret: str, project_id: str) -> dict[str, Any] | None:
    """The token's claims, or None unless it is a valid debug token for this project."""
    if not token or not secret:
        return None
    try:
        # PyJWT checks exp and iat only when a token has them: one without exp was good for
        # ever (found in review), so every claim the debug provider gives is required
        return jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=f"projects/{project_id}",
            issuer=ISSUER,
            leeway=5,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError:
        return None


def verify_with_debug_secret(*, secret: str, project_id: str) -> None:
    """Inside the Functions emulator only: make the Functions SDK's own App Check
    verification (``firebase_admin.app_check.verify_token``, which it calls for every
    callable carrying the header) check the debug token above instead of asking Google's
    key service. Without this the SDK tries Google, finds no credentials and logs an ERROR
    and a WARNING for every call, refused or not, burying real errors. A valid debug token
    then reaches the function as ``req.app``, as a real token does in production."""
    from firebase_admin import app_check as admin_app_check

    def verify_token(token: str, app: object = None) -> dict[str, Any]:
        claims = verify_debug_token(token, secret=secret, project_id=project_id)
        if claims is None:
            raise ValueError("not a valid App Check debug token for this project")
        return claims

    admin_app_check.verify_token = verify_token
