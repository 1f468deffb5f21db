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
``until`` has passed (the rest waits for the job's next run) or ``stop`` is set (NATS does
not take the payments). A lane's queue is short, so neither reads far ahead of the work.
"""

from __future__ import annotations

import queue
import threading
import zlib
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

# Items a lane may have waiting: enough to keep it busy, few enough that a run stopped by
# its time or by NATS has little handed out that it then does anyway (or drops, on stop).
QUEUE_DEPTH = 8

_DONE = object()


def lane_of(key: str, lanes: int) -> int:
    """The lane of ``key``: the same on every run and process (not Python's salted hash)."""
    return zlib.crc32(key.encode()) % lanes


class _Lanes:
    """The lanes' threads and queues; ``failed`` holds what their work raised."""

    def __init__(self, lanes: int, work: Callable[[T], None], stop: threading.Event) -> None:
        self.work = work
        self.stop = stop
        self.failed: list[Exception] = []
        self.queues: list[queue.Queue[object]] = [queue.Queue(maxsize=QUEUE_DEPTH) for _ in range(lanes)]
        self.threads = [
            threading.Thread(target=self._run, args=(q,), name=f"lane-{i}", daemon=True)
            for i, q in enumerate(self.queues)
        ]
        for t in self.threads:
            t.start()

    def _run(self, q: queue.Queue[object]) -> None:
        while (item := q.get()) is not _DONE:
            if self.stop.is_set():
                continue  # dropped: the next run finds it as this one did
            try:
                self.work(item)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - raised to the caller once every lane has ended
                self.failed.append(exc)
                self.stop.set()

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
    Returns True if the deadline passed before every item was handed out (deferred). A
    ``work`` that raises stops the handing out; the first such error is raised once every
    lane has ended. With ``stop`` set (by ``work``, say), the items not begun are dropped."""
    if lanes < 1:
        raise ValueError("lanes must be at least 1")
    stop = stop if stop is not None else threading.Event()
    running = _Lanes(lanes, work, stop)
    deferred = False
    try:
        for item in items:
            if stop.is_set():
                break
            if deadline_passed():
                deferred = True
                break
            running.queues[lane_of(key(item), lanes)].put(item)
    finally:
        running.end()
    if running.failed:
        raise running.failed[0]
    return deferred
