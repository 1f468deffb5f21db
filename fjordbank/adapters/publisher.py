"""Publishing to JetStream from synchronous code (Firebase functions are Flask handlers).

One long-lived NATS connection per function instance, owned by an asyncio loop on a
daemon thread; `publish()` hands the coroutine to that loop and blocks until JetStream
has stored the message on a quorum and acknowledged it. Any failure raises
`PublishError` (retryable): the caller must not report success, and must not swallow it.

Each message carries the caller's current trace context (``traceparent``, see
fjordbank.runtime.tracing) in its headers, taken on the caller's thread (the loop thread
has none).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck

from fjordbank.adapters import jetstream_publish, nats_conn
from fjordbank.config import NatsSettings
from fjordbank.errors import PublishError
from fjordbank.runtime import tracing

log = logging.getLogger(__name__)

# Errors seen while a stream leader fails over or a node reconnects.
TRANSIENT = (
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.errors.TimeoutError,
    nats.errors.ConnectionReconnectingError,
    asyncio.TimeoutError,
)


class SyncPublisher:
    def __init__(self, settings: NatsSettings, *, name: str, timeout: float = 15.0) -> None:
        self.settings = settings
        self.name = name
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._lock = threading.Lock()
        self._connecting: asyncio.Lock | None = None  # made on the publisher's loop

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or not self._loop.is_running():
                loop = asyncio.new_event_loop()
                started = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                threading.Thread(target=run, name=f"nats-{self.name}", daemon=True).start()
                started.wait(5)
                self._loop = loop
            return self._loop

    async def _js_context(self) -> JetStreamContext:
        """The instance's connection, made on first use, by one publish while the others
        wait for it: the due-payments job publishes from many threads at once, and each of
        them made a connection of its own, all but the last left open (found in review,
        2026-12-06). A first connect that cannot reach any server is bounded by the
        publish's own timeout (it is cancelled with it)."""
        if self._connecting is None:
            self._connecting = asyncio.Lock()  # on the publisher's one loop: no race here
        async with self._connecting:
            if self._nc is None or self._nc.is_closed or self._js is None:  # both are set together
                self._nc = await nats_conn.connect(self.settings, name=self.name)
                self._js = self._nc.jetstream()
            return self._js

    async def _publish(self, subject: str, payload: bytes, headers: dict[str, str], stream: str | None) -> PubAck:
        """Retries while the cluster elects a new stream leader (no responders, timeouts)
        until ``timeout``: safe, because the message id makes JetStream store it once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        delay = 0.1
        while True:
            try:
                js = await self._js_context()
                remaining = max(deadline - loop.time(), 0.5)
                return await jetstream_publish.publish(
                    js, subject, payload, headers=headers, stream=stream, timeout=min(2.0, remaining)
                )
            except TRANSIENT as exc:
                if loop.time() + delay >= deadline:
                    raise
                log.info(
                    "publish retry", extra={"subject": subject, "msg_id": headers["Nats-Msg-Id"], "error": repr(exc)}
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    def publish_json(self, subject: str, body: dict[str, Any], *, msg_id: str, stream: str | None = None) -> PubAck:
        """Store one message; returns the PubAck (``duplicate`` True if JetStream had it)."""
        payload = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        headers = {**tracing.inject(), "Nats-Msg-Id": msg_id}
        loop = self._ensure_loop()
        bounded = asyncio.wait_for(self._publish(subject, payload, headers, stream), timeout=self.timeout)
        future = asyncio.run_coroutine_threadsafe(bounded, loop)
        try:
            ack = future.result(timeout=self.timeout + 5)
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError) as exc:
            future.cancel()
            log.warning("publish failed", extra={"subject": subject, "msg_id": msg_id, "error": repr(exc)})
            raise PublishError(f"could not publish {subject} ({msg_id}): {exc!r}") from exc
        return ack

    def close(self) -> None:
        """Close the connection. Never raises: it is called after the work it published for
        is committed (an operator's tool told "failed" then would do that work again)."""
        if self._loop is not None and self._nc is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._nc.close(), self._loop).result(timeout=5)
            except Exception:
                log.warning("NATS connection not closed cleanly", exc_info=True)


class AsyncJetStreamPublisher:
    """The asynchronous Publisher port (fjordbank.service_layer.ports.AsyncPublisher) on a
    consumer service's own JetStream context: one publish, waiting at most ``timeout`` for
    JetStream's ack. A publish that fails or times out raises `PublishError`; the message
    id makes a retry store it once."""

    def __init__(self, js: JetStreamContext, *, timeout: float = 2.0) -> None:
        self.js = js
        self.timeout = timeout

    async def publish_json(
        self, subject: str, body: dict[str, Any], *, msg_id: str, stream: str | None = None
    ) -> PubAck:
        payload = json.dumps(body, separators=(",", ":")).encode()
        try:
            return await jetstream_publish.publish(
                self.js, subject, payload, headers={"Nats-Msg-Id": msg_id}, stream=stream, timeout=self.timeout
            )
        except (nats.errors.Error, TimeoutError) as exc:
            raise PublishError(f"could not publish {subject} ({msg_id}): {exc!r}") from exc
