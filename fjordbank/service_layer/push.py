"""Deliver one queued push notification to a customer's devices (the push function's job).

Exactly once per dedupe key: a `pushes/{key}` document is created first, and a push whose
document exists is not sent again (Pub/Sub delivers at least once, and the notifier may
queue a push twice). The customer's preferences decide per kind; tokens FCM reports as
unregistered are deleted.
"""

from __future__ import annotations

import logging
from typing import Any

from fjordbank.adapters.firestore import PUSHES, USERS
from fjordbank.adapters.push import PushSender
from fjordbank.domain.notifications import DEFAULT_PREFERENCES
from fjordbank.runtime import log_metrics
from fjordbank.service_layer.ports import SERVER_TIME, AlreadyExists, Documents

log = logging.getLogger(__name__)
DEVICES = "devices"
SETTINGS = "settings"
NOTIFICATION_SETTINGS = "notifications"


def preferences(docs: Documents, uid: str) -> dict[str, bool]:
    found = docs.get(f"{USERS}/{uid}/{SETTINGS}/{NOTIFICATION_SETTINGS}")
    chosen = found.data if found is not None else {}
    return {kind: bool(chosen.get(kind, default)) for kind, default in DEFAULT_PREFERENCES.items()}


def _write(docs: Documents, path: str, data: dict[str, Any], *, create: bool = False) -> None:
    """One write, committed on its own (one round trip)."""
    batch = docs.batch()
    if create:
        batch.create(path, data)
    else:
        batch.update(path, data)
    batch.commit()


def deliver(docs: Documents, sender: PushSender, push: dict[str, Any]) -> str:
    """Returns what happened: duplicate | muted | no_devices | sent."""
    uid, kind, key = push["uid"], push["kind"], push["dedupeKey"]
    if not isinstance(key, str) or not key or not isinstance(uid, str) or not uid:
        raise TypeError("uid and dedupeKey must be non-empty strings")  # malformed: never a document path
    record = f"{PUSHES}/{key}"
    try:
        _write(docs, record, {"uid": uid, "kind": kind, "status": "sending", "createdAt": SERVER_TIME}, create=True)
    except AlreadyExists:
        return "duplicate"
    if not preferences(docs, uid).get(kind, False):
        _write(docs, record, {"status": "muted"})
        return "muted"
    sent, removed = _send_to_devices(docs, sender, push)
    status = "sent" if sent else "no_devices"
    _write(docs, record, {"status": status, "sent": sent, "removedTokens": removed})
    log.info("push delivered", extra={"kind": kind, "status": status, "sent": sent, "removed": removed})
    return status


def _send_to_devices(docs: Documents, sender: PushSender, push: dict[str, Any]) -> tuple[int, int]:
    """Send to each of the customer's devices; a token FCM reports as unregistered is
    deleted. Returns (sent, removed)."""
    kind = push["kind"]
    sent = removed = 0
    for device in docs.query(f"{USERS}/{push['uid']}/{DEVICES}"):
        token = device.data.get("token")
        if not token:
            continue
        result = sender.send(token, title=push["title"], body=push["body"], data=push.get("data", {}))
        log_metrics.push_result(kind, result.ok, result.code)  # fjb_push_results (a log-based metric)
        if result.unregistered:
            gone = docs.batch()
            gone.delete(device.path)
            gone.commit()
            removed += 1
        elif result.ok:
            sent += 1
    return sent, removed


def deliver_batch(docs: Documents, sender: PushSender, message: object) -> dict[str, int]:
    """A Pub/Sub message from the notifier: {"pushes": [push, ...]}. Malformed entries are
    logged and skipped (a retry would not mend them)."""
    outcomes: dict[str, int] = {}
    for item in message.get("pushes", []) if isinstance(message, dict) else []:
        try:
            status = deliver(docs, sender, item)
        except (KeyError, TypeError, ValueError) as exc:
            log.error("malformed push skipped", extra={"error": repr(exc)})
            status = "malformed"
        outcomes[status] = outcomes.get(status, 0) + 1
    return outcomes
