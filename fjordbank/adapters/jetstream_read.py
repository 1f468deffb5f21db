"""Read what a stream holds on a subject, to the end, once: the dead letters `bankctl dlq
list` shows and the marks of the ones replayed (fjordbank/runtime/dead_letters.py).

The end is the count the read's consumer had to deliver when it was made (those it had
sent and those pending in its first info), not a message that says nothing is pending
behind it, nor nats-py's KeyValue.keys(): a message's pending count can reach 0 with
messages still to come, and keys() decides "no keys" when its consumer's info shows
nothing pending before it has taken the messages already on their way
(https://github.com/nats-io/nats.py/issues/842, https://github.com/nats-io/nats.py/pull/995).
So `dlq list` showed a letter just replayed as waiting: the bucket's one mark was read
as none (seen in CI, 2026-12-06).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

log = logging.getLogger(__name__)

WAIT = 5.0  # seconds without a message before the read asks the server where it stands
KV_READS = 5  # reads of a bucket before one without its last write is taken as it is (`kv_entries`)
KV_READ_PAUSE = 0.05  # seconds before the second read, twice that before the third, ...

KV_OPERATION = "KV-Operation"  # a KV delete or purge marker (DEL, PURGE)
MARKER_REASON = "Nats-Marker-Reason"  # a server-placed one (nats-server 2.11+: MaxAge, Purge, Remove)


class ReadCut(Exception):
    """The messages stopped coming before the end (the server or the connection went away)."""

    def __init__(self, got: int, due: int) -> None:
        super().__init__(f"the messages stopped coming after {got} of {due}")
        self.got, self.due = got, due


async def read_to_the_end(
    js: JetStreamContext,
    subject: str,
    *,
    stream: str | None = None,
    last_per_subject: bool = False,
    wait: float = WAIT,
) -> list[Any]:
    """Every message on ``subject`` (or the last of each subject under it) in the stream's
    order, as the stream had them when the read began. Raises ReadCut when they stop coming
    before the end, and nats.js.errors.NotFoundError when no stream takes ``subject``."""
    sub = await js.subscribe(
        subject,
        stream=stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT if last_per_subject else None,
    )
    try:
        info = await sub.consumer_info()
        due = int(info.num_pending or 0) + _sent(info)
        out: list[Any] = []
        while len(out) < due:
            try:
                msg = await sub.next_msg(timeout=wait)
            except nats.errors.TimeoutError:
                now = await sub.consumer_info()
                if not now.num_pending and _last_sent(now) <= _last_read(out):
                    return out  # the rest left the stream meanwhile (its age limit, a purge)
                raise ReadCut(len(out), due) from None
            out.append(msg)
        return out
    finally:
        try:
            await sub.unsubscribe()
        except nats.errors.Error:
            pass  # the connection went: its consumer goes with it (ordered consumers are ephemeral)


def _sent(info: Any) -> int:
    """Messages a consumer has sent (on their way or taken)."""
    return int(info.delivered.consumer_seq or 0) if info.delivered is not None else 0


def _last_sent(info: Any) -> int:
    """The stream sequence of the last message the consumer sent. By sequence, not count:
    nats-py replaces an ordered consumer after a gap, and the new one counts from 0, so a
    count said "all sent" with messages lost before the replacement (found in review,
    2026-12-06)."""
    return int(info.delivered.stream_seq or 0) if info.delivered is not None else 0


def _sequence(msg: Any) -> int:
    meta = getattr(msg, "metadata", None)
    return int(meta.sequence.stream) if meta is not None else 0


def _last_read(out: list[Any]) -> int:
    return int(out[-1].metadata.sequence.stream) if out else 0


def kv_key(msg: Any, bucket: str) -> str | None:
    """The key a KV bucket's stream message holds a value for; None for a delete or purge
    marker (the key is gone)."""
    headers = msg.headers or {}
    if headers.get(KV_OPERATION) or headers.get(MARKER_REASON):
        return None
    return str(msg.subject).removeprefix(f"$KV.{bucket}.")


async def kv_entries(js: JetStreamContext, bucket: str) -> dict[str, bytes]:
    """Every key of KV ``bucket`` that holds a value, with that value (its latest), as the
    bucket had them when the read began: the stream's last message (its leader answers
    the stream's info) is in a whole read of the last of each key, and a read without it
    is made again (up to `KV_READS` times). The read's consumer may stand on a replica
    that has not yet applied a write its leader acknowledged: a read right after the 29th
    write on the 3-node cluster had 28 (CI, 2026-12-07)."""
    stream = f"KV_{bucket}"
    messages: list[Any] = []
    for attempt in range(KV_READS):
        last = int((await js.stream_info(stream)).state.last_seq or 0)
        messages = await read_to_the_end(js, f"$KV.{bucket}.>", stream=stream, last_per_subject=True)
        if not last or any(_sequence(m) >= last for m in messages):
            break
        log.warning("a bucket read without its last write: read again", extra={"bucket": bucket, "attempt": attempt})
        await asyncio.sleep(KV_READ_PAUSE * (attempt + 1))
    found: dict[str, bytes] = {}
    for msg in messages:
        if (key := kv_key(msg, bucket)) is not None:
            found[key] = msg.data or b""
    return found
