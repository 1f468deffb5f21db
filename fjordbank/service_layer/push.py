"""Deliver queued push notifications to customers' devices (the push function's job).

At least once, shown once. The notifier queues a push before the commit that records the
state it announces (a batch retried after a lost commit, or an event delivered again,
queues it again), and Pub/Sub delivers at least once. Nothing is recorded per push:
every send carries the push's collapse id (`collapse_id`, from its dedupe key) as the
Android notification's tag, the APNs collapse id and the web notification's tag, so a
device shows a push sent twice as one notification (the second replaces the first).

Until 2026-12 a ``pushes/{key}`` document was created before each send and updated after
it: two writes per push, at most once (a push whose send failed after its claim was never
sent), and four documents of every internal payment's 39 (bench/docops.py). A lost push
is worse for a bank's customer than one shown once after two sends.

Per message (a batch of pushes): the customers' notification settings are read in one
round trip, the devices of the customers with a push not muted in one collection-group
query per `IN_LIMIT` customers (each device names its owner, ``uid``: firestore.rules),
the sends made `WORKERS` at a time, and the tokens FCM reports as unregistered deleted in
one commit. A query per customer cost the emulator a scan of its documents each (17 ms
idle, 85 ms loaded, 2026-12-01): a message of 100 pushes took 30 to 40 s, and the push
function's backlog loaded the emulator for minutes after every bench phase.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fjordbank.adapters.firestore import USERS
from fjordbank.adapters.push import PushResult, PushSender
from fjordbank.domain.notifications import DEFAULT_PREFERENCES
from fjordbank.runtime import log_metrics
from fjordbank.service_layer.ports import Doc, Documents, Where

log = logging.getLogger(__name__)
DEVICES = "devices"
SETTINGS = "settings"
NOTIFICATION_SETTINGS = "notifications"
SENT, MUTED, NO_DEVICES, MALFORMED = "sent", "muted", "no_devices", "malformed"
IN_LIMIT = 30  # values of one `in` filter (Firestore's limit)
# Sends made at once, per message, as FCM's own sendEach does (the senders' HTTP sessions
# are thread-safe).
WORKERS = 16


def settings_path(uid: str) -> str:
    return f"{USERS}/{uid}/{SETTINGS}/{NOTIFICATION_SETTINGS}"


def collapse_id(dedupe_key: str) -> str:
    """What a device collapses pushes by: 32 hex characters of the key's SHA-256 (APNs
    allows 64 bytes of collapse id, and a dedupe key names a payment or a customer)."""
    return hashlib.sha256(dedupe_key.encode()).hexdigest()[:32]


def chosen(found: Doc | None) -> dict[str, bool]:
    """A customer's preference per kind: their settings document, else the defaults."""
    data = found.data if found is not None else {}
    return {kind: bool(data.get(kind, default)) for kind, default in DEFAULT_PREFERENCES.items()}


def preferences(docs: Documents, uid: str) -> dict[str, bool]:
    return chosen(docs.get(settings_path(uid)))


@dataclass(frozen=True)
class Item:
    uid: str
    kind: str
    key: str
    title: str
    body: str
    data: dict[str, Any]


def _item(raw: object) -> Item:
    """A queued push as the notifier wrote it; KeyError/TypeError when it is not one."""
    if not isinstance(raw, dict):
        raise TypeError(f"a push is an object, not {type(raw).__name__}")
    uid, key = raw["uid"], raw["dedupeKey"]
    if not isinstance(key, str) or not key or not isinstance(uid, str) or not uid or "/" in uid:
        raise TypeError("uid and dedupeKey must be non-empty strings (a uid without '/')")  # never a path
    return Item(uid, str(raw["kind"]), key, str(raw["title"]), str(raw["body"]), dict(raw.get("data") or {}))


def deliver_batch(docs: Documents, sender: PushSender, message: object) -> dict[str, int]:
    """A Pub/Sub message from the notifier: {"pushes": [push, ...]}. Returns how many were
    sent, muted, had no device to go to, or were malformed (logged and skipped: a retry
    would not mend them)."""
    outcomes: dict[str, int] = {}
    items: list[Item] = []
    for raw in message.get("pushes", []) if isinstance(message, dict) else []:
        try:
            items.append(_item(raw))
        except (KeyError, TypeError, ValueError) as exc:
            log.error("malformed push skipped", extra={"error": repr(exc)})
            outcomes[MALFORMED] = outcomes.get(MALFORMED, 0) + 1
    if not items:
        return outcomes
    uids = list(dict.fromkeys(item.uid for item in items))
    settings = docs.get_many([settings_path(uid) for uid in uids])
    wanted = {uid: chosen(settings.get(settings_path(uid))) for uid in uids}
    unmuted = [wanted[item.uid].get(item.kind, False) for item in items]
    devices = _devices(docs, list(dict.fromkeys(item.uid for item, on in zip(items, unmuted, strict=True) if on)))
    sends = [(n, path, token) for n, on in enumerate(unmuted) if on for path, token in devices.get(items[n].uid, [])]
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="push") as pool:
        results = list(pool.map(lambda s: _send(sender, items[s[0]], s[2]), sends))
    took = {n for (n, _path, _token), result in zip(sends, results, strict=True) if result.ok}
    for n, on in enumerate(unmuted):
        status = MUTED if not on else SENT if n in took else NO_DEVICES
        outcomes[status] = outcomes.get(status, 0) + 1
    unregistered = sorted({path for (_n, path, _t), result in zip(sends, results, strict=True) if result.unregistered})
    if unregistered:
        gone = docs.batch()
        for path in unregistered:
            gone.delete(path)
        gone.commit()
    log.info("pushes delivered", extra={"outcomes": outcomes, "removed": len(unregistered)})
    return outcomes


def _devices(docs: Documents, uids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """uid -> (device document, token) of each of its devices that has a token. Only a
    device under the customer's own document counts (its path, not only its ``uid``)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for start in range(0, len(uids), IN_LIMIT):
        for d in docs.query_group(DEVICES, where=[Where("uid", "in", uids[start : start + IN_LIMIT])]):
            uid = d.data.get("uid")
            if d.data.get("token") and isinstance(uid, str) and d.path.startswith(f"{USERS}/{uid}/{DEVICES}/"):
                out.setdefault(uid, []).append((d.path, str(d.data["token"])))
    return out


def _send(sender: PushSender, item: Item, token: str) -> PushResult:
    result = sender.send(token, title=item.title, body=item.body, data=item.data, collapse_id=collapse_id(item.key))
    log_metrics.push_result(item.kind, result.ok, result.code)  # fjb_push_results (a log-based metric)
    return result
