"""Data migrations: a change to documents already written that a newer version of the code
relies on. Each is idempotent (running it again, or two at once, changes nothing more),
works one document at a time (no unit of work larger than a customer's merchant), and is
recorded when done in ``ops/migrations`` (``{name: {"doneAt", "documents"}}``), which the
code that relies on it reads (`Done`) before it stops doing what the migration made
unnecessary. Until then that code works as before, so a version may be deployed long
before its migration runs. Not the other way round: a migration runs once nothing writes
the old shape any more (the version's functions deployed), or what an older writer wrote
after the migration would be missed (for `ECONOMY_CHOICES`: a choice the old recategorise
callable kept on its override document only).

Run by ``bankctl migrate`` (a deployment runs it once the functions of the version are
deployed: README.md, "Deploying") and by the local stack's ``up`` (a stack brought back
from its export holds documents written by older code).

`ECONOMY_CHOICES` (2026-12-02). Since the recategorise callable writes the customer's
category for a merchant on the merchant's history as well as on the override document
(`fjordbank.domain.economy_booking.CHOSEN`, making the history if there is none), only a
choice made before then (or by the previous callable while a deploy brought up the new
insights service first, which wrote None on the history) is not on a history. This
migration puts each such choice on its history; once it is done, a merchant with no
history, or with a history that does not say a category (none, or None), has none chosen,
and the insights service reads no override document at all (about one read per first
payment to a payee).

`SUBSCRIPTION_LAPSES` (2026-12-07). A subscription's document says the last day a charge
could still continue it (``lapsesAfter``, fjordbank.domain.subscriptions), after which the
app shows it ended and leaves it out of the month's total. The insights service writes it
whenever a merchant's charge comes; a subscription that ended before then gets no charge to
write it, and stayed counted for ever (found in review, 2026-12-07). This migration gives
each subscription without one the day its interval and last charge say. Nothing relies on
it being done: a document without the day is counted, as before.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from fjordbank.adapters.firestore import MERCHANT_HISTORY, OPS, USERS
from fjordbank.domain import subscriptions
from fjordbank.domain.economy_booking import CHOSEN
from fjordbank.service_layer.ports import AsyncDocuments, Doc, Documents, UnitOfWork

log = logging.getLogger(__name__)

MIGRATIONS = f"{OPS}/migrations"
ECONOMY_CHOICES = "economyChoices"
SUBSCRIPTION_LAPSES = "subscriptionLapses"
RECHECK_SECONDS = 60.0  # how often `Done` reads again while a migration is not done


def done_in(record: Doc | None, name: str) -> bool:
    """Whether ``ops/migrations`` (``record``) says ``name`` is done."""
    entry = (record.data if record is not None else {}).get(name)
    return isinstance(entry, dict) and entry.get("doneAt") is not None


def recorded(record: Doc | None, name: str, now: dt.datetime, written: int) -> dict[str, object]:
    """What ``ops/migrations`` keeps of ``name`` after a run that wrote ``written``: when it
    was first done and all it wrote; a run again (``--force``) adds ``lastRunAt`` and its
    documents, and no longer overwrites when the migration was done with the later run's
    time and its nothing written (found in review, 2026-12-06)."""
    entry = (record.data if record is not None else {}).get(name)
    if not isinstance(entry, dict) or entry.get("doneAt") is None:
        return {"doneAt": now, "documents": written}
    return {**entry, "documents": int(entry.get("documents") or 0) + written, "lastRunAt": now}


def to_run(docs: Documents, name: str, *, force: bool = False) -> bool:
    """Whether migration ``name`` is to be run: not done yet, or asked for again. Each run
    streamed every document it looks at (every deploy's and every local ``up``'s), though
    once done nothing writes the old shape any more (found in review, 2026-12-06)."""
    return force or not done_in(docs.get(MIGRATIONS), name)


def carry_choice(docs: Documents, override: Doc) -> bool:
    """Put one override's category on its merchant's history (made if there is none), in
    one transaction that reads both: a history that already says that category (the
    callable wrote both, or this ran before) is left as it is. Whether it wrote.

    The override wins where the two differ: the callable writes both in one transaction,
    and the insights service writes on a history only the choice it read (the history's,
    or the override's), so they differ only when the previous callable changed a choice
    on the override alone after the new insights service had carried the earlier one to
    the history, during a deploy; the migration kept that earlier one for good (found in
    review, 2026-12-07).

    A history whose ``CHOSEN`` is None says none (a choice is never taken back, so None is
    never one made): a deploy brings up the insights service before the recategorise
    callable; the new service wrote None on a merchant's history while the previous
    callable kept a choice made meanwhile on the override only, and the migration, taking
    None for a category said, left that choice off the history for good (found in review,
    2026-12-07)."""
    parts = override.path.split("/")  # users/{uid}/categoryOverrides/{key}
    if len(parts) != 4 or parts[0] != USERS:
        return False  # not a customer's (a collection of that name elsewhere)
    uid, key = parts[1], parts[3]
    history_path = f"{USERS}/{uid}/{MERCHANT_HISTORY}/{key}"

    def run(uow: UnitOfWork) -> bool:
        found = uow.get_many([override.path, history_path])
        now, history = found[override.path], found[history_path]
        category = (now.data if now is not None else {}).get("category")
        if not isinstance(category, str) or (history is not None and history.data.get(CHOSEN) == category):
            return False
        if history is None:  # as the callable makes it: its charges are still to come
            uow.set(history_path, {"key": key, "charges": [], CHOSEN: category})
        else:
            uow.update(history_path, {CHOSEN: category})
        return True

    return docs.transact(run, operation="migrate_economy_choice")


def economy_choices(
    docs: Documents,
    overrides: Iterable[Doc],
    *,
    now: dt.datetime,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> int:
    """`ECONOMY_CHOICES` over ``overrides`` (every ``categoryOverrides`` document, streamed
    by the caller): `each` of them `carry_choice`. The number of histories written."""
    return each(docs, ECONOMY_CHOICES, overrides, carry_choice, now=now, progress=progress, workers=workers)


def give_lapse(docs: Documents, subscription: Doc) -> bool:
    """Give one subscription's document the last day a charge could still continue it, in a
    transaction that reads it again: one that has it (the insights service wrote it since,
    or this ran before), or whose interval or last charge cannot be read, is left as it is.
    Whether it wrote."""
    parts = subscription.path.split("/")  # users/{uid}/subscriptions/{key}
    if len(parts) != 4 or parts[0] != USERS:
        return False  # not a customer's (a collection of that name elsewhere)

    def run(uow: UnitOfWork) -> bool:
        found = uow.get_many([subscription.path])[subscription.path]
        data = found.data if found is not None else None
        if data is None or "lapsesAfter" in data:
            return False
        interval, last = data.get("interval"), data.get("lastDate")
        try:
            lapses = subscriptions.lapses_after(dt.date.fromisoformat(last), interval)  # type: ignore[arg-type]
        except (TypeError, ValueError, KeyError, OverflowError):  # a last charge in year 9999 too
            log.warning("subscription left without its lapse", extra={"path": subscription.path})
            return False
        uow.update(subscription.path, {"lapsesAfter": lapses.isoformat()})
        return True

    return docs.transact(run, operation="migrate_subscription_lapse")


def subscription_lapses(
    docs: Documents,
    found: Iterable[Doc],
    *,
    now: dt.datetime,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> int:
    """`SUBSCRIPTION_LAPSES` over ``found`` (every ``subscriptions`` document, streamed by the
    caller): `each` of them `give_lapse`. The number of subscriptions written."""
    return each(docs, SUBSCRIPTION_LAPSES, found, give_lapse, now=now, progress=progress, workers=workers)


def each(
    docs: Documents,
    name: str,
    found: Iterable[Doc],
    migrate: Callable[[Documents, Doc], bool],
    *,
    now: dt.datetime,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> int:
    """Migration ``name``: ``migrate`` each document of ``found``, ``workers`` transactions
    at a time, then recorded as done (only if every one succeeded: the first failure is
    raised, and a run again redoes nothing done). The number of documents written;
    ``progress`` is told (seen, written) every 500 documents."""
    seen = written = 0

    def settle(futures: Iterable[Future[bool]]) -> None:
        nonlocal seen, written
        for future in futures:
            written += future.result()
            seen += 1
            if progress is not None and seen % 500 == 0:
                progress(seen, written)

    with ThreadPoolExecutor(max(workers, 1), thread_name_prefix="migrate") as pool:
        pending: set[Future[bool]] = set()
        for doc in found:
            pending.add(pool.submit(migrate, docs, doc))
            if len(pending) >= 4 * max(workers, 1):  # the stream is read as fast as it is migrated
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                settle(done)
        settle(pending)
    batch = docs.batch()
    batch.set(MIGRATIONS, {name: recorded(docs.get(MIGRATIONS), name, now, written)}, merge=True)
    batch.commit()
    log.info("migration done", extra={"migration": name, "documents": seen, "written": written})
    return written


class Done:
    """Whether a migration is done, for a long-running process: ``ops/migrations`` read at
    most every `RECHECK_SECONDS` until it says so, then never again (a migration is never
    undone)."""

    def __init__(self, docs: AsyncDocuments, name: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.docs = docs
        self.name = name
        self.clock = clock
        self._done = False
        self._checked: float | None = None

    async def __call__(self) -> bool:
        if self._done:
            return True
        if self._checked is None or self.clock() - self._checked >= RECHECK_SECONDS:
            self._checked = self.clock()
            self._done = done_in(await self.docs.get(MIGRATIONS), self.name)
            if self._done:
                log.info("migration seen done", extra={"migration": self.name})
        return self._done
