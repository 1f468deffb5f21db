"""The customer's sign-in sessions, through Firebase Auth (`fjordbank.service_layer.ports.Sessions`).

`FirebaseSessions.end_all` revokes every refresh token of the user
(``firebase_admin.auth.revoke_refresh_tokens``): no session of theirs gets a new ID token,
so each one ends when the ID token it holds expires, within the hour. Callables and the
Firestore rules do not look the revocation up on every request (a lookup per call), which
is why it is not at once. The Auth emulator records the revocation (an ID token issued
before it is refused by Auth) but still refreshes such a token; production does not.
"""

from __future__ import annotations

from typing import Any

from fjordbank.adapters.firebase_app import LazyApp


class FirebaseSessions:
    def __init__(self, project_id: str, *, app: Any = None) -> None:
        self._app = LazyApp(project_id, app=app)

    def end_all(self, uid: str) -> None:
        from firebase_admin import auth

        auth.revoke_refresh_tokens(uid, app=self._app.get())
