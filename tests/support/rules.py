"""Firestore security rules, exercised over the emulator's REST API (the client kit's
FirestoreAsUser): each request's status is what a rules test asserts.

Unsigned mock ID tokens (the emulator accepts them) stand for signed-in users; the admin
path (``Bearer owner``) bypasses the rules to set up documents."""

from __future__ import annotations

import base64
import json
import time

from clientkit.rest import FirestoreAsUser


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def mock_id_token(project: str, uid: str, *, auth_time: int | None = None) -> str:
    """``auth_time``: when the user signed in (default now; a refreshed token keeps it)."""
    now = int(time.time())
    claims = {
        "iss": f"https://securetoken.google.com/{project}",
        "aud": project,
        "auth_time": now if auth_time is None else auth_time,
        "user_id": uid,
        "sub": uid,
        "iat": now,
        "exp": now + 3600,
        "firebase": {"sign_in_provider": "custom", "identities": {}},
    }
    return f"{_b64({'alg': 'none', 'kid': 'fakekid', 'typ': 'JWT'})}.{_b64(claims)}."


class RulesClient:
    """The kit's client as the holder of ``token``; every method answers the HTTP status."""

    def __init__(self, host: str, project: str, token: str | None) -> None:
        self.app = FirestoreAsUser(host, project, token)

    def get(self, path: str) -> int:
        return self.app.get(path)[0]

    def list(self, collection: str) -> int:
        return self.app.list(collection).status_code

    def create(self, collection: str, doc_id: str, data: dict) -> int:
        return self.app.create(collection, doc_id, data).status_code

    def set(self, path: str, data: dict) -> int:
        """A full overwrite (create or replace)."""
        return self.app.set(path, data).status_code

    def update(self, path: str, data: dict) -> int:
        """A field update of an existing document (fails if it does not exist)."""
        return self.app.update(path, data).status_code

    def delete(self, path: str) -> int:
        return self.app.delete(path).status_code
