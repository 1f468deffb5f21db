"""Publish a dead letter again, once its cause is mended: ``bankctl dlq replay SEQ`` on the
local stack, and in production (as the admin NATS identity, from the environment the
services use: FJB_NATS_URLS, FJB_NATS_PASSWORD, FJB_NATS_CA/CERT/KEY)::

    FJB_NATS_USER=admin python -m fjordbank.runtime.dead_letters replay SEQ --by OFFICER --note REASON

A letter goes back only on a subject its consumer takes, in the partition its payment's
account gives (`replay_problem`): its headers are written by whoever may publish on its
dlq subject, and every service may on its own, while the replay publishes as admin, who may
publish anything.

Each replay is marked (`topology.REPLAYED_BUCKET`: when, on which subject, how often, who
and why, and the payment it carried), so `bankctl dlq list` shows the letters dealt with,
and a letter replayed before is refused unless asked for once more (``--again``: its cause
was mended again after a second failure). A replay can make a payment move: who asked for
it and why is required and logged with it ("dead letter replayed", a warning: kept as long
as the logs are, longer than the marks, which go with the letters after 90 days); before,
nothing said who had done it (found in review, 2026-12-06).
The first replay's message id ``replay:DLQ:SEQ`` (a later one's ``replay:DLQ:SEQ:N``) makes
two operators replaying at once one publish within JetStream's duplicate window (2 minutes);
after it the services answer a step they applied from their records. The mark is written up
to MARK_TRIES times (a put can time out while the cluster is busy or electing a leader; one
lost so left a replayed letter listed as waiting, seen in CI, 2026-12-06); a replay whose mark
still could not be written (the cluster lost between the two) went out unmarked: said, to the
operator as well as in the log, not undone.

A message can have more than one letter: dead letters carry no message id (a predictable one
let another service's publish take its place: fjordbank.runtime.consumer ConsumerService.
dead_letter), so a dead-lettering tried again after its letter was stored (its answer lost,
or the message's term) stores another. A replay's mark is written under the letter's DLQ
sequence and under its message (`message_of`: the consumer and the original's stream
sequence), so a replay of one letter marks the others, a second one is refused unless asked
for as any second replay is, and `bankctl dlq list` counts the message once.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import re
import sys
from typing import Any, NamedTuple

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from fjordbank import topology
from fjordbank.adapters import jetstream_read
from fjordbank.domain.errors import DomainError
from fjordbank.domain.payments import PaymentEvent

log = logging.getLogger("dead_letters")


ORIGINAL_TIME = "Fjb-Original-Time"  # when the letter's message first entered its stream (ISO 8601, UTC)


def original_time_header(at: dt.datetime | None) -> dict[str, str]:
    """The header a dead letter keeps its message's first time in (none when not known)."""
    return {ORIGINAL_TIME: at.astimezone(dt.UTC).isoformat()} if at is not None else {}


def original_time(headers: dict[str, str]) -> dt.datetime | None:
    """The first time a replayed dead letter's message entered its stream (None: not a
    replay, or a time that cannot be read). A replay is a new message, with a new stream
    time: by it, the notifier's news in a letter replayed days later was pushed as fresh
    ("Money received" for an old credit); by this, it is as late as it is."""
    try:
        at = dt.datetime.fromisoformat(headers[ORIGINAL_TIME])
    except (KeyError, TypeError, ValueError):
        return None
    return at if at.tzinfo is not None else None


def _first_time(headers: dict[str, str], dead_lettered: dt.datetime | None) -> dt.datetime | None:
    """When a letter's message first entered its stream, as near as is known."""
    said = original_time(headers)
    if dead_lettered is None:
        return said
    return min(said, dead_lettered) if said is not None else dead_lettered


_CONSUMER = re.compile(r"[A-Za-z0-9_-]+")


def message_of(dead_letter_subject: str, headers: dict[str, str]) -> str | None:
    """The message a dead letter is of, ``<consumer>.<original stream sequence>`` (its
    replay mark's second key); None for a letter that does not say. The consumer is the
    letter's subject's, which only that consumer's service (and admin) may publish on, so
    no other service's letter can claim its messages."""
    consumer = dead_letter_subject.removeprefix("dlq.")
    sequence = headers.get("Fjb-Original-Sequence", "")
    if consumer == dead_letter_subject or not _CONSUMER.fullmatch(consumer) or not sequence.isdigit():
        return None
    return f"{consumer}.{int(sequence)}"


class ReplayRefused(Exception):
    """The dead letter is not published again (the message says why)."""


