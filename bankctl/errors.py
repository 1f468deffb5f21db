"""bankctl's errors: each is reported as one line (`bankctl: error: ...`) and exit code 1.

The errors and the one error path for the network are the client kit's
(`clientkit.errors`): every call to the stack runs inside `talking_to(component, address)`,
whose transport errors become `StackUnreachable`, a `CommandError` (the kit's `KitError`)
that names the part of the stack, its address and what went wrong. Here: `step("...")`
puts what bankctl was doing in front of an error; work done in threads runs in `Workers`,
whose first failure comes back to the main thread as the same error; `__main__.main`
catches `CommandError` once and prints it as one line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from contextlib import contextmanager

from clientkit.errors import (
    AUTH,
    CARDS,
    FIRESTORE,
    FUNCTIONS,
    NATS,
    PUBSUB,
    STACK,
    UP_HINT,
    KitError,
    Refused,
    StackUnreachable,
    know_stack,
    require_reachable,
    talking_to,
    transport_error,
)

CommandError = KitError  # bankctl's one-line error is the kit's: a refusal or an unreachable part is one too

__all__ = [
    "AUTH",
    "CARDS",
    "FIRESTORE",
    "FUNCTIONS",
    "NATS",
    "PUBSUB",
    "STACK",
    "UP_HINT",
    "CommandError",
    "Refused",
    "StackUnreachable",
    "Workers",
    "know_stack",
    "require_reachable",
    "step",
    "talking_to",
    "transport_error",
]


@contextmanager
def step(text: str) -> Iterator[None]:
    """What bankctl is doing: an error inside says so in front ("load setup: ...")."""
    try:
        yield
    except CommandError as exc:
        exc.within(text)
        raise
    except Exception as exc:
        error = transport_error(exc)
        if error is None:
            raise
        raise error.within(text) from None


# ---- threads ------------------------------------------------------------------------------------
class _NotStarted(Exception):
    """A task a worker took up after another task had failed: not run."""


class Workers:
    """A thread pool whose first failure becomes the command's error in the main thread,
    translated as any other (each task runs in its own `step`). On a failure the tasks not
    started are not run (a worker that is free takes the next task before the main thread
    can cancel it: the task then sees the failure and does nothing) and the error is
    reported without waiting for those running."""

    def __init__(self, workers: int, name: str = "bankctl") -> None:
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=name)
        self.futures: list[Future] = []
        self.failed = threading.Event()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.pool.shutdown(wait=exc_type is None, cancel_futures=exc_type is not None)
        if exc_type is None:
            self.raise_first_failure()  # never lost, even if nobody asked for the results

    def submit(self, step_text: str, fn: Callable, *args) -> Future:
        def run():
            if self.failed.is_set():
                raise _NotStarted(step_text)
            with step(step_text):
                return fn(*args)

        future = self.pool.submit(run)
        future.add_done_callback(self._done)
        self.futures.append(future)
        return future

    def _done(self, future: Future) -> None:
        if not future.cancelled() and future.exception() is not None:
            self.failed.set()

    def raise_first_failure(self) -> None:
        for future in self.futures:
            if future.done() and not future.cancelled() and future.exception() is not None:
                exc = future.exception()
                if isinstance(exc, _NotStarted):
                    continue
                error = transport_error(exc)
                if error is None:
                    raise exc
                raise error from None

    def results(self) -> list:
        """Every task's result in order of submission; the first failure raised instead."""
        wait_futures(self.futures, return_when=FIRST_EXCEPTION)
        self.raise_first_failure()
        return [future.result() for future in self.futures]
