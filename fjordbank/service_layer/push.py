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

Per message (a batch of pushes): one read of one document per customer,
``users/{uid}/settings/notifications``, which holds the preferences by kind and the map of
the customer's devices the app keeps (firestore.rules), the sends made `WORKERS` at a
time (those not started are held back once FCM answers a few devices that it takes nothing
more for now: `THROTTLED`), and the tokens FCM reports as unregistered removed by a commit per
customer that has one (each on the condition that the document is the version read: a
device the app added meanwhile is never lost). The read is one round trip, one document
per customer and no query: until 2026-12-01 the devices had a document of their own
beside the preferences (two reads per customer), and before that each device was a
document of its own, found by a query per customer, and the emulator answers every query
by scanning all its documents (seen in its thread dumps: runQuery, 17 ms idle and 85 ms
loaded each); the push function's queries were the emulator's largest load in the
bench, more than the whole payment pipeline's reads and commits.

A message delivered again (a push FCM could not take for now, `PushesNotSent`) sends only
what it did not send before: the first try records the pushes it finished (sent, muted,
with no device, malformed) in ``pushRetries/{messageId}``, and a later delivery of the
message skips them. Before, each of up to `PUSH_BATCH` other customers got the push again
at every retry of the message for an hour (twelve times, with Pub/Sub's backoff), each send
able to sound again and to come back after it was dismissed (found in review, 2026-12-06).
A security notice is finished only when every device took it (or answered that it never
will); until then the record holds each device that took it (`reached`), and a later
delivery sends it to the others only.
Nothing is read or written for a message delivered once: the record is read only by a
delivery late enough to be a retry (`REDELIVERY_AGE`), written only when some push is left
for later, and deleted when none is (or by its TTL, ``expiresAt``, once the message is past
retrying: firestore.indexes.json).

News is not pushed late. Each queued push carries the time its event entered the stream
(``queuedAt``: the event's JetStream timestamp, no later than the notifier's clock, never the
app's: `fjordbank.adapters.pubsub.PushQueue`), and a push of news older than `NEWS_MAX_AGE`
by it is counted as `TOO_LATE` and logged, not sent: a backlog on the push topic delivered
"Money received" and card purchases hours after the fact (found in review, 2026-12-06),
when the feed has long shown them. The hour is the one a push FCM could not take is retried
for (functions/main.py: PUSH_MAX_AGE), so no push of news is sent more than an hour after
its event, first delivery or retry. The domain
says what is news (``news``, `NEWS`: fjordbank.domain.notifications.Push.news): money
received, a payment completed, card purchases and refunds. Nothing else is dropped for
being late: a payment not completed or rejected, a card declined, the onboarding result, the
security notices (`ALWAYS_ON`, never news). A push without the mark (queued by older code),
without the time or with one unreadable is sent. A message whose unsent pushes are all news
is retried for an hour after its publish (functions/main.py: PUSH_MAX_AGE) and then given
up; one with a push left that is not news (a security notice, a failure to act on) for
`URGENT_MAX_AGE` (`PushesNotSent.urgent`): in a backlog on the topic past the hour, a
security notice FCM refused for now got one try only (found in review, 2026-12-06).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fjordbank.adapters.firestore import CUSTOMERS, USERS
from fjordbank.adapters.push import PushResult, PushSender, normalize_data
from fjordbank.domain.notifications import ALWAYS_ON, DEFAULT_PREFERENCES, awaits_decision, superseded
from fjordbank.runtime import log_metrics
from fjordbank.service_layer.ports import SERVER_TIME, Doc, Documents, NotFound, Stale

log = logging.getLogger(__name__)
SETTINGS = "settings"
NOTIFICATION_SETTINGS = "notifications"
DEVICES = "devices"  # the field of the settings document: {deviceId: {token, platform}}
CHANGED = "changed"  # the field that names the device a write of the app's changed (firestore.rules)
# The devices of the customer's sessions the bank last ended (fjordbank.service_layer.
# sessions), written by the backend only: they get the security notices (ALWAYS_ON), no other push.
SIGNED_OUT_DEVICES = "signedOutDevices"
SENT, MUTED, NO_DEVICES, MALFORMED = "sent", "muted", "no_devices", "malformed"
TOO_LATE = "too_late"  # news queued longer ago than NEWS_MAX_AGE: not sent (the feed shows it)
SUPERSEDED = "superseded"  # "we are checking your application" for a customer decided since: not sent
QUEUED_AT = "queuedAt"  # the field of a queued push: when its event entered the stream (ISO 8601, UTC)
# The field of a queued push that says it is news (fjordbank.domain.notifications.Push.news):
# only a push with it true is dropped when late. A push without it (queued by code older than
# the mark, 2026-12-06) is sent however late, whatever its kind: it may be a failure the
# customer must act on, and a late push of news once is the lesser harm.
NEWS = "news"
# How old news may be when it is sent (by its QUEUED_AT): the hour a push FCM could not take
# is tried again for (functions/main.py: PUSH_MAX_AGE). Security notices have no limit.
NEWS_MAX_AGE = dt.timedelta(hours=1)
# How long a message with a push left that is not news is retried after its publish (news:
# functions/main.py PUSH_MAX_AGE, an hour): within the day Pub/Sub keeps delivering a message
# whose function fails (the retry policy of the functions' triggers), with room to spare.
URGENT_MAX_AGE = dt.timedelta(hours=23)
NOT_SENT = "not_sent"  # no device took it and a send failed for a while only: the message is delivered again
# FCM's answers (and ours for no answer) that say "not now", not "never": the send may work
# when the message is delivered again (FCM's own advice: retry UNAVAILABLE, INTERNAL and
# QUOTA_EXCEEDED with back-off). DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED are the gRPC
# statuses of a 504 and a 429 without FCM's own detail, and firebase_admin reports a request
# that timed out as DEADLINE_EXCEEDED: each was taken for "never" and its push dropped.
TRANSIENT_CODES = frozenset(
    {
        "UNAVAILABLE",
        "INTERNAL",
        "QUOTA_EXCEEDED",
        "DEADLINE_EXCEEDED",
        "RESOURCE_EXHAUSTED",
        "TRANSPORT_ERROR",
        "HTTP_429",
        "HELD_BACK",
    }
)
# FCM's answers that say it takes nothing more for now: the project's quota spent
# (QUOTA_EXCEEDED, or a 429 without FCM's detail: RESOURCE_EXHAUSTED, HTTP_429) or FCM
# overloaded (UNAVAILABLE, HTTP_503). After they came for `THROTTLED_DEVICES` devices, the
# message's sends not started yet are not made (`HELD_BACK`): each was answered the same,
# on every delivery of the message, 100 pushes to 3 devices making 300 sends a delivery
# into a throttled FCM (found in review, 2026-12-07). Their pushes are not sent for now,
# and the message's next delivery (Pub/Sub's backoff: FCM's advice, to wait before trying
# again) sends them.
THROTTLED = frozenset({"QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", "HTTP_429", "UNAVAILABLE", "HTTP_503"})
HELD_BACK = "HELD_BACK"  # a send not made: FCM answered other sends of the message `THROTTLED`
# Devices answered `THROTTLED` before the rest of a message's sends are held back. FCM's
# QUOTA_EXCEEDED also says one device is over its own rate: that device alone held back the
# rest of its message at every delivery, as long as it stayed over (its send came first each
# time), everyone else's pushes with it. The project's quota or FCM overloaded answer every
# device so; a few distinct ones tell that from one busy phone.
THROTTLED_DEVICES = 3


class Throttle:
    """The devices of one delivery that FCM answered `THROTTLED` (the sends run in threads)."""

    def __init__(self, devices: int = THROTTLED_DEVICES) -> None:
        self.devices = devices
        self._tokens: set[str] = set()
        self._lock = threading.Lock()

    def note(self, token: str, code: str | None) -> None:
        if code in THROTTLED:
            with self._lock:
                self._tokens.add(token)

    @property
    def holding(self) -> bool:
        """Whether the sends not started are held back: `THROTTLED_DEVICES` answered so."""
        with self._lock:
            return len(self._tokens) >= self.devices


# Sends made at once, per message, as FCM's own sendEach does (the senders' HTTP sessions
# are thread-safe).
WORKERS = 16
SENT_BEFORE = "sent_before"  # finished by an earlier delivery of the message (its retry record)
# {messageId}: {done: [push_id or reached, ...], expiresAt, updatedAt}; backend only. A record
# written before `reached` (push ids only) reads the same.
RETRIES = "pushRetries"
# How late after its publish a delivery may be a retry: Pub/Sub delivers a message again no
# sooner than its subscription's minimum backoff (10 s for the retry policy the functions'
# triggers get), so a delivery younger than this is a first one and reads no record. A first
# delivery that comes later (a backlog) reads it and finds none.
REDELIVERY_AGE = dt.timedelta(seconds=5)
# How long a retry record is kept past its message's publish: the message is retried for
# URGENT_MAX_AGE at most, and Firestore's TTL deletes within a day or so of the time given.
RETRY_RECORD_TTL = URGENT_MAX_AGE + dt.timedelta(hours=1)
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # Pub/Sub's are digits: anything else keeps no record


def settings_path(uid: str) -> str:
    return f"{USERS}/{uid}/{SETTINGS}/{NOTIFICATION_SETTINGS}"


def tokens(found: Doc | None, field: str = DEVICES) -> dict[str, str]:
    """deviceId -> token of each device in a customer's settings document that has one (an
    entry of another shape is skipped: the app writes it, and the rules check each write);
    ``field``: the devices signed in (`DEVICES`) or those of the sessions the bank ended
    (`SIGNED_OUT_DEVICES`)."""
    devices = found.data.get(field) if found is not None else None
    if not isinstance(devices, dict):
        return {}
    return {
        str(device_id): device["token"]
        for device_id, device in devices.items()
        if isinstance(device, dict) and isinstance(device.get("token"), str) and device["token"]
    }


Holders = tuple[tuple[str, str], ...]  # the (field, deviceId) of each device entry holding a token


def targets(found: Doc | None, kind: str) -> list[tuple[str, Holders]]:
    """Each token a push of ``kind`` goes to, once, with every device entry that holds it:
    the devices signed in, and for a security notice those of the sessions the bank ended
    too. Two device ids with one token (an app that registered again under a new id) got
    each push twice, sounding twice (found in review, 2026-12-06). In a fixed order (the
    signed-in devices first, each field's by id), so a token's send is the same each time;
    its holders include the signed-out entries with it for any kind, so that a token FCM
    reports unregistered is removed from every entry that holds it."""
    holders: dict[str, list[tuple[str, str]]] = {}
    sent_to: set[str] = set()
    for field in (DEVICES, SIGNED_OUT_DEVICES):
        for device, token in sorted(tokens(found, field).items()):
            holders.setdefault(token, []).append((field, device))
            if field == DEVICES or kind in ALWAYS_ON:
                sent_to.add(token)
    return [(token, tuple(held)) for token, held in holders.items() if token in sent_to]


def collapse_id(dedupe_key: str) -> str:
    """What a device collapses pushes by: 32 hex characters of the key's SHA-256 (APNs
    allows 64 bytes of collapse id, and a dedupe key names a payment or a customer)."""
    return hashlib.sha256(dedupe_key.encode()).hexdigest()[:32]


def chosen(found: Doc | None) -> dict[str, bool]:
    """A customer's preference per kind: their settings document, else the defaults; the
    security notices always on (`ALWAYS_ON`: no setting mutes them)."""
    data = found.data if found is not None else {}
    return {kind: bool(data.get(kind, default)) for kind, default in DEFAULT_PREFERENCES.items()} | dict.fromkeys(
        ALWAYS_ON, True
    )


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
    queued: dt.datetime | None = None  # when the notifier queued it (None: not known)
    news: bool = False  # droppable when late (`NEWS`: the domain's mark; absent, not news)


def urgent_left(message: object, done: frozenset[str] | set[str] = frozenset()) -> bool:
    """Whether a push of the message not finished before (``done``) is not news: what a
    failure of ours (a read, a bug) keeps the message retried for `URGENT_MAX_AGE` by. A
    push without the mark counts as not news, as `deliver_batch` sends it; a message that
    is not one of the notifier's too (found in review, 2026-12-06: a failure of ours gave
    a security notice up after the hour)."""
    raws = message.get("pushes") if isinstance(message, dict) else None
    if not isinstance(raws, list):
        return True
    for raw in raws:
        key = push_id(raw)
        if key is not None and key in done:
            continue
        if not (isinstance(raw, dict) and raw.get(NEWS) is True):
            return True
    return False


class PushesNotSent(Exception):
    """Some push of the message reached no device (a security notice: not every device)
    because FCM could not take it for now (`TRANSIENT_CODES`): raised after the rest was
    done, so that Pub/Sub delivers the message again (the push function retries).
    ``done``: the `push_id` of each push that was finished (the retry skips them:
    `record_done`), and a `reached` of each device that took a security notice not
    finished (the retry does not send it there again). ``urgent``: a push left unsent is
    not news (retried for `URGENT_MAX_AGE`, not the hour news is)."""

    def __init__(self, outcomes: dict[str, int], done: set[str] | None = None, *, urgent: bool = False) -> None:
        super().__init__(f"pushes not sent for now: {outcomes}")
        self.outcomes = outcomes
        self.done = done or set()
        self.urgent = urgent

    def max_age(self, news_age: dt.timedelta) -> dt.timedelta:
        """How long after its publish the message is retried: ``news_age`` (the function's
        hour), or `URGENT_MAX_AGE` with a push left that is not news."""
        return max(news_age, URGENT_MAX_AGE) if self.urgent else news_age


def push_id(raw: object) -> str | None:
    """What names a queued push within its message: its customer and dedupe key, hashed
    (a retry record holds no payment id or uid). None for a push too malformed to have one."""
    if not isinstance(raw, dict) or not isinstance(raw.get("uid"), str) or not isinstance(raw.get("dedupeKey"), str):
        return None
    return _push_id(raw["uid"], raw["dedupeKey"])


def _push_id(uid: str, dedupe_key: str) -> str:
    return collapse_id(f"{uid}\n{dedupe_key}")


def reached(pid: str, token: str) -> str:
    """What a retry record holds for a push (its `push_id`) that a device took while the
    push is not finished (a security notice goes to every device): the push id and the
    token's hash (a record holds no token), told from a push id by its colon."""
    return f"{pid}:{hashlib.sha256(token.encode()).hexdigest()[:32]}"


def retry_path(message_id: str) -> str | None:
    """The retry record of a Pub/Sub message, or None for an id that cannot name one."""
    return f"{RETRIES}/{message_id}" if isinstance(message_id, str) and _MESSAGE_ID.fullmatch(message_id) else None


def done_before(docs: Documents, message_id: str) -> set[str]:
    """The pushes an earlier delivery of the message finished (`push_id`s), and the devices
    that took a security notice not finished (`reached`), from its record."""
    path = retry_path(message_id)
    found = docs.get(path) if path is not None else None
    done = found.data.get("done") if found is not None else None
    return {d for d in done if isinstance(d, str)} if isinstance(done, list) else set()


def record_done(docs: Documents, message_id: str, done: set[str], *, published: dt.datetime) -> bool:
    """Record the pushes finished so far, for the message's next delivery; False when it
    could not be written (logged: the next delivery then sends them again, as before)."""
    path = retry_path(message_id)
    if path is None:
        return False
    batch = docs.batch()
    batch.set(path, {"done": sorted(done), "expiresAt": published + RETRY_RECORD_TTL, "updatedAt": SERVER_TIME})
    try:
        batch.commit()
    except Exception as exc:  # noqa: BLE001 - the retry still comes: it sends the finished ones again
        log.warning("push retry record not written", extra={"messageId": message_id, "error": repr(exc)})
        return False
    return True


def forget_done(docs: Documents, message_id: str) -> None:
    """The message's record, deleted once nothing of it is left for later (its TTL deletes
    it otherwise)."""
    path = retry_path(message_id)
    if path is None:
        return
    batch = docs.batch()
    batch.delete(path)
    try:
        batch.commit()
    except Exception as exc:  # noqa: BLE001 - the message is done; its TTL deletes the record
        log.info("push retry record left for its TTL", extra={"messageId": message_id, "error": repr(exc)})


def passes(code: str | None) -> bool:
    """Whether a failed send's code says "not now" (`TRANSIENT_CODES`, or a server error)."""
    return code in TRANSIENT_CODES or (code or "").startswith("HTTP_5")


def _item(raw: object) -> Item:
    """A queued push as the notifier wrote it; KeyError/TypeError/ValueError when it is not
    one (its data is checked as FCM takes it here, so one bad push never fails the others)."""
    if not isinstance(raw, dict):
        raise TypeError(f"a push is an object, not {type(raw).__name__}")
    uid, key = raw["uid"], raw["dedupeKey"]
    if not isinstance(key, str) or not key or not isinstance(uid, str) or not uid or "/" in uid:
        raise TypeError("uid and dedupeKey must be non-empty strings (a uid without '/')")  # never a path
    data = raw.get("data") or {}
    if not isinstance(data, dict):
        raise TypeError(f"a push's data is an object, not {type(data).__name__}")
    return Item(
        uid,
        str(raw["kind"]),
        key,
        str(raw["title"]),
        str(raw["body"]),
        normalize_data(data),
        _queued(raw.get(QUEUED_AT)),
        raw.get(NEWS) is True,
    )


def _queued(value: object) -> dt.datetime | None:
    """A push's `QUEUED_AT` as a time, or None for none, one unreadable or one without its
    zone (not the notifier's: it is sent, as a push without one is)."""
    if not isinstance(value, str):
        return None
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.utcoffset() is not None else None


def too_late(item: Item, now: dt.datetime) -> bool:
    """Whether ``item`` is news (the domain marked it so: `NEWS`) queued longer ago than
    `NEWS_MAX_AGE` (a security notice never is, whatever its mark)."""
    return item.news and item.kind not in ALWAYS_ON and item.queued is not None and now - item.queued > NEWS_MAX_AGE


def _to_send(
    raws: list[object], done: frozenset[str] | set[str], count: Callable[[str, int], None]
) -> tuple[list[Item], list[int], set[str]]:
    """The pushes of a message to send now, with their places in it, and the `push_id`s of
    those finished before (``done``) or malformed (logged: a retry would not mend them)."""
    items: list[Item] = []
    places: list[int] = []
    finished: set[str] = set()
    for place, raw in enumerate(raws):
        pid = push_id(raw)
        if pid is not None and pid in done:
            count(SENT_BEFORE, place)
            finished.add(pid)
            continue
        try:
            items.append(_item(raw))
            places.append(place)
        except (KeyError, TypeError, ValueError) as exc:
            log.error("malformed push skipped", extra={"error": repr(exc)})
            count(MALFORMED, place)
            if pid is not None:
                finished.add(pid)
    return items, places, finished


def deliver_batch(
    docs: Documents,
    sender: PushSender,
    message: object,
    *,
    done: frozenset[str] | set[str] = frozenset(),
    statuses: list[str | None] | None = None,
    budget_s: float | None = None,
    now: dt.datetime | None = None,
) -> dict[str, int]:
    """A Pub/Sub message from the notifier: {"pushes": [push, ...]}. Returns how many were
    sent, muted, had no device to go to, or were malformed (logged and skipped: a retry
    would not mend them), and how many an earlier delivery finished (``done``, their
    `push_id`s: skipped). Raises `PushesNotSent` (after removing the unregistered tokens)
    when a push reached no device (a security notice: not every device) for a reason that
    passes. ``statuses``: filled with each push's outcome by its place in the message (the
    push function's span per payment).
    ``budget_s``: no send is started past it (each counts as not sent for now), nor after
    FCM answered `THROTTLED_DEVICES` of the message's devices `THROTTLED` (`HELD_BACK`). News queued
    longer ago than `NEWS_MAX_AGE` before ``now`` (by default the time now) is too late:
    counted, logged and finished, not sent."""
    ends = None if budget_s is None else time.monotonic() + budget_s
    outcomes: dict[str, int] = {}

    def count(status: str, place: int) -> None:
        outcomes[status] = outcomes.get(status, 0) + 1
        if statuses is not None and place < len(statuses):
            statuses[place] = status

    raws = message.get("pushes", []) if isinstance(message, dict) else []
    items, places, finished = _to_send(raws if isinstance(raws, list) else [], done, count)
    items, places = _drop_late(items, places, now or dt.datetime.now(dt.UTC), count, finished)
    items, places = _drop_superseded(docs, items, places, count, finished)
    if not items:
        return outcomes
    found = docs.get_many([settings_path(uid) for uid in dict.fromkeys(item.uid for item in items)])
    unmuted, sends, before = _sends(items, found, done)
    throttled = Throttle()  # the devices FCM answered `THROTTLED`
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="push") as pool:
        results = list(pool.map(lambda s: _send(sender, items[s[0]], s[2], ends, throttled), sends))
    left = _tally(items, places, unmuted, (sends, results), before, count, finished)
    gone: dict[str, set[tuple[str, str]]] = {}
    for (n, held, _token), result in zip(sends, results, strict=True):
        if result.unregistered:  # every entry holding the token
            gone.setdefault(items[n].uid, set()).update(held)
    try:
        removed = _remove(docs, {uid: found.get(settings_path(uid)) for uid in gone}, gone)
    except Exception as exc:  # noqa: BLE001 - the sends are done; the next push to a gone token reports it again
        log.warning("unregistered devices not removed", extra={"error": repr(exc)})
        removed = 0
    held_back = sum(result.code == HELD_BACK for result in results)
    log.info("pushes delivered", extra={"outcomes": outcomes, "removed": removed, "heldBack": held_back})
    if left:
        raise PushesNotSent(outcomes, finished, urgent=any(not items[n].news for n in left))
    return outcomes


Send = tuple[int, Holders, str]  # a push's place among the items, the device entries holding the token, the token


def _sends(
    items: list[Item], found: dict[str, Doc | None], done: frozenset[str] | set[str]
) -> tuple[list[bool], list[Send], set[int]]:
    """Whether each item is wanted (its customer's preference), the sends to make, and the
    items an earlier delivery of the message sent to some token already (`reached`: a
    security notice's send to a token that took it is not made again)."""
    wanted = {uid: chosen(found.get(settings_path(uid))) for uid in {item.uid for item in items}}
    unmuted = [wanted[item.uid].get(item.kind, False) for item in items]
    sends: list[Send] = []
    before: set[int] = set()
    for n, on in enumerate(unmuted):
        if not on:
            continue
        pid = _push_id(items[n].uid, items[n].key)
        for token, held in targets(found.get(settings_path(items[n].uid)), items[n].kind):
            if reached(pid, token) in done:
                before.add(n)
            else:
                sends.append((n, held, token))
    return unmuted, sends, before


def _tally(
    items: list[Item],
    places: list[int],
    unmuted: list[bool],
    answered: tuple[list[Send], list[PushResult]],
    before: set[int],
    count: Callable[[str, int], None],
    finished: set[str],
) -> set[int]:
    """Each item's outcome, counted; the `push_id` of each one finished added to
    ``finished``, and for a security notice not finished, a `reached` of each token that
    took it (its retry sends only to the others). Returns the items not sent for now.

    A push is sent when one of its customer's devices took it, and not sent for now when
    none did and a send failed for a while only (`passes`). A security notice (`ALWAYS_ON`)
    is not sent while any of its sends failed for a while: it is what shows a customer a
    device someone else added, and it counted as sent when only that new device took it,
    the customer's own phone answered UNAVAILABLE, and never got it (found in review,
    2026-12-07)."""
    sends, results = answered
    took = {n for (n, _held, _token), result in zip(sends, results, strict=True) if result.ok} | before
    later = {n for (n, _held, _token), result in zip(sends, results, strict=True) if passes(result.code)}
    left = {n for n in later if n not in took or items[n].kind in ALWAYS_ON}
    for n, on in enumerate(unmuted):
        count(MUTED if not on else NOT_SENT if n in left else SENT if n in took else NO_DEVICES, places[n])
        if n not in left:
            finished.add(_push_id(items[n].uid, items[n].key))
    for (n, _held, token), result in zip(sends, results, strict=True):
        if result.ok and n in left:
            finished.add(reached(_push_id(items[n].uid, items[n].key), token))
    return left


def _drop_late(
    items: list[Item], places: list[int], now: dt.datetime, count: Callable[[str, int], None], finished: set[str]
) -> tuple[list[Item], list[int]]:
    """The pushes not `too_late`, with their places; those too late counted (`TOO_LATE`),
    finished (a retry does not send them either) and logged by kind, with the oldest's age."""
    kept: list[Item] = []
    kept_places: list[int] = []
    late: dict[str, int] = {}
    oldest = dt.timedelta(0)
    for item, place in zip(items, places, strict=True):
        if not too_late(item, now):
            kept.append(item)
            kept_places.append(place)
            continue
        count(TOO_LATE, place)
        finished.add(_push_id(item.uid, item.key))
        late[item.kind] = late.get(item.kind, 0) + 1
        oldest = max(oldest, now - item.queued) if item.queued is not None else oldest
    if late:
        log.warning(
            "late pushes not sent: queued over %s ago (the feed shows them)",
            NEWS_MAX_AGE,
            extra={"kinds": late, "oldestMinutes": int(oldest.total_seconds() // 60)},
        )
    return kept, kept_places


def _drop_superseded(
    docs: Documents, items: list[Item], places: list[int], count: Callable[[str, int], None], finished: set[str]
) -> tuple[list[Item], list[int]]:
    """The pushes that still tell the customer's state, with their places; a "we are
    checking your application" whose customer is decided since is counted (`SUPERSEDED`)
    and finished, not sent. The notifier drops it when it queues it
    (fjordbank.service_layer.notifier.still_current), but one FCM refused for now was sent
    by the message's retries (up to `URGENT_MAX_AGE`) after the decision's "Welcome", and
    stayed on the phone after it (found in review, 2026-12-07). The customers of such
    pushes only are read, in one round trip."""
    paths = {item.uid: f"{CUSTOMERS}/{item.uid}" for item in items if awaits_decision(item)}
    if not paths:
        return items, places
    found = docs.get_many(sorted(set(paths.values())))
    kept: list[Item] = []
    kept_places: list[int] = []
    for item, place in zip(items, places, strict=True):
        doc = found.get(paths[item.uid]) if item.uid in paths else None
        if superseded(item, doc.data.get("status") if doc is not None else None):
            count(SUPERSEDED, place)
            finished.add(_push_id(item.uid, item.key))
            log.info("a review's push not sent: the customer is decided since", extra={"uid": item.uid})
            continue
        kept.append(item)
        kept_places.append(place)
    return kept, kept_places


def _remove(docs: Documents, read: dict[str, Doc | None], gone: dict[str, set[tuple[str, str]]]) -> int:
    """Take the devices FCM reports as unregistered ((field, deviceId)) out of their
    customers' settings documents, a commit per customer, each on the condition that the
    document is still the version read. If the app changed one meanwhile (a device or a
    preference) that customer's devices are left: the next push to that token is answered
    unregistered again and removes it then. In one commit for all, one customer's edit
    during the sends kept the dead tokens of every other customer of the message too
    (found in review, 2026-12-07). Returns how many device entries were removed."""
    removed = 0
    for uid, devices in gone.items():
        doc = read[uid]
        if doc is None:
            continue
        update = {}
        for field in sorted({field for field, _device in devices}):
            held = doc.data.get(field)
            held = held if isinstance(held, dict) else {}
            update[field] = {k: v for k, v in held.items() if (field, k) not in devices}
        batch = docs.batch()
        batch.update(doc.path, update, if_updated=doc.updated)
        try:
            batch.commit()
        except (Stale, NotFound) as exc:
            log.info("unregistered devices left for the next push (the app changed them)", extra={"error": repr(exc)})
            continue
        removed += len(devices)
    return removed


def _send(
    sender: PushSender, item: Item, token: str, ends: float | None = None, throttled: Throttle | None = None
) -> PushResult:
    """One send of ``item`` to ``token``, unless the run's budget is spent (``ends``) or FCM
    answered `THROTTLED_DEVICES` of the message's devices `THROTTLED` (``throttled``, told
    of this one's answer). A send held back is not counted in fjb_push_results: it was not
    made, and the answer that held it back is counted."""
    if ends is not None and time.monotonic() > ends:  # the run's budget spent: the next delivery sends it
        return PushResult(token, ok=False, error="not started: the run's budget was spent", code="DEADLINE_EXCEEDED")
    if throttled is not None and throttled.holding:  # the next delivery sends it
        return PushResult(token, ok=False, error="not started: FCM refused the message's sends for now", code=HELD_BACK)
    try:
        result = sender.send(token, title=item.title, body=item.body, data=item.data, collapse_id=collapse_id(item.key))
    except Exception as exc:  # noqa: BLE001 - not now: the message is delivered again for it
        # a sender error that is no FCM answer (the credentials' token refresh failing, say)
        # escaped the message's delivery whole: nothing recorded, every push of it sent again
        # at each retry and never given up (found in review, 2026-12-06)
        result = PushResult(token, ok=False, error=f"send failed: {type(exc).__name__}", code="TRANSPORT_ERROR")
    log_metrics.push_result(item.kind, result.ok, result.code)  # fjb_push_results (a log-based metric)
    if throttled is not None:
        throttled.note(token, result.code)
    return result
