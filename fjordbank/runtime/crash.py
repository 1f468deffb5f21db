"""Named crash points for failure tests: FJB_CRASH_POINT=<name> makes the process kill -9
itself when it reaches that point, as a real crash would (no cleanup, no ack)."""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)
_armed: str | None = None


def arm(point: str | None) -> None:
    global _armed
    _armed = point
    if point:
        log.warning("crash point armed", extra={"crash_point": point})


def point(name: str) -> None:
    if _armed == name:
        log.warning("crash point reached: kill -9", extra={"crash_point": name})
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
