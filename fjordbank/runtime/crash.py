"""Named crash points for failure tests: FJB_CRASH_POINT=<name> makes the process kill -9
itself when it reaches that point, as a real crash would (no cleanup, no ack).
``<consumer>.handling:<text>`` is reached by handling any batch of that consumer with a
message whose body holds ``text``: a message that kills its process each time (an OOM
kill), for tests of fjordbank/runtime/in_hand.py."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterable
from typing import Protocol

log = logging.getLogger(__name__)
_armed: str | None = None


class HasData(Protocol):
    @property
    def data(self) -> bytes: ...


def arm(point: str | None) -> None:
    global _armed
    _armed = point
    if point:
        log.warning("crash point armed", extra={"crash_point": point})


def point(name: str) -> None:
    if _armed == name:
        _kill(name)


def handling(consumer: str, batch: Iterable[HasData]) -> None:
    """The point ``<consumer>.handling:<text>``, reached by a batch with ``text`` in a body."""
    if _armed is None or not _armed.startswith(f"{consumer}.handling:"):
        return
    text = _armed.split(":", 1)[1].encode()
    if text and any(text in d.data for d in batch):
        _kill(_armed)


def _kill(name: str) -> None:
    log.warning("crash point reached: kill -9", extra={"crash_point": name})
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)
