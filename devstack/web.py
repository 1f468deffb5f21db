"""The reference web app's local server (the stack's `web` component).

It builds the app when its sources changed (`web/build.mjs`, esbuild from
`web/package-lock.json`) and serves it, with what a real app gets from elsewhere:

    GET  /config.json              the project id, the region and the emulator ports (the
                                   Firebase config a real app is built with)
    POST /dev/app-check-token      an App Check token for the emulator's debug path. A real
                                   app gets its token from an attestation provider (Play
                                   Integrity, App Attest, reCAPTCHA); this server is that
                                   provider here and mints the token with the stack's debug
                                   secret, which never reaches the browser.
    POST /dev/salary {accountId}   local stack only: a demo employer pays 25 000 kr into the
                                   caller's account (Authorization: Bearer <ID token>) as a
                                   real payment through the pipeline, so a new customer has
                                   money to pay with. The employer is a customer onboarded
                                   through the callables; only its own funding is a deposit
                                   on the ledger's admin path (money entering the bank).
    GET  /healthz

Pushes need no proxy: the FCM sink answers the browser itself (CORS open), and the app
reads only the messages for its own device token. The server talks to the bank through
the client kit (clientkit/: App Check tokens, Firestore under the rules, the demo employer).

Run: python -m devstack.web --port 9200 (the up command does; settings from the stack's).
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import logging
import mimetypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clientkit.admin import LedgerAdmin
from clientkit.app_check import AppCheck
from clientkit.callables import Callables
from clientkit.employer import DemoEmployer
from clientkit.endpoints import API_KEY, REGION, Endpoints
from clientkit.errors import KitError
from clientkit.rest import FirestoreAsUser
from devstack import settings as stack_settings
from devstack.supervisor import Component, http_ok

log = logging.getLogger("devstack.web")

APP_ID = "1:000:web:fjordbank-tester"
HTTP_TIMEOUT = 30.0  # seconds the server waits for an emulator's answer
MAX_BODY = 4096


class WebError(RuntimeError):
    """The web server cannot do what was asked; the message says why."""


class BuildError(WebError):
    pass


# ---- the build ------------------------------------------------------------------------------
BUILD_INPUTS = ("src", "index.html", "styles.css", "build.mjs", "package-lock.json")


def _source_files(web_dir: Path) -> list[Path]:
    files: list[Path] = []
    for name in BUILD_INPUTS:
        path = web_dir / name
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return files


def source_digest(web_dir: Path) -> str:
    digest = hashlib.sha256()
    for file in _source_files(web_dir):
        digest.update(str(file.relative_to(web_dir)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


_build_lock = threading.Lock()
_checked: dict[Path, tuple] = {}  # web dir -> the sources' (path, mtime, size) when last found built


def ensure_built(web_dir: Path) -> Path:
    """web/dist, built again if any source changed since the last build."""
    dist = web_dir / "dist"
    stamp = dist / ".source-sha256"
    with _build_lock:
        # every page load asks: the sources' times and sizes answer it without reading them
        seen = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in _source_files(web_dir))
        if _checked.get(web_dir) == seen and (dist / "app.js").exists():
            return dist
        digest = source_digest(web_dir)
        if stamp.exists() and stamp.read_text().strip() == digest and (dist / "app.js").exists():
            _checked[web_dir] = seen
            return dist
        node = shutil.which("node")
        if node is None:
            raise BuildError("node is not installed: run `make bootstrap`")
        if not (web_dir / "node_modules" / "esbuild").exists():
            raise BuildError(f"{web_dir}/node_modules is missing: run `make bootstrap` (npm ci in web/)")
        started = time.monotonic()
        proc = subprocess.run([node, "build.mjs"], cwd=web_dir, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise BuildError(f"the web app's build failed:\n{proc.stdout}{proc.stderr}")
        stamp.write_text(digest + "\n")
        _checked[web_dir] = seen
        log.info("built the web app in %.1f s", time.monotonic() - started)
        return dist


# ---- HTTP --------------------------------------------------------------------------------
@dataclass
class WebApp:
    web_dir: Path
    settings: stack_settings.StackSettings
    endpoints: Endpoints
    app_check: AppCheck
    employer: DemoEmployer

    def as_user(self, id_token: str) -> FirestoreAsUser:
        """Firestore as the signed-in caller: the security rules apply."""
        return FirestoreAsUser(self.endpoints.firestore_host, self.endpoints.project_id, id_token)

    def config_for(self, hostname: str) -> dict:
        ports = self.settings.emulator_ports
        return {
            "projectId": self.settings.project_id,
            "appId": APP_ID,
            "apiKey": API_KEY,
            "region": REGION,
            "emulators": {"auth": ports["auth"], "firestore": ports["firestore"], "functions": ports["functions"]},
            "fcmSink": f"http://{hostname}:{self.settings.fcm_sink_port}",
            "local": True,
        }


def _addressed_directly(hostname: str) -> bool:
    """localhost, or an IP address: no other site's name."""
    if hostname == "localhost":
        return True
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True


