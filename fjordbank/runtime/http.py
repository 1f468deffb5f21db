"""A minimal HTTP endpoint for probes and Prometheus: /healthz, /readyz, /metrics, and
the card processor's JSON API (POST), on the same port or one of its own.

Plain asyncio streams: a run_service needs three GET routes, not a web framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, generate_latest

log = logging.getLogger(__name__)

# What one request may take before it is answered or dropped: its request line and headers
# within HEAD_SECONDS (a per-line timeout let a client trickle a header every few seconds
# and hold the connection for minutes), at most MAX_HEAD_BYTES of them (each line at most
# that: the streams' limit), and at most MAX_CONNECTIONS at once per server (the sockets of
# the process's NATS and Firestore clients are file descriptors too).
HEAD_SECONDS = 10
MAX_HEAD_BYTES = 16 * 1024
MAX_CONNECTIONS = 64
# How many `unanswered` hooks a server runs at once (the card service's release of an
# approval not had: a transaction of a few store calls, each up to 1.5 s). A request's
# connection slot was held until its hook was through, while the platform (Cloud Run,
# Knative: containerConcurrency == MAX_CONNECTIONS) counted the request done at its answer
# and sent the next into a server it thought had room: turned away 503 "busy", which the
# processor takes for a decline (found in review, 2026-12-06). The slot is free once the
# answer is written; the hooks are bounded here instead, and a rollout's stop waits for them.
MAX_HOOKS = 32
STOP_GRACE_SECONDS = 5  # requests in flight when the service stops are answered for this long


class HeadTooLarge(Exception):
    """The request line and headers are longer than MAX_HEAD_BYTES (or too many)."""


async def read_head(reader: asyncio.StreamReader, max_headers: int) -> tuple[str, dict[str, str]]:
    """The request line and the headers (lower-cased names), within HEAD_SECONDS. Raises
    TimeoutError, or HeadTooLarge (a line over the limit, too many or too long headers)."""
    async with asyncio.timeout(HEAD_SECONDS):
        request = await _line(reader)
        size = len(request)
        headers: dict[str, str] = {}
        for count in range(max_headers + 1):
            line = await _line(reader)
            if line in (b"\r\n", b"\n", b""):
                return request.decode("latin-1"), headers
            size += len(line)
            if count == max_headers or size > MAX_HEAD_BYTES:
                raise HeadTooLarge()
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
    raise AssertionError("unreachable")  # the loop returns or raises


def request_path(request: str) -> str:
    """The path of a request line, without its query ("" when it has none)."""
    parts = request.split()
    return parts[1].split("?")[0] if len(parts) >= 2 else ""


async def _line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readline()
    except ValueError:  # longer than the stream's limit (MAX_HEAD_BYTES)
        raise HeadTooLarge() from None


class _Connections:
    """The connections a server is answering: at most MAX_CONNECTIONS, and the ones in
    flight are let finish (up to STOP_GRACE_SECONDS) when the server stops."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    def admit(self) -> bool:
        task = asyncio.current_task()
        if task is None or len(self.tasks) >= MAX_CONNECTIONS:
            return False
        self.tasks.add(task)
        return True

    def done(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.discard(task)

    async def finish(self) -> None:
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=STOP_GRACE_SECONDS)


class _Hooks:
    """The `unanswered` hooks a server is running: at most MAX_HOOKS at once (the others
    wait their turn), and waited for when the server stops, as its connections are."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.slots = asyncio.Semaphore(MAX_HOOKS)

    @contextlib.asynccontextmanager
    async def telling(self) -> AsyncIterator[None]:
        """Around the wait for a cut-off handler and the hook's call (`slot` bounds the call)."""
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            yield
        finally:
            if task is not None:
                self.tasks.discard(task)


