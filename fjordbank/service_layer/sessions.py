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

Choices and limits:

* A token signed in within the second of the end is taken (``auth_time >= validAfter``), as
  Auth itself takes it (its check: ``auth_time`` * 1000 < ``tokensValidAfterTime``
  refuses); Firebase's rules example uses ``>``, which would refuse the customer's own
  sign-in in that second as well. ``validAfter`` is what the Admin SDK sent Auth: the
  functions' clock (Google's, kept in time), since the bank ends sessions in a callable.
* A listen opened before the end may keep delivering until its token expires: Firestore
  checks a listen's rules when it starts, and we found no promise that production checks
  again when this record changes (the emulator does, at the listen's next change: the
  browser test sees the web app signed out by it). Every new read, listen, write and
  callable is refused; the web app returns to its sign-in screen at the first refusal
  (``listenFailed``, ``session_ended``) and when it ended its own session.
* Tokens Auth revokes by itself (a password changed in Auth) are not recorded here; the bank
  ends sessions only through the use cases that call `record_ended`.
* Ending the sessions also takes every device off the customer's pushes, in the same commit:
  the devices map of ``users/{uid}/settings/notifications`` (fjordbank.service_layer.push)
  moves to ``signedOutDevices``, which gets the security notices only. A lost phone kept
  its registration, and with it every push (amounts, payees), since an ended session can
  no longer write the document and the app's forced sign-out does not unregister (found in
  review, 2026-12-06). The security notices still reach the devices signed out: the notice
  of the very change that ended the sessions is what tells a customer whose phone a
  stranger with the password removed. The map keeps the devices of the ends before too
  (at most 20; the rules keep the app from writing it). The preferences stay; each device the
  customer signs in on again registers itself again (web/src/main.js).
"""

from __future__ import annotations

from typing import Any

from fjordbank.domain.errors import DomainError
from fjordbank.service_layer import push
from fjordbank.service_layer.ports import DELETE_FIELD, SERVER_TIME, Doc, Documents, Writes

SESSIONS = "sessions"


def session_path(uid: str) -> str:
    return f"{SESSIONS}/{uid}"


class SessionEnded(DomainError):
    """The caller's ID token was signed in before the bank ended their sessions.
    ``valid_after`` (Unix seconds) goes to the app (``details.validAfter``): a late answer
    to a call made before it signed in again must not sign out its new session."""

    code = "session_ended"

    def __init__(self, message: str, *, valid_after: int | float | None = None) -> None:
        super().__init__(message)
        self.valid_after = int(valid_after) if valid_after is not None else None


def paths_to_end(uid: str) -> list[str]:
    """What a use case that ends ``uid``'s sessions reads in its unit of work, for
    `record_ended`: the record and the customer's push settings."""
    return [session_path(uid), push.settings_path(uid)]


def record_ended(writes: Writes, uid: str, valid_after: int, found: dict[str, Doc | None]) -> None:
    """Record (in the caller's commit) that ``uid``'s tokens signed in before
    ``valid_after`` (Unix seconds) are refused, and take their devices off every push but
    the security notices (see the module's docstring). ``found``: `paths_to_end` as the
    caller's unit of work read them. A later end moves the record on, an earlier one that
    commits after it never moves it back (a customer's sign-out racing the bank's reset),
    nor touches the devices (one registered since is a session's the later end left)."""
    recorded = found[session_path(uid)]
    before = (recorded.data if recorded is not None else {}).get("validAfter")
    if _number(before) and before >= valid_after:  # type: ignore[operator]  # a number
        return
    writes.set(session_path(uid), {"validAfter": int(valid_after), "endedAt": SERVER_TIME}, merge=True)
    settings = found[push.settings_path(uid)]
    if settings is not None:  # an update: each field replaced whole (a merge would merge the maps)
        signed_out = signed_out_devices(
            settings.data.get(push.SIGNED_OUT_DEVICES), settings.data.get(push.DEVICES), ended=int(valid_after)
        )
        update: dict[str, Any] = {push.DEVICES: DELETE_FIELD, push.CHANGED: DELETE_FIELD}
        if signed_out:
            update[push.SIGNED_OUT_DEVICES] = signed_out
        writes.update(settings.path, update)


# The devices the security notices still reach after the ends of the sessions: those of the
# ends before too (a reset after a sign-out, before any device registered again, dropped
# them all, and the notice of the reset itself reached no device: found in review), the
# ones signed out last first when there are more.
MAX_SIGNED_OUT_DEVICES = 20


def signed_out_devices(before: object, devices: object, *, ended: int) -> dict[str, Any]:
    """``signedOutDevices`` after an end at ``ended`` (Unix seconds): the devices signed in
    until now, stamped ``signedOutAt``, over those signed out before (a device in both: its
    entry now), the `MAX_SIGNED_OUT_DEVICES` signed out last (by the stamp: Firestore keeps
    a map's keys sorted, not in the order they were written)."""
    kept = {k: v for k, v in (before.items() if isinstance(before, dict) else ()) if isinstance(v, dict)}
    now = {
        k: {**v, "signedOutAt": ended}
        for k, v in (devices.items() if isinstance(devices, dict) else ())
        if isinstance(v, dict)
    }
    merged = {**{k: v for k, v in kept.items() if k not in now}, **now}
    newest = sorted(merged.items(), key=lambda kv: (_stamp(kv[1]), kv[0]))[-MAX_SIGNED_OUT_DEVICES:]
    return dict(newest)


def _stamp(device: dict[str, Any]) -> int:
    at = device.get("signedOutAt")
    return at if isinstance(at, int) and not isinstance(at, bool) else 0


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def ended(record: dict[str, Any] | None, auth_time: object) -> bool:
    """Whether a token signed in at ``auth_time`` (its claim: Unix seconds) belongs to a
    session the bank ended. A token without the claim is taken as signed in at 0; a record
    whose ``validAfter`` is not a number ends every session (as the rules, which fail on it)."""
    if record is None:
        return False
    valid_after = record.get("validAfter")
    if not _number(valid_after):
        return True
    signed_in = float(auth_time) if _number(auth_time) else 0.0  # type: ignore[arg-type]  # a number
    return signed_in < float(valid_after)  # type: ignore[arg-type]  # a number


def check(docs: Documents, uid: str, auth_time: object) -> None:
    """Raises `SessionEnded` when the caller's token is from a session the bank ended."""
    doc = docs.get(session_path(uid))
    record = doc.data if doc is not None else None
    if ended(record, auth_time):
        after = (record or {}).get("validAfter")
        raise SessionEnded(
            "this session was ended by the bank: sign in again",
            valid_after=after if _number(after) else None,
        )
