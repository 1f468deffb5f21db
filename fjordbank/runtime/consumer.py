"""The consumer runtime shared by every run_service.

A service gives a batch handler; the runtime does the rest: TLS + credentials, a durable
pull consumer bound by name, batch fetch, bounded concurrency, explicit ack, nak with
backoff, term, dead-lettering after ``max_deliver`` failures of the message's handler (a
transient one counts once it has failed for TRANSIENT_MAX_AGE_SECONDS; at once for a
message that can never succeed, or one back too often without an outcome:
UNSETTLED_DELIVERIES_FACTOR; failures and give-backs counted by fjordbank.runtime.tally),
a deadline on each handler call (HANDLER_DEADLINE_SECONDS), SIGTERM -> finish the batch in
hand, flush the acks and exit, JSON logs and Prometheus metrics.

If a handler raises for a whole batch, the runtime retries the batch one message at a
time, so one poison message cannot hold the others back; on a transient error (the
database or NATS away) it gives the whole batch back instead the first time, and splits it
when it fails again, up to the first message that fails transiently (the rest back after
that message's delay).

Tracing (fjordbank.runtime.tracing): each delivery gets a CONSUMER span, a child of the
trace context in the message's headers, from the start of its batch's handling to its
ack, nak or dead-lettering (the span's ``fjb.outcome``, with ``fjb.reason``). Handlers
find it as ``Delivery.span`` / ``Delivery.context``; a dead letter keeps the trace.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import datetime as dt
import functools
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import FetchTimeoutError
from opentelemetry.context import Context
from prometheus_client import Counter, Gauge, Histogram

from fjordbank import topology
from fjordbank.adapters import jetstream_publish, nats_conn
from fjordbank.adapters.faults import FaultSwitch
from fjordbank.adapters.firestore import is_transient
from fjordbank.config import Settings
from fjordbank.errors import PublishError
from fjordbank.runtime import crash, dead_letters, in_hand, logs, tracing
from fjordbank.runtime.http import JsonApiServer, ProbeServer
from fjordbank.runtime.in_hand import InHandMarks
from fjordbank.runtime.ownership import LeaseThread, instance_id
from fjordbank.runtime.redact import redact
from fjordbank.runtime.tally import DeliveryTally

log = logging.getLogger(__name__)

PROCESSED = Counter("fjb_messages_processed_total", "Messages handled, by outcome", ["consumer", "outcome"])
FAILED = Counter("fjb_messages_failed_total", "Handler failures (naked or dead-lettered)", ["consumer"])
REDELIVERED = Counter("fjb_messages_redelivered_total", "Deliveries after the first", ["consumer"])
DEAD_LETTERED = Counter("fjb_messages_dead_lettered_total", "Messages moved to the DLQ", ["consumer"])
LATENCY = Histogram(
    "fjb_processing_seconds",
    "Time to handle one batch, per message",
    ["consumer"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH = Histogram(
    "fjb_batch_size", "Messages per fetched batch", ["consumer"], buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500)
)
LAG = Gauge("fjb_consumer_lag", "Messages in the stream not yet delivered to the consumer", ["consumer"])
IN_PROGRESS = Counter(
    "fjb_messages_in_progress_total", "In-progress marks (+WPI) sent for messages still being handled", ["consumer"]
)
# the messages of the batch in hand that are settled (per process() call; see _heartbeat)
_SETTLED: contextvars.ContextVar[set[int] | None] = contextvars.ContextVar("fjb_settled", default=None)
# the delays the rest of a batch retried one at a time was given back with (per _in_pieces piece)
_REST_BACK: contextvars.ContextVar[list[float | None] | None] = contextvars.ContextVar("fjb_rest_back", default=None)
ACK_PENDING = Gauge(
    "fjb_consumer_ack_pending",
    "Messages delivered and not yet acknowledged, in the consumer's busiest partition",
    ["consumer"],
)
READY = Gauge("fjb_service_ready", "1 while /readyz answers 200 (every consumer bound), else 0")
CERT_EXPIRY = Gauge(
    "fjb_nats_certificate_expiry_timestamp_seconds",
    "When the service's NATS client certificate (cert=client) and the CA it trusts (cert=ca) expire, Unix seconds",
    ["cert"],
)
# Pauses before the in-hand attempts at a batch whose handler failed on a transient error
# (ConsumerService._handle), within a budget from the first attempt's start; after that the
# batch fails as any other (nak, redelivery with backoff). A slow failure (a 5 s publish
# timeout while a NATS node is down) is not tried again in hand: it would only hold the batch.
TRANSIENT_PAUSES = (0.2, 0.5, 1.0)
TRANSIENT_BUDGET_SECONDS = 3.0

# Partitions' batches a process works on at once (the others wait their turn, kept in
# progress meanwhile). Every partition an instance holds has its own worker, and without a
# bound all of them (16 of the ledger's 32 with K=2) decided and committed their batches
# side by side: they took turns on one event loop and finished together, so completions
# came in bursts with seconds of none between them, and each batch took as long as all of
# them. Measured on two cores, 20,000 payments flooded into the pipeline (bench/run.py's
# main run, completions timed by the stream): unbounded 119 and 127 payments/s, 34 and 22
# whole seconds without a completion, the longest 3 s in a row; four at a time 134/s, 9
# such seconds, the longest 2; two at a time 146/s, 4 such seconds, never 2 in a row; one
# at a time 154/s, 2 such seconds, never 2 in a row. Two, so that in production one
# batch's commit round trip to Firestore (over the network, not the emulator's loopback)
# overlaps the next one's decisions.
PARTITION_BATCHES_IN_FLIGHT = 2

# How long a stopping service waits for its background tasks to return (an HTTP server's
# requests in flight: fjordbank.runtime.http.STOP_GRACE_SECONDS, and a moment more).
BACKGROUND_GRACE_SECONDS = 8

# A handler's call (a batch, or one message of a batch retried one at a time) that has not
# returned after this long is cancelled and its messages given back (nak with backoff).
# Without a bound, a call that never returned (a database connection that hangs without a
# deadline) kept its messages in progress (+WPI) for ever, and its partition with them.
# Far above anything the bench or the chaos runs measured (a contended group commit on a
# loaded two-core machine: about 13 s); every handler is idempotent, so a call cut off
# after its commit landed is answered from its records when the messages come back.
HANDLER_DEADLINE_SECONDS = 120.0
# The same for a suspect message's call with the process's other calls waiting
# (fjordbank.runtime.in_hand): one message's handling, well under a second unless it hangs;
# at the full deadline a message that hangs froze every partition of the process for two
# minutes at each delivery (found in review, 2026-12-06).
ALONE_DEADLINE_SECONDS = 30.0
# (at least twice the slowest call that went through in the last HANDLER_DEADLINE_SECONDS, up
# to HANDLER_DEADLINE_SECONDS: a database slow for all must not time a suspect message out
# where the others' calls went through: found in review of the third version, 2026-12-06)

# A message whose handler keeps failing on a transient error (the database or NATS away or
# overloaded, a timeout) is not dead-lettered at its ``max_deliver``-th failure until it
# has been failing for this long (since its first failure in this process: a backlog older
# than this, handled after an outage, gets the same time): it is given back, after
# TRANSIENT_LATE_DELAY_SECONDS once the backoff table is spent. Counted like any failure, a
# brownout of a few minutes dead-lettered every step in flight, and the answers from the
# clearing house (settled, returned, arrived) are published once, so the payer's hold
# stayed and the payee's credit never came until an operator replayed the DLQ (found in
# review, 2026-12-06). A failure of the handler's own (a bug, a message it cannot take)
# counts from the first.
TRANSIENT_MAX_AGE_SECONDS = 3600.0
# How often a service that could not read its in-hand marks' bucket looks for it again
# (fjordbank.runtime.in_hand), when a suspect message comes.
MARKS_AGAIN_SECONDS = 60.0
TRANSIENT_LATE_DELAY_SECONDS = 30.0

# The server delivers a message for ever (the consumers' max_deliver is -1,
# fjordbank/adapters/jetstream.py); the runtime is what gives up: it dead-letters a message
# whose handler failed at its ``max_deliver``-th delivery, and one that came back this many
# times the ``max_deliver`` without ever getting an outcome (its process stopped each time
# it was being handled, or it was given back each time for a partition that moved): the
# message is moved to the DLQ before its handler sees it again. With the server counting as
# well, a message whose last allowed delivery ended without an outcome (a kill, a partition
# moved, a failed dead-letter publish) was never delivered again, and never dead-lettered.
# Deliveries that ended in this process (fjordbank.runtime.tally) are not counted; those
# that ended elsewhere cannot be told from ones without an outcome, so a message failing
# on a transient error (redelivered about every TRANSIENT_LATE_DELAY_SECONDS) is allowed
# one more delivery per that many seconds of its age, up to UNSETTLED_ALLOWANCE_SECONDS'
# worth: failing on a shared consumer's two replicas in turn, or handed from instance to
# instance during a brownout, it was taken for one without an outcome (found in review,
# 2026-12-06). The allowance is kept small, since it is also what a message that kills its
# process every time gets before it is dead-lettered (12 deliveries became at most 32: the
# partition's instances crash-loop that much longer); a brownout longer than the allowance
# that also moves the partition dead-letters what it has in flight, as before.
# A message this process has itself seen fail on a transient error gets the allowance for
# up to TRANSIENT_MAX_AGE_SECONDS of its age instead: its handling does not stop its process
# (a process it stopped took its memory of the message with it), so its deliveries unknown
# here are failures elsewhere. With the small allowance for all, the instances of a shared
# consumer (notifier-cards, notifier-customers, insights-cards; cards during a rollout)
# each took their siblings' failures for deliveries without an outcome, and a database
# brownout dead-lettered every message in flight after 27 minutes on two instances and 17
# on three, not after the hour one instance gives it (found in review, 2026-12-07). A
# message that stops every process handling it leaves no such memory in a live one and
# keeps the small allowance; so does a message in flight that a process starting during a
# brownout has not seen fail yet, as on one instance restarted then.
UNSETTLED_DELIVERIES_FACTOR = 2
UNSETTLED_ALLOWANCE_SECONDS = 600.0


class HandlerTimedOut(Exception):
    """A handler's call ran past HANDLER_DEADLINE_SECONDS and was cancelled."""


