"""A minimal HTTP endpoint for probes and Prometheus: /healthz, /readyz, /metrics.

Plain asyncio streams: a run_service needs three GET routes, not a web framework.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)


class ProbeServer:
    def __init__(
        self, port: int, *, live: Callable[[], bool], ready: Callable[[], bool], host: str = "127.0.0.1"
    ) -> None:
        self.host = host
        self.port = port
        self.live = live
        self.ready = ready
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self.port:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 else ""
            status, ctype, body = self._route(path)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
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
    409: "Conflict",
    413: "Payload Too Large",
    500: "Internal Server Error",
}
ApiHandler = Callable[[dict[str, str], bytes], Awaitable[tuple[int, dict[str, Any]]]]


class JsonApiServer:
    """POST-only JSON endpoints for a partner system (the card processor), HTTP/1.1 with
    one request per connection. Bodies are capped at 64 KiB; the handler gets the headers
    (lower-cased names) and the raw body, so it can check a signature over the exact bytes."""

    def __init__(self, host: str, port: int, routes: dict[str, ApiHandler]) -> None:
        self.host = host
        self.port = port
        self.routes = routes
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def serve(self, stopping: asyncio.Event) -> None:
        """A background task for ConsumerService: serve until the service stops."""
        await self.start()
        try:
            await stopping.wait()
        finally:
            await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await self._respond(reader)
            payload = json.dumps(body, separators=(",", ":")).encode()
            head = (
                f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + payload)
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
        try:
            return await self._parse_and_call(reader)
        except (ValueError, asyncio.LimitOverrunError):  # an over-long line, a broken header
            return 400, {"error": "malformed_request"}

    async def _parse_and_call(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
        request = await asyncio.wait_for(reader.readline(), timeout=5)
        headers: dict[str, str] = {}
        for count in range(MAX_HEADERS + 1):
            line = await asyncio.wait_for(reader.readline(), timeout=5)
            if line in (b"\r\n", b"\n", b""):
                break
            if count == MAX_HEADERS:
                return 400, {"error": "too_many_headers"}
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        parts = request.decode("latin-1").split()
        if len(parts) < 2 or parts[0] != "POST":
            return 404, {"error": "not_found"}
        handler = self.routes.get(parts[1].split("?")[0])
        if handler is None:
            return 404, {"error": "not_found"}
        length = headers.get("content-length", "")
        if not re.fullmatch(r"[0-9]{1,7}", length):
            return 400, {"error": "content_length_required"}
        if int(length) > MAX_BODY:
            return 413, {"error": "body_too_large"}
        body = await asyncio.wait_for(reader.readexactly(int(length)), timeout=5)
        try:
            return await handler(headers, body)
        except Exception:
            log.exception("api handler failed", extra={"path": parts[1]})
            return 500, {"error": "internal"}
