"""Fault injection for chaos runs, on the local stack only.

A service loads the switch when ``FJB_FAULTS_FILE`` is set (devstack sets it for every
service it starts; nothing sets it in production). Outside the emulator the setting is
refused at start-up: production never injects faults (``FaultSwitch.from_env``).

The chaos run (bench/chaos) writes the file, atomically, to ask for faults; every service
re-reads it when its modification time changes (checked at most every ``poll_seconds``).
The file is one JSON object, one entry per fault, each with an ``until`` (epoch seconds;
the fault is off afterwards, so a chaos run that dies leaves nothing behind for long) and
an optional ``services`` list (absent: every service)::

    {"firestore": {"until": 1764500000, "rate": 0.1,
                   "codes": ["ABORTED", "UNAVAILABLE", "DEADLINE_EXCEEDED"], "services": ["ledger"]},
     "publish_timeout": {"until": 1764500000, "rate": 0.2},
     "clearing_channel_down": {"until": 1764500060},
     "counterparty": {"until": 1764500060, "duplicate_rate": 0.5, "reorder": true}}

Each adapter that can fail asks ``switch.active(name)`` for its entry (None: no fault) and
``switch.draw(rate)`` whether this call fails. The random draws come from the service's
own generator: the seed of a chaos run fixes which faults happen when, not which calls.
Every injected fault counts in ``fjb_faults_injected_total{fault}`` on the service's /metrics.

The injectors here (bench/chaos/injected.py drives them):

- ``firestore``: ``async_client(project_id, faults=switch)`` (fjordbank/adapters/firestore.py)
  gives a client whose gRPC channel (``firestore_interceptors``) fails calls with ABORTED, UNAVAILABLE or
  DEADLINE_EXCEEDED (see "Firestore" below for why there and how).
- ``publish_timeout``: ``jetstream(js, switch)`` wraps the JetStream context the services
  publish their payment steps with (run_services/{screening,ledger,clearing}.py on_connect,
  used by fjordbank.runtime.events.publish): ``publish`` raises nats.errors.TimeoutError.

Every service makes its switch once, with ``for_service(name)``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import grpc
import grpc.aio
import nats.errors
from nats.js.api import PubAck
from nats.js.client import JetStreamContext
from prometheus_client import Counter

from fjordbank.adapters.firestore_calls import method_path
from fjordbank.errors import ConfigError

T = TypeVar("T")
# A call's request and response messages (gRPC's interceptors are generic over them).
Req = TypeVar("Req")
Resp = TypeVar("Resp")

log = logging.getLogger(__name__)


class FaultSwitch:
    def __init__(
        self, path: Path, service: str, *, poll_seconds: float = 0.5, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.service = service
        self.poll_seconds = poll_seconds
        self._clock = clock
        self._rng = random.Random()
        self._lock = threading.Lock()
        self._checked: float | None = None  # monotonic; None: never read (not 0: a fresh machine's clock is small)
        self._mtime: float | None = None
        self._faults: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> FaultSwitch | None:
        env = os.environ if env is None else env
        path = env.get("FJB_FAULTS_FILE")
        if not path:
            return None
        if not env.get("FIRESTORE_EMULATOR_HOST"):
            raise ConfigError("FJB_FAULTS_FILE is for chaos runs on the emulator only; unset it in production")
        log.warning("fault injection enabled (chaos runs)", extra={"faults_file": path})
        return cls(Path(path), service)

    def _refresh(self) -> None:
        now = time.monotonic()
        if self._checked is not None and now - self._checked < self.poll_seconds:
            return
        self._checked = now
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._mtime, self._faults = None, {}
            return
        if mtime == self._mtime:
            return
        try:
            faults = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError) as exc:
            log.warning("faults file unreadable; no faults", extra={"error": repr(exc)})
            faults = {}
        self._mtime, self._faults = mtime, faults if isinstance(faults, dict) else {}

    def active(self, name: str) -> dict[str, Any] | None:
        """The entry of fault ``name`` if it is on now for this service, else None."""
        with self._lock:
            self._refresh()
            entry = self._faults.get(name)
        if not isinstance(entry, dict) or float(entry.get("until", 0)) <= self._clock():
            return None
        services = entry.get("services")
        if services and self.service not in services:
            return None
        return entry

    def draw(self, rate: float) -> bool:
        with self._lock:
            return self._rng.random() < rate

    def choice(self, options: list[T]) -> T:
        with self._lock:
            return self._rng.choice(options)


def write(path: Path, faults: dict[str, dict[str, Any]]) -> None:
    """Replace the faults file atomically (the chaos run's side)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(faults))
    os.replace(tmp, path)


def read(path: Path) -> dict[str, dict[str, Any]]:
    """The faults file's entries ({} when there is none or it is unreadable)."""
    try:
        faults = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return faults if isinstance(faults, dict) else {}


def update(path: Path, name: str, entry: dict[str, Any] | None) -> None:
    """Set (None: remove) the one entry ``name``, keeping the others: read, update, write
    under an exclusive lock on a file beside it, so two writers never lose each other's."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        faults = read(path)
        if entry is None:
            faults.pop(name, None)
        else:
            faults[name] = entry
        write(path, faults)


# ---- what was injected ---------------------------------------------------------------------
# Declared by keywords (tests/unit/test_reasons.py reads positional snake_case strings in
# fjordbank/ as reason codes); every service exposes it, with no series until a fault fires.
INJECTED = Counter(
    name="fjb_faults_injected_total",
    documentation="Faults a chaos run injected into this service (local stack only), by fault",
    labelnames=["fault"],
)

# Entry names in the faults file (module constants, for the same reason).
FIRESTORE = "firestore"
PUBLISH_TIMEOUT = "publish_timeout"
# `fault` label values of fjb_faults_injected_total
FIRESTORE_FAULTS = {
    "ABORTED": "firestore_aborted",
    "UNAVAILABLE": "firestore_unavailable",
    "DEADLINE_EXCEEDED": "firestore_deadline_exceeded",
}
PUBLISH_NOT_SENT = "publish_timeout_not_sent"  # timed out before the message went out
PUBLISH_ACK_LOST = "publish_timeout_ack_lost"  # stored by JetStream, its ack lost


@functools.cache
def for_service(service: str) -> FaultSwitch | None:
    """The process's switch (``FaultSwitch.from_env``), made once: the Firestore client and
    the JetStream publisher of a service share it. None unless ``FJB_FAULTS_FILE`` is set."""
    return FaultSwitch.from_env(service)


# ---- Firestore --------------------------------------------------------------------------
# Why a gRPC interceptor on the client's channel, and not a wrapper of the client's
# ``_firestore_api`` methods: the client's every RPC (commit, begin/rollback transaction,
# batch get, run query, ...) goes through that one channel, and an error made there as a
# ``grpc.aio.AioRpcError`` with the status code travels the same way a server's does: the
# GAPIC layer turns it into google.api_core.exceptions.Aborted / ServiceUnavailable /
# DeadlineExceeded (from_grpc_error, with the gRPC error as ``response``), applies its own
# default retry to it (UNAVAILABLE on a commit, for instance, is retried there, as a real
# one is), and the transaction loop of async_transactional sees ABORTED at commit as it
# sees contention. A wrapper above the GAPIC client would skip that layer and hand the code
# above errors in places and shapes a real database never produces.
#
# Where each code appears, as with the real database: ABORTED only on a call inside a
# transaction (its commit, its reads: contention); UNAVAILABLE and DEADLINE_EXCEEDED on any
# call. A unary call (commit, begin, rollback) fails before it is sent; a streaming read
# (batch get, run query) connects and its stream fails at the first read, where a server's
# error on a stream arrives (GAPIC does not retry that one: the caller gets it).
_DETAILS = {
    "ABORTED": "Too much contention on these documents. Please try again.",
    "UNAVAILABLE": "The service is currently unavailable.",
    "DEADLINE_EXCEEDED": "Deadline Exceeded",
}


class _FirestoreFaults:
    """Draws the error of one call. (grpc.aio files an interceptor under one arity only,
    so the unary and the streaming calls each get an interceptor that asks this.)"""

    def __init__(self, switch: FaultSwitch) -> None:
        self.switch = switch

    def error(self, request: object) -> grpc.aio.AioRpcError | None:
        """The error this call gets, or None (the call goes through)."""
        entry = self.switch.active(FIRESTORE)
        if type(request).__name__ == "RollbackRequest":
            # Never a rollback: a transaction whose rollback fails keeps its locks until it
            # expires (a minute in the emulator), and every payment touching those documents
            # waits that long. That is lock expiry, not the failure handling a chaos run is
            # after: the reads and commits before it fail, and their handling is measured.
            return None
        if entry is None or not self.switch.draw(float(entry.get("rate", 0))):
            return None
        codes = [c for c in entry.get("codes") or list(_DETAILS) if c in _DETAILS]
        if not getattr(request, "transaction", b""):  # not in a transaction: no contention
            codes = [c for c in codes if c != "ABORTED"]
        if not codes:
            return None
        code = self.switch.choice(codes)
        INJECTED.labels(FIRESTORE_FAULTS[code]).inc()
        empty = grpc.aio.Metadata()
        return grpc.aio.AioRpcError(getattr(grpc.StatusCode, code), empty, empty, details=_DETAILS[code])


class _UnaryFaults(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, faults: _FirestoreFaults) -> None:
        self.faults = faults

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Req], Awaitable[grpc.aio.UnaryUnaryCall[Req, Resp]]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Req,
    ) -> Resp | grpc.aio.UnaryUnaryCall[Req, Resp]:
        error = self.faults.error(request)
        if error is None:
            return await continuation(client_call_details, request)
        if error.code() == grpc.StatusCode.ABORTED and method_path(client_call_details).endswith("/Commit"):
            # The database drops a transaction it aborts, and the client does not roll it
            # back (it begins the next attempt): release it here, writing nothing, or the
            # emulator would keep its locks until it expires.
            try:
                await (await continuation(client_call_details, _empty_commit(request)))
            except grpc.RpcError:
                pass  # gone already
        raise error


def _empty_commit(commit: Any) -> Any:
    """A commit of ``commit``'s transaction that writes nothing (a CommitRequest: Any, as
    the interceptor sees every method's request)."""
    return type(commit)(database=commit.database, transaction=commit.transaction)


class _StreamFaults(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, faults: _FirestoreFaults) -> None:
        self.faults = faults

    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Req], Awaitable[grpc.aio.UnaryStreamCall[Req, Resp]]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Req,
    ) -> AsyncIterator[Resp] | grpc.aio.UnaryStreamCall[Req, Resp]:
        error = self.faults.error(request)
        if error is not None:
            return _FailedStream(error)
        return await continuation(client_call_details, request)