class AloneTimedOut(HandlerTimedOut):
    """A suspect message's call, with the process's other calls waiting, did not return:
    whether others went through before it took the process to itself decides whose failure
    it is (they could not meanwhile)."""

    def __init__(self, message: str, others_went_through: bool) -> None:
        super().__init__(message)
        self.others_went_through = others_went_through


class HandlerCancelled(Exception):
    """A handler raised CancelledError while its worker was not being cancelled."""


class PartitionMoved(Exception):
    """The partition of the batch in hand is no longer this instance's: its handler is not
    called (again); the messages are the new holder's."""


# NATS away or electing a stream's leader (a node restarted, a failover), and a publish
# that did not get stored (fjordbank.adapters.publisher: retryable, nothing acknowledged)
NATS_AWAY = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.NoRespondersError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
)


def transient(exc: BaseException) -> bool:
    """The database or NATS did not answer in time or was busy (Firestore's ABORTED,
    UNAVAILABLE, DEADLINE_EXCEEDED...: fjordbank.adapters.firestore.is_transient; NATS
    away or electing a leader; a publish or request timeout; a publish not stored for one
    of these): the same work may well succeed a moment later. A publish refused for what
    it is (too large, an API error) is not."""
    if isinstance(exc, PublishError):
        return exc.__cause__ is None or transient(exc.__cause__)
    return is_transient(exc) or isinstance(exc, (TimeoutError, *NATS_AWAY))


@dataclass(frozen=True)
class Ack:
    pass


@dataclass(frozen=True)
class Retry:
    """Transient failure: redeliver after the consumer's backoff (dead-letter when exhausted),
    or after ``delay`` seconds when given. ``transient``: the database or NATS failed, not
    the handler (see TRANSIENT_MAX_AGE_SECONDS)."""

    reason: str
    delay: float | None = None
    transient: bool = False
    timed_out: bool = False  # the handler's call was cut off (HANDLER_DEADLINE_SECONDS)
    alone: bool = False  # the message was handled alone (not in a batch that failed whole)


@dataclass(frozen=True)
class Reject:
    """Can never succeed (malformed, poison): dead-letter now with the reason and term it."""

    reason: str


class Stopper(Reject):
    """A message that stopped its process while handled alone (fjordbank.runtime.in_hand)."""


Outcome = Ack | Retry | Reject


@dataclass(frozen=True)
class Delivery:
    msg: Msg
    span: tracing.Span | None = field(default=None, compare=False)  # the message's span while it is handled

    @property
    def subject(self) -> str:
        return self.msg.subject

    @property
    def headers(self) -> dict[str, str]:
        return dict(getattr(self.msg, "headers", None) or {})  # (a message made by hand may have none)

    @property
    def context(self) -> Context:
        """The trace context of the message's span (what its next steps are published with)."""
        return tracing.context_of(self.span) if self.span is not None else tracing.extract(self.headers)

    @property
    def data(self) -> bytes:
        return self.msg.data

    @property
    def num_delivered(self) -> int:
        return self.msg.metadata.num_delivered

    @property
    def stream_sequence(self) -> int:
        return self.msg.metadata.sequence.stream

    @property
    def entered(self) -> dt.datetime | None:
        """When the message first entered the stream: its stream time, or for a dead letter
        replayed, the original's (dead_letters.ORIGINAL_TIME, when earlier). None: not known
        (a message made by hand)."""
        try:
            published = self.msg.metadata.timestamp
        except (AttributeError, ValueError):
            published = None
        first = dead_letters.original_time(self.headers)
        if first is not None and (published is None or first < published):
            return first
        return published

    def json(self) -> Any:
        return json.loads(self.msg.data)


def _pending_behind(msgs: list[Msg]) -> int:
    """What the server still had pending for the consumer when it delivered the last of
    ``msgs`` (every JetStream delivery carries the count); 0 when unknown (none, or
    messages made by hand in tests)."""
    try:
        return int(msgs[-1].metadata.num_pending or 0)
    except (AttributeError, IndexError, TypeError, ValueError):
        return 0


BatchHandler = Callable[[list[Delivery]], Awaitable[list[Outcome]]]
Subscription = JetStreamContext.PullSubscription


async def _in_hand_marks(js: JetStreamContext, service: str) -> InHandMarks | None:
    """The service's in-hand marks (fjordbank.runtime.in_hand); None, said, while the bucket
    cannot be read (a topology not set up again since it was added): a message that stops
    its process is then found by the limit on deliveries without an outcome only."""
    try:
        return InHandMarks(await js.key_value(topology.IN_HAND_BUCKET), service)
    except (TimeoutError, nats.errors.Error) as exc:
        log.warning(
            "no in-hand marks: their bucket cannot be read; run the JetStream setup",
            extra={"bucket": topology.IN_HAND_BUCKET, "error": repr(exc)},
        )
        return None


async def _give_back_queued(sub: Subscription) -> list[int]:
    """Nak at once (no delay) every message delivered to ``sub`` that no fetch has taken:
    the answer to a pull request can land after its fetch returned (the rest of a fill
    answered after ``fetch_wait``, a message sent as a fetch's wait ran out), and nats-py
    keeps it for the next fetch. Left there when the partition moved, it came back to the
    new holder only after ``ack_wait`` (behind the payer's later payments, which that holder
    fetched first), and this instance handled the stale copy if it took the partition back.
    Reads nats-py's queue of the subscription (no public call takes what is queued without
    asking the server for more); the status messages of expired requests are dropped, as
    its fetch drops them. Returns the stream sequences of those given back."""
    inner = getattr(sub, "_sub", None)
    queue: asyncio.Queue[Msg] | None = getattr(inner, "_pending_queue", None)
    if queue is None:
        return []
    given: list[Msg] = []
    while not queue.empty():
        msg = queue.get_nowait()
        inner._pending_size -= len(msg.data)  # type: ignore[union-attr]  # (as nats-py's own fetch does)
        if not JetStreamContext.is_status_msg(msg):
            given.append(msg)
    if given:
        await asyncio.gather(*(m.nak() for m in given), return_exceptions=True)
        log.info("queued deliveries given back", extra={"count": len(given)})
    return [_sequence(m) for m in given]


def _rest_given_back(delay: float) -> None:
    """Tell the ``_in_pieces`` in hand (if any) that the rest went back after ``delay``."""
    back = _REST_BACK.get()
    if back is not None:
        back.append(delay)


def _for_all(outcome: Retry) -> bool:
    """A failure on a transient error, or a timeout: the database's or NATS's, as likely."""
    return outcome.transient or outcome.timed_out


