"""The transactional outbox: an event is committed with the change it announces.

A use case stages its events in ``outbox/{msgId}`` inside the Firestore transaction that
makes the change, then publishes them after the commit and deletes the outbox documents
(the callables with `deliver`). If NATS is away the change still stands and its events
wait in the outbox, where the ``relay-outbox`` scheduled job publishes them.

Each outbox is relayed by the identity allowed to publish its subjects: ``outbox`` by the
functions (the edge's NATS user), ``cardOutbox`` (`CARD_OUTBOX`) by the card service, whose
decisions' events (cards.authorized, captured, ...) no other identity may publish
(fjordbank.topology.IDENTITIES); it stages and delivers them with `deliver_async` and
relays them itself (`relay_async`). The message id is the JetStream dedupe key
and consumers are idempotent, so publishing one twice (a crash between publish and
delete) is harmless.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from fjordbank.errors import PublishError
from fjordbank.service_layer.ports import (
    AsyncDocuments,
    AsyncPublisher,
    Clock,
    Doc,
    Documents,
    OrderBy,
    Publisher,
    Where,
    Writes,
    system_clock,
)

log = logging.getLogger(__name__)
OUTBOX = "outbox"
CARD_OUTBOX = "cardOutbox"
# Publishes that fail one after the other before the rest are left for the relay (one event
# that can never be published does not hold up the others; NATS away costs three timeouts).
# In a relay run, only a family's first failure in the run counts (`_Delivery.failed`).
MAX_FAILED_IN_A_ROW = 3
# How long one relay run goes on taking pages (the relay-outbox job every 5 minutes, the card
# service every 30 s): a backlog NATS left behind drains in a run or two.
RELAY_BUDGET_SECONDS = 20.0
# An event the relay could not publish is tried again after a back-off of its own, doubled
# at each failure up to the longest, and after the events the relay never tried (`relay`'s
# first pass; `_staged` within a page): the relay stops after MAX_FAILED_IN_A_ROW failures,
# so events that can never be published (a subject no stream or permission takes any more
# after a deploy) taken oldest first held up every later event for good. A subject family
# that failed twice is not tried again in the run (`RelayRun`): such a subject costs two
# publishes' timeouts a run, however many of its events wait, and one blip holds up nothing.
# Noted on the event's document (`FAILURES`, `RETRY_AT`); NATS away for a while delays only
# the few events each run tried meanwhile, by at most the longest back-off.
RETRY_FIRST_SECONDS = 60
RETRY_LONGEST_SECONDS = 900
FAILURES, RETRY_AT = "failures", "retryAt"


@dataclass(frozen=True)
class Event:
    subject: str
    body: dict[str, Any]
    msg_id: str
    failures: int = 0  # the relay's failed publishes of it so far (its back-off)


def retry_after(failures: int) -> dt.timedelta:
    """How long the relay leaves an event it failed to publish ``failures`` times."""
    return dt.timedelta(seconds=min(RETRY_FIRST_SECONDS * 2 ** min(failures - 1, 16), RETRY_LONGEST_SECONDS))


def kind_of(subject: str) -> str:
    """An outbox document's kind: its subject's first token (customers, cards, payments),
    which the ops sweep counts the backlog by (fjb_outbox_pending{kind})."""
    return subject.split(".", 1)[0]


def path_of(msg_id: str, collection: str = OUTBOX) -> str:
    return f"{collection}/{msg_id}"


def stage(uow: Writes, event: Event, *, clock: Clock = system_clock, collection: str = OUTBOX) -> None:
    """Write the event in the caller's unit of work (after its reads)."""
    uow.set(
        path_of(event.msg_id, collection),
        {
            "subject": event.subject,
            "kind": kind_of(event.subject),
            "body": event.body,
            "stagedAt": clock(),
            FAILURES: 0,  # the relay's first pass takes the events it never tried (`relay`)
        },
    )


def family(subject: str) -> str:
    """The events' subject without its partition (payments.requested.3 -> payments.requested):
    a subject no stream takes any more is all of its partitions."""
    head, _, last = subject.rpartition(".")
    return head if head and last.isdigit() else subject


FAMILY_FAILURES = 2  # failures of a subject family in a relay run before the rest of it waits


