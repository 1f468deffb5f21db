"""``GET /healthz`` for the stack's helper processes (the scheduler, the simulated other
banks): a JSON body of how it goes, 200 while healthy and 503 while not, on a thread of
its own; and the way such a process runs until SIGTERM or SIGINT (``run_until_stopped``)."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol


class Watched(Protocol):
    def healthy(self) -> bool: ...

    def health(self) -> dict[str, Any]: ...


def serve_health(watched: Watched, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """``GET /healthz`` on its own thread; returns the server (``shutdown()`` stops it)."""

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/healthz":
                self.send_error(404)
                return
            body = json.dumps(watched.health()).encode()
            self.send_response(200 if watched.healthy() else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a readiness poll is no news

    server = ThreadingHTTPServer((host, port), Health)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server


def run_until_stopped(run: Callable[[threading.Event], None], watched: Watched, port: int | None) -> None:
    """``run(stop)`` until SIGTERM or SIGINT sets ``stop`` (the pass under way finishes),
    with ``/healthz`` on ``port`` meanwhile (none without one)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    server = serve_health(watched, port) if port else None
    try:
        run(stop)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
