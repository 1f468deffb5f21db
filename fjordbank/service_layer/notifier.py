"""The notifier's use case: project a batch of payment events onto what the app listens to.

Each payment has one record of the state the notifier projected: the app's request
document where the app made one (its ``projectedStatus``, `fjordbank.domain.feed.PROJECTED`),
else the payment's own view (``paymentViews/{paymentId}``,
only for payments the bank started itself). `fjordbank.domain.feed.project` decides from
those states; one commit writes the records that moved, the accounts' feed entries
(``accounts/{id}/transactions/{paymentId}``) and nothing else, and the pushes are queued
before it. The rules (forward only, a redelivery writes nothing new and pushes nothing
twice) are the domain's; here the documents are read and written.

No transaction: each record is written with a precondition, the version it had when it was
read (``update(..., if_updated=...)``, or a create for a view not made yet), in one batch
commit, so the batch applies whole or not at all. A record another writer moved meanwhile
(the edge's own status write, another instance after a partition moved) fails the commit
(Stale, NotFound, AlreadyExists); the batch is then read and decided again, at most
`ATTEMPTS` times (then `ports.Contention`, and NATS delivers the batch again).

`Known` remembers the version of each record this process last read or wrote. A payment's
later states usually reach the same instance (its partition's), so most records need no
read at all: their version is known, and a wrong guess only costs a failed commit and a
read. A payment the edge published that this process has not seen is not read either when
its state has a feed entry (an internal payment's only state, an external payment's
submitted): its request document is written on the condition that it exists and its feed
entries are created, and a create that fails says it was projected before
(`guessed_version`). Round trips per batch, as the bench counts them (bench/docops.py):
the payees' owners not seen before (`fjordbank.service_layer.owners`), one read of the
records not known or guessed (two
when the batch holds payments the bank started: their views), the labels of the feed
entries that appear now (an entry there already only changes its status, so a payment to
another bank is labelled once, not at each state), then the commit. A batch of payments all
known is one round trip besides the labels.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from fjordbank.adapters.firestore import (
    ACCOUNTS,
    CATEGORY_OVERRIDES,
    CUSTOMERS,
    PAYMENT_VIEWS,
    TRANSACTIONS,
    USERS,
    request_path,
)
from fjordbank.domain import feed
from fjordbank.domain.notifications import ENTRY_STATUS, Push, awaits_decision, superseded
from fjordbank.domain.payments import (
    BANK_REQUEST_PREFIX,
    INCOMING,
    INTERNAL,
    STATUS_RANK,
    PaymentEvent,
    on_request,
    told_owners,
)
from fjordbank.service_layer.owners import Owners
from fjordbank.service_layer.ports import (
    SERVER_TIME,
    AlreadyExists,
    AsyncBatch,
    AsyncDocuments,
    Contention,
    Doc,
    NotFound,
    Stale,
    Written,
)
from fjordbank.service_layer.recent import Attempted, Recent

OPERATION = "notifier_project"  # the name of its commits in the attempt metrics
ATTEMPTS = 5  # commits of one batch before it is given back to NATS
KNOWN = 50_000  # payments whose record's version a process remembers (measured: 14 MB)
NAMES = 50_000  # payers' names a process remembers

# Queues pushes for delivery. Called before the commit, so a push is never lost to a crash
# after it: a push queued by an attempt that then lost is queued again by the next one, and
# shows once on the phone (its collapse id, fjordbank.service_layer.push).
QueuePushes = Callable[[list[Push]], Awaitable[None]]


@dataclass(frozen=True)
class Projected:
    event: PaymentEvent
    changed: bool  # the payment moved to this state now (first time)


@dataclass(frozen=True, slots=True)
class Version:
    """A payment's record as last read or written: which it is (the app's request document,
    or the payment's view), the state it shows (None for none) and its update time (None:
    no view yet). Small: a process keeps `KNOWN` of them."""

    on_request: bool
    status: str | None
    updated: dt.datetime | None
    shows: int = feed.NOT_SHOWN  # a request document's: the rank of the status it shows
    guessed: bool = False  # not read: a new payment's request document (`guessed_version`)


class Known(Recent[str, Version]):
    """The versions of the most recent payments' records (`KNOWN` of them)."""

    def __init__(self, size: int = KNOWN) -> None:
        super().__init__(size)