class Handler(BaseHTTPRequestHandler):
    server_version = "fjordbank-web"
    app: WebApp  # set on the subclass made by make_server

    def log_message(self, format: str, *args) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        # never in a frame: the pay form fills itself from the link (#/pay?to=&amount=), and a
        # page on another local port could frame it and steer the two clicks that confirm
        # and pay (found in review, 2026-12-07)
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", "frame-ancestors 'none'")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _hostname(self) -> str:
        return urlsplit(f"http://{self.headers.get('Host', '127.0.0.1')}").hostname or "127.0.0.1"

    def _same_origin(self) -> bool:
        """Browsers send Origin with every POST; another site's page gets nothing here. Nor
        does one that reaches this server under its own name (DNS rebinding: a host name of
        its own that resolves to this machine, so its Origin and Host agree): the app is
        addressed as localhost or by an address (127.0.0.1, or a LAN address with --host)."""
        origin = self.headers.get("Origin")
        return _addressed_directly(self._hostname()) and (
            origin is None or origin == f"http://{self.headers.get('Host', '')}"
        )

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
        elif path == "/config.json":
            self._json(200, self.app.config_for(self._hostname()))
        else:
            self._static(path)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if not self._same_origin():
            self._json(403, {"error": "cross-origin requests are refused"})
        elif path == "/dev/app-check-token":
            token, expires = self.app.app_check.mint()
            self._json(200, {"token": token, "expireTimeMillis": int((expires - 60) * 1000)})
        elif path == "/dev/salary":
            self._salary()
        else:
            self._json(404, {"error": "not found"})

    def _salary(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            self._json(400, {"error": "a JSON body {accountId} is required"})
            return
        try:
            body = json.loads(self.rfile.read(length))
        except json.JSONDecodeError:
            self._json(400, {"error": "the body is not JSON"})
            return
        account = body.get("accountId") if isinstance(body, dict) else None
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if not isinstance(account, str) or not account.isdigit() or len(account) != 11 or not token:
            self._json(400, {"error": "accountId (11 digits) and a signed-in user's ID token are required"})
            return
        try:
            # The caller must be able to read the account under the security rules: their own.
            status, doc = self.app.as_user(token).get(f"accounts/{account}")
            if status != 200 or not doc or doc.get("status") != "open":
                self._json(403, {"error": "not an open account of the signed-in user"})
                return
            self._json(200, self.app.employer.pay_salary(account))
        except KitError as exc:
            log.warning("demo salary failed: %s", exc)
            self._json(502, {"error": str(exc)})

    def _static(self, path: str) -> None:
        try:
            dist = ensure_built(self.app.web_dir)
        except BuildError as exc:
            log.error("%s", exc)
            self._send(500, str(exc).encode(), "text/plain; charset=utf-8")
            return
        name = "index.html" if path in ("", "/") else path.lstrip("/")
        file = (dist / name).resolve()
        if not file.is_relative_to(dist.resolve()) or not file.is_file() or file.name.startswith("."):
            self._send(404, b"not found\n", "text/plain")
            return
        content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        self._send(200, file.read_bytes(), content_type)


def make_app(settings: stack_settings.StackSettings, web_dir: Path, app_check_secret: str) -> WebApp:
    """The server's clients of the bank's surface (the client kit), on the stack's emulators."""
    endpoints = Endpoints.local(settings.project_id, settings.emulator_ports, http_timeout=HTTP_TIMEOUT)
    app_check = AppCheck(app_check_secret, settings.project_id, APP_ID)
    employer = DemoEmployer(
        endpoints,
        Callables(endpoints, app_check),
        LedgerAdmin(settings.project_id, endpoints.firestore_host),
        settings.state_dir / "web-demo-employer.json",
    )
    return WebApp(web_dir, settings, endpoints, app_check, employer)


def make_server(host: str, port: int, app: WebApp) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"app": app})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


# ---- the stack's hooks ------------------------------------------------------------------------
def url(settings: stack_settings.StackSettings) -> str:
    return f"http://127.0.0.1:{settings.web_port}"


def component(stack) -> Component:
    """The `web` component of devstack.stack.Stack."""
    s = stack.s
    return Component(
        name="web",
        address=f"{url(s)} (the reference web app)",
        argv=[str(s.venv_python), "-m", "devstack.web", "--port", str(s.web_port)],
        env={
            **stack.emulator_hosts(),
            "FJB_APP_CHECK_DEBUG_SECRET": stack.app_check_debug_secret(),
            "FJB_STATE_DIR": str(s.state_dir),
            "PYTHONUNBUFFERED": "1",
        },
        cwd=s.repo,
        ready=lambda: http_ok(f"{url(s)}/healthz"),
        start_timeout=120,
    )


def walkthrough(settings: stack_settings.StackSettings) -> str:
    """What the up command prints last: where the app is, and a minute's tour of it."""
    return f"""
The web app: {url(settings)}  (open it in a browser on this machine)

A one-minute walkthrough (README, "The web app"):
  1. Create a user: any e-mail address, a password of 6+ characters.
  2. Become a customer: fill in the form; "Use a synthetic test identity" makes a valid test
     number for your date of birth. You are approved and your first account opens.
  3. Accounts: "Receive a demo salary" - 25 000,00 kr arrives live (balance, feed, a push).
  4. Pay: 150 kr to 1503.00.00045 (another bank), Review, "Confirm on this device and pay".
     Watch requested -> approved -> reserved -> submitted -> settled -> completed.
  5. Scan invoice: "Use a sample giro", "Read the giro", "Pay this invoice".
  6. Cards: order a virtual card, freeze it, change its limits. Then Standing orders,
     My economy and Subscriptions.
  7. Devices: sign in as the same user in a private window, paste its code under Devices
     in the first window and "Approve": the second one now confirms payments too.
""".rstrip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.web", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: the stack's web port (FJB_WEB_PORT)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = stack_settings.load()
    secret = os.environ.get("FJB_APP_CHECK_DEBUG_SECRET", "")
    if not secret:
        print("FJB_APP_CHECK_DEBUG_SECRET is not set (the up command sets it)", file=sys.stderr)
        return 2
    web_dir = settings.repo / "web"
    try:
        ensure_built(web_dir)
    except BuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    app = make_app(settings, web_dir, secret)
    server = make_server(args.host, args.port or settings.web_port, app)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    log.info("serving the web app on http://%s:%d", args.host, server.server_address[1])
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