class _FailedStream(grpc.aio.UnaryStreamCall[Req, Resp]):
    """A server-streaming call that connected and whose stream ends in ``error`` at the
    first read (nothing is sent: the request's fate does not matter to a read)."""

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        self._error = error

    def __aiter__(self) -> AsyncIterator[Resp]:
        return self

    async def __anext__(self) -> NoReturn:
        raise self._error

    async def read(self) -> NoReturn:
        raise self._error

    async def wait_for_connection(self) -> None:
        return None

    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def add_done_callback(self, callback: Callable[[grpc.aio.Call], None]) -> None:
        callback(self)

    def time_remaining(self) -> float | None:
        return None

    async def initial_metadata(self) -> grpc.aio.Metadata:
        return self._error.initial_metadata()

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return self._error.trailing_metadata()

    async def code(self) -> grpc.StatusCode:
        return self._error.code()

    async def details(self) -> str:
        return self._error.details() or ""


def firestore_interceptors(switch: FaultSwitch) -> list[grpc.aio.ClientInterceptor]:
    """The gRPC interceptors that fail the calls of a client's channel at the rate the
    ``firestore`` entry asks for (fjordbank.adapters.firestore.async_client adds them to
    the emulator's channel: grpc.aio takes interceptors only when a channel is created)."""
    drawn = _FirestoreFaults(switch)
    return [_UnaryFaults(drawn), _StreamFaults(drawn)]


