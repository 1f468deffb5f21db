"""Deliver one queued push notification to a customer's devices (the push function's job).

Exactly once per dedupe key: a `pushes/{key}` document is created first, and a push whose
document exists is not sent again (Pub/Sub delivers at least once, and the notifier may
queue a push twice). The customer's preferences decide per kind; tokens FCM reports as
unregistered are deleted.
"""

from __future__ import annotations

import logging
from typing import Any

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore

from fjordbank.adapters.firestore import PUSHES, USERS
from fjordbank.adapters.push import PushSender
from fjordbank.domain.notifications import DEFAULT_PREFERENCES
from fjordbank.runtime import log_metrics

log = logging.getLogger(__name__)
DEVICES = "devices"
SETTINGS = "settings"
NOTIFICATION_SETTINGS = "notifications"


def preferences(db: firestore.Client, uid: str) -> dict[str, bool]:
    snap = db.collection(USERS).document(uid).collection(SETTINGS).document(NOTIFICATION_SETTINGS).get()
    chosen = snap.to_dict() if snap.exists else {}
    return {kind: bool(chosen.get(kind, default)) for kind, default in DEFAULT_PREFERENCES.items()}


def deliver(db: firestore.Client, sender: PushSender, push: dict[str, Any]) -> str:
    """Returns what happened: duplicate | muted | no_devices | sent."""
    uid, kind, key = push["uid"], push["kind"], push["dedupeKey"]
    record = db.collection(PUSHES).document(key)
    try:
        record.create({"uid": uid, "kind": kind, "status": "sending", "createdAt": firestore.SERVER_TIMESTAMP})
    except AlreadyExists:
        return "duplicate"
    if not preferences(db, uid).get(kind, False):
        record.update({"status": "muted"})
        return "muted"
    devices = list(db.collection(USERS).document(uid).collection(DEVICES).stream())
    sent = removed = 0
    for device in devices:
        token = (device.to_dict() or {}).get("token")
        if not token:
            continue
        result = sender.send(token, title=push["title"], body=push["body"], data=push.get("data", {}))
        log_metrics.push_result(kind, result.ok, result.code)  # fjb_push_results (a log-based metric)
        if result.unregistered:
            device.reference.delete()
            removed += 1
        elif result.ok:
            sent += 1
    status = "sent" if sent else "no_devices"
    record.update({"status": status, "sent": sent, "removedTokens": removed})
    log.info("push delivered", extra={"kind": kind, "status": status, "sent": sent, "removed": removed})
    return status


def deliver_batch(db: firestore.Client, sender: PushSender, message: object) -> dict[str, int]:
    """A Pub/Sub message from the notifier: {"pushes": [push, ...]}. Malformed entries are
    logged and skipped (a retry would not mend them)."""
    outcomes: dict[str, int] = {}
    for item in message.get("pushes", []) if isinstance(message, dict) else []:
        try:
            status = deliver(db, sender, item)
        except (KeyError, TypeError, ValueError) as exc:
            log.error("malformed push skipped", extra={"error": repr(exc)})
            status = "malformed"
        outcomes[status] = outcomes.get(status, 0) + 1
    return outcomes