def replay_problem(dead_letter_subject: str, original: str | None, data: bytes) -> str | None:
    """Why a dead letter on ``dead_letter_subject`` may not be published again on
    ``original`` (None: it may)."""
    if not original:
        return "it does not say where it came from"
    name = dead_letter_subject.removeprefix("dlq.")
    spec = next((c for c in topology.CONSUMERS if c.durable == name), None)
    if spec is None or dead_letter_subject != topology.dlq_subject(name):
        return f"{dead_letter_subject} is no consumer's dead letter subject"
    taken = {f for d in spec.partitions() for f in d.filter_subjects}
    if original not in taken:
        return f"{original} is not a subject consumer {name} takes"
    if topology.partition_in(original) is not None:
        try:
            expected = PaymentEvent.from_json(json.loads(data)).subject
        except (ValueError, TypeError, DomainError, RecursionError):
            return "its payment event cannot be read"
        if expected != original:
            return f"its payment belongs on {expected}, not {original}"
    return None


MAX_NOTE = 500  # characters of an operator's reason
MARK_TRIES = 4  # writes of a replay's mark, 0.5, 1 and 2 s apart
MARK_PAUSE = 0.5


class Replayed(NamedTuple):
    subject: str  # where the letter went again
    marked: bool  # its mark was written (False: `dlq list` shows it as waiting)

    def said(self, sequence: int) -> str:
        """What the operator is told."""
        text = f"replayed dead letter #{sequence} on {self.subject}"
        if not self.marked:
            text += (
                "; its mark could not be written, so `dlq list` shows it as not replayed "
                "(replaying it again is answered from the services' records)"
            )
        return text


async def replay(js: JetStreamContext, sequence: int, *, by: str, note: str, again: bool = False) -> Replayed:
    """Publish dead letter ``sequence`` again on the subject it came from, and mark it
    replayed by ``by`` for ``note``; returns that subject and whether the mark was
    written. Raises ReplayRefused for a letter
    that is not there, may not go back, or was replayed before (unless ``again``), and
    for a replay without who or why."""
    by, note = (by or "").strip(), (note or "").strip()
    if not by or not note or len(note) > MAX_NOTE or len(by) > 200:
        raise ReplayRefused(f"a replay names who asks for it (--by) and why (--note, at most {MAX_NOTE} characters)")
    try:
        msg = await js.get_msg(topology.STREAM_DLQ, sequence)
    except nats.js.errors.NotFoundError as exc:
        raise ReplayRefused(f"no dead letter #{sequence}") from exc
    headers = msg.headers or {}
    subject = headers.get("Fjb-Original-Subject")
    data = msg.data or b""
    problem = replay_problem(msg.subject or "", subject, data)
    if problem is not None or not isinstance(subject, str):
        raise ReplayRefused(f"dead letter #{sequence} is not replayed: {problem}")
    marks = await _marks(js)
    message = message_of(msg.subject or "", headers)
    keys = [str(sequence)] + ([message] if message is not None else [])
    # its own mark, or the one its message has from a replay of another of its letters
    found = [mark for mark in [await _mark(marks, key) for key in keys] if mark is not None]
    before = max(found, key=lambda mark: int(mark.get("times") or 1), default=None)
    times = int(before.get("times") or 1) if before is not None else 0
    if before is not None and not again:
        letter = before.get("letter")
        which = "" if letter in (None, sequence) else f" (as dead letter #{letter}, another letter of its message)"
        raise ReplayRefused(
            f"dead letter #{sequence} was replayed already{which} ({times} time(s), the last at {before.get('at')} "
            f"on {before.get('subject')}); --again publishes it once more"
        )
    msg_id = f"replay:{topology.STREAM_DLQ}:{sequence}" + (f":{times + 1}" if times else "")
    # the dead letter's trace context goes along: the replay continues the payment's trace;
    # and its first time: a replay's news is as late as the original's (a letter from before
    # the header, 2026-12-06, or one whose header says later: the time it entered the DLQ,
    # no earlier than its message's)
    carried = {k: v for k, v in headers.items() if k.lower() in ("traceparent", "tracestate")}
    carried |= original_time_header(_first_time(headers, getattr(msg, "time", None)))
    ack = await js.publish(subject, data, headers={**carried, "Nats-Msg-Id": msg_id})
    if getattr(ack, "duplicate", False) is True:
        # another replay of the same letter published it within JetStream's duplicate window
        # (two operators at once, or a retry after its mark failed): not published again,
        # and its mark is the other replay's to write
        raise ReplayRefused(f"dead letter #{sequence} was being replayed already (published once, not again)")
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    mark = {
        "subject": subject,
        "at": at,
        "times": times + 1,
        "by": by,
        "note": note,
        "paymentId": _payment_of(data),
        "letter": sequence,
    }
    log.warning(
        "dead letter replayed",
        extra={"sequence": sequence, "subject": subject, "times": times + 1, "by": by, "note": note}
        | ({"payment_id": mark["paymentId"]} if mark["paymentId"] else {}),
    )
    value = json.dumps(mark).encode()
    written = [await _put_mark(marks, sequence, key, value) for key in keys]
    return Replayed(subject, all(written))