class ProbeServer:
    """The service's one port: GET /healthz, /readyz and /metrics, and with ``api`` (a
    `JsonApiServer` made without a port of its own) that API's POST routes as well. Cloud
    Run and Knative give a container one port: the card processor's API could not be served
    beside the probes (found in review, 2026-12-06)."""

    def __init__(
        self,
        port: int,
        *,
        live: Callable[[], bool],
        ready: Callable[[], bool],
        host: str = "127.0.0.1",
        api: JsonApiServer | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.live = live
        self.ready = ready
        self.api = api
        self._server: asyncio.AbstractServer | None = None
        self._connections = _Connections()

    async def start(self) -> None:
        if self.port:
            self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=MAX_HEAD_BYTES)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._connections.finish()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._connections.admit():
            writer.close()
            return
        handed = False  # to the API, which counts the connection in its own pool from then on
        try:
            try:
                request, headers = await read_head(reader, MAX_HEADERS)
            except HeadTooLarge:
                status, ctype, body = "431 Request Header Fields Too Large", "text/plain", b"headers too large\n"
            else:
                parts = request.split()
                path = request_path(request)
                if self.api is not None and parts[:1] == ["POST"]:
                    # the probes' pool is the probes': the API's requests in flight filled it,
                    # and /healthz went unanswered under card load (found in review)
                    handed = True
                    self._connections.done()
                    if self.ready():
                        await self.api.handle(reader, writer, head=(request, headers))
                    else:  # before the service is ready its API's handlers have nothing to work with
                        await self.api.unavailable(reader, writer, headers, path)
                    return
                status, ctype, body = self._route(path)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await asyncio.wait_for(writer.drain(), timeout=HEAD_SECONDS)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            if not handed:
                self._connections.done()
            writer.close()

    def _route(self, path: str) -> tuple[str, str, bytes]:
        if path == "/healthz":
            return (
                ("200 OK", "text/plain", b"ok\n")
                if self.live()
                else ("503 Service Unavailable", "text/plain", b"unhealthy\n")
            )
        if path == "/readyz":
            return (
                ("200 OK", "text/plain", b"ready\n")
                if self.ready()
                else ("503 Service Unavailable", "text/plain", b"not ready\n")
            )
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(REGISTRY)
        return "404 Not Found", "text/plain", b"not found\n"


MAX_BODY = 64 * 1024
MAX_HEADERS = 50
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
RETRY_AFTER_SECONDS = 1  # what a 503 tells the caller to wait before it sends the request again
# How long a route's handler is given (a route's own in ``timeouts``, else this) before its
# request is answered 503 "retry": nothing bounded it, and a store that did not answer held
# the caller's request for the store client's own waits, a minute or more, while the
# caller had long given up (found in review, 2026-12-06).
HANDLER_SECONDS = 8.0
TIMED_OUT = "timed_out"  # the `Unanswered` why of a handler cut off at its route's timeout
ApiHandler = Callable[[dict[str, str], bytes], Awaitable[tuple[int, dict[str, Any]]]]

# Every answer of the JSON API, by route and status code. The decisions' own metrics count
# what a handler decided; a request refused (401), failed (500) or turned away (503) counted
# nowhere, and the processor declined those purchases in the bank's stead unseen (found in
# review). The one JSON API the services serve is the card processor's, hence the name.
# `path` is a route of the server (its key in `routes`), or OTHER_PATH for anything else, so
# that a caller cannot make a series per path it sends; `status` is the code answered, one
# of the few the server and its handlers use.
API_REQUESTS = Counter(
    "fjb_card_api_requests_total", "Requests the card processor's API answered, by route and status", ["path", "status"]
)
OTHER_PATH = "other"


@dataclass
class Exchange:
    """One request a route's handler answered: its path and body, the answer, and how long
    the handler took (from the body read to the answer). The path is set as soon as the
    request names a route, the rest once its handler has answered. A handler cut off at its
    route's timeout leaves the 503 it was answered, and ``cut_off``: its task, cancelled,
    which the hooks are told of once it has stopped."""

    path: str = ""
    body: bytes = b""
    status: int = 0
    answer: dict[str, Any] | None = None
    seconds: float = 0.0
    cut_off: asyncio.Future[tuple[int, dict[str, Any]]] | None = field(default=None, repr=False)


# Told an answer the caller may not have had: not written (the connection broke, or the
# write timed out), decided after the route's deadline (the caller had given up), or never
# made: the handler was cut off at its route's timeout (TIMED_OUT, answered 503; what it
# did before, a decision committed included, is not known here; an answer it made all the
# same after the cut is on the exchange).
Unanswered = Callable[[Exchange, str], Awaitable[None]]
# Told an answer the caller had: written, within the route's deadline.
Answered = Callable[[Exchange], None]
# Told, at once and without waiting, of an `Unanswered` hook the server's stop cut short.
NotTold = Callable[[Exchange, str], None]


