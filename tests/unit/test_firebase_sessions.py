"""Ending a customer's sessions through Firebase Auth (fjordbank.adapters.sessions) when
Auth has no such user any more (deleted in the console, or by the app's account
deletion): answered INTERNAL to the operator or the customer ending them (found in
review, 2026-12-07). Nothing to revoke there; the record from now refuses any ID token
of theirs still held."""

from __future__ import annotations

import time

import pytest
from firebase_admin import auth

from fjordbank.adapters.sessions import FirebaseSessions


def test_ending_the_sessions_of_a_user_auth_no_longer_has_is_a_record_from_now(monkeypatch: pytest.MonkeyPatch):
    def no_such_user(uid: str, app: object = None) -> None:
        raise auth.UserNotFoundError(f"No user record found for the given identifier ({uid}).")

    monkeypatch.setattr(auth, "revoke_refresh_tokens", no_such_user)
    before = int(time.time())
    assert before <= FirebaseSessions("demo-fjordbank", app=object()).end_all("gone") <= int(time.time())


def test_ending_the_sessions_of_a_user_is_auths_own_record(monkeypatch: pytest.MonkeyPatch):
    revoked: list[str] = []
    monkeypatch.setattr(auth, "revoke_refresh_tokens", lambda uid, app=None: revoked.append(uid))
    monkeypatch.setattr(
        auth, "get_user", lambda uid, app=None: type("U", (), {"tokens_valid_after_timestamp": 1_765_000_000_123})()
    )
    assert FirebaseSessions("demo-fjordbank", app=object()).end_all("alice") == 1_765_000_000
    assert revoked == ["alice"]
