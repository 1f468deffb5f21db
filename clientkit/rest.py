"""Firestore's REST API with a user's ID token: the security rules apply, as to the app.

What the web SDK sends, one request per call, each answer as it came (a test of the rules
looks at the status: 200, or 403 when the rules refuse). Values are encoded as the REST
API's typed values (`to_value`, `from_value`). Without an ID token the request is
anonymous; the emulator's admin token ``owner`` bypasses the rules (setting up documents).
"""

from __future__ import annotations

from typing import Any

import requests

from clientkit.errors import FIRESTORE, talking_to

TIMEOUT = 10.0  # seconds


def to_value(v: Any) -> dict:
    """A Python value as the REST API's typed value (integers stay integers: money is never a float)."""
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
        return {"mapValue": {"fields": {k: to_value(x) for k, x in v.items()}}}
    if isinstance(v, list):
        return {"arrayValue": {"values": [to_value(x) for x in v]}}
    raise TypeError(f"no Firestore REST encoding for {type(v)}")


def from_value(v: dict) -> Any:
    """A REST typed value as Python (timestamps stay their RFC 3339 text)."""
    ((kind, value),) = v.items()
    if kind == "integerValue":
        return int(value)
    if kind == "mapValue":
        return {k: from_value(x) for k, x in value.get("fields", {}).items()}
    if kind == "arrayValue":
        return [from_value(x) for x in value.get("values", [])]
    if kind == "nullValue":
        return None
    return value


def to_fields(data: dict) -> dict:
    return {"fields": {k: to_value(v) for k, v in data.items()}}


class FirestoreAsUser:
    """The Firestore REST API as the user whose ID token this is (None: signed out)."""

    def __init__(self, host: str, project: str, id_token: str | None, *, timeout: float = TIMEOUT) -> None:
        self.host, self.timeout = host, timeout
        self.base = f"http://{host}/v1/projects/{project}/databases/(default)/documents"
        self.headers = {"Authorization": f"Bearer {id_token}"} if id_token else {}

    def _request(self, method: str, path: str, **kw: Any) -> requests.Response:
        with talking_to(FIRESTORE, self.host, timeout=self.timeout):
            return requests.request(method, f"{self.base}/{path}", headers=self.headers, timeout=self.timeout, **kw)

    def create(self, collection_path: str, doc_id: str, fields: dict) -> requests.Response:
        """Create ``collection_path/doc_id`` (fails if it exists)."""
        return self._request("POST", collection_path, params={"documentId": doc_id}, json=to_fields(fields))

    def set(self, path: str, fields: dict) -> requests.Response:
        """A full overwrite (create or replace)."""
        return self._request("PATCH", path, json=to_fields(fields))

    def patch(self, path: str, fields: dict) -> requests.Response:
        """A merge write of ``fields`` (what the SDK's set(..., {merge: true}) sends)."""
        params = [("updateMask.fieldPaths", k) for k in fields]
        return self._request("PATCH", path, params=params, json=to_fields(fields))

    def merge(self, path: str, fields: dict, mask: list[str]) -> requests.Response:
        """A write of the field paths in ``mask`` only, their values from the nested
        ``fields``; a path in the mask with no value in ``fields`` is deleted (what the SDK's
        set(..., {merge: true}) and deleteField() send). Quote a segment that is not a plain
        name with backticks (``devices.`web-1a2b```)."""
        return self._request("PATCH", path, params=[("updateMask.fieldPaths", p) for p in mask], json=to_fields(fields))

    def update(self, path: str, fields: dict) -> requests.Response:
        """A field update of an existing document (fails if it does not exist)."""
        params = [("updateMask.fieldPaths", k) for k in fields] + [("currentDocument.exists", "true")]
        return self._request("PATCH", path, params=params, json=to_fields(fields))

    def delete(self, path: str) -> requests.Response:
        return self._request("DELETE", path)

    def list(self, collection_path: str) -> requests.Response:
        return self._request("GET", collection_path)

    def get(self, path: str) -> tuple[int, dict | None]:
        """(status, the document's fields); None unless the status is 200."""
        resp = self._request("GET", path)
        if resp.status_code != 200:
            return resp.status_code, None
        return 200, {k: from_value(v) for k, v in resp.json().get("fields", {}).items()}
