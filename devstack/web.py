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
reads only the messages for its own device token.

Run: python -m devstack.web --port 9200 (the up command does; settings from the stack's).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import json
import logging
import mimetypes
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from devstack import settings as stack_settings
from devstack.supervisor import Component, http_ok
from simulators.identities import synthetic_national_id

log = logging.getLogger("devstack.web")

REGION = "europe-west1"  # the functions' region (functions/main.py)
API_KEY = "fake-api-key"  # the Auth emulator takes any key
APP_ID = "1:000:web:fjordbank-tester"
SALARY = 2_500_000  # øre: 25 000 kr
EMPLOYER_FUNDS = 100_000_000  # øre: what the demo employer starts each day with (its daily limit)
SPENT = frozenset({"over_daily_limit", "velocity_limit", "insufficient_funds"})  # then a new employer
MAX_BODY = 4096
_rnd = random.SystemRandom()


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


# ---- the emulators, through their REST APIs (as an app or a phone would) ----------------------
def _encode(value: Any) -> dict:
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"integerValue": str(value)}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, dict):
        return {"mapValue": {"fields": {k: _encode(v) for k, v in value.items()}}}
    raise TypeError(f"no Firestore encoding for {type(value).__name__}")


def _decode(value: dict) -> Any:
    ((kind, raw),) = value.items()
    if kind == "integerValue":
        return int(raw)
    if kind == "mapValue":
        return {k: _decode(v) for k, v in raw.get("fields", {}).items()}
    if kind == "nullValue":
        return None
    return raw


@dataclass(frozen=True)
class Emulators:
    project_id: str
    ports: dict[str, int]
    app_check_secret: str

    def _request(self, method: str, url: str, body: dict | None = None, headers: dict | None = None):
        """(status, JSON body) of one request to an emulator on this machine."""
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        try:
            conn.request(
                method,
                parts.path + (f"?{parts.query}" if parts.query else ""),
                body=json.dumps(body).encode() if body is not None else None,
                headers={"Content-Type": "application/json", **(headers or {})},
            )
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        except (OSError, ValueError) as exc:
            raise WebError(f"{method} {parts.path}: {exc}") from exc
        finally:
            conn.close()

    def _auth(self, endpoint: str, email: str, password: str) -> dict:
        url = (
            f"http://127.0.0.1:{self.ports['auth']}/identitytoolkit.googleapis.com/v1/accounts:{endpoint}?key={API_KEY}"
        )
        status, body = self._request("POST", url, {"email": email, "password": password, "returnSecureToken": True})
        if status != 200:
            raise WebError(f"Auth emulator {endpoint}: HTTP {status}")
        return {"uid": body["localId"], "idToken": body["idToken"]}

    def sign_up(self, email: str, password: str) -> dict:
        return self._auth("signUp", email, password)

    def sign_in(self, email: str, password: str) -> dict:
        return self._auth("signInWithPassword", email, password)

    def app_check_token(self) -> str:
        from fjordbank.adapters.app_check import mint_debug_token

        return mint_debug_token(self.app_check_secret, self.project_id, app_id=APP_ID)

    def call(self, name: str, data: dict, id_token: str) -> dict:
        url = f"http://127.0.0.1:{self.ports['functions']}/{self.project_id}/{REGION}/{name}"
        headers = {"Authorization": f"Bearer {id_token}", "X-Firebase-AppCheck": self.app_check_token()}
        status, body = self._request("POST", url, {"data": data}, headers)
        if status != 200 or "result" not in body:
            error = body.get("error") or {}
            raise WebError(f"{name}: {error.get('status', status)} {(error.get('details') or {}).get('reason', '')}")
        return body["result"]

    @property
    def _documents(self) -> str:
        return f"http://127.0.0.1:{self.ports['firestore']}/v1/projects/{self.project_id}/databases/(default)/documents"

    def get(self, path: str, id_token: str) -> tuple[int, dict | None]:
        """A document as the signed-in user reads it: the security rules apply."""
        status, body = self._request(
            "GET", f"{self._documents}/{path}", headers={"Authorization": f"Bearer {id_token}"}
        )
        if status != 200:
            return status, None
        return status, {k: _decode(v) for k, v in body.get("fields", {}).items()}

    def create(self, collection: str, doc_id: str, fields: dict, id_token: str) -> int:
        status, _ = self._request(
            "POST",
            f"{self._documents}/{collection}?documentId={quote(doc_id)}",
            {"fields": {k: _encode(v) for k, v in fields.items()}},
            {"Authorization": f"Bearer {id_token}"},
        )
        return status


