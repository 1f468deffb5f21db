"""App Check tokens, as the app's debug provider gets them.

On the local stack the App Check debug path stands in for the attestation providers (Play
Integrity, App Attest, reCAPTCHA): a token is minted with the stack's debug secret
(fjordbank.adapters.app_check), which the stack keeps in its state directory and gives
its own processes in FJB_APP_CHECK_DEBUG_SECRET. The app sends the token with every
callable (X-Firebase-AppCheck); like the Firebase SDK, `AppCheck.token` keeps one and gets
a new one shortly before it expires, so a long run never sends an expired token.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import jwt

from clientkit.errors import KitError
from fjordbank.adapters.app_check import mint_debug_token

TTL = 3600  # seconds a token is valid (what the debug provider gives)
RENEW_BEFORE = 300  # seconds: a token with less left is replaced before it is sent
SECRET_FILE = "app-check-debug.json"  # noqa: S105 - the file's name in the stack's state directory (devstack/stack.py)


def expires_at(token: str) -> int:
    """The expiry (epoch seconds) the token says, read without checking its signature: the
    kit made it; the bank is the one that checks."""
    return int(jwt.decode(token, options={"verify_signature": False})["exp"])


class AppCheck:
    """Debug App Check tokens for one app (``app_id``) of the project."""

    def __init__(
        self,
        secret: str,
        project_id: str,
        app_id: str,
        *,
        ttl: int = TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret, self.project_id, self.app_id, self.ttl = secret, project_id, app_id, ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None  # (token, expires at)

    @classmethod
    def from_state_dir(cls, state_dir: Path, project_id: str, app_id: str) -> AppCheck:
        """With the debug secret the stack keeps in its state directory."""
        secret_file = state_dir / SECRET_FILE
        try:
            secret = json.loads(secret_file.read_text())["secret"]
        except (OSError, ValueError, KeyError, TypeError):
            raise KitError(f"no App Check debug secret in {secret_file} (is the stack up? run `make up`)") from None
        return cls(secret, project_id, app_id)

    def mint(self, ttl: int | None = None) -> tuple[str, float]:
        """A new token and when it expires (epoch seconds); ``ttl`` may be negative (an
        expired token, to see it refused)."""
        token = mint_debug_token(self.secret, self.project_id, app_id=self.app_id, ttl=self.ttl if ttl is None else ttl)
        return token, float(expires_at(token))

    def token(self) -> str:
        """The token to send now: the one kept, or a new one if it expires within RENEW_BEFORE."""
        with self._lock:
            if self._token is None or self._token[1] - self.clock() < RENEW_BEFORE:
                self._token = self.mint()
            return self._token[0]