async def _put_mark(marks: KeyValue, sequence: int, key: str, value: bytes) -> bool:
    """Write a replay's mark under ``key`` (the same value each try: a put that went through
    unanswered and is written again changes nothing but its revision); False if it could not be."""
    for attempt in range(1, MARK_TRIES + 1):
        try:
            await marks.put(key, value)
            return True
        except Exception:  # published: the mark is what is missing, and a list will show it as not replayed
            if attempt == MARK_TRIES:
                log.exception("dead letter replayed but not marked", extra={"sequence": sequence, "tries": attempt})
                return False
            log.warning(
                "replay mark not written, trying again", extra={"sequence": sequence, "try": attempt}, exc_info=True
            )
            await asyncio.sleep(MARK_PAUSE * 2 ** (attempt - 1))
    return False


def _payment_of(data: bytes) -> str | None:
    """The payment a dead letter carried, if it is a payment event."""
    try:
        return PaymentEvent.from_json(json.loads(data)).payment.payment_id
    except (ValueError, TypeError, KeyError, DomainError, RecursionError):
        return None


class Marks(NamedTuple):
    """The replay marks: by DLQ sequence, and by message (`message_of`)."""

    letters: dict[int, dict[str, Any]]
    messages: dict[str, dict[str, Any]]

    def of(self, sequence: int, message: str | None) -> dict[str, Any] | None:
        """A letter's mark: its own, or that of another letter of its message replayed."""
        own = self.letters.get(sequence)
        return own if own is not None or message is None else self.messages.get(message)


async def read_marks(js: JetStreamContext) -> Marks:
    """Every replay mark. Read to the bucket's end (jetstream_read): nats-py's
    KeyValue.keys() could take a bucket of one mark for an empty one."""
    await _marks(js)  # refused with a cause if the bucket is missing
    found = Marks({}, {})
    for key, value in (await jetstream_read.kv_entries(js, topology.REPLAYED_BUCKET)).items():
        if key.isdigit():
            found.letters[int(key)] = _parsed(value)
        else:
            found.messages[key] = _parsed(value)
    return found


async def replay_marks(js: JetStreamContext) -> dict[int, dict[str, Any]]:
    """Every dead letter replayed: DLQ sequence -> its mark (``subject``, ``at``, ``times``,
    ``by``, ``note``, ``paymentId``, ``letter``)."""
    return (await read_marks(js)).letters


async def _marks(js: JetStreamContext) -> KeyValue:
    try:
        return await js.key_value(topology.REPLAYED_BUCKET)
    except nats.js.errors.BucketNotFoundError as exc:
        raise ReplayRefused(
            f"the replay marks' bucket {topology.REPLAYED_BUCKET} is missing: create the topology first "
            "(fjordbank.adapters.jetstream.ensure_topology)"
        ) from exc


async def _mark(marks: KeyValue, key: str) -> dict[str, Any] | None:
    try:
        entry = await marks.get(key)
    except nats.js.errors.KeyNotFoundError:
        return None
    return _parsed(entry.value or b"")


def _parsed(value: bytes) -> dict[str, Any]:
    """A mark as written; one that cannot be read still says the letter was replayed."""
    try:
        mark = json.loads(value)
    except ValueError:
        mark = None
    return mark if isinstance(mark, dict) else {"times": 1}


def main(argv: list[str] | None = None) -> int:
    from fjordbank.adapters import nats_conn
    from fjordbank.config import load_settings

    parser = argparse.ArgumentParser(prog="python -m fjordbank.runtime.dead_letters", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    again = sub.add_parser("replay", help="publish one dead letter again on the subject it came from")
    again.add_argument("sequence", type=int, help="the dead letter's sequence in the DLQ stream")
    again.add_argument("--again", action="store_true", help="publish a letter replayed before once more")
    again.add_argument("--by", required=True, help="who asks for the replay (kept with its mark and logged)")
    again.add_argument("--note", required=True, help="why: the cause and how it was mended")
    args = parser.parse_args(argv)
    settings = load_settings(identity="admin")

    async def run() -> Replayed:
        nc = await nats_conn.connect(settings.nats, name="dead-letters", max_reconnect_attempts=2)
        try:
            return await replay(nc.jetstream(), args.sequence, by=args.by, note=args.note, again=args.again)
        finally:
            await nc.close()

    try:
        done = asyncio.run(run())
    except ReplayRefused as exc:
        print(f"dead_letters: {exc}", file=sys.stderr)
        return 1
    except (nats.errors.Error, OSError, TimeoutError) as exc:  # NATS away: one line, not a traceback
        urls = ", ".join(settings.nats.urls)
        print(f"dead_letters: NATS did not answer at {urls}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(done.said(args.sequence), file=sys.stdout if done.marked else sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
