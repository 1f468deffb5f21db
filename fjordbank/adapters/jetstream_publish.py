"""One JetStream publish that waits out "duplicate message id is in process".

A clustered stream stages a message id before its proposal commits; a second publish of
that id meanwhile is answered 409 ``JSStreamDuplicateMessageConflict`` (err_code 10158,
nats-server 2.11+) instead of the duplicate ack it gets a moment later. Our publishes
carry message ids so that publishing a step again is harmless (a redelivered message, a
batch retried one message at a time after a failure); taken as an error, the 409 failed
whole batches, which were retried one message at a time, each republishing ids still in
process: seconds with no completions under load (the bench's stalls, 2026-12-01). The
nats-server's own test (TestJetStreamClusterPubAckSequenceDupeAsync) waits a bit and
publishes again to get the proper ack; so does this, for at most `SETTLE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import PubAck

log = logging.getLogger(__name__)

IN_PROCESS = 10158  # JSStreamDuplicateMessageConflict: "duplicate message id is in process"
SETTLE_SECONDS = 2.0  # an in-process id settles within a raft commit (milliseconds) unless the cluster is failing


def in_process(exc: BaseException) -> bool:
    return isinstance(exc, nats.js.errors.APIError) and exc.err_code == IN_PROCESS


async def publish(
    js: JetStreamContext,
    subject: str,
    payload: bytes,
    *,
    headers: dict[str, str],
    stream: str | None = None,
    timeout: float | None = None,
) -> PubAck:
    """``js.publish``, published again while JetStream says its message id is in process."""
    delay, waited = 0.01, 0.0
    while True:
        try:
            return await js.publish(subject, payload, timeout=timeout, stream=stream, headers=headers)
        except nats.js.errors.APIError as exc:
            if not in_process(exc) or waited >= SETTLE_SECONDS:
                raise
        log.debug("message id in process; publishing again", extra={"subject": subject, "waited": waited})
        await asyncio.sleep(delay)
        waited += delay
        delay = min(delay * 2, 0.25)
