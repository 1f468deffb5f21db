"""A minimal HTTP endpoint for probes and Prometheus: /healthz, /readyz, /metrics.

Plain asyncio streams: a run_service needs three GET routes, not a web framework.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest


class ProbeServer:
    def __init__(self, port: int, *, live: Callable[[], bool], ready: Callable[[], bool]) -> None:
        self.port = port
        self.live = live
        self.ready = ready
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self.port:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

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
