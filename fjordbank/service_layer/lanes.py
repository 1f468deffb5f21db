"""Work on many items at once, each key's items one at a time and in order.

The due-payments job decided and submitted its due payments one after the other: four or
five round trips each (the payer's funds, the payee's account, the claim, the publish), so
a run's 240 s took a few thousand, where the payday's morning has over a million scheduled
payments (docs/capacity.md, section 2: 400 payments/s for an hour). They were paid days
late (found in review, 2026-12-06). A run now works on ``lanes`` items at a time. An
account's payments all go to one lane (by its number's hash) and are decided there in the
order the query gave them, so what the run has left of an account's money (the job's
`RunFunds`) is only ever reckoned by one thread, as it was by the one loop before.

The caller's iterator is read on the calling thread, which stops handing out work once
the deadline has passed (the rest waits for the job's next run) or ``stop`` is set (NATS
does not take the payments); a lane drops what it was handed and has not begun then too.
At most READ_AHEAD items are handed out and not done, so neither reads far ahead.
"""

from __future__ import annotations

import queue
import threading
import zlib
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

# Items handed out and not yet worked on, all lanes together: the hand-out reads no further
# ahead. A lane's own queue has no bound: one payer with a page of payments (they come
# together: the query sorts by due date, then path) filled a bounded queue, and the hand-out
# then waited on it while every other lane stood idle (found in review, 2026-12-06).
READ_AHEAD = 1024

_DONE = object()


def lane_of(key: str, lanes: int) -> int:
    """The lane of ``key``: the same on every run and process (not Python's salted hash)."""
    return zlib.crc32(key.encode()) % lanes


class _Lanes:
    """The lanes' threads and queues; ``failed`` holds what their work raised, ``late``
    whether an item was dropped because the deadline had passed."""

    def __init__(
        self, lanes: int, work: Callable[[T], None], stop: threading.Event, deadline_passed: Callable[[], bool]
    ) -> None:
        self.work = work
        self.stop = stop
        self.deadline_passed = deadline_passed
        self.failed: list[Exception] = []
        self.late = False
        self.room = threading.BoundedSemaphore(READ_AHEAD)
        self.queues: list[queue.Queue[object]] = [queue.Queue() for _ in range(lanes)]
        self.threads = [
            threading.Thread(target=self._run, args=(q,), name=f"lane-{i}", daemon=True)
            for i, q in enumerate(self.queues)
        ]
        for t in self.threads:
            t.start()

    def hand_out(self, lane: int, item: T) -> None:
        self.room.acquire()
        self.queues[lane].put(item)

    def _run(self, q: queue.Queue[object]) -> None:
        while (item := q.get()) is not _DONE:
            try:
                if self.stop.is_set():
                    continue  # dropped: the next run finds it as this one did
                if self.deadline_passed():
                    self.late = True  # dropped, as one not handed out: the next run's
                    continue
                self.work(item)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - raised to the caller once every lane has ended
                self.failed.append(exc)
                self.stop.set()
            finally:
                self.room.release()

    def end(self) -> None:
        for q in self.queues:
            q.put(_DONE)
        for t in self.threads:
            t.join()


def in_lanes(
    items: Iterable[T],
    *,
    key: Callable[[T], str],
    work: Callable[[T], None],
    lanes: int,
    deadline_passed: Callable[[], bool] = lambda: False,
    stop: threading.Event | None = None,
) -> bool:
    """Do ``work`` on every item, ``lanes`` at a time, an item's ``key`` deciding its lane.
    Returns True if the deadline passed before every item was worked on (deferred: the
    items not begun are left, those handed out dropped). A ``work`` that raises stops the
    run; the first such error is raised once every lane has ended. With ``stop`` set (by
    ``work``, say), the items not begun are dropped."""
    if lanes < 1:
        raise ValueError("lanes must be at least 1")
    stop = stop if stop is not None else threading.Event()
    running = _Lanes(lanes, work, stop, deadline_passed)
    deferred = False
    try:
        for item in items:
            if stop.is_set():
                break
            if deadline_passed():
                deferred = True
                break
            running.hand_out(lane_of(key(item), lanes), item)
    finally:
        running.end()
    if running.failed:
        raise running.failed[0]
    return deferred or running.late


class FailureRow:
    """Failures one after the other among the lanes' outcomes: ``note`` says when ``limit``
    have come with none of ``resets`` between them. An outcome that did no work (a payment
    resting, or left to a later run) neither ends a row nor adds to it: a bug in every
    decision among payments that rest was never a row (found in review, 2026-12-06). Not
    locked: the caller notes under its own counting lock."""

    def __init__(self, limit: int, resets: frozenset[str], failure: str = "errors") -> None:
        self.limit, self.resets, self.failure = limit, resets, failure
        self.length = 0

    def note(self, outcome: str) -> bool:
        if outcome == self.failure:
            self.length += 1
        elif outcome in self.resets:
            self.length = 0
        return self.length >= self.limit
