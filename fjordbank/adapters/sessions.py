"""The customer's sign-in sessions, through Firebase Auth (`fjordbank.service_layer.ports.Sessions`).

`FirebaseSessions.end_all` revokes every refresh token of the user
(``firebase_admin.auth.revoke_refresh_tokens``): no session of theirs gets a new ID token.
It returns the user's ``tokensValidAfterTime`` as Auth recorded it (Unix seconds), which the
use case records (fjordbank.service_layer.sessions) so that the Firestore rules and the
callables refuse an ID token signed in before it at once: they check a token by its
signature, not against Auth, so without that record each session would last until the
token it holds expires, within the hour. The Auth emulator records the revocation too (it
still refreshes such a token, production does not; the record refuses the refreshed one,
which keeps its sign-in time).
"""

from __future__ import annotations

import time
from typing import Any

from fjordbank.adapters.firebase_app import LazyApp


class FirebaseSessions:
    def __init__(self, project_id: str, *, app: Any = None) -> None:
        self._app = LazyApp(project_id, app=app)

    def end_all(self, uid: str) -> int:
        from firebase_admin import auth

        app = self._app.get()
        try:
            auth.revoke_refresh_tokens(uid, app=app)
            valid_after_ms = auth.get_user(uid, app=app).tokens_valid_after_timestamp
        except auth.UserNotFoundError:
            # no user in Auth (deleted in the console, or by the app's account deletion): no
            # refresh token to revoke, but an ID token of theirs holds until it expires; the
            # record from now refuses it. It was answered INTERNAL, to the operator or the
            # customer ending the sessions (found in review, 2026-12-07)
            return int(time.time())
        # Auth keeps whole seconds; without its value (never seen), now: the same second
        return int(valid_after_ms // 1000) if valid_after_ms else int(time.time())
