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
that customer in one transaction that takes the token out of the previous customer's
settings, from their devices and from the devices of their ended sessions (a security
notice of Alice's is hers too). A token is kept by its hash: the registry holds no token.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from fjordbank.service_layer.ports import Clock, Doc, Documents, UnitOfWork, system_clock
from fjordbank.service_layer.push import DEVICES, SIGNED_OUT_DEVICES, settings_path, tokens

log = logging.getLogger(__name__)

PUSH_TOKENS = "pushTokens"
OPERATION = "push_token_claim"


def registry_path(token: str) -> str:
    return f"{PUSH_TOKENS}/{hashlib.sha256(token.encode()).hexdigest()}"


def _held(data: Mapping[str, Any] | None) -> set[str]:
    """The tokens of a settings document's signed-in devices (its data as the trigger has
    it; None: no document)."""
    if data is None:
        return set()
    return set(tokens(Doc("", dict(data), _NO_VERSION)).values())


_NO_VERSION = dt.datetime.min.replace(tzinfo=dt.UTC)  # (`tokens` reads the data only)


def new_tokens(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[str]:
    """The tokens a write of a settings document added to its signed-in devices, sorted."""
    return sorted(_held(after) - _held(before))


def claim_new_tokens(
    docs: Documents,
    uid: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    clock: Clock = system_clock,
) -> list[str]:
    """Make ``uid`` the holder of each token the write added (`new_tokens`); returns the
    customers it was taken from (each once)."""
    taken: list[str] = []
    for token in new_tokens(before, after):
        previous = docs.transact(functools.partial(_claim, uid=uid, token=token, now=clock()), operation=OPERATION)
        if previous is not None and previous not in taken:
            taken.append(previous)
    if taken:
        log.info("push token registered by another customer: taken from the one before", extra={"uid": uid})
    return taken


def _claim(uow: UnitOfWork, *, uid: str, token: str, now: dt.datetime) -> str | None:
    """One token: the registry names ``uid`` from now on, and the customer it named before
    (returned) no longer has the token in their settings. The token still being ``uid``'s
    is read in the same transaction: a customer who registered it only for a moment (the
    app signed in and out again) takes it from nobody."""
    entry = uow.get(registry_path(token))
    own = uow.get(settings_path(uid))
    previous = entry.data.get("uid") if entry is not None else None
    other = uow.get(settings_path(previous)) if isinstance(previous, str) and previous != uid else None
    if own is None or token not in tokens(own).values():
        return None  # removed again since: nothing to claim
    uow.set(registry_path(token), {"uid": uid, "registeredAt": now})
    if other is None:
        return None
    update = {}
    for field in (DEVICES, SIGNED_OUT_DEVICES):
        held = tokens(other, field)
        if token in held.values():
            devices = other.data.get(field)
            kept = devices if isinstance(devices, dict) else {}
            update[field] = {k: v for k, v in kept.items() if held.get(k) != token}
    if update:
        uow.update(other.path, update)
    return str(previous)
