"""The sanctions list a long-running service screens against: read from its file at start,
and read again when the file changes (the EU's consolidated list changes several times a
month; the deploy puts each new one where the service reads it, FJB_SANCTIONS_LIST).

A list that cannot be read at start stops the service from starting (fail closed: nothing
is screened against nothing), and so does a list with no entries. A new file that cannot be
read later, or that lists fewer than half the entries of the one in use (a truncated export,
a wrong file: the EU's list grows and shrinks by a few entries at a time), is logged, and
the list read before stays in use until a good one comes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from fjordbank.domain.sanctions import InvalidSanctionsList, SanctionsList, shrunk_too_far

log = logging.getLogger("sanctions")

CHECK_SECONDS = 60.0  # how often the file is looked at for a new list


class SanctionsFile:
    """``SanctionsFile(path, subjects=...)()`` is the list as the file holds it now (looked
    at no more than every ``check_seconds``). Thread-safe: screening runs in worker threads."""

    def __init__(
        self,
        path: str,
        *,
        subjects: tuple[str, ...],
        check_seconds: float = CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.subjects = subjects
        self.check_seconds = check_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the file read
        self._checked = clock()
        self._list = self._read()  # raises: a service does not start without its list

    def _read(self, in_use: int = 0) -> SanctionsList:
        stat = os.stat(self.path)
        with open(self.path, "rb") as fh:
            sanctions = SanctionsList.from_xml(fh.read(), subjects=self.subjects)
        if not len(sanctions):
            raise InvalidSanctionsList("the sanctions list has no entries: screening against it would pass everyone")
        if shrunk_too_far(len(sanctions), in_use):
            raise InvalidSanctionsList(
                f"the new sanctions list has {len(sanctions)} entries against {in_use} in use: not taken"
            )
        self._seen = (stat.st_mtime_ns, stat.st_size)
        log.info("sanctions list read", extra={"entries": len(sanctions), "file": os.path.basename(self.path)})
        return sanctions

    def __call__(self) -> SanctionsList:
        with self._lock:
            now = self.clock()
            if now - self._checked >= self.check_seconds:
                self._checked = now
                try:
                    stat = os.stat(self.path)
                    if (stat.st_mtime_ns, stat.st_size) != self._seen:
                        self._list = self._read(len(self._list))
                except (OSError, InvalidSanctionsList) as exc:
                    log.error(
                        "a new sanctions list could not be read; screening with the one read before",
                        extra={"file": os.path.basename(self.path), "error": str(exc)},
                    )
            return self._list