# ---- NATS publish timeouts ----------------------------------------------------------------
class FaultyJetStream:
    """A JetStream context whose ``publish`` times out (nats.errors.TimeoutError, what a
    publish whose ack does not come in time raises) while the ``publish_timeout`` entry is
    on, at its rate: half of those before the message is sent, half after JetStream stored
    it (the ack lost: the realistic case; the retry publishes the same Nats-Msg-Id and
    JetStream's duplicate window stores it once). Everything else is the context's own."""

    def __init__(self, js: JetStreamContext, switch: FaultSwitch) -> None:
        self._js = js
        self._switch = switch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)

    async def publish(self, *args: Any, **kwargs: Any) -> PubAck:
        entry = self._switch.active(PUBLISH_TIMEOUT)
        if entry is None or not self._switch.draw(float(entry.get("rate", 0))):
            return await self._js.publish(*args, **kwargs)
        if self._switch.draw(0.5):
            await self._js.publish(*args, **kwargs)
            INJECTED.labels(PUBLISH_ACK_LOST).inc()
        else:
            INJECTED.labels(PUBLISH_NOT_SENT).inc()
        raise nats.errors.TimeoutError


def jetstream(js: JetStreamContext, switch: FaultSwitch | None) -> JetStreamContext | FaultyJetStream:
    """``js`` itself without a switch; else its publish can time out (FaultyJetStream)."""
    return js if switch is None else FaultyJetStream(js, switch)