class Names(Recent[str, str]):
    """Payers' names by uid (`NAMES` of them; "" for a payer with no customer document),
    for the payees' feed entries. A customer's document and name are made once, at the
    application, before the customer has an account to pay from
    (fjordbank.service_layer.onboarding refuses a second), so what was read is read no more
    (a payer with none is an account opened outside onboarding, the demo's employer: it
    never gets one). Until 2026-12-01 every money-in entry read its payer's customer
    document (0.6 of an internal payment's documents)."""

    def __init__(self, size: int = NAMES) -> None:
        super().__init__(size)


async def still_current(docs: AsyncDocuments, pushes: list[Push]) -> list[bool]:
    """Whether each push still tells the customer's state (`superseded`): the customers of
    the onboarding pushes that may be out of date are read, in one round trip, the others
    never (a decision's push, a device's, a card's are kept unread)."""
    paths = {p.uid: f"{CUSTOMERS}/{p.uid}" for p in pushes if awaits_decision(p)}
    if not paths:
        return [True] * len(pushes)
    found = await docs.get_many(sorted(paths.values()))
    status = {
        uid: (doc.data.get("status") if doc is not None else None)
        for uid, doc in ((u, found.get(path)) for u, path in paths.items())
    }
    return [not superseded(p, status.get(p.uid)) for p in pushes]


def view_path(payment_id: str) -> str:
    return f"{PAYMENT_VIEWS}/{payment_id}"


def entry_path(account: str, payment_id: str) -> str:
    return f"{ACCOUNTS}/{account}/{TRANSACTIONS}/{payment_id}"


def override_path(uid: str, key: str) -> str:
    return f"{USERS}/{uid}/{CATEGORY_OVERRIDES}/{key}"


async def project_batch(
    docs: AsyncDocuments,
    owners: Owners,
    queue_pushes: QueuePushes,
    events: list[PaymentEvent],
    *,
    known: Known | None = None,
    names: Names | None = None,
    attempted: Attempted | None = None,
) -> list[Projected]:
    """Project ``events`` in order: one `Projected` per event (see the module docstring).
    ``known``, ``names``: the process's versions and payers' names (a fresh one remembers
    nothing)."""
    payees = await owners.of(
        sorted({e.payment.to_account for e in events if e.payment.kind == INTERNAL}), told=told_owners(events)
    )
    known = known if known is not None else Known()
    payment_ids = list(dict.fromkeys(e.payment.payment_id for e in events))
    error: BaseException | None = None
    labels: feed.Labels | None = None
    labelled: set[str] = set()  # the payments whose new entries ``labels`` labels
    for attempt in range(1, ATTEMPTS + 1):
        versions = await _versions(docs, events, known, guess=attempt == 1)
        booking = [e for e in events if feed.books_entry(e, versions[e.payment.payment_id].status)]
        if labels is None or not {e.payment.payment_id for e in booking} <= labelled:
            labels = await read_labels(docs, booking, payees, names)
            labelled = {e.payment.payment_id for e in booking}
        projection = feed.project(
            events,
            views={pid: {"status": v.status} for pid, v in versions.items()},
            requests=_requests(events, versions),
            labels=labels,
        )
        if projection.pushes:
            await queue_pushes(projection.pushes)
        try:
            written = await _commit(docs, events, projection, versions)
        except (Stale, NotFound, AlreadyExists) as exc:  # a record moved since it was read
            known.forget(payment_ids)
            error = exc
            continue
        _remember(known, events, versions, projection, written)
        if attempted is not None:
            attempted(attempt, None)
        return [Projected(e, changed) for e, changed in zip(events, projection.changed, strict=True)]
    gave_up = Contention(f"the notifier's records kept moving ({ATTEMPTS} commits): {error}")
    if attempted is not None:
        attempted(ATTEMPTS, gave_up)
    raise gave_up from error


def _requests(events: list[PaymentEvent], versions: Mapping[str, Version]) -> dict[tuple[str, str], int]:
    """(uid, requestId) -> the rank its status shows, of the payments whose record is the
    app's request document."""
    return {
        (e.payment.uid, e.payment.request_id): version.shows
        for e in events
        if (version := versions[e.payment.payment_id]).on_request
    }