@dataclass
class RelayRun:
    """One relay run's bookkeeping across its pages and passes: how often each subject
    family failed in it (from `FAMILY_FAILURES` on, the rest of the family is not tried again
    in the run: a subject no stream takes after a deploy costs two publishes' timeouts a
    run, however many of its events wait, where one failure, a blip, holds up nothing), the
    failures in a row, and whether NATS looked away (`MAX_FAILED_IN_A_ROW` in a row, across
    pages: the run ends)."""

    failures: dict[str, int] = field(default_factory=dict)
    in_a_row: int = 0
    away: bool = False
    until: float = math.inf  # time.monotonic() at which the run's budget is spent

    def out_of_time(self) -> bool:
        """The budget spent, once a publish failed in the run: a failure is what takes
        time (its timeout), and a page that goes through is published whole."""
        return bool(self.failures) and time.monotonic() >= self.until

    def skips(self, event: Event) -> bool:
        return self.failures.get(family(event.subject), 0) >= FAMILY_FAILURES


class _Delivery:
    """One delivery's bookkeeping, the same for both flavours: what was published, and
    whether NATS looks away (three failed publishes in a row)."""

    def __init__(self, events: list[Event], relay: RelayRun | None = None) -> None:
        self.events = events
        self.skipping = relay is not None  # a use case's own delivery tries each event
        self.relay = relay if relay is not None else RelayRun()  # (a use case's: this delivery's)
        self.published = 0

    def skips(self, event: Event) -> bool:
        """Left untried: its family failed often enough earlier in this relay run."""
        return self.skipping and self.relay.skips(event)

    def failed(self, n: int, event: Event) -> bool:
        """A publish failed: True when the rest are left for the relay.

        In a relay run only a family's first failure in the run counts toward NATS away: two
        families that can never be published (subjects no stream or permission takes after a
        deploy) made three failures in a row of their own (one, one again, the other), every
        run ended after them, a healthy event behind 300 of theirs waited 100 runs, and one
        behind a page of them that had failed before was never published (found in review,
        2026-12-07). NATS away still ends a run after three families' first failures (five
        timeouts at most, the two of a family held after `FAMILY_FAILURES` between them), and
        the run's budget is checked before each publish (`RelayRun.until`). A use case's own
        delivery tries every event, and each failure counts."""
        log.warning("event left in the outbox", extra={"subject": event.subject, "msg_id": event.msg_id})
        name = family(event.subject)
        first_of_family = name not in self.relay.failures
        self.relay.failures[name] = self.relay.failures.get(name, 0) + 1
        if self.skipping and not first_of_family:
            return False
        self.relay.in_a_row += 1
        if self.relay.in_a_row < MAX_FAILED_IN_A_ROW:
            return False
        left = len(self.events) - n - 1
        log.warning("NATS does not take events: the rest wait in the outbox", extra={"left": left})
        self.relay.away = True
        return True  # NATS is away: each try waits for its timeout

    def done(self) -> None:
        self.published += 1
        self.relay.in_a_row = 0


def deliver(
    docs: Documents,
    publisher: Publisher,
    events: list[Event],
    *,
    collection: str = OUTBOX,
    failed: list[Event] | None = None,
    relay: RelayRun | None = None,
) -> int:
    """Publish committed events; each one published is removed from the outbox. Returns
    how many were published (the rest wait for the relay; ``failed``, when given, gets the
    events whose publish failed; ``relay``: the relay run's, across its pages). Neither a failed publish nor a
    failed removal is raised: the change they announce is committed, and a caller told
    otherwise would make it again (an event whose
    outbox document could not be removed is published once more by the relay, under the
    same message id, which the consumers answer as a repeat)."""
    run = _Delivery(events, relay)
    for n, event in enumerate(events):
        if run.skips(event):
            continue
        if run.relay.out_of_time():  # a relay run's budget spent: the rest wait for the next run
            break
        try:
            publisher.publish_json(event.subject, event.body, msg_id=event.msg_id)
        except PublishError:
            if failed is not None:
                failed.append(event)
            if run.failed(n, event):
                break
            continue
        run.done()
        try:
            removal = docs.batch()
            removal.delete(path_of(event.msg_id, collection))
            removal.commit()
        except Exception:
            log.exception("published event left in the outbox", extra={"msg_id": event.msg_id})
    return run.published