# ---- the demo employer --------------------------------------------------------------------
class DemoEmployer:
    """A customer of the bank (onboarded through the callables, like anyone) that pays
    salaries. A new one each day, funded once with its daily limit's worth."""

    def __init__(self, emulators: Emulators, state_file: Path) -> None:
        self.emulators = emulators
        self.state_file = state_file
        self.lock = threading.Lock()

    def _load(self) -> dict | None:
        if not self.state_file.exists():
            return None
        state = json.loads(self.state_file.read_text())
        return state if state.get("day") == date.today().isoformat() else None

    def _save(self, state: dict) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh)

    def _create(self) -> dict:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        from fjordbank.domain import sca

        email = f"employer-{secrets.token_hex(6)}@demo.fjordbank.test"
        password = secrets.token_urlsafe(16)
        user = self.emulators.sign_up(email, password)
        key = ec.generate_private_key(ec.SECP256R1())
        key_id = f"employer-{secrets.token_hex(6)}"
        self.emulators.call(
            "sca_register_key", {"keyId": key_id, "publicKey": sca.public_key_b64(key)}, user["idToken"]
        )
        born = date(1970, 1, 1) + timedelta(days=_rnd.randrange(365 * 30))
        application = {
            "name": "Fjordlaks Demo",
            "nationalId": synthetic_national_id(born),
            "dateOfBirth": born.isoformat(),
            "address": {"street": "Bryggen 1", "postalCode": "5003", "city": "Bergen"},
            "phone": "+4791234567",
            "email": email,
        }
        result = self.emulators.call("onboarding_submit", application, user["idToken"])
        if result.get("status") != "approved" or not result.get("accountId"):
            raise WebError(f"the demo employer was not approved: {result.get('status')}")
        account = result["accountId"]
        self._fund(account)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        state = {
            "day": date.today().isoformat(),
            "email": email,
            "password": password,
            "account": account,
            "keyId": key_id,
            "key": pem.decode(),
        }
        self._save(state)
        return state

    def _fund(self, account: str) -> None:
        """Money entering the bank from outside: the ledger's admin path (a deposit)."""
        from fjordbank.adapters.documents import AsyncFirestoreDocuments
        from fjordbank.adapters.firestore import async_client
        from fjordbank.service_layer.ledger import Ledger

        async def run() -> None:
            ledger = Ledger(AsyncFirestoreDocuments(async_client(self.emulators.project_id)))
            await ledger.ensure_internal_accounts()
            await ledger.deposit(deposit_id=f"demo-employer-{account}", account_id=account, amount=EMPLOYER_FUNDS)

        asyncio.run(run())

    def _pay(self, state: dict, to_account: str) -> dict:
        from cryptography.hazmat.primitives import serialization

        from fjordbank.domain import sca
        from fjordbank.domain.payments import TERMINAL

        user = self.emulators.sign_in(state["email"], state["password"])
        key = serialization.load_pem_private_key(state["key"].encode(), password=None)
        request_id = f"salary-{secrets.token_hex(10)}"
        body = {
            "v": 1,
            "fromAccount": state["account"],
            "toAccount": to_account,
            "amount": SALARY,
            "currency": "NOK",
            "message": "Lønn fra Fjordlaks Demo AS",
            "sca": {
                "keyId": state["keyId"],
                "signature": sca.sign(key, sca.challenge(request_id, SALARY, "NOK", to_account)),  # type: ignore[arg-type]
            },
        }
        status = self.emulators.create(f"users/{user['uid']}/paymentRequests", request_id, body, user["idToken"])
        if status != 200:
            raise WebError(f"the salary request was refused (HTTP {status})")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            _, doc = self.emulators.get(f"users/{user['uid']}/paymentRequests/{request_id}", user["idToken"])
            if doc and doc.get("status") in TERMINAL:
                return {"status": doc["status"], "amount": SALARY, "reason": (doc.get("reason") or {}).get("code")}
            time.sleep(0.3)
        return {"status": "pending", "amount": SALARY, "reason": None}

    def pay_salary(self, to_account: str) -> dict:
        with self.lock:
            state = self._load()
            try:
                result = self._pay(state or self._create(), to_account)
            except WebError:
                if state is None:
                    raise
                # the emulators started afresh since (their data is not kept): a new employer
                result = self._pay(self._create(), to_account)
            if result["reason"] in SPENT:
                result = self._pay(self._create(), to_account)  # this one is spent: a new employer
            return result


# ---- HTTP --------------------------------------------------------------------------------
@dataclass
class WebApp:
    web_dir: Path
    settings: stack_settings.StackSettings
    emulators: Emulators
    employer: DemoEmployer

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
        """Browsers send Origin with every POST; another site's page gets nothing here."""
        origin = self.headers.get("Origin")
        return origin is None or origin == f"http://{self.headers.get('Host', '')}"

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
            ttl = 3600
            token = self.app.emulators.app_check_token()
            self._json(200, {"token": token, "expireTimeMillis": int((time.time() + ttl - 60) * 1000)})
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
            status, doc = self.app.emulators.get(f"accounts/{account}", token)
            if status != 200 or not doc or doc.get("status") != "open":
                self._json(403, {"error": "not an open account of the signed-in user"})
                return
            self._json(200, self.app.employer.pay_salary(account))
        except WebError as exc:
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
            "PYTHONPATH": str(s.repo),
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
    emulators = Emulators(settings.project_id, settings.emulator_ports, secret)
    app = WebApp(web_dir, settings, emulators, DemoEmployer(emulators, settings.state_dir / "web-demo-employer.json"))
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