async def read_labels(
    docs: AsyncDocuments, events: list[PaymentEvent], owners: Mapping[str, str | None], names: Names | None = None
) -> feed.Labels:
    """What the feed entries ``events`` make appear are labelled with (an entry there
    already is not labelled again), read in one call outside the unit of work: the payers'
    own categories for their payees and the payers' names. Read inside, the same override
    documents were locked by two partitions' projections in opposite order whenever two
    customers paid each other (each payer's choice, then the other's as payee): a deadlock
    the emulator broke only by timing both out, again and again (up to a minute for the
    pair). The payers' names known to ``names`` are not read."""
    overrides, payers = _label_paths(events, owners)
    remembered = {uid: name for uid in payers.values() if names is not None and (name := names.get(uid)) is not None}
    unknown = {path: uid for path, uid in payers.items() if uid not in remembered}
    found = await docs.get_many(list({**overrides, **unknown})) if overrides or unknown else {}
    read = _payer_names(found, unknown)
    if names is not None:
        for uid, name in read.items():
            names.put(uid, name or "")
    known = {uid: name or None for uid, name in remembered.items()}
    return feed.Labels(owners, _overrides(found, overrides), {**known, **read})


def _label_paths(
    events: list[PaymentEvent], owners: Mapping[str, str | None]
) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """The override documents to read (path -> (uid, key)) and the payers' customer
    documents (path -> uid). Only states that write a feed entry are labelled."""
    entries = [e for e in events if feed.has_entry(e)]
    received = [(payee, e) for e in entries if (payee := owners.get(e.payment.to_account)) and e.status == "completed"]
    # The payer's own category for the payee, except between own accounts ("transfers");
    # money in is always "income" (fjordbank.domain.categories): the payee's is never read.
    chosen = [
        (e.payment.uid, f"a:{e.payment.to_account}")
        for e in entries
        if e.payment.kind != INCOMING and owners.get(e.payment.to_account) != e.payment.uid
    ]
    overrides = {override_path(uid, key): (uid, key) for uid, key in chosen}
    names = {f"{CUSTOMERS}/{e.payment.uid}": e.payment.uid for _, e in received}
    return overrides, names


