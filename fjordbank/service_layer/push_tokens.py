"""One push token, one customer: the customer who registered it last.

An FCM token belongs to an app install, not to a person: when Bob signs in on the phone
Alice signed out of, the app registers the same token under Bob. The app's removal of
Alice's device at sign-out is its best effort (it waits a few seconds, and a write queued
then is refused once she is signed out), so her settings document kept the token, and her
pushes (amounts, masked account numbers, the card's last digits) showed on Bob's lock
screen (found in review, 2026-12-07).

``pushTokens/{sha256(token)}`` names the customer who registered the token last
(backend-only: the rules give clients no access). When a customer's settings document
gains a token (the functions' trigger on it, `claim_new_tokens`), the registry is set to
that customer in one transaction that moves the token, in the previous customer's
settings, from their devices to the devices of their ended sessions (`signedOutDevices`,
the bank's): no push of theirs reaches it any more but the security notices, which carry
no amount, no name and no account (fjordbank.domain.notifications.DEVICE_TEXTS).

Why the security notices stay: a claim proves nothing about the install. Any session of
Alice's reads her devices' tokens, so a thief who held one (a stolen phone) could, once
the bank ended her sessions, register her real phone's token under an account of his own;
a claim that took the token from her altogether (her ended sessions' devices included, as
it did) left every notice of a device added to her account to the stolen phone alone
(found in review, 2026-12-07). What such a claim still does: her payment and card pushes
stop until her app registers its token again (it does at every sign-in); her security
notices keep reaching the phone. The other side of it: Bob, on the phone Alice sold him,
may see her "a new device confirms payments" (without her name) until she has signed out
of `sessions.MAX_SIGNED_OUT_DEVICES` more devices. A token is kept by its hash: the
registry holds no token.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from fjordbank.service_layer import sessions
from fjordbank.service_layer.ports import Clock, Doc, Documents, UnitOfWork, system_clock
from fjordbank.service_layer.push import DEVICES, SIGNED_OUT_DEVICES, settings_path, tokens

log = logging.getLogger(__name__)

PUSH_TOKENS = "pushTokens"


def registry_path(token: str) -> str:
    return f"{PUSH_TOKENS}/{hashlib.sha256(token.encode()).hexdigest()}"


def _held(data: Mapping[str, Any] | None, fields: tuple[str, ...] = (DEVICES,)) -> set[str]:
    """The tokens of a settings document's devices in ``fields`` (its data as the trigger
    has it; None: no document)."""
    if data is None:
        return set()
    doc = Doc("", dict(data), _NO_VERSION)
    return {token for field in fields for token in tokens(doc, field).values()}


_NO_VERSION = dt.datetime.min.replace(tzinfo=dt.UTC)  # (`tokens` reads the data only)
BOTH = (DEVICES, SIGNED_OUT_DEVICES)


def new_tokens(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[str]:
    """The tokens a write of a settings document added to its signed-in devices, sorted."""
    return sorted(_held(after) - _held(before))


def gone_tokens(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[str]:
    """The tokens a write took out of a settings document altogether, sorted: one moved to
    the devices of an ended session is still the customer's (their security notices)."""
    return sorted(_held(before, BOTH) - _held(after, BOTH))


def settings_written(
    docs: Documents,
    uid: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    written_at: dt.datetime | None = None,
    clock: Clock = system_clock,
) -> list[str]:
    """What a write of ``uid``'s settings does to the registry: each token it added is
    claimed (`claim_new_tokens`: returns the customers it was taken from), and each it
    took out altogether is no longer ``uid``'s there (`release_gone_tokens`), so the
    registry holds the tokens customers hold, not every one an app ever wrote (an app
    writing a new token for one device id again and again grew it without end: found in
    review, 2026-12-07). ``written_at``: when the write was made (the document's update
    time), which orders the claims (`_claim`); without it, now."""
    taken = claim_new_tokens(docs, uid, before, after, written_at=written_at, clock=clock)
    release_gone_tokens(docs, uid, before, after)
    return taken


