"""Progress on stderr: a redrawn bar on a terminal, plain lines otherwise (logs, CI, pipes)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """Call ``update()`` from anywhere; a background thread draws at most every ``interval``
    seconds on a TTY (``line_interval`` for plain lines, only once something is done and
    when it changed). ``close()`` draws the last state; leaving on an error does not (the
    bar is cleared), so the error line stands alone."""

    def __init__(
        self,
        total: int,
        describe: Callable[[], tuple[int, str]],
        *,
        stream: TextIO | None = None,
        label: str = "load",
        noun: str = "final",
        interval: float = 0.2,
        line_interval: float = 2.0,
        width: int = 30,
    ) -> None:
        self.total = max(total, 1)
        self.describe = describe  # () -> (done, extra text)
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.label = label
        self.noun = noun
        self.interval = interval if self.tty else line_interval
        self.width = width
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._last_plain: int | None = None

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)

    def render(self) -> str:
        done, extra = self.describe()
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.tty:
            filled = int(self.width * min(done, self.total) / self.total)
            bar = "#" * filled + "-" * (self.width - filled)
            return f"\r{self.label} [{bar}] {done}/{self.total} {rate:6.1f}/s {extra}\x1b[K"
        return (
            f"{self.label}: {done}/{self.total} {self.noun}, {rate:.1f}/s, {elapsed:.1f} s"
            f"{', ' + extra if extra else ''}\n"
        )

    def _draw(self, *, force: bool = False) -> None:
        text = self.render()
        if not self.tty:
            done = self.describe()[0]
            if (done == self._last_plain or not done) and not force:
                return
            self._last_plain = done
        self.stream.write(text)
        self.stream.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw()

    def close(self, *, failed: bool = False) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if failed:
            if self.tty:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            return
        self._draw(force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
