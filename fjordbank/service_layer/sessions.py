"""Sessions the bank ended (a lost device removed with "sign out everywhere", the bank's
reset of a customer's devices): the ID tokens signed in before are refused at once, by the
Firestore rules and by every callable, not only when they expire (within the hour).

Revoking a user's refresh tokens (fjordbank.adapters.sessions) stops new ID tokens, but an
ID token is checked by its signature alone: one already issued stays good until it expires,
and whoever holds a lost phone could read the customer's accounts and pay known payees for
up to an hour. So the time Auth takes tokens from again is recorded where the rules can see
it (Firebase's documented pattern for revocation in Security Rules)::

    sessions/{uid}   validAfter: Unix seconds (Auth's tokensValidAfterTime), endedAt

and a token whose ``auth_time`` (when its user signed in; a refreshed token keeps it) is
before ``validAfter`` is refused: ``firestore.rules`` (``sessionLive``) and `check` (every
callable, functions/main.py). Signing in again gives a token that is taken. No client reads
or writes the document; a customer never signed out by the bank has none.
"""

from __future__ import annotations

from typing import Any

from fjordbank.domain.errors import DomainError
from fjordbank.service_layer.ports import SERVER_TIME, Documents, Writes

SESSIONS = "sessions"


def session_path(uid: str) -> str:
    return f"{SESSIONS}/{uid}"


class SessionEnded(DomainError):
    """The caller's ID token was signed in before the bank ended their sessions."""

    code = "session_ended"


def record_ended(writes: Writes, uid: str, valid_after: int) -> None:
    """Record (in the caller's commit) that ``uid``'s tokens signed in before
    ``valid_after`` (Unix seconds) are refused. A later end moves it on, never back."""
    writes.set(session_path(uid), {"validAfter": int(valid_after), "endedAt": SERVER_TIME}, merge=True)


def ended(record: dict[str, Any] | None, auth_time: object) -> bool:
    """Whether a token signed in at ``auth_time`` (its claim: Unix seconds) belongs to a
    session the bank ended. A token without the claim is taken as signed in at 0."""
    valid_after = (record or {}).get("validAfter")
    if not isinstance(valid_after, int):
        return False
    signed_in = auth_time if isinstance(auth_time, int) and not isinstance(auth_time, bool) else 0
    return signed_in < valid_after


def check(docs: Documents, uid: str, auth_time: object) -> None:
    """Raises `SessionEnded` when the caller's token is from a session the bank ended."""
    doc = docs.get(session_path(uid))
    if ended(doc.data if doc is not None else None, auth_time):
        raise SessionEnded("this session was ended by the bank: sign in again")
