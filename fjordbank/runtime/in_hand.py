"""Messages that stop their process: found out by handling them alone, with a mark that
outlives the process.

A message whose handling kills its process (an OOM kill, a native crash: nothing the
handler's ``except`` sees) took the other messages of its batch down with it every time:
the process's tally of which message failed (fjordbank.runtime.tally) dies with it, so
after each restart the same batch came back whole, crashed again, and once the deliveries
without an outcome passed the consumer's limit every message of the batch was
dead-lettered together, the innocent with the guilty (found in review, 2026-12-06).

A message delivered ``SUSPECT_AFTER`` times or more before this delivery without an outcome
known here (its process stopped, it was given back or failed elsewhere) is *suspect*, the
more so the more such deliveries it had (``level``): a batch holding one is handled in
smaller and smaller pieces (``piece_size``: a quarter of it at level 1, a quarter of that
at level 2, and so on down to a message at a time), each piece committed on its own, so the pieces before
the one that stops the process are settled, and a batch that was only unlucky (moved at two
handovers, failed twice elsewhere in a brownout) costs a few commits rather than one per
message. A suspect message handled alone is marked in a replicated file KV bucket
(``topology.IN_HAND_BUCKET``, key ``<service>.<durable>.<stream sequence>``, value the
number of times it was so without an outcome and the id of the process that wrote it)
while its handler runs, and no other handler call of its process runs meanwhile (they wait:
``Gate``), so that a process that stops then was stopped by it or by nothing any message
did. The mark is removed once the handler has returned. A message that comes back with
``STOPS_ALONE`` such stops is dead-lettered, and the messages behind it in its batch go on
as one batch again (they were suspect only for sharing its deliveries) while each has room
under the delivery limit for another stopper among them to be found, else a message at a
time. One stop
is not enough: an instance killed for its own reasons (a node drained, a deploy's grace run
out) while handling a message alone must not dead-letter it. A mark the process itself
wrote is no stop (the process is alive: its removal failed), and removals that failed are
tried again.

A crash loop takes ``SUSPECT_AFTER`` stops of the whole batch, about three of ever smaller
pieces and ``STOPS_ALONE`` alone: eight deliveries of the guilty message at most, within the
consumer's limit on deliveries without an outcome (UNSETTLED_DELIVERIES_FACTOR, twice
``max_deliver``), which stays the backstop, also while the bucket cannot be reached (the
messages are then handled alone without marks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Protocol

import nats.errors
import nats.js.errors

log = logging.getLogger(__name__)

SUSPECT_AFTER = 2  # earlier deliveries without an outcome known here
PIECE_SHIFT = 2  # each level of suspicion quarters the pieces a suspect batch is handled in
STOPS_ALONE = 2  # times handled alone without an outcome (the process stopped) before the DLQ
MARK_TIMEOUT_SECONDS = 2.0  # one round trip to the bucket; past it the message goes on unmarked
# JetStream's error codes for a failed last-sequence check
WRONG_LAST_SEQUENCE = (10071, 10164)


class Bucket(Protocol):
    """What the marks need of a NATS KV bucket (nats.js.kv.KeyValue)."""

    async def get(self, key: str) -> object: ...

    async def put(self, key: str, value: bytes) -> int: ...

    async def delete(self, key: str, last: int | None = None) -> bool: ...


def level(num_delivered: int, ended_here: int) -> int:
    """How suspect a message is: 0 when it had fewer than ``SUSPECT_AFTER`` deliveries before
    this one without an outcome known here (``ended_here``: the deliveries that ended in this
    process without an ack), and one more for each such delivery from there."""
    return max(num_delivered - 1 - ended_here - SUSPECT_AFTER + 1, 0)


def suspect(num_delivered: int, ended_here: int) -> bool:
    return level(num_delivered, ended_here) > 0


def piece_size(batch: int, suspicion: int) -> int:
    """The pieces a batch of ``batch`` messages is handled in at level ``suspicion``."""
    return max(batch >> (PIECE_SHIFT * suspicion), 1) if suspicion > 0 else batch


class Gate:
    """Handler calls of one process share the gate; a marked message's call has it alone
    (the others in flight finish first, new ones wait for it)."""

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._shared = 0
        self._alone = False
        self._waiting = 0  # calls that want it alone: the shared ones do not overtake them

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(lambda: not self._alone and not self._waiting)
            self._shared += 1
        try:
            yield
        finally:
            async with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextlib.asynccontextmanager
    async def alone(self) -> AsyncIterator[None]:
        async with self._cond:
            self._waiting += 1
            try:
                await self._cond.wait_for(lambda: not self._alone and self._shared == 0)
            finally:
                self._waiting -= 1
                self._cond.notify_all()  # (cancelled while waiting: the shared ones go on)
            self._alone = True
        try:
            yield
        finally:
            async with self._cond:
                self._alone = False
                self._cond.notify_all()


class InHandMarks:
    """The marks of one service's consumers (its NATS user may write only its own keys)."""

    def __init__(self, bucket: Bucket, service: str, process: str | None = None) -> None:
        self.bucket = bucket
        self.service = service
        self.process = process or secrets.token_hex(6)  # whose marks are no stops
        self._unremoved: dict[str, int] = {}  # marks whose removal failed (their revision): tried again
        self._revisions: dict[str, int] = {}  # the revision of each mark written here and not removed

    def key(self, durable: str, sequence: int) -> str:
        return f"{self.service}.{durable}.{sequence}"

    async def stops(self, durable: str, sequence: int) -> int | None:
        """Times the message was handled alone without an outcome, its process stopping
        each time; None: cannot tell (the bucket out of reach)."""
        await self._remove_left()
        try:
            async with asyncio.timeout(MARK_TIMEOUT_SECONDS):
                entry = await self.bucket.get(self.key(durable, sequence))
        except nats.js.errors.KeyNotFoundError:  # (KeyDeletedError is one: a mark removed)
            return 0
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("could not read a message's in-hand mark", extra={"error": repr(exc)})
            return None
        revision = getattr(entry, "revision", None)
        if isinstance(revision, int):  # (a dead-lettered stopper's is removed as read)
            self._revisions[self.key(durable, sequence)] = revision
        count, _, writer = bytes(getattr(entry, "value", None) or b"0").decode(errors="replace").partition(" ")
        try:
            times = max(int(count), 0)
        except ValueError:
            return 0  # not ours to read: counted from nothing
        return max(times - 1, 0) if writer == self.process else times  # alive: its own is no stop

    async def mark(self, durable: str, sequence: int, stops: int) -> bool:
        """Write that the message is being handled alone, after ``stops`` stops; whether the
        mark was written."""
        try:
            async with asyncio.timeout(MARK_TIMEOUT_SECONDS):
                key = self.key(durable, sequence)
                self._revisions[key] = await self.bucket.put(key, f"{stops + 1} {self.process}".encode())
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("could not mark a message in hand", extra={"error": repr(exc)})
            self._revisions.pop(self.key(durable, sequence), None)  # (unmarked: nothing to remove)
            return False
        return True

    async def clear(self, durable: str, sequence: int) -> None:
        """The message's handler returned: its mark goes, only as this process wrote it (a
        newer one, another process's, is a stop of its own); a removal that fails is tried
        again before the next read."""
        key = self.key(durable, sequence)
        revision = self._revisions.pop(key, None)
        if revision is not None:
            self._unremoved[key] = revision
        await self._remove_left()

    async def _remove_left(self) -> None:
        for key, revision in sorted(self._unremoved.items()):
            try:
                async with asyncio.timeout(MARK_TIMEOUT_SECONDS):
                    await self.bucket.delete(key, last=revision)
            except nats.js.errors.BadRequestError as exc:
                if exc.err_code not in WRONG_LAST_SEQUENCE:
                    log.warning("could not remove a message's in-hand mark", extra={"error": repr(exc)})
                    return
                # written again since, by another process: not ours to remove
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("could not remove a message's in-hand mark", extra={"error": repr(exc)})
                return
            self._unremoved.pop(key, None)
