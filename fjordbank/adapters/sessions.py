"""The customer's sign-in sessions, through Firebase Auth (`fjordbank.service_layer.ports.Sessions`).

`FirebaseSessions.end_all` revokes every refresh token of the user
(``firebase_admin.auth.revoke_refresh_tokens``): no session of theirs gets a new ID token,
so each one ends when the ID token it holds expires, within the hour. Callables and the
Firestore rules do not look the revocation up on every request (a lookup per call), which
is why it is not at once. The Auth emulator records the revocation (the user's
``tokensValidAfterTime``) but still refreshes such a token; production does not.
firebase_admin is imported when first used, under an app of our own name unless the
process made the default app already (the functions do).
"""

from __future__ import annotations

import threading
from typing import Any

FIREBASE_APP_NAME = "fjordbank-sessions"


class FirebaseSessions:
    def __init__(self, project_id: str, *, app: Any = None) -> None:
        self.project_id = project_id
        self._app = app
        self._lock = threading.Lock()

    def _firebase_app(self) -> Any:
        if self._app is not None:
            return self._app
        import firebase_admin

        with self._lock:
            if self._app is None:
                self._app = _existing_app(firebase_admin) or firebase_admin.initialize_app(
                    options={"projectId": self.project_id}, name=FIREBASE_APP_NAME
                )
            return self._app

    def end_all(self, uid: str) -> None:
        from firebase_admin import auth

        auth.revoke_refresh_tokens(uid, app=self._firebase_app())


def _existing_app(firebase_admin: Any) -> Any:
    """The default app if the process made one, else ours if made already, else None."""
    for args in ((), (FIREBASE_APP_NAME,)):
        try:
            return firebase_admin.get_app(*args)
        except ValueError:
            continue
    return None
