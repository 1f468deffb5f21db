"""Messages that stop their process: found out by handling them alone, with a mark that
outlives the process.

A message whose handling kills its process (an OOM kill, a native crash: nothing the
handler's ``except`` sees) took the other messages of its batch down with it every time:
the process's tally of which message failed (fjordbank.runtime.tally) dies with it, so
after each restart the same batch came back whole, crashed again, and once the deliveries
without an outcome passed the consumer's limit every message of the batch was
dead-lettered together, the innocent with the guilty (found in review, 2026-12-06).

A message delivered ``SUSPECT_AFTER`` times or more before this delivery without an outcome
known here (its process stopped, or it was given back elsewhere) is *suspect*: a batch
holding one is handled a message at a time (fjordbank.runtime.consumer), and before each
suspect message is handled alone, a mark is written for it in a replicated file KV bucket
(``topology.IN_HAND_BUCKET``, key ``<service>.<durable>.<stream sequence>``): the number of
times it was handled alone without an outcome. The mark is removed once it has one (acked,
failed, given back). A message that comes back with ``STOPS_ALONE`` such marks stopped its
process that many times while it was the only message in hand: it is dead-lettered, and
the messages behind it, handled one at a time, go through. One stop alone is not enough:
an instance killed for its own reasons (a node drained, a deploy's grace run out) while
handling a message alone must not dead-letter it.

Suspect handling is rare (a message survives one kill of its process unsuspected: a
restart's or a handover's batch goes on at full speed) and costs three round trips to NATS
per suspect message. While the bucket cannot be reached the messages are handled alone
without marks, and the consumer's limit on deliveries without an outcome
(UNSETTLED_DELIVERIES_FACTOR) stays the backstop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import nats.errors
import nats.js.errors

log = logging.getLogger(__name__)

SUSPECT_AFTER = 2  # earlier deliveries without an outcome known here
STOPS_ALONE = 2  # times handled alone without an outcome (the process stopped) before the DLQ
MARK_TIMEOUT_SECONDS = 2.0  # one round trip to the bucket; past it the message goes on unmarked


class Bucket(Protocol):
    """What the marks need of a NATS KV bucket (nats.js.kv.KeyValue)."""

    async def get(self, key: str) -> object: ...

    async def put(self, key: str, value: bytes) -> int: ...

    async def delete(self, key: str) -> bool: ...


def suspect(num_delivered: int, ended_here: int) -> bool:
    """Whether a message was delivered ``SUSPECT_AFTER`` times or more before this delivery
    without an outcome known here (``ended_here``: the deliveries that ended in this process
    without an ack)."""
    return num_delivered - 1 - ended_here >= SUSPECT_AFTER


class InHandMarks:
    """The marks of one service's consumers (its NATS user may write only its own keys)."""

    def __init__(self, bucket: Bucket, service: str) -> None:
        self.bucket = bucket
        self.service = service

    def key(self, durable: str, sequence: int) -> str:
        return f"{self.service}.{durable}.{sequence}"

    async def stops(self, durable: str, sequence: int) -> int | None:
        """Times the message was handled alone without an outcome; None: cannot tell (the
        bucket out of reach)."""
        try:
            async with asyncio.timeout(MARK_TIMEOUT_SECONDS):
                entry = await self.bucket.get(self.key(durable, sequence))
        except nats.js.errors.KeyNotFoundError:  # (KeyDeletedError is one: a mark removed)
            return 0
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("could not read a message's in-hand mark", extra={"error": repr(exc)})
            return None
        value = getattr(entry, "value", None) or b"0"
        try:
            return max(int(bytes(value).decode()), 0)
        except ValueError:
            return 0  # not ours to read: counted from nothing

    async def mark(self, durable: str, sequence: int, stops: int) -> bool:
        """Write that the message is being handled alone, ``stops`` times before; whether
        the mark was written."""
        try:
            async with asyncio.timeout(MARK_TIMEOUT_SECONDS):
                await self.bucket.put(self.key(durable, sequence), str(stops + 1).encode())
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("could not mark a message in hand", extra={"error": repr(exc)})
            return False
        return True

    async def clear(self, durable: str, sequence: int) -> None:
        """The message got an outcome: its mark goes (one left behind counts one stop: the
        bucket's entries expire in any case)."""
        try:
            async with asyncio.timeout(MARK_TIMEOUT_SECONDS):
                await self.bucket.delete(self.key(durable, sequence))
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("could not remove a message's in-hand mark", extra={"error": repr(exc)})