async def deliver_async(
    docs: AsyncDocuments,
    publisher: AsyncPublisher,
    events: list[Event],
    *,
    collection: str = OUTBOX,
    failed: list[Event] | None = None,
    relay: RelayRun | None = None,
) -> int:
    """`deliver`, asynchronous flavour (the consumer services: the card service's decisions)."""
    run = _Delivery(events, relay)
    for n, event in enumerate(events):
        if run.skips(event):
            continue
        if run.relay.out_of_time():
            break
        try:
            await publisher.publish_json(event.subject, event.body, msg_id=event.msg_id)
        except PublishError:
            if failed is not None:
                failed.append(event)
            if run.failed(n, event):
                break
            continue
        run.done()
        try:
            removal = docs.batch()
            removal.delete(path_of(event.msg_id, collection))
            await removal.commit()
        except Exception:
            log.exception("published event left in the outbox", extra={"msg_id": event.msg_id})
    return run.published


def _staged(found: list[Doc], collection: str, now: dt.datetime) -> list[Event]:
    """The events of ``found`` due for a try (not in a back-off, `retry_after`), the ones the
    relay never tried first, then by how often they failed (oldest first within each); one
    of another shape (no subject or body) is logged and left where it is (it can never be
    published: the backlog alert shows it, an operator removes it).

    Oldest first alone, the events that can never be published came first whenever their
    back-offs fell due together: nine of them made three due at the front of every
    five-minute run, the run stopped after their three failures in a row ("NATS away"), and
    no later event was published again (found in review, 2026-12-06)."""
    events = []
    for d in found:
        subject, body = d.data.get("subject"), d.data.get("body")
        if not (isinstance(subject, str) and subject and isinstance(body, dict)):
            log.error("malformed outbox document left in place", extra={"outbox": collection, "msg_id": d.id})
            continue
        retry_at, failures = d.data.get(RETRY_AT), d.data.get(FAILURES)
        if isinstance(retry_at, dt.datetime) and retry_at > now:
            continue
        events.append(Event(subject, body, d.id, failures if type(failures) is int and failures > 0 else 0))
    return sorted(events, key=lambda e: e.failures)  # (stable: oldest first within each)


def _backed_off(event: Event, now: dt.datetime) -> dict[str, Any]:
    """The fields that put an event the relay failed to publish in its back-off."""
    failures = event.failures + 1
    return {FAILURES: failures, RETRY_AT: now + retry_after(failures)}


def _note_failed(docs: Documents, events: list[Event], collection: str, now: dt.datetime) -> None:
    """Put the events the relay failed to publish in their back-off, each in a write of its
    own (one whose document is gone, published by another run meanwhile, must not stop the
    others'); a note that fails only means its event is tried again at the next run."""
    for event in events:
        note = docs.batch()
        note.update(path_of(event.msg_id, collection), _backed_off(event, now))
        try:
            note.commit()
        except Exception:
            log.warning("failed publish not noted", extra={"outbox": collection, "msg_id": event.msg_id}, exc_info=True)


async def _note_failed_async(docs: AsyncDocuments, events: list[Event], collection: str, now: dt.datetime) -> None:
    """`_note_failed`, asynchronous flavour."""
    for event in events:
        note = docs.batch()
        note.update(path_of(event.msg_id, collection), _backed_off(event, now))
        try:
            await note.commit()
        except Exception:
            log.warning("failed publish not noted", extra={"outbox": collection, "msg_id": event.msg_id}, exc_info=True)


def _page(cutoff: dt.datetime, limit: int, *, fresh: bool) -> dict[str, Any]:
    """The query of one page of staged events, oldest first: ``fresh``, those the relay
    never tried (firestore.indexes.json: failures, stagedAt), else all of them (those that
    failed before, and those staged before the field was written, 2026-12-06)."""
    where = [Where("stagedAt", "<=", cutoff)]
    return {
        "where": [Where(FAILURES, "==", 0), *where] if fresh else where,
        "order_by": [OrderBy("stagedAt")],
        "limit": limit,
    }


def _go_on(full: bool, relay: RelayRun, started: float, budget: float) -> bool:
    """Another page: this one was ``full``, NATS did not look away, and time is left. (The
    next is read after this one's last document, `_after`.)"""
    return full and not relay.away and time.monotonic() - started < budget