def retry_delay(outcome: Retry, failures: int, spec: topology.ConsumerSpec) -> float:
    """The delay of a Retry's nak at the message's ``failures``-th failure: its own, or the
    consumer's backoff; TRANSIENT_LATE_DELAY_SECONDS at least once the table is spent."""
    delay = spec.nak_delay(failures) if outcome.delay is None else outcome.delay
    return max(delay, TRANSIENT_LATE_DELAY_SECONDS) if failures >= spec.max_deliver else delay


def unsettled_limit(spec: topology.ConsumerSpec, age: float, *, failing_here: bool = False) -> int:
    """How many deliveries without an outcome here a message of ``age`` seconds may have
    had (UNSETTLED_DELIVERIES_FACTOR); ``failing_here``: its handler failed in this process
    on a transient error (the allowance then grows for up to TRANSIENT_MAX_AGE_SECONDS)."""
    cap = TRANSIENT_MAX_AGE_SECONDS if failing_here else UNSETTLED_ALLOWANCE_SECONDS
    allowance = min(max(age, 0.0), cap) / TRANSIENT_LATE_DELAY_SECONDS
    return UNSETTLED_DELIVERIES_FACTOR * spec.max_deliver + int(allowance)


def _age_seconds(d: Delivery) -> float:
    """How long ago the message was published (its stream's timestamp); unknown: old."""
    published = getattr(d.msg.metadata, "timestamp", None)
    if not isinstance(published, dt.datetime):
        return float("inf")
    return (dt.datetime.now(dt.UTC) - published).total_seconds()