def release_gone_tokens(
    docs: Documents, uid: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> int:
    """Remove the registry's entry of each token the write took out of ``uid``'s settings,
    if it names ``uid`` and the settings still do not hold it (read in the same
    transaction: registered again since, it stays). Returns how many were removed."""
    removed = 0
    for token in gone_tokens(before, after):
        removed += docs.transact(functools.partial(_release, uid=uid, token=token), operation="push_token_release")
    return removed


def _release(uow: UnitOfWork, *, uid: str, token: str) -> int:
    entry = uow.get(registry_path(token))
    own = uow.get(settings_path(uid))
    if entry is None or entry.data.get("uid") != uid or token in _held(own.data if own else None, BOTH):
        return 0
    uow.delete(registry_path(token))
    return 1


def claim_new_tokens(
    docs: Documents,
    uid: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    written_at: dt.datetime | None = None,
    clock: Clock = system_clock,
) -> list[str]:
    """Make ``uid`` the holder of each token the write (made at ``written_at``; without
    it, now) added (`new_tokens`); returns the customers it was taken from (each once)."""
    taken: list[str] = []
    registered = written_at if written_at is not None else clock()
    for token in new_tokens(before, after):
        previous = docs.transact(
            functools.partial(_claim, uid=uid, token=token, now=registered), operation="push_token_claim"
        )
        if previous is not None and previous not in taken:
            taken.append(previous)
    if taken:
        log.info("push token registered by another customer: taken from the one before", extra={"uid": uid})
    return taken


def _claim(uow: UnitOfWork, *, uid: str, token: str, now: dt.datetime) -> str | None:
    """One token, registered by ``uid`` at ``now``: the registry names ``uid`` from now on,
    and the customer it named before (returned) has it only among the devices of their
    ended sessions (the module's docstring). The token still being ``uid``'s is read in the
    same transaction: a customer who registered it only for a moment (the app signed in
    and out again) takes it from nobody. The claims go by when the tokens were registered,
    not by when the trigger ran: a claim of Alice's retried after Bob registered the token
    later (her first run failed, so his took it from nobody) took it back from him, and her
    pushes reached the phone he now uses (found in review, 2026-12-07); now she loses it to
    the later claim as if hers had run first."""
    entry = uow.get(registry_path(token))
    own = uow.get(settings_path(uid))
    previous = entry.data.get("uid") if entry is not None else None
    other = uow.get(settings_path(previous)) if isinstance(previous, str) and previous != uid else None
    if own is None or token not in tokens(own).values():
        return None  # removed again since: nothing to claim
    registered = entry.data.get("registeredAt") if entry is not None else None
    if other is not None and isinstance(registered, dt.datetime) and registered > now:
        _sign_out(uow, own, token, now)  # the later claim is theirs
        return None
    uow.set(registry_path(token), {"uid": uid, "registeredAt": now})
    if other is None:
        return None
    _sign_out(uow, other, token, now)
    return str(previous)


def _sign_out(uow: UnitOfWork, settings: Doc, token: str, now: dt.datetime) -> None:
    """Move ``token`` in a customer's ``settings`` from their devices to the devices of
    their ended sessions (one only there already stays there)."""
    held = tokens(settings)
    if token not in held.values():
        return
    devices = settings.data.get(DEVICES)
    signed_in = devices if isinstance(devices, dict) else {}
    moved = {k: v for k, v in signed_in.items() if held.get(k) == token}
    uow.update(
        settings.path,
        {
            DEVICES: {k: v for k, v in signed_in.items() if k not in moved},
            SIGNED_OUT_DEVICES: sessions.signed_out_devices(
                settings.data.get(SIGNED_OUT_DEVICES), moved, ended=int(now.timestamp())
            ),
        },
    )