def _after(found: list[Doc]) -> Doc:
    """Where a pass's next page starts: after the last document of this one (a cursor, by
    its stagedAt as read and its path), so the pass reads each of its documents once and
    gets past those it leaves in place, however many.

    The next page was read from the oldest again, with room for what the pages before left
    in place (malformed, in their back-off, or of a family held in the run), up to four
    pages of them: a subject no stream takes any more piles up events never tried (each
    run tries two, then holds the family and leaves the rest untried, at the front of the
    first pass), and once four pages of them came first neither pass got past them: an
    event staged behind 300 of them (pages of 20) was first published at the 101st run,
    8.4 hours later, behind 2,500 with pages of 500 days later (found in review,
    2026-12-07). Nothing is written to get past them (marked held, a blip's two failures
    would write every event of its family, `FAMILY_FAILURES`); a run reads each waiting
    document once per pass (before, up to five times), within its budget."""
    return found[-1]


def _relayed(collection: str, pending: int, published: int) -> dict[str, int]:
    counts = {"pending": pending, "published": published}
    log.info("outbox relayed", extra={**counts, "outbox": collection})
    return counts


def relay(
    docs: Documents,
    publisher: Publisher,
    *,
    min_age_seconds: float = 10,
    limit: int = 500,
    budget: float = RELAY_BUDGET_SECONDS,
    clock: Clock = system_clock,
    collection: str = OUTBOX,
) -> dict[str, int]:
    """Publish events whose first publish failed (older than ``min_age_seconds``, so the
    job does not race a use case that is about to publish its own), a page of ``limit`` at
    a time, each after the one before (`_after`), while the pages come full and NATS takes
    events, for at most ``budget`` seconds (a
    backlog NATS left behind drains in one run, not 500 a run): first the events the relay
    never tried, oldest first; then, unless NATS looked away, the rest, oldest first.
    Oldest first alone, a page of events that can never be published (a subject no stream
    takes any more after a deploy), at the front of every run, stopped every run after three
    of them, and no event staged later was published again (found in review, 2026-12-06)."""
    now = clock()
    cutoff = now - dt.timedelta(seconds=min_age_seconds)
    started = time.monotonic()
    published, run = 0, RelayRun(until=started + budget)
    seen: set[str] = set()  # the documents read (pending: both passes may read one)
    for fresh in (True, False):
        after: Doc | None = None  # the pass starts at the oldest
        while True:
            found = docs.query(collection, **_page(cutoff, limit, fresh=fresh), start_after=after)
            events = _staged(found, collection, now)
            failed: list[Event] = []
            done = deliver(docs, publisher, events, collection=collection, failed=failed, relay=run)
            _note_failed(docs, failed, collection, now)
            seen, published = seen | {d.id for d in found}, published + done
            if not _go_on(len(found) == limit, run, started, budget):
                break
            after = _after(found)
        if run.away or time.monotonic() - started >= budget:
            break
    return _relayed(collection, len(seen), published)


async def relay_async(
    docs: AsyncDocuments,
    publisher: AsyncPublisher,
    *,
    collection: str,
    min_age_seconds: float = 10,
    limit: int = 500,
    budget: float = RELAY_BUDGET_SECONDS,
    clock: Clock = system_clock,
) -> dict[str, int]:
    """`relay`, asynchronous flavour (the card service relays ``cardOutbox``)."""
    now = clock()
    cutoff = now - dt.timedelta(seconds=min_age_seconds)
    started = time.monotonic()
    published, run = 0, RelayRun(until=started + budget)
    seen: set[str] = set()  # the documents read (pending: both passes may read one)
    for fresh in (True, False):
        after: Doc | None = None  # the pass starts at the oldest
        while True:
            found = await docs.query(collection, **_page(cutoff, limit, fresh=fresh), start_after=after)
            events = _staged(found, collection, now)
            failed: list[Event] = []
            done = await deliver_async(docs, publisher, events, collection=collection, failed=failed, relay=run)
            await _note_failed_async(docs, failed, collection, now)
            seen, published = seen | {d.id for d in found}, published + done
            if not _go_on(len(found) == limit, run, started, budget):
                break
            after = _after(found)
        if run.away or time.monotonic() - started >= budget:
            break
    return _relayed(collection, len(seen), published)