def _sequence(msg: Msg) -> int:
    try:
        return int(msg.metadata.sequence.stream)
    except (AttributeError, TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class Binding:
    """One durable consumer of the service and the handler of its batches."""

    spec: topology.ConsumerSpec
    handler: BatchHandler


class ConsumerService:
    def __init__(
        self,
        *,
        durable: str,
        settings: Settings,
        handler: BatchHandler,
        batch_size: int = 100,
        fetch_wait: float = 1.0,
        concurrency: int = 1,  # batches in flight; >1 only for handlers whose batches commute
        on_connect: Callable[[JetStreamContext], Awaitable[None]] | None = None,
        background: list[Callable[[asyncio.Event], Awaitable[None]]] | None = None,
        also: list[tuple[str, BatchHandler]] | None = None,
        on_partition: Callable[[int], None] | None = None,
        api: JsonApiServer | None = None,
    ) -> None:
        """``also``: further durable consumers (possibly on other streams) the same process
        serves with their own handlers, over the same connection. ``on_partition(p)``: told
        when the instance takes partition ``p`` (the use cases that remember the versions
        of their documents forget them: what another owner wrote meanwhile is unknown).
        ``api``: a partner API served on the probes' port (its POST routes; the caller runs
        its ``serve`` among the ``background`` tasks, which stops it in time)."""
        self.spec = topology.consumer(durable)
        self.settings = settings
        self.handler = handler
        self.bindings = [Binding(self.spec, handler)] + [
            Binding(topology.consumer(name), h) for name, h in (also or [])
        ]
        self.batch_size = batch_size
        self.fetch_wait = fetch_wait
        self.concurrency = concurrency
        self.on_connect = on_connect
        self.on_partition = on_partition
        self.background = background or []
        self.api = api
        # chaos runs only (fjordbank/adapters/faults.py): None unless FJB_FAULTS_FILE is set
        self.faults = FaultSwitch.from_env(settings.nats.user or durable)
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None  # set once connected (_main); see jetstream()
        self._stopping = asyncio.Event()
        self._last_ack = float("-inf")  # when a handler here last went through (monotonic)
        self.leases: LeaseThread | None = None  # set when a consumer is partitioned
        self._active: dict[int, asyncio.Event] = {}  # partition -> held (workers pull)
        self._busy: dict[int, asyncio.Lock] = {}  # partition -> a batch in hand
        # partition -> its durables' subscriptions (with the durable's name)
        self._subs: dict[int, list[tuple[Subscription, str]]] = {}
        self.tally = DeliveryTally()  # each message's failures and give-backs here
        self.marks: InHandMarks | None = None  # set once connected (_bind): fjordbank.runtime.in_hand
        self._marks_sought = float("-inf")  # when the marks' bucket was last looked for (monotonic)
        self._gate = in_hand.Gate()  # handler calls share it; a marked message's has it alone
        # (when, how long) of the handler calls that went through in the last handler deadline
        self._calls: collections.deque[tuple[float, float]] = collections.deque()
        self._turns = asyncio.Semaphore(PARTITION_BATCHES_IN_FLIGHT)  # partitions' batches worked on
        self._ready = False
        self._alive = True
        self._leases_failed = False
        self._connection_closed = False

    def jetstream(self) -> JetStreamContext:
        """The JetStream context of the service's connection, made when the service starts."""
        if self.js is None:
            raise RuntimeError(f"consumer service {self.spec.durable}: not connected to NATS (run() connects)")
        return self.js

    # ---- lifecycle --------------------------------------------------------------------
    def run(self) -> None:
        """Entry point of a run_service process."""
        logs.setup(self.spec.durable, self.settings.log_level)
        tracing.setup(self.settings.nats.user or self.spec.durable, self.settings)
        crash.arm(self.settings.crash_point)
        asyncio.run(self._main())

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        probes = ProbeServer(
            self.settings.http_port,
            host=self.settings.http_host,
            live=lambda: self._alive,
            ready=lambda: self._ready,
            api=self.api,
        )
        READY.set_function(lambda: 1.0 if self._ready else 0.0)  # read at each scrape, as /readyz is
        await probes.start()
        for part, expiry in nats_conn.certificate_expiries(self.settings.nats).items():
            CERT_EXPIRY.labels(cert=part).set(expiry)
        try:
            self.nc = await nats_conn.connect(self.settings.nats, name=self.spec.durable)
            self.js = self.nc.jetstream()
            if self.on_connect is not None:
                await self.on_connect(self.js)
            shared, partitioned = await self._bind()
            self._ready = True
            workers = self._start_workers(shared, partitioned)
            groups: dict[str, list[Subscription]] = {}
            for binding, sub in shared + partitioned:
                groups.setdefault(binding.spec.name, []).append(sub)
            helpers = [asyncio.create_task(self._watch_lag(subs, name)) for name, subs in groups.items()]
            guards = [asyncio.create_task(self._guard(task)) for task in self.background]
            helpers += guards
            helpers.append(asyncio.create_task(self._watch_connection(self.nc)))
            if self.leases is not None:
                self.leases.start()
                helpers.append(asyncio.create_task(self._watch_leases(self.leases)))
                helpers.append(asyncio.create_task(self._drain_leases(self.leases)))
            await asyncio.gather(*workers)
            if self.leases is not None:
                await self.leases.stop()  # hands the partitions over now, not at expiry
            if guards:
                # a background task told to stop finishes its work in hand first (the partner
                # API answers the requests in flight and runs their reversals): cancelled at
                # once, a card approval the processor never had kept its hold for days
                await asyncio.wait(guards, timeout=BACKGROUND_GRACE_SECONDS)
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self._raise_if_failed()  # (after the clean stop's steps: the work in hand is finished)
        except Exception:
            self._alive = False
            log.exception("consumer stopped on an error")
            raise
        finally:
            self._ready = False
            if self.nc is not None and not self.nc.is_closed:
                # A pull consumer has nothing in flight once the batch in hand is settled:
                # flush the acks out, then close (nats-py's drain() waits on the pull
                # subscription's internal queue, which fetch() never marks done).
                try:
                    await self.nc.flush(timeout=5)
                except (TimeoutError, nats.errors.Error):
                    log.warning("could not flush the last acks; they will be redelivered")
                await self.nc.close()
            await probes.stop()
            log.info("stopped")

    def _start_workers(
        self, shared: list[tuple[Binding, Subscription]], partitioned: list[tuple[Binding, Subscription]]
    ) -> list[asyncio.Task[None]]:
        """``concurrency`` workers per shared durable, one per partition's durable."""
        workers = [
            asyncio.create_task(self._worker(sub, binding)) for binding, sub in shared for _ in range(self.concurrency)
        ]
        for binding, sub in partitioned:
            workers.append(asyncio.create_task(self._partition_worker(sub, binding)))
            self._subs.setdefault(binding.spec.partition or 0, []).append((sub, binding.spec.durable))
        return workers

    async def _bind(self) -> tuple[list[tuple[Binding, Subscription]], list[tuple[Binding, Subscription]]]:
        """Bind every durable: the shared ones (every instance pulls) and each partition's
        (worked on only while this instance holds the partition's lease)."""
        js = self.jetstream()
        shared: list[tuple[Binding, Subscription]] = []
        partitioned: list[tuple[Binding, Subscription]] = []
        for binding in self.bindings:
            for spec in binding.spec.partitions():
                sub = await js.pull_subscribe_bind(spec.durable, stream=spec.stream)
                info = await sub.consumer_info()
                log.info(
                    "consumer bound",
                    extra={"stream": spec.stream, "consumer": spec.durable, "pending": info.num_pending},
                )
                (partitioned if spec.group else shared).append((Binding(spec, binding.handler), sub))
        service = self.settings.nats.user or self.spec.durable
        self._marks_sought = time.monotonic()
        self.marks = await _in_hand_marks(js, service)
        if partitioned:
            await js.key_value(topology.OWNERS_BUCKET)  # exists (a clear error at start-up if not)
            self.leases = LeaseThread(
                lambda: nats_conn.connect(self.settings.nats, name=f"{service}-leases"),
                service,
                instance_id(),
                main_loop=asyncio.get_running_loop(),
                on_acquire=self._acquire,
                on_release=self._release,
            )
        return shared, partitioned

    async def _acquire(self, partition: int) -> None:
        if self.on_partition is not None:
            self.on_partition(partition)
        self._active.setdefault(partition, asyncio.Event()).set()

    async def _release(self, partition: int) -> None:
        """Stop pulling the partition, wait until its batch in hand is settled, and give
        back what was delivered to this instance but not fetched yet (`_give_back_queued`)."""
        self._active.setdefault(partition, asyncio.Event()).clear()
        async with self._busy.setdefault(partition, asyncio.Lock()):
            for sub, durable in self._subs.get(partition, []):
                for seq in await _give_back_queued(sub):
                    self.tally.gave_back((durable, seq))

    def _still_owned(self, binding: Binding) -> bool:
        """A shared consumer's messages are always this instance's; a partition's while it
        holds the partition."""
        p = binding.spec.partition
        return p is None or self.leases is None or self._owns(p)

    async def _drop_unsettled(self, batch: list[Delivery], spec: topology.ConsumerSpec) -> list[Delivery]:
        """The batch without the messages delivered more than ``UNSETTLED_DELIVERIES_FACTOR``
        times ``max_deliver`` without an outcome (see there), which are dead-lettered
        instead of handled."""
        keep = []
        for d in batch:
            unsettled, limit = self._unsettled(d, spec)
            if unsettled <= limit:
                keep.append(d)
                continue
            reason = (
                f"delivered {d.num_delivered} times, {unsettled} of them without an outcome here"
                " (its handling stopped each time, or it failed elsewhere)"
            )
            try:
                await self._settle(d, Reject(reason), spec)
            except Exception:  # back after ack_wait (the server delivers for ever), tried again then
                log.warning("could not dead-letter a message", extra={"subject": d.subject}, exc_info=True)
        return keep

    def _unsettled(self, d: Delivery, spec: topology.ConsumerSpec) -> tuple[int, int]:
        """The message's deliveries without an outcome here, and how many it may have had."""
        key = (spec.durable, d.stream_sequence)
        failing_here = self.tally.transient_failures(key) > 0
        return d.num_delivered - self.tally.ended_here(key), unsettled_limit(
            spec, _age_seconds(d), failing_here=failing_here
        )

    def _owns(self, partition: int) -> bool:
        event = self._active.get(partition)
        return event is not None and event.is_set() and self.leases is not None and self.leases.holds(partition)

    async def _partition_worker(self, sub: Subscription, binding: Binding) -> None:
        """Like _worker, for one partition, while this instance holds it. A batch fetched
        just as the lease went is given back at once (nak, no delay) for the new holder."""
        p = binding.spec.partition
        assert p is not None
        active = self._active.setdefault(p, asyncio.Event())
        busy = self._busy.setdefault(p, asyncio.Lock())
        while not self._stopping.is_set():
            if not self._owns(p):
                async with busy:  # (a release waits for it, as for a batch in hand)
                    for seq in await _give_back_queued(sub):  # a late answer to a fetch: the next holder's
                        self.tally.gave_back((binding.spec.durable, seq))
                if active.is_set():  # the lease lapsed (NATS out of reach) or is being given up
                    await asyncio.sleep(0.1)  # the event would answer at once: no busy loop
                    continue
                try:
                    await asyncio.wait_for(active.wait(), 0.5)
                except TimeoutError:
                    pass
                continue
            async with busy:
                try:
                    # one message: the rest of the batch is taken once it has its turn (process)
                    msgs = await sub.fetch(1, timeout=self.fetch_wait)
                except (TimeoutError, FetchTimeoutError, nats.errors.TimeoutError):
                    continue
                except nats.errors.Error as exc:
                    log.warning("fetch failed; retrying", extra={"error": repr(exc)})
                    await asyncio.sleep(0.5)
                    continue
                if not msgs:
                    continue
                if not self._owns(p):
                    # given back, as a batch whose partition moved while it waited its turn:
                    # counted as given back, not as deliveries without an outcome here (found
                    # in review, 2026-12-07)
                    await asyncio.gather(*(m.nak() for m in msgs), return_exceptions=True)
                    for d in map(Delivery, msgs):
                        self.tally.gave_back((binding.spec.durable, d.stream_sequence))
                    continue
                await self.process([Delivery(m) for m in msgs], binding, fill=functools.partial(self._more, sub))

    async def _watch_leases(self, leases: LeaseThread) -> None:
        """Stop the service (liveness failed, exit 1: restarted by its platform) if the lease
        loop ends while it runs: it ends only on a bug, and then no partition would ever be
        held again while the service answered ready."""
        while not self._stopping.is_set():
            if not leases.is_alive():
                log.error("the partition leases stopped; stopping the service")
                self._leases_failed = True
                self._alive = False
                self._stopping.set()
                return
            await asyncio.sleep(1.0)

    async def _drain_leases(self, leases: LeaseThread) -> None:
        """Once the service is stopping, its lease loop claims nothing more."""
        await self._stopping.wait()
        leases.drain()

    def _raise_if_failed(self) -> None:
        """A stop the service's watches made: exit 1, so that its platform restarts it."""
        if self._leases_failed:
            raise RuntimeError("the partition leases stopped: no partition could be held")
        if self._connection_closed:
            raise RuntimeError("the NATS connection closed for good: nothing could be fetched or published")

    async def _watch_connection(self, nc: Client, every: float = 1.0) -> None:
        """Stop the service (liveness failed, exit 1: restarted by its platform) when its
        NATS connection is closed for good (`nats_conn.closed_for_good`): the workers failed
        every fetch, logging "retrying", while the service answered live and ready and its
        partitions' leases, renewed on their own connection, never moved (found in review,
        2026-12-06)."""
        if await nats_conn.closed_for_good(nc, self._stopping, every):
            log.error("the NATS connection closed for good; stopping the service")
            self._connection_closed = True
            self._alive = False
            self._stopping.set()

    async def _guard(self, task: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        """Run a background task until stop; log and restart it if it fails."""
        while not self._stopping.is_set():
            try:
                await task(self._stopping)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task failed; restarting it")
                await asyncio.sleep(1)

    async def _watch_lag(self, subs: list[Subscription], name: str) -> None:
        """The declared consumer's lag, summed over its partitions (every instance reports
        the whole, not only what it holds), and its unacknowledged messages in the partition
        with the most: the limit they near (max_ack_pending) is each partition durable's.
        Summed, eight partitions at a batch each (8 x 200) met FjbConsumerAckPendingHigh's
        1,600 under an ordinary load (found in review, 2026-12-07)."""
        while True:
            try:
                infos = [await sub.consumer_info() for sub in subs]
                # the server always sends both counts (nats-py types every field of the info optional)
                LAG.labels(name).set(sum(i.num_pending or 0 for i in infos))
                ACK_PENDING.labels(name).set(max((i.num_ack_pending or 0 for i in infos), default=0))
            except (TimeoutError, nats.errors.Error):
                pass
            await asyncio.sleep(5)

    async def _worker(self, sub: Subscription, binding: Binding) -> None:
        while not self._stopping.is_set():
            try:
                msgs = await self._fetch(sub)
            except (TimeoutError, FetchTimeoutError, nats.errors.TimeoutError):
                continue
            except (
                nats.errors.ConnectionClosedError,
                nats.errors.ConnectionReconnectingError,
                nats.errors.Error,
            ) as exc:
                log.warning("fetch failed; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(0.5)
                continue
            if not msgs:
                continue
            await self.process([Delivery(m) for m in msgs], binding)

    async def _fetch(self, sub: Subscription) -> list[Msg]:
        """Wait up to ``fetch_wait`` for one message, then take as many of those the server
        still has pending behind it (its delivery carries that count) as the batch has room
        for. (A plain fetch(n) waits for n messages or its timeout, which costs a whole
        timeout of latency at every stage when traffic is light.)"""
        first = await sub.fetch(1, timeout=self.fetch_wait)
        return first + await self._more(sub, first)

    async def _more(self, sub: Subscription, batch: list[Msg], waited: bool = False) -> list[Msg]:
        """Up to the batch's room of the messages the server has pending now; none, without
        asking, when it had none behind the batch's last message when it delivered it.

        ``waited``: the batch waited for its turn (process), so that count may be old. It is
        then asked for again (the consumer's info, one round trip answered at once) when it
        was 0: under a steady rate a partition's message often came alone, waited a second
        for its turn while others came in behind it, and went on alone, so that every other
        turn worked on one message.

        Asked only when some are known to be there, the server answers at once (nats-py asks
        with no_wait first: what it has, up to the room, and "no more") and the answer is
        awaited for up to ``fetch_wait``. Had it none (another instance pulling from a shared
        consumer took them), nats-py waits for new ones, for at most ``fetch_wait``. This was a
        second fetch lingering 20 ms for whatever came: on two saturated cores the answer
        often came later than that, the fetch returned nothing and the batch went on with one
        message. Half the ledger's batches held one or two messages with hundreds pending,
        each one a whole commit and a whole turn (run_services/ledger.py), and the answer's
        messages waited in the client's queue for the next fetch, often past the consumer's
        ack_wait, to be delivered a second time. A 20,000-payment burst on a fresh stack
        (docs/capacity.md, section 7, sixteenth run): 6,927 redeliveries at the ledger and
        8,263 at the notifier before, 3,242 and 675 after."""
        room = self.batch_size - len(batch)
        if room <= 0:
            return []
        try:
            behind = _pending_behind(batch)
            if behind <= 0 and waited:
                behind = await self._pending_now(sub)
            if behind <= 0:
                return []
            return await sub.fetch(room, timeout=self.fetch_wait)
        except (TimeoutError, FetchTimeoutError, nats.errors.TimeoutError):
            return []  # (what comes after this is drained by the next fetch: nats-py queues it)
        except nats.errors.Error as exc:
            # NATS cannot be asked just now (a reconnect): the batch goes on with what it
            # has, and the rest comes with the next one. Raised, it would drop the messages
            # already in hand unsettled, to come back only after ack_wait.
            log.warning("could not fill the batch; going on with what it has", extra={"error": repr(exc)})
            return []

    async def _pending_now(self, sub: Subscription) -> int:
        """What the server has pending for the consumer now (not yet delivered to anyone),
        waited for no longer than a fetch would be (the turn is held meanwhile)."""
        info = await asyncio.wait_for(sub.consumer_info(), self.fetch_wait)
        return int(info.num_pending or 0)

    # ---- one batch ---------------------------------------------------------------------
    async def process(
        self,
        batch: list[Delivery],
        binding: Binding | None = None,
        fill: Callable[[list[Msg], bool], Awaitable[list[Msg]]] | None = None,
    ) -> None:
        """Handle one fetched batch and settle every message of it. While it is in hand,
        each unsettled message is marked in progress (+WPI) every third of the consumer's
        ack_wait, so ack_wait can be short: a message held by a killed or hung instance goes
        back to the stream within seconds, while a slow batch (a contended commit, a batch
        retried one message at a time) keeps its messages for as long as it works on them.

        ``fill`` (a partition's batch): called once the batch has its turn, for the rest of
        it, told whether the batch had to wait for the turn (``_more``: it answers what it
        could get, nothing when NATS cannot be asked, so the messages in hand are never
        dropped by it). A partition's worker fetches one message, waits for its turn with
        it, and only then takes what the server has behind it. A whole batch fetched first
        waited its turn (seconds, on two loaded cores) while more came in behind it, every
        one of its messages was marked in progress every 1.3 s meanwhile, and a late mark
        let the server deliver it again. The same 20,000-payment burst before and after
        (docs/capacity.md, section 7, seventeenth run): marks 334,000 -> 177,000; deliveries
        again at the ledger 1,674 -> 644, the notifier 479 -> 161, insights 423 -> 47,
        screening 390 -> 51.
        (The fill's round trip is taken with the turn held; the other turn goes on.)"""
        binding = binding or self.bindings[0]
        settled: set[int] = set()
        token = _SETTLED.set(settled)  # _settle adds to it, in the tasks that inherit this context
        beat = asyncio.create_task(self._heartbeat(batch, settled, binding.spec))
        try:
            if binding.spec.partition is None:
                await self._process(batch, binding)
            else:
                waited = self._turns.locked()  # (then fill asks what is pending now)
                async with self._turns:  # PARTITION_BATCHES_IN_FLIGHT
                    if not self._still_owned(binding):
                        # The partition moved while the batch waited its turn: given back at
                        # once (nak, no delay) for its new owner, as a batch fetched just then.
                        await asyncio.gather(*(d.msg.nak() for d in batch), return_exceptions=True)
                        for d in batch:
                            self.tally.gave_back((binding.spec.durable, d.stream_sequence))
                        return
                    if fill is not None:  # (extended in place: the heartbeat's list)
                        batch.extend(Delivery(m) for m in await fill([d.msg for d in batch], waited))
                    await self._process(batch, binding)
        finally:
            _SETTLED.reset(token)
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)

    @staticmethod
    async def _heartbeat(batch: list[Delivery], settled: set[int], spec: topology.ConsumerSpec) -> None:
        while True:
            await asyncio.sleep(spec.ack_wait_seconds / 3)
            pending = [d for d in batch if id(d.msg) not in settled]
            results = await asyncio.gather(*(d.msg.in_progress() for d in pending), return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:  # a lost connection: the messages come back after ack_wait, handled once (idempotent)
                log.warning(
                    "could not mark messages in progress", extra={"count": len(failed), "error": repr(failed[0])}
                )
            IN_PROGRESS.labels(spec.name).inc(len(pending) - len(failed))

    async def _handle(self, binding: Binding, batch: list[Delivery], *, alone: float | None = None) -> list[Outcome]:
        """The handler's outcomes for the batch. A transient error (``transient``) is tried
        again here after each of TRANSIENT_PAUSES before the batch fails: a nak costs one of
        the consumer's ``max_deliver`` deliveries, and with the database failing one call in
        five for a while, six failed deliveries in a row (a dead letter) would otherwise
        happen now and then. As safe as a redelivery, for the same reason: every handler is
        idempotent (a replayed step is answered from its records, its events are published
        with the same message ids). The heartbeat keeps the messages meanwhile. Each call
        shares the process's gate (fjordbank.runtime.in_hand.Gate) unless ``alone`` (its
        deadline): the caller has it alone (a marked message), waited for before the call's
        deadline."""
        started = time.monotonic()
        for pause in (*TRANSIENT_PAUSES, None):
            if not self._still_owned(binding):
                # asked before every attempt: the first may come after the fill's round trips
                # and a dead letter's publish, a later one seconds after NATS trouble that let
                # the lease lapse too (then another instance may work the partition already)
                raise PartitionMoved(f"partition {binding.spec.partition} is no longer held here")
            limit = HANDLER_DEADLINE_SECONDS if alone is None else alone
            deadline: asyncio.Timeout | None = None
            try:
                async with contextlib.nullcontext() if alone is not None else self._gate.shared():
                    # made once the gate is had: asyncio.timeout fixes its end when it is made,
                    # and made before, the wait behind a message handled alone counted as the
                    # handler's own time, timed it out at its first await, and six such waits
                    # dead-lettered a healthy message (found in review, 2026-12-07)
                    deadline = asyncio.timeout(limit)
                    async with deadline:
                        crash.handling(binding.spec.name, batch)  # FAILURE TESTS ONLY
                        called = time.monotonic()
                        outcomes = await binding.handler(batch)
                if any(isinstance(o, Ack) for o in outcomes):
                    self._went_through(called)
                return outcomes
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise  # this worker is being cancelled (the service stopping)
                # the handler's own (something it awaited was cancelled): a failure of its
                # messages; it escaped the worker, which ended and stopped the service,
                # and the same batch came back to the next instance (found in review,
                # 2026-12-06)
                raise HandlerCancelled("the handler raised CancelledError") from exc
            except Exception as exc:
                if deadline is not None and deadline.expired():
                    raise HandlerTimedOut(f"the handler did not return within {limit:.0f} s") from exc
                if pause is None or not self._may_try_again(exc, started, pause):
                    raise
                log.info(
                    "transient handler error; trying again",
                    extra={"size": len(batch), "error": repr(exc), "pause": pause},
                )
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")

    def _may_try_again(self, exc: Exception, started: float, pause: float) -> bool:
        """A transient error, within the budget after ``pause``, while the service runs on."""
        late = time.monotonic() - started + pause > TRANSIENT_BUDGET_SECONDS
        return not late and transient(exc) and not self._stopping.is_set()

    async def _process(self, batch: list[Delivery], binding: Binding, *, pieces: bool = True) -> list[Outcome] | None:
        """Handle and settle ``batch``; its outcomes (None: given back, or retried one at a
        time and settled there). ``pieces``: a suspect batch is handled in pieces (not for
        a piece)."""
        name = binding.spec.name
        batch = [d if d.span is not None else replace(d, span=self._start_span(d, name)) for d in batch]
        batch = await self._drop_unsettled(batch, binding.spec)
        if not batch:
            return None
        if len(batch) > 1 and any(self.tally.own_failures((binding.spec.durable, d.stream_sequence)) for d in batch):
            # A message of it failed here before for a reason of its own (it timed out alone,
            # or failed so): a message at a time at once, not the whole batch first (one that
            # hangs its handler cost two deadlines each time, 22 minutes before it was
            # dead-lettered, with the messages behind it given back each time and one of the
            # process's two turns held: found in review, 2026-12-06). Not after transient
            # failures: after an outage every message in hand has one, and each batch would
            # be committed a message at a time while the backlog came.
            await self._one_by_one(batch, binding, None)
            return None
        suspicion = self._suspicion(batch, binding.spec) if pieces and len(batch) > 1 else 0
        if suspicion:
            # A message of it may stop its process (fjordbank.runtime.in_hand): in smaller
            # pieces the more often it came back so, down to a message at a time (marked),
            # so that the one that does is found and the others go through.
            size = in_hand.piece_size(len(batch), suspicion)
            if size == 1:
                await self._one_by_one(batch, binding, None)
            else:
                await self._in_pieces(batch, binding, size)
            return None
        stops = await self._stops_alone(batch, binding.spec)
        if stops is not None and stops >= in_hand.STOPS_ALONE:
            return [await self._dead_letter_stopper(batch[0], stops, binding.spec)]
        return await self._handle_batch(batch, binding, stops=stops)

    def _suspicion(self, batch: list[Delivery], spec: topology.ConsumerSpec) -> int:
        """The highest level of suspicion of stopping its process among the batch's messages."""
        return max(
            in_hand.level(d.num_delivered, self.tally.ended_here((spec.durable, d.stream_sequence))) for d in batch
        )

    async def _in_pieces(self, batch: list[Delivery], binding: Binding, size: int) -> None:
        """A suspect batch in pieces of ``size``, in order, each handled and settled on its
        own while the partition is held here (once it moved, the rest is the new holder's);
        after a piece that failed on a transient error or timed out, the rest goes back after
        that delay (failing for all, as in ``_one_by_one``)."""
        log.warning("a suspect batch: handled in pieces", extra={"size": len(batch), "piece": size})
        for i in range(0, len(batch), size):
            if not self._still_owned(binding):
                await self._give_back(batch[i:], binding.spec)
                return
            piece, rest = batch[i : i + size], batch[i + size :]
            back: list[float | None] = []  # set by _one_by_one when it gave the piece's rest back
            token = _REST_BACK.set(back)
            try:
                outcomes = await self._process(piece, binding, pieces=False) or []
            finally:
                _REST_BACK.reset(token)
            failed = [(d, o) for d, o in zip(piece, outcomes, strict=False) if isinstance(o, Retry) and _for_all(o)]
            if failed and rest:
                d, outcome = failed[0]
                back.append(
                    retry_delay(outcome, self.tally.failures((binding.spec.durable, d.stream_sequence)), binding.spec)
                )
            if back and rest:  # failing for all: the rest after it, as the rest of the piece (order kept)
                await self._give_back(rest, binding.spec, delay=back[0], why="split")
                return

    async def _stops_alone(self, batch: list[Delivery], spec: topology.ConsumerSpec) -> int | None:
        """For a suspect message handled alone: the times it was so before without an outcome
        (its process stopped); None for any other batch, or when the marks cannot be read."""
        if len(batch) != 1:
            return None
        d = batch[0]
        if not in_hand.suspect(d.num_delivered, self.tally.ended_here((spec.durable, d.stream_sequence))):
            return None
        marks = await self._marks_now()
        return None if marks is None else await marks.stops(spec.durable, d.stream_sequence)

    async def _marks_now(self) -> InHandMarks | None:
        """The in-hand marks; looked for again now and then while their bucket could not be
        read (a service started before the topology's setup made it)."""
        if self.marks is None and self.js is not None and time.monotonic() - self._marks_sought > MARKS_AGAIN_SECONDS:
            self._marks_sought = time.monotonic()
            self.marks = await _in_hand_marks(self.js, self.settings.nats.user or self.spec.durable)
        return self.marks

    async def _handle_marked(self, binding: Binding, d: Delivery, stops: int) -> list[Outcome]:
        """A suspect message alone, marked while its handler runs and no other handler call
        of the process runs (fjordbank.runtime.in_hand): a process that stops meanwhile was
        stopped by it or by nothing a message did. The mark goes once the handler returned or
        raised; not when the process stops (then it counts), nor when the service is
        cancelled mid-call (counted as a stop too: one is not enough for the DLQ)."""
        marks, spec = self.marks, binding.spec
        if marks is None:
            return await self._handle(binding, [d])
        async with self._gate.alone():
            # Whose a timeout would be: its own only on fresh evidence that others go through
            # (none can while it runs): an ack within its deadline before it took the process,
            # and after its own last failure (a database hung for all: found in review of the
            # third version, 2026-12-06)
            taken, limit = time.monotonic(), self._alone_deadline()
            last_failed = self.tally.last_failed((spec.durable, d.stream_sequence))
            others = self._last_ack > max(taken - limit, last_failed or float("-inf"))
            marked = await marks.mark(spec.durable, d.stream_sequence, stops)
            try:
                outcomes = await self._handle(binding, [d], alone=limit)
            except Exception as exc:
                if marked:
                    await marks.clear(spec.durable, d.stream_sequence)
                if isinstance(exc, HandlerTimedOut):
                    raise AloneTimedOut(str(exc), others) from exc
                raise
            if marked:
                await marks.clear(spec.durable, d.stream_sequence)
            return outcomes

    async def _dead_letter_stopper(self, d: Delivery, stops: int, spec: topology.ConsumerSpec) -> Reject:
        """Its outcome, a ``Stopper``: dead-lettered (or back after ack_wait, found again then)."""
        reason = (
            f"its process stopped {stops} times while it was handled alone (an OOM kill or a crash:"
            " no outcome each time)"
        )
        outcome = Stopper(reason)
        log.error("a message stops its process; dead-lettering it", extra={"subject": d.subject, "stops": stops})
        try:
            await self._settle(d, outcome, spec)
        except Exception:  # back after ack_wait, and found again then (its mark kept: its stops with it)
            log.warning("could not dead-letter a message", extra={"subject": d.subject}, exc_info=True)
            return outcome
        if self.marks is not None:
            await self.marks.clear(spec.durable, d.stream_sequence)
        return outcome

    async def _handle_batch(
        self, batch: list[Delivery], binding: Binding, *, stops: int | None = None
    ) -> list[Outcome] | None:
        """Handle and settle a batch (``stops``: a suspect message alone, with the stops of
        its process it had so; ``_handle_marked``)."""
        name = binding.spec.name
        tracing.begin_batch()
        BATCH.labels(name).observe(len(batch))
        for d in batch:
            if d.num_delivered > 1:
                REDELIVERED.labels(name).inc()
        await self._ack_before_commit(batch)  # CHAOS ONLY: a deliberately broken consumer (see there)
        started = time.perf_counter()
        try:
            outcomes = (
                await self._handle(binding, batch)
                if stops is None
                else await self._handle_marked(binding, batch[0], stops)
            )
            if len(outcomes) != len(batch):
                raise RuntimeError(f"handler returned {len(outcomes)} outcomes for {len(batch)} messages")
        except PartitionMoved:
            await self._give_back(batch, binding.spec)
            return None
        except Exception as exc:  # noqa: BLE001  (any failure of the handler is its messages' outcome: _failed)
            failed = await self._failed(batch, binding, exc)
            if failed is None:  # retried one message at a time
                return None
            outcomes = failed
        elapsed = time.perf_counter() - started
        for _ in batch:
            LATENCY.labels(name).observe(elapsed / len(batch))
        crash.point(f"{name}.before_ack")
        results = await asyncio.gather(
            *(self._settle(d, o, binding.spec) for d, o in zip(batch, outcomes, strict=True)),
            return_exceptions=True,
        )
        for d, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):  # redelivered after ack_wait
                log.warning("could not settle a message", extra={"subject": d.subject, "error": repr(result)})
        log.info(
            "batch handled",
            extra={
                "size": len(batch),
                "acked": sum(isinstance(o, Ack) for o in outcomes),
                "failed": sum(not isinstance(o, Ack) for o in outcomes),
                "seconds": round(elapsed, 4),
            },
        )
        return outcomes

    async def _failed(self, batch: list[Delivery], binding: Binding, exc: Exception) -> list[Outcome] | None:
        """The outcomes of a batch whose handler raised ``exc``; None when its messages were
        retried one at a time (and settled there)."""
        error = f"{type(exc).__name__}: {exc}"
        # after one delay, the longest of theirs: each its own, a message delivered more
        # often came back after the payer's later ones
        delay = max(binding.spec.nak_delay(d.num_delivered) for d in batch)
        # A batch that failed before (one of its messages failed here) is split, whatever
        # the error: one message failing it every time (a hot document's contention, a
        # handler that hangs on it) took the others with it, to the DLQ in the end.
        again = any(self.tally.failures((binding.spec.durable, d.stream_sequence)) for d in batch)
        whole = len(batch) > 1 and not again
        if isinstance(exc, HandlerTimedOut) and (whole or len(batch) == 1):
            # a batch's first time: not the messages' fault, as far as is known (a database
            # that stopped answering looks the same), all of them back later as transient
            # failures. A message alone counts it as its own failure when other messages
            # went through here meanwhile: one that hangs its handler held one of the
            # process's two turns for the deadline at each try, for an hour as a transient
            # failure (found in review, 2026-12-06); but while nothing goes through (the
            # database hanging for all) it is everyone's, and healthy messages were
            # dead-lettered after six deadlines (found in review of that fix)
            went = exc.others_went_through if isinstance(exc, AloneTimedOut) else self._others_go_through()
            mine = len(batch) == 1 and went
            log.warning("handler timed out; giving the batch back", extra={"size": len(batch), "error": str(exc)})
            return [Retry(str(exc), delay, transient=not mine, timed_out=True, alone=mine)] * len(batch)
        if whole and transient(exc):
            # The database or NATS away or overloaded (the in-hand retries spent): the whole
            # batch back after one delay, as for a timeout. One at a time, each message took
            # its own round trips and in-hand retries: a 200-message ledger batch made about
            # 800 calls on a database already failing, held a partition turn for minutes,
            # and a payer's later payments were debited before an earlier one given back
            # (found in review, 2026-12-06).
            log.warning("batch failed on a transient error; giving it back", extra={"size": len(batch), "error": error})
            return [Retry(error, delay, transient=True)] * len(batch)
        if len(batch) > 1:
            await self._one_by_one(batch, binding, exc)
            return None
        with tracing.use(batch[0].span):
            log.warning(
                "handler failed",
                extra={"subject": batch[0].subject, "error": error, "delivery": batch[0].num_delivered},
                exc_info=True,
            )
        # counted among its tries alone only while others go through here: in an outage the
        # head of each split fails alone every time, and counted so, a payer's later payment
        # went first once the database came back (found in review of the first fix)
        return [Retry(error, transient=transient(exc), alone=self._others_go_through())]

    def _went_through(self, called: float) -> None:
        """A handler call started at ``called`` acked: others go through (see _failed)."""
        now = self._last_ack = time.monotonic()
        self._calls.append((now, now - called))
        while self._calls and now - self._calls[0][0] > HANDLER_DEADLINE_SECONDS:
            self._calls.popleft()

    def _alone_deadline(self) -> float:
        """A suspect message's call's deadline, with the process to itself: ALONE_DEADLINE_SECONDS,
        or twice the slowest call that went through lately, up to the handler's deadline."""
        now = time.monotonic()
        slowest = max((took for at, took in self._calls if now - at <= HANDLER_DEADLINE_SECONDS), default=0.0)
        return min(max(ALONE_DEADLINE_SECONDS, 2 * slowest), HANDLER_DEADLINE_SECONDS)

    def _others_go_through(self) -> bool:
        """Whether a handler here went through within the last handler deadline: a failure
        of one message alone meanwhile is its own, not the database's or NATS's."""
        return time.monotonic() - self._last_ack < HANDLER_DEADLINE_SECONDS

    async def _one_by_one(self, batch: list[Delivery], binding: Binding, exc: Exception | None) -> None:
        """A failed batch again, a message at a time (one that failed for a reason of its
        own, or one that failed before; ``exc`` None: a batch with such a message, not
        tried whole), so the others go through, while its partition is still held here;
        once it moved, the messages not handled yet are the new holder's (given back at
        once, no delay). A message that fails transiently or times out sends the rest back
        after its delay, unless it is past its tries: then the next one tells whether the
        failure is its own (the split goes on) or everyone's (the rest back)."""
        log.warning(
            "batch failed; retrying its messages one by one" if exc else "a message failed before; one by one",
            extra={"size": len(batch), "error": None if exc is None else f"{type(exc).__name__}: {exc}"},
        )
        suspect = False  # the last message failed past its tries (so taken for its own failure)
        for i, d in enumerate(batch):
            if not self._still_owned(binding):
                await self._give_back(batch[i:], binding.spec)
                return
            outcomes = await self._process([d], binding)
            first = outcomes[0] if outcomes else None
            key = (binding.spec.durable, d.stream_sequence)
            failures = self.tally.failures(key)
            failing = isinstance(first, Retry) and (first.transient or first.timed_out) and bool(failures)
            if isinstance(first, Retry) and failing:
                # its tries: the failures it had alone (a whole batch's in an outage were
                # everyone's, and counted so a payer's later payment went first: found in
                # review of the first fix, 2026-12-06)
                if suspect or self.tally.alone_failures(key) < binding.spec.max_deliver:
                    # the database or NATS failing (or a timeout), and the message not dead-
                    # lettered by it: the rest back after the delay its nak got (never at
                    # once: they overtook it, a payer's later payments before the earlier
                    # one, and came back hot: found in review, 2026-12-06), rather than each
                    # taking its own tries (and up to the handler's deadline each) on what is
                    # failing for all of them
                    rest = retry_delay(first, failures, binding.spec)
                    if i + 1 < len(batch):
                        await self._give_back(batch[i + 1 :], binding.spec, delay=rest, why="split")
                    _rest_given_back(rest)  # (the pieces after this one's too: _in_pieces)
                    return
                # Failing past its tries (kept only by the hour a transient failure is
                # given): taken for a failure of its own, as one past max_deliver would be,
                # and the next message tells: if that goes through the split goes on, if it
                # fails too the rest goes back. Behind it every time, the messages after
                # one failing so for reasons of its own (contention on a document only it
                # writes) waited the hour (found in review, 2026-12-06); a payer's later
                # payment overtakes an earlier one only after the earlier one's tries, as
                # after a failure of its own.
                suspect = True
                continue
            if isinstance(first, Stopper) and i + 1 < len(batch) and self._room_for_another(batch[i + 1 :], binding):
                # the message that stopped the process found: the rest of its batch, suspect only
                # for having shared its deliveries, goes on as a batch (one commit, no marks),
                # not a message at a time (found in review, 2026-12-06: 199 marked calls after
                # a stopper of a 200-message batch); while each of them has deliveries left for
                # another stopper among them to be found alone before the limit
                rest_outcomes = await self._process(batch[i + 1 :], binding, pieces=False) or []
                failed = [o for o in rest_outcomes if isinstance(o, Retry) and _for_all(o)]
                if failed:  # failing for all: the pieces after this one wait too (_in_pieces)
                    _rest_given_back(retry_delay(failed[0], 1, binding.spec))
                return
            suspect = False

    def _room_for_another(self, rest: list[Delivery], binding: Binding) -> bool:
        """Whether every message of ``rest`` has deliveries left under the limit on deliveries
        without an outcome for a stopper among them to be found after the batch stops the
        process once more, and one more after that one at a time (with three stoppers in a
        batch of 200 the third reached the limit, and 40 innocent messages with it, where a
        message at a time found all three: found in review, 2026-12-06). A stopper is found
        STOPS_ALONE + 1 deliveries after its batch's stop, or after the delivery on which the
        messages before it went through one at a time."""
        spec = binding.spec
        need = 2 * (in_hand.STOPS_ALONE + 1)
        for d in rest:
            unsettled, limit = self._unsettled(d, spec)
            if limit - unsettled < need:
                return False
        return True

    async def _give_back(
        self, batch: list[Delivery], spec: topology.ConsumerSpec, *, delay: float | None = None, why: str = "moved"
    ) -> None:
        """Messages not handled, given back: a partition's that moved, at once (nak, no
        delay) for its new holder; the rest of a batch retried one at a time (``why``
        "split") whose turn did not come, after ``delay``. Counted as given back, not as
        failures."""
        await asyncio.gather(*(d.msg.nak(delay=delay) for d in batch), return_exceptions=True)
        for d in batch:
            self.tally.gave_back((spec.durable, d.stream_sequence))
        settled = _SETTLED.get()
        if settled is not None:  # the heartbeat leaves them alone from now
            settled.update(id(d.msg) for d in batch)
        outcome = "partition_moved" if why == "moved" else "given_back"
        for d in batch:
            if d.span is not None:
                tracing.set_attributes(d.span, {"fjb.outcome": outcome})
                d.span.end()
        if why == "moved":
            log.info("partition moved; batch given back", extra={"size": len(batch)})
        else:
            log.info("rest of a split batch given back", extra={"size": len(batch), "delay": delay})

    def _start_span(self, d: Delivery, consumer: str) -> tracing.Span:
        meta = d.msg.metadata
        published = getattr(meta, "timestamp", None)
        return tracing.start_span(
            f"{consumer} {topology.base_subject(d.subject)}",
            tracing.extract(d.headers),
            kind=tracing.SpanKind.CONSUMER,
            attrs={
                "messaging.system": "nats",
                "messaging.destination.name": d.subject,
                "messaging.destination.partition.id": topology.partition_in(d.subject),
                "messaging.consumer.group.name": consumer,
                "fjb.consumer": consumer,
                "fjb.stream_sequence": d.stream_sequence,
                "fjb.num_delivered": d.num_delivered,
                "fjb.published_ns": int(published.timestamp() * 1e9) if published is not None else None,
                # a dead letter published again by `bankctl dlq replay` (message id replay:DLQ:SEQ)
                "fjb.replay": d.headers.get("Nats-Msg-Id", "").startswith("replay:") or None,
            },
        )

    async def _settle(self, d: Delivery, outcome: Outcome, spec: topology.ConsumerSpec) -> None:
        final, delay = self._decide(d, outcome, spec)
        try:
            await self._settle_message(d, outcome, spec, final=final, delay=delay)
        finally:
            settled = _SETTLED.get()
            if settled is not None:  # the heartbeat of its batch leaves it alone from now
                settled.add(id(d.msg))
            if d.span is not None:
                if isinstance(outcome, Ack):
                    d.span.set_attribute("fjb.outcome", "ack")
                else:
                    tracing.set_attributes(
                        d.span, {"fjb.outcome": "dead_lettered" if final else "nak", "fjb.reason": outcome.reason}
                    )
                    tracing.fail(d.span, outcome.reason)
                d.span.end()

    def _decide(self, d: Delivery, outcome: Outcome, spec: topology.ConsumerSpec) -> tuple[bool, float | None]:
        """Whether the message is settled for good (acked, or dead-lettered), and the delay
        of its nak if not. A Retry counts one failure of its handler here
        (fjordbank.runtime.tally): the message is dead-lettered at its ``max_deliver``-th
        failure, a transient one's only once it has failed here for TRANSIENT_MAX_AGE_SECONDS."""
        key = (spec.durable, d.stream_sequence)
        if not isinstance(outcome, Retry):
            return True, None
        failures = self.tally.failed(key, own=not outcome.transient, alone=outcome.alone)
        if failures < spec.max_deliver:
            return False, retry_delay(outcome, failures, spec)
        if outcome.transient and self.tally.failing_for(key) < TRANSIENT_MAX_AGE_SECONDS:
            return False, retry_delay(outcome, failures, spec)
        return True, None

    async def _ack_before_commit(self, batch: list[Delivery]) -> None:
        """CHAOS ONLY, a deliberately broken consumer. With the fault ``ack_before_commit``
        on for this service (fjordbank/adapters/faults.py; refused outside the emulator) each
        delivery is acked BEFORE its handler runs and commits, so a kill in between loses
        it. `python -m bench.chaos --break ack-before-commit:SERVICE` switches it on to show
        that the chaos run catches such a consumer (tests/e2e/test_chaos_catches_broken_consumer.py)."""
        fault = self.faults.active("ack_before_commit") if self.faults is not None else None
        if fault is None:
            return
        await asyncio.gather(*(d.msg.ack() for d in batch), return_exceptions=True)
        settled = _SETTLED.get()
        if settled is not None:  # no in-progress marks for acked messages
            settled.update(id(d.msg) for d in batch)
        # the work between the ack and the commit, as a slow step would take: without it a
        # fast ledger commits within milliseconds and the run's kills seldom land in between
        await asyncio.sleep(float(fault.get("work_seconds", 1.0)))

    async def _settle_message(
        self, d: Delivery, outcome: Outcome, spec: topology.ConsumerSpec, *, final: bool, delay: float | None
    ) -> None:
        if getattr(d.msg, "is_acked", False) is True:  # CHAOS ONLY: acked by _ack_before_commit already
            return
        name = spec.name
        if isinstance(outcome, Ack):
            PROCESSED.labels(name, "ack").inc()
            await d.msg.ack()
            self.tally.forget((spec.durable, d.stream_sequence))
            return
        FAILED.labels(name).inc()
        if not final:
            PROCESSED.labels(name, "nak").inc()
            await d.msg.nak(delay=delay)
            return
        await self.dead_letter(d, outcome.reason, spec)
        PROCESSED.labels(name, "dead_lettered").inc()
        await d.msg.term()
        self.tally.forget((spec.durable, d.stream_sequence))  # (kept when the DLQ publish failed)

    async def dead_letter(self, d: Delivery, reason: str, spec: topology.ConsumerSpec | None = None) -> None:
        """Store the message with its reason in the DLQ stream before terminating it.

        The letter has no message id: JetStream drops a publish whose id it has seen in the
        stream within its duplicate window, whatever its subject, and answers it as stored.
        With a predictable id (``dlq:<stream>:<sequence>:<durable>``), any service allowed to
        publish on its own dlq subject could publish first with another's id; that one's
        letter was then dropped, the duplicate answer taken for it, and the message
        terminated: a payment step gone with no letter of it (found in review, 2026-12-07).
        Checking a duplicate's stored letter instead needs a read of the DLQ stream by
        sequence, which would let every service read every other's letters. A dead-lettering
        tried again after its letter was stored (its answer lost, or the message's term)
        stores a second letter: `bankctl dlq list` shows it as another letter of the same
        message, and a replay of either marks both (fjordbank.runtime.dead_letters)."""
        spec = spec or self.spec
        headers = {
            # masked as the log line about it is: the header is kept in the DLQ stream and
            # shown by `bankctl dlq list` (found in review, 2026-12-07)
            "Fjb-Reason": redact(reason)[:1000],
            "Fjb-Original-Subject": d.subject,
            "Fjb-Original-Sequence": str(d.stream_sequence),
            "Fjb-Deliveries": str(d.num_delivered),
            **dead_letters.original_time_header(d.entered),
            **tracing.inject(d.context),  # the dead letter (and a replay of it) stays in the trace
        }
        ack = await jetstream_publish.publish(self.jetstream(), spec.dead_letter_subject, d.data, headers=headers)
        if getattr(ack, "duplicate", False) is True:
            # a publish without an id is never a duplicate; if the stream says so, what it
            # holds is not known to be this letter, and the message is not terminated on it
            raise PublishError(f"the DLQ stream took dead letter of {d.subject} #{d.stream_sequence} for a duplicate")
        tracing.set_attributes(d.span, {"fjb.dlq_sequence": getattr(ack, "seq", None)})  # for `bankctl dlq replay`
        DEAD_LETTERED.labels(spec.name).inc()
        with tracing.use(d.span):
            log.error(
                "message dead-lettered",
                extra={
                    "subject": d.subject,
                    "sequence": d.stream_sequence,
                    "deliveries": d.num_delivered,
                    "reason": reason,
                },
            )
