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

import jwt

HEADER = "X-Firebase-AppCheck"
ISSUER = "fjordbank-app-check-debug"


def mint_debug_token(secret: str, project_id: str, app_id: str = "1:000:web:fjordbank-tester", ttl: int = 3600) -> str:
    """A debug App Check token (for tests and the reference app's local exchange)."""
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": app_id, "aud": [f"projects/{project_id}"], "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_debug_token(token: str | None, *, secret: str, project_id: str) -> dict | None:
    """The token's claims, or None unless it is a valid debug token for this project."""
    if not token or not secret:
        return None
    try:
        return jwt.decode(
            token, secret, algorithms=["HS256"], audience=f"projects/{project_id}", issuer=ISSUER, leeway=5
        )
    except jwt.PyJWTError:
        return None
