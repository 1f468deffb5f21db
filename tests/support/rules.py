"""Firestore security rules, exercised over the emulator's REST API.

Unsigned mock ID tokens (the emulator accepts them) stand for signed-in users; the admin
path (``Bearer owner``) bypasses the rules to set up documents."""

from __future__ import annotations

import base64
import json
import time

import requests

from tests.support.clients import _to_value


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def mock_id_token(project: str, uid: str) -> str:
    now = int(time.time())
    claims = {
        "iss": f"https://securetoken.google.com/{project}",
        "aud": project,
        "auth_time": now,
        "user_id": uid,
        "sub": uid,
        "iat": now,
        "exp": now + 3600,
        "firebase": {"sign_in_provider": "custom", "identities": {}},
    }
    return f"{_b64({'alg': 'none', 'kid': 'fakekid', 'typ': 'JWT'})}.{_b64(claims)}."


class RulesClient:
    def __init__(self, host: str, project: str, token: str | None) -> None:
        self.base = f"http://{host}/v1/projects/{project}/databases/(default)/documents"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _fields(self, data: dict) -> dict:
        return {"fields": {k: _to_value(v) for k, v in data.items()}}

    def get(self, path: str) -> int:
        return requests.get(f"{self.base}/{path}", headers=self.headers, timeout=10).status_code

    def list(self, collection: str) -> int:
        return requests.get(f"{self.base}/{collection}", headers=self.headers, timeout=10).status_code

    def create(self, collection: str, doc_id: str, data: dict) -> int:
        return requests.post(
            f"{self.base}/{collection}?documentId={doc_id}", json=self._fields(data), headers=self.headers, timeout=10
        ).status_code

    def set(self, path: str, data: dict) -> int:
        """A full overwrite (create or replace)."""
        return requests.patch(
            f"{self.base}/{path}", json=self._fields(data), headers=self.headers, timeout=10
        ).status_code

    def update(self, path: str, data: dict) -> int:
        """A field update of an existing document (fails if it does not exist)."""
        params = [("updateMask.fieldPaths", k) for k in data] + [("currentDocument.exists", "true")]
        return requests.patch(
            f"{self.base}/{path}", params=params, json=self._fields(data), headers=self.headers, timeout=10
        ).status_code

    def delete(self, path: str) -> int:
        return requests.delete(f"{self.base}/{path}", headers=self.headers, timeout=10).status_code