def _json_answer(status: int, body: dict[str, Any]) -> bytes:
    """An answer of the JSON API: a 503 tells the caller when to send it again."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    retry = f"Retry-After: {RETRY_AFTER_SECONDS}\r\n" if status == 503 else ""
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n{retry}Connection: close\r\n\r\n"
    )
    return head.encode() + payload


class JsonApiServer:
    """POST-only JSON endpoints for a partner system (the card processor), HTTP/1.1 with
    one request per connection. Bodies are capped at 64 KiB; the handler gets the headers
    (lower-cased names) and the raw body, so it can check a signature over the exact bytes.

    Each route's handler is given ``timeouts[path]`` seconds (else HANDLER_SECONDS), then
    cancelled and its request answered 503 with Retry-After at once (not after the handler
    has stopped: a transaction cancelled waits for its rollback). A caller's retry is safe
    where every handler answers a request it has seen from what it stored (the card
    service's do).

    ``unanswered`` is told of an answer the caller may not have had (`Unanswered`), with
    ``deadlines`` per path: the card service releases an approval the processor never got,
    which held the customer's money until a reversal or the hold's expiry days later;
    ``answered`` of one it had in time (`Answered`).

    With ``port`` None it listens on nothing itself: the service's `ProbeServer` hands it its
    POST requests (`handle`), and stopping it refuses new ones (503) and waits for those in
    flight, as a server of its own does."""

    def __init__(
        self,
        host: str,
        port: int | None,
        routes: dict[str, ApiHandler],
        *,
        unanswered: Unanswered | None = None,
        answered: Answered | None = None,
        deadlines: dict[str, float] | None = None,
        timeouts: dict[str, float] | None = None,
        not_told: NotTold | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.routes = routes
        self.unanswered = unanswered
        self.answered = answered
        self.not_told = not_told
        self.deadlines = deadlines or {}
        self.timeouts = timeouts or {}
        self._server: asyncio.AbstractServer | None = None
        self._connections = _Connections()
        self._hooks = _Hooks()
        self._stopped = False

    async def start(self) -> None:
        if self.port is not None:  # 0: a port the system picks (the tests')
            self._server = await asyncio.start_server(self.handle, self.host, self.port, limit=MAX_HEAD_BYTES)

    async def stop(self) -> None:
        """Take no new connection, and let the requests in flight be answered (a decision
        committed is told to the processor, not cut off by the service's stop)."""
        self._stopped = True
        if self._server is not None:
            self._server.close()
        # the connections in flight and the hooks still running (a connection answered
        # runs its hook after its slot is free), waited for together
        pending = self._connections.tasks | self._hooks.tasks
        if pending:
            await asyncio.wait(pending, timeout=STOP_GRACE_SECONDS)
        if self._server is not None:
            await self._server.wait_closed()

    async def serve(self, stopping: asyncio.Event) -> None:
        """A background task for ConsumerService: serve until the service stops."""
        await self.start()
        try:
            await stopping.wait()
        finally:
            await self.stop()

    def count(self, path: str, status: int) -> None:
        """Count one answer: under its route if ``path`` is one of this server's, else
        under OTHER_PATH (a caller's paths are not a label's values)."""
        API_REQUESTS.labels(path if path in self.routes else OTHER_PATH, str(status)).inc()

    async def unavailable(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str], path: str = ""
    ) -> None:
        """Answer a request 503 with Retry-After, as a full server does (the processor
        sends it again), its body read first (a socket closed with a body unread is reset,
        and the caller gets no answer at all). ``path``: the request's, for the count."""
        self.count(path, 503)
        try:
            length = headers.get("content-length", "")
            if re.fullmatch(r"[0-9]{1,7}", length) and int(length) <= MAX_BODY:
                await asyncio.wait_for(reader.readexactly(int(length)), timeout=HEAD_SECONDS)
            writer.write(_json_answer(503, {"error": "busy", "retryable": True}))
            await asyncio.wait_for(writer.drain(), timeout=HEAD_SECONDS)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def handle(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        head: tuple[str, dict[str, str]] | None = None,
    ) -> None:
        """Answer one connection; ``head``: its request line and headers, read already by
        the server that took it (`ProbeServer`)."""
        admitted = not self._stopped and self._connections.admit()
        exchange = Exchange()
        written = False
        try:
            if admitted:
                status, body = await self._respond(reader, exchange, head)
            else:
                status, body = 503, {"error": "busy", "retryable": True}
                # on the probes' port the head is read already; on a port of its own a
                # connection turned away is not read, and counts under OTHER_PATH
                exchange.path = request_path(head[0]) if head is not None else ""
            # counted when decided, written or not: a caller that hung up still had its
            # request refused or failed
            self.count(exchange.path, status)
            writer.write(_json_answer(status, body))
            await asyncio.wait_for(writer.drain(), timeout=HEAD_SECONDS)
            written = True
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            # the slot is free once the answer is written (or could not be), when the
            # platform counts the request done; the hook (a reversal) runs after it, bounded
            # by MAX_HOOKS, and stop() waits for it as it waits for an answer
            if admitted:
                self._connections.done()
            async with self._hooks.telling():
                await self._tell_unanswered(exchange, written)

    async def _tell_unanswered(self, exchange: Exchange, written: bool) -> None:
        if exchange.cut_off is not None:
            why = await _stopped(exchange, exchange.cut_off)
        elif exchange.answer is None:
            return  # no handler answered (a malformed request, a refusal before it)
        else:
            deadline = self.deadlines.get(exchange.path)
            if written and (deadline is None or exchange.seconds <= deadline):
                if self.answered is not None:
                    self.answered(exchange)
                return
            why = "not_written" if not written else "late"
        if self.unanswered is None:
            return
        try:
            async with self._hooks.slots:
                await self.unanswered(exchange, why)
        except Exception:
            log.exception("an unanswered request was not handled", extra={"path": exchange.path, "why": why})
        except asyncio.CancelledError:
            # the server stopped with this hook waiting for its turn or at work (past
            # STOP_GRACE_SECONDS): what it was to do is not done, and nothing said which
            # (found in review, 2026-12-06); `not_told` names it for the operators
            log.error(
                "an unanswered request's hook did not run to its end: the server stopped",
                extra={"path": exchange.path, "why": why},
            )
            if self.not_told is not None:
                self.not_told(exchange, why)
            raise

    async def _respond(
        self, reader: asyncio.StreamReader, exchange: Exchange, head: tuple[str, dict[str, str]] | None
    ) -> tuple[int, dict[str, Any]]:
        try:
            return await self._parse_and_call(reader, exchange, head)
        except HeadTooLarge:
            return 431, {"error": "headers_too_large"}
        except (ValueError, asyncio.LimitOverrunError):  # an over-long line, a broken header
            return 400, {"error": "malformed_request"}
        except TimeoutError:  # the head or the body did not arrive in time
            return 408, {"error": "request_timeout"}

    async def _parse_and_call(
        self, reader: asyncio.StreamReader, exchange: Exchange, head: tuple[str, dict[str, str]] | None
    ) -> tuple[int, dict[str, Any]]:
        request, headers = head if head is not None else await read_head(reader, MAX_HEADERS)
        parts = request.split()
        if len(parts) < 2 or parts[0] != "POST":
            return 404, {"error": "not_found"}
        path = request_path(request)
        handler = self.routes.get(path)
        if handler is None:
            return 404, {"error": "not_found"}
        exchange.path = path  # counted under its route from here on, whatever the answer
        length = headers.get("content-length", "")
        if not re.fullmatch(r"[0-9]{1,7}", length):
            return 400, {"error": "content_length_required"}
        if int(length) > MAX_BODY:
            return 413, {"error": "body_too_large"}
        body = await asyncio.wait_for(reader.readexactly(int(length)), timeout=5)
        started = time.monotonic()
        # a task of its own, so that the answer at the timeout does not wait for the
        # handler's unwinding (`_stopped` waits for it, after the answer)
        work: asyncio.Future[tuple[int, dict[str, Any]]] = asyncio.ensure_future(handler(headers, body))
        exchange.body = body
        try:
            done, _ = await asyncio.wait({work}, timeout=self.timeouts.get(path, HANDLER_SECONDS))
        except BaseException:  # this request's own task cancelled (the service stopping)
            work.cancel()
            exchange.cut_off = work
            raise
        exchange.seconds = time.monotonic() - started
        if not done:
            work.cancel()
            exchange.cut_off = work
            exchange.status, exchange.answer = 503, {"error": "timeout", "retryable": True}
            log.warning("api handler cut off at its timeout", extra={"path": path, "seconds": exchange.seconds})
            return exchange.status, exchange.answer
        try:
            status, answer = work.result()
        except Exception:
            log.exception("api handler failed", extra={"path": parts[1]})
            return 500, {"error": "internal"}
        exchange.status, exchange.answer = status, answer
        return status, answer


async def _stopped(exchange: Exchange, work: asyncio.Future[tuple[int, dict[str, Any]]]) -> str:
    """The why of a handler cut off at its route's timeout, once it has stopped (the hooks
    are told after its work is undone as far as it goes: a reference it held is free, a
    transaction rolled back): always TIMED_OUT. One that did not stop when it was cancelled
    and answered all the same has that answer put on the exchange (the caller had the 503,
    not that answer). It was told "late" with it, and the card service releases a "late"
    answer only when it is an approval: a handler that, cut off mid-commit, answered 503 on
    a second try had its first try's committed approval never released. A cut-off request
    may have committed whatever its answer says, and TIMED_OUT releases by the request's
    reference (found in review, 2026-12-06)."""
    await asyncio.wait({work})
    if work.cancelled():
        return TIMED_OUT
    if (error := work.exception()) is not None:
        log.warning("api handler failed after its timeout", extra={"path": exchange.path, "error": repr(error)})
        return TIMED_OUT
    exchange.status, exchange.answer = work.result()
    log.warning("api handler answered after its timeout", extra={"path": exchange.path, "status": exchange.status})
    return TIMED_OUT