def _overrides(found: Mapping[str, Doc | None], paths: Mapping[str, tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(uid, key) -> the customer's own category, where one is chosen."""
    chosen: dict[tuple[str, str], str] = {}
    for path, uid_key in paths.items():
        doc = found.get(path)
        if doc is not None and doc.data.get("category"):
            chosen[uid_key] = doc.data["category"]
    return chosen


def _payer_names(found: Mapping[str, Doc | None], paths: Mapping[str, str]) -> dict[str, str | None]:
    names: dict[str, str | None] = {}
    for path, uid in paths.items():
        doc = found.get(path)
        names[uid] = doc.data.get("name") if doc is not None else None
    return names


def guessed_version(event: PaymentEvent) -> Version | None:
    """The record of a payment this process has not seen, not read: its request document as
    the edge left it, for a payment the edge published (`fjordbank.domain.payments.on_request`)
    in a state with a feed entry (`fjordbank.domain.notifications.ENTRY_STATUS`: submitted,
    completed, failed; every state the notifier shows but screening's rejected). Every such
    state makes the payer's entry appear, so the entries are created (`_commit`), and the
    creates are the guard: if any state of the payment was projected before (a redelivery,
    or a later state after a restart or a partition moved), its entry is there, the commit
    fails, and the batch is read and decided again. Otherwise nothing was projected, and the
    document is updated on the condition that it exists. The edge's own status write, if it
    lands after this one, moves the document only forward
    (fjordbank.service_layer.request_status). None: read it. An internal payment's one
    state and an external payment's submitted need no read this way."""
    if on_request(event) and event.status in ENTRY_STATUS:
        return Version(True, None, None, feed.NOT_SHOWN, guessed=True)
    if event.payment.kind == INCOMING and event.status == "completed":
        # a payment from another bank: no request document, and its one state creates its
        # view and the payee's entry, which a redelivery fails as above
        return Version(False, None, None, feed.NOT_SHOWN, guessed=True)
    return None


async def _versions(
    docs: AsyncDocuments, events: list[PaymentEvent], known: Known, *, guess: bool
) -> dict[str, Version]:
    """Each payment's record: known, else guessed (with ``guess``: `guessed_version`), else
    read (the request documents in one read; the views of the payments without one in a
    second)."""
    versions: dict[str, Version] = {}
    unknown: dict[str, PaymentEvent] = {}
    for e in events:
        pid = e.payment.payment_id
        if pid not in versions and pid not in unknown:
            if (version := known.get(pid)) is not None:
                versions[pid] = version
            elif guess and (guessed := guessed_version(e)) is not None:
                versions[pid] = guessed
            else:
                unknown[pid] = e
    if not unknown:
        return versions
    # a payment the bank started (a standing order's) has no request document: one there
    # under its id is none of the bank's (an app that made it first, found in review,
    # 2026-12-06: the rules took the id, and the payment's view was never made)
    requests = {
        pid: request_path(e.payment.uid, e.payment.request_id)
        for pid, e in unknown.items()
        if not e.payment.request_id.startswith(BANK_REQUEST_PREFIX)
    }
    found = await docs.get_many(list(requests.values())) if requests else {}
    for pid, path in requests.items():
        if (doc := found.get(path)) is not None:
            versions[pid] = _version(doc, on_request=True)
    without = {pid: view_path(pid) for pid in unknown if pid not in versions}
    if without:
        views = await docs.get_many(list(without.values()))
        for pid, path in without.items():
            doc = views.get(path)
            versions[pid] = _version(doc, on_request=False) if doc is not None else Version(False, None, None)
    return versions


def _version(doc: Doc, *, on_request: bool) -> Version:
    """The notifier's record in ``doc``: a request document's `feed.PROJECTED` (and the rank
    of the status it shows), a view's status."""
    status = doc.data.get(feed.PROJECTED if on_request else "status")
    shown = doc.data.get("status")
    shows = STATUS_RANK.get(shown, feed.NOT_SHOWN) if isinstance(shown, str) and on_request else feed.NOT_SHOWN
    return Version(on_request, status if isinstance(status, str) else None, doc.updated, shows)


async def _commit(
    docs: AsyncDocuments, events: list[PaymentEvent], projection: feed.Projection, versions: Mapping[str, Version]
) -> dict[str, Written]:
    """One commit of what the projection changed: each record that moved, on the condition
    that it is still the version read, and the feed entries. Returns what each record's
    write left, by payment id (nothing is committed when nothing moved)."""
    batch = docs.batch()
    records: list[str] = []  # payment ids, in the order their records are written
    for pid, e in {e.payment.payment_id: e for e in events}.items():
        if pid in projection.shown:
            _write_record(batch, projection, e, versions[pid])
            records.append(pid)
    for (account, payment_id), entry in projection.entries.items():
        booked = {"bookedAt": SERVER_TIME} if entry.booked else {}
        fields = {**entry.fields, **booked, "updatedAt": SERVER_TIME}
        if versions[payment_id].guessed:  # a redelivery fails this create: the batch is read
            batch.create(entry_path(account, payment_id), fields)
        else:
            batch.set(entry_path(account, payment_id), fields, merge=True)
    if not records:
        return {}
    written = await batch.commit()
    return dict(zip(records, written, strict=False))  # the records come first


def _write_record(batch: AsyncBatch, projection: feed.Projection, event: PaymentEvent, version: Version) -> None:
    """The record's write: the request document's fields and timeline, or the view."""
    p = event.payment
    request = projection.requests.get((p.uid, p.request_id))
    if request is not None:
        passed = {f"timeline.{status}": at for status, at in request.passed.items()}
        timeline = {**passed, **{f"timeline.{status}": SERVER_TIME for status in request.timeline}}
        fields = {**request.fields, **timeline, "updatedAt": SERVER_TIME}
        batch.update(request_path(p.uid, p.request_id), fields, if_updated=version.updated)
    elif version.updated is None:
        batch.create(view_path(p.payment_id), projection.views[p.payment_id])
    else:
        batch.update(view_path(p.payment_id), projection.views[p.payment_id], if_updated=version.updated)


def _remember(
    known: Known,
    events: list[PaymentEvent],
    versions: Mapping[str, Version],
    projection: feed.Projection,
    written: Mapping[str, Written],
) -> None:
    """Each record's version now: the one read, or the one this commit left."""
    requests = {e.payment.payment_id: (e.payment.uid, e.payment.request_id) for e in events}
    for pid, version in versions.items():
        done = written.get(pid)
        if done is None:
            if not version.guessed:
                known.put(pid, version)
        elif done.updated is not None:
            request = projection.requests.get(requests[pid])
            shows = request.rank if request is not None else version.shows
            known.put(pid, Version(version.on_request, projection.shown[pid]["status"], done.updated, shows))
