"""An FCM-compatible sink: Firebase Cloud Messaging has no emulator, so locally we run this.

It speaks the FCM HTTP v1 send endpoint the way Google's API does,

    POST /v1/projects/{project}/messages:send   {"message": {...}, "validate_only": false}
      200 {"name": "projects/{project}/messages/{id}"}
      400 INVALID_ARGUMENT  (malformed message, or a token starting with "invalid-")
      404 NOT_FOUND / FcmError UNREGISTERED  (a token starting with "unregistered-",
                                              or one marked via POST /sink/unregister)

and records the messages it accepts (validate_only requests are checked, not recorded),
in memory and as JSON lines in the store file, so the records survive a restart: the
newest KEEP of them (--keep), older ones are dropped. Any Authorization header is
accepted and ignored.

Inspection API for tests and the tester web app (CORS open, so a browser page on
localhost can read it):

    GET    /sink/messages?token=T&fid=F&topic=T&since=N&data.KEY=VALUE   JSON list, oldest first
    DELETE /sink/messages                                        clear the records
    POST   /sink/unregister {"token": "..."}                     FCM will answer UNREGISTERED
    GET    /sink/unregistered                                    tokens marked so far
    GET    /healthz

Each record: {"seq", "name", "project", "received_at" (UTC, ISO 8601), "message"}. Sequence
numbers only grow, also across a clear and a restart, so `since=N` polling never misses one
that is still kept. GET /sink/messages says in its headers what is kept:
X-Sink-Oldest-Seq, the oldest record's number (records before it were dropped, by the
window or a clear: a reader whose `since` is below it - 1 may have missed some), and
X-Sink-Last-Seq, the newest number given (0: none yet).

Stdlib only. Run: python -m devstack.fcm_sink --port 9190 --store .stack/fcm-sink.jsonl
Or in-process: server = make_server("127.0.0.1", 0, path); server.serve_forever().
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
import threading
import uuid
from collections import deque
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

log = logging.getLogger("devstack.fcm_sink")

MAX_BODY = 64 * 1024  # bytes; bigger requests get 413
_DRAIN_LIMIT = 1024 * 1024  # read and discard this much of a too-big body before answering 413
UNREGISTERED_PREFIX = "unregistered-"
INVALID_PREFIX = "invalid-"

_SEND_PATH = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
_TOPIC = re.compile(r"^[a-zA-Z0-9\-_.~%]+$")
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"

# Field names of the v1 Message resource (proto JSON accepts snake_case and lowerCamelCase).
_MESSAGE_FIELDS = {
    "name",
    "data",
    "notification",
    "android",
    "webpush",
    "apns",
    "fcm_options",
    "fcmOptions",
    "token",
    "fid",
    "topic",
    "condition",
}
_NOTIFICATION_FIELDS = {"title", "body", "image"}
# firebase-admin 7.x can also target a Firebase installation id ("fid"); still exactly one target.
_TARGETS = ("token", "fid", "topic", "condition")
_RESERVED_DATA_KEYS = {"from", "message_type", "notification"}
_RESERVED_DATA_PREFIXES = ("google", "gcm")
_TTL = re.compile(r"^\d+(\.\d{1,9})?s$")

# The messages kept, the newest (a store file holds at most twice as many between two
# compactions). Every push ever sent used to be kept, in memory and in the file: about
# 570 bytes each, 114 MB of each for 200,000 pushes, every poll scanning them all and a
# restart reading them all back. A reader polls for what it just caused, which is always
# among the newest; a reader asking for records older than these gets what is kept.
KEEP = 50_000
# How _append writes a message line: recognised without parsing it while loading
_MESSAGE_LINE = '{"kind":"message",'


class InvalidMessage(ValueError):
    """A send request FCM would refuse with 400 INVALID_ARGUMENT."""

    def __init__(self, description: str, field: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.field = field


# ---------------------------------------------------------------- validation (FCM v1 rules)


def validate_send_request(body: Any) -> tuple[dict[str, Any], bool]:
    """Return (message, validate_only) or raise InvalidMessage."""
    if not isinstance(body, dict):
        raise InvalidMessage("Invalid JSON payload received. Expected an object.")
    unknown = set(body) - {"message", "validate_only", "validateOnly"}
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidMessage(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.', name)
    validate_only = body.get("validate_only", body.get("validateOnly", False))
    if not isinstance(validate_only, bool):
        raise InvalidMessage("Invalid value at 'validate_only' (TYPE_BOOL)", "validate_only")
    message = body.get("message")
    if not isinstance(message, dict):
        raise InvalidMessage("Request contains an invalid argument. 'message' is required.", "message")
    unknown = set(message) - _MESSAGE_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidMessage(
            f"Invalid JSON payload received. Unknown name \"{name}\" at 'message': Cannot find field.",
            f"message.{name}",
        )

    targets = [t for t in _TARGETS if t in message and message[t] is not None]
    if not targets:
        raise InvalidMessage("Request contains an invalid argument. One of token, topic or condition is required.")
    if len(targets) > 1:
        raise InvalidMessage(
            f"Invalid value at 'message' (oneof), oneof field 'target' is already set. Cannot set '{targets[1]}'",
            "message",
        )
    target = targets[0]
    value = message[target]
    if not isinstance(value, str) or not value:
        raise InvalidMessage(f"Invalid value at 'message.{target}' (TYPE_STRING)", f"message.{target}")
    if target == "topic" and not _TOPIC.match(value.removeprefix("/topics/")):
        raise InvalidMessage("Request contains an invalid argument. Invalid topic name.", "message.topic")

    _validate_data(message.get("data"))
    _validate_notification(message.get("notification"))
    _validate_android(message.get("android"))
    _validate_apns(message.get("apns"))
    for name in ("webpush", "fcm_options", "fcmOptions"):
        if name in message and not isinstance(message[name], dict):
            raise InvalidMessage(f"Invalid value at 'message.{name}'", f"message.{name}")
    return message, validate_only


def _validate_data(data: Any) -> None:
    if data is None:
        return
    if not isinstance(data, dict):
        raise InvalidMessage("Invalid value at 'message.data'", "message.data")
    for i, (key, value) in enumerate(data.items()):
        if not isinstance(value, str):
            shown = json.dumps(value)[:40]
            raise InvalidMessage(
                f"Invalid value at 'message.data[{i}].value' (TYPE_STRING), {shown}", f"message.data[{i}].value"
            )
        if key in _RESERVED_DATA_KEYS or key.lower().startswith(_RESERVED_DATA_PREFIXES):
            raise InvalidMessage(f"Invalid data payload key: {key}", f"message.data[{i}].key")


def _validate_notification(notification: Any) -> None:
    if notification is None:
        return
    if not isinstance(notification, dict):
        raise InvalidMessage("Invalid value at 'message.notification'", "message.notification")
    for name, value in notification.items():
        if name not in _NOTIFICATION_FIELDS:
            raise InvalidMessage(
                f"Invalid JSON payload received. Unknown name \"{name}\" at 'message.notification': Cannot find field.",
                f"message.notification.{name}",
            )
        if not isinstance(value, str):
            raise InvalidMessage(
                f"Invalid value at 'message.notification.{name}' (TYPE_STRING)", f"message.notification.{name}"
            )


def _validate_android(android: Any) -> None:
    if android is None:
        return
    if not isinstance(android, dict):
        raise InvalidMessage("Invalid value at 'message.android'", "message.android")
    priority = android.get("priority")
    if priority is not None and (not isinstance(priority, str) or priority.upper() not in {"NORMAL", "HIGH"}):
        raise InvalidMessage(
            "Invalid value at 'message.android.priority' "
            "(type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority)",
            "message.android.priority",
        )
    ttl = android.get("ttl")
    if ttl is not None and (not isinstance(ttl, str) or not _TTL.match(ttl)):
        raise InvalidMessage("Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration)")
    data = android.get("data")
    if data is not None and (not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values())):
        raise InvalidMessage("Invalid value at 'message.android.data' (TYPE_STRING)", "message.android.data")


def _validate_apns(apns: Any) -> None:
    if apns is None:
        return
    if not isinstance(apns, dict):
        raise InvalidMessage("Invalid value at 'message.apns'", "message.apns")
    headers = apns.get("headers")
    if headers is not None and (not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values())):
        raise InvalidMessage("Invalid value at 'message.apns.headers' (TYPE_STRING)", "message.apns.headers")
    payload = apns.get("payload")
    if payload is not None and not isinstance(payload, dict):
        raise InvalidMessage("Invalid value at 'message.apns.payload'", "message.apns.payload")


# ---------------------------------------------------------------- error bodies, as FCM sends them


def fcm_error(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return {"error": error}


def unregistered_error() -> dict[str, Any]:
    return fcm_error(
        404,
        "NOT_FOUND",
        "Requested entity was not found.",
        [{"@type": _FCM_ERROR, "errorCode": "UNREGISTERED"}],
    )


def invalid_token_error() -> dict[str, Any]:
    return fcm_error(
        400,
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
        [{"@type": _FCM_ERROR, "errorCode": "INVALID_ARGUMENT"}],
    )


def invalid_message_error(exc: InvalidMessage) -> dict[str, Any]:
    details: list[dict[str, Any]] = [{"@type": _FCM_ERROR, "errorCode": "INVALID_ARGUMENT"}]
    if exc.field:
        details.append(
            {"@type": _BAD_REQUEST, "fieldViolations": [{"field": exc.field, "description": exc.description}]}
        )
    return fcm_error(400, "INVALID_ARGUMENT", exc.description, details)


# ---------------------------------------------------------------- the store


class SinkStore:
    """Accepted messages (the newest ``keep``) and unregistered tokens; in memory and as
    JSON lines on disk.

    Lines are {"kind": "message", ...record}, {"kind": "unregister", "token": ...} or
    {"kind": "clear", "seq": N} (written first after a clear, so `seq` never goes back, and
    first in a compacted file, where it stands for the messages dropped before it).
    """

    def __init__(self, path: str | Path | None, keep: int = KEEP) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.path = Path(path) if path is not None else None
        self.keep = keep
        self._lock = threading.Lock()
        # oldest first, seq growing: the oldest drop out as new ones come in
        self._messages: deque[dict[str, Any]] = deque(maxlen=keep)
        self._unregistered: set[str] = set()
        self._seq = 0
        self._in_file = 0  # message lines in the store file, kept or not
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._load()

    def _load(self) -> None:
        """Read the newest ``keep`` messages of the store file (and every unregistered
        token): the older lines are counted, not parsed. A file holding more than twice
        ``keep`` (one written before the window) is compacted at once."""
        assert self.path is not None
        if not self.path.exists():
            return
        newest: deque[tuple[int, str]] = deque(maxlen=self.keep)
        with self.path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.startswith(_MESSAGE_LINE):
                    newest.append((lineno, line))
                    self._in_file += 1
                    continue
                if not line.strip():
                    continue
                entry = self._parse(line, lineno)
                if entry is None:
                    continue
                kind = entry.pop("kind")
                if kind == "message":  # written some other way than _append's
                    newest.append((lineno, line))
                    self._in_file += 1
                elif kind == "unregister":
                    self._unregistered.add(entry["token"])
                elif kind == "clear":
                    newest.clear()
                    self._seq = max(self._seq, int(entry.get("seq", 0)))
        for lineno, line in newest:
            entry = self._parse(line, lineno)
            if entry is None:
                continue
            entry.pop("kind")
            self._messages.append(entry)
            self._seq = max(self._seq, int(entry.get("seq", 0)))
        if self._in_file > 2 * self.keep:
            self._compact()

    def _parse(self, line: str, lineno: int) -> dict[str, Any] | None:
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict) or "kind" not in entry:
            # A line cut short by a crash mid-write: skip it, keep the rest.
            log.warning("fcm sink: skipping unreadable line %d of %s", lineno, self.path)
            return None
        return entry

    def _append(self, entry: dict[str, Any]) -> None:
        if self.path is None:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(_line(entry))
            f.flush()

    def _rewrite(self, messages: list[dict[str, Any]]) -> None:
        """Replace the store file with a clear line (so `seq` never goes back), the
        unregistered tokens and ``messages``: written aside, then renamed over it, so a
        reader of the file (bench/chaos reads it) sees the old one or the new one whole."""
        assert self.path is not None
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.write(_line({"kind": "clear", "seq": self._seq}))
            f.writelines(_line({"kind": "unregister", "token": t}) for t in sorted(self._unregistered))
            f.writelines(_line({"kind": "message", **r}) for r in messages)
        tmp.replace(self.path)
        self._in_file = len(messages)

    def _compact(self) -> None:
        """Drop the messages no longer kept from the store file: done once it holds twice
        ``keep`` of them, so each message is written about twice in all."""
        if self.path is not None:
            self._rewrite(list(self._messages))

    def is_unregistered(self, token: str) -> bool:
        with self._lock:
            return token.startswith(UNREGISTERED_PREFIX) or token in self._unregistered

    def unregister(self, token: str) -> None:
        with self._lock:
            if token in self._unregistered:
                return
            self._unregistered.add(token)
            self._append({"kind": "unregister", "token": token})

    def unregistered(self) -> list[str]:
        with self._lock:
            return sorted(self._unregistered)

    def record(self, project: str, message: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._seq += 1
            record = {
                "seq": self._seq,
                "name": f"projects/{project}/messages/{uuid.uuid4().hex}",
                "project": project,
                "received_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "message": message,
            }
            self._append({"kind": "message", **record})
            self._in_file += 1
            self._messages.append(record)  # the oldest kept drops out
            if self._in_file > 2 * self.keep:
                self._compact()
            return record

    def clear(self) -> int:
        """Forget all messages (not the unregistered tokens); return how many were dropped."""
        with self._lock:
            dropped = len(self._messages)
            self._messages.clear()
            if self.path is not None:
                self._rewrite([])
            return dropped

    def query(
        self,
        *,
        token: str | None = None,
        fid: str | None = None,
        topic: str | None = None,
        since: int = 0,
        data: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """The kept records after ``since`` that match, oldest first."""
        return self.query_window(token=token, fid=fid, topic=topic, since=since, data=data)[0]

    def query_window(
        self,
        *,
        token: str | None = None,
        fid: str | None = None,
        topic: str | None = None,
        since: int = 0,
        data: dict[str, str] | None = None,
    ) -> tuple[list[dict[str, Any]], int, int]:
        """query()'s records, the oldest record's seq and the newest seq given, as one
        moment saw them. Records older than the window are gone: a reader asking for them
        gets what is kept, and the oldest seq says where that begins (records before it
        were dropped, by the window or a clear; the newest seq + 1 when none is kept)."""
        with self._lock:
            oldest = self._messages[0]["seq"] if self._messages else self._seq + 1
            last = self._seq
            # from the newest back to ``since``: a poll for what just came reads only that
            records = []
            for r in reversed(self._messages):
                if r["seq"] <= since:
                    break
                records.append(r)
        records.reverse()
        out = []
        for r in records:
            m = r["message"]
            if token is not None and m.get("token") != token:
                continue
            if fid is not None and m.get("fid") != fid:
                continue
            if topic is not None and (m.get("topic") or "").removeprefix("/topics/") != topic.removeprefix("/topics/"):
                continue
            if data and any((m.get("data") or {}).get(k) != v for k, v in data.items()):
                continue
            out.append(r)
        return out, oldest, last


def _line(entry: dict[str, Any]) -> str:
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"


# ---------------------------------------------------------------- HTTP


class FcmSinkServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], store: SinkStore) -> None:
        self.store = store
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def make_server(
    host: str = "127.0.0.1", port: int = 9190, store_path: str | Path | None = None, keep: int = KEEP
) -> FcmSinkServer:
    """A bound sink server (port 0: any free port, see `server.server_address`); call serve_forever()."""
    return FcmSinkServer((host, port), SinkStore(store_path, keep))


class _Handler(BaseHTTPRequestHandler):
    server: FcmSinkServer
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: the headers and the body go out in two writes, and on a kept-alive
    # connection Nagle's algorithm held the body until the client's delayed ACK of the
    # headers, 40 ms later: every push the push function sent took 44 ms here (FCM itself
    # answers in a few), and the sink's delay was most of the function's time.
    disable_nagle_algorithm = True
    server_version = "fcm-sink/1"
    timeout = 30  # seconds a client may stall mid-request

    # ------------------------------------------------------------ plumbing

    def log_message(self, format: str, *args: Any) -> None:
        # The request line may carry a device token in the query: log the path only.
        log.debug("fcm sink: %s %s", self.command, urlsplit(self.path).path)

    def _cors(self) -> None:
        if urlsplit(self.path).path.startswith("/sink/"):
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", "Content-Type, Authorization")
            self.send_header("Access-Control-Max-Age", "600")
            self.send_header("Access-Control-Expose-Headers", "X-Sink-Oldest-Seq, X-Sink-Last-Seq")

    def _send_json(
        self, status: int, payload: Any, *, close: bool = False, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self._cors()
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str, *, close: bool = False) -> None:
        self._send_json(status.value, fcm_error(status.value, _grpc_status(status), message), close=close)

    def _has_body(self) -> bool:
        """A body we will not read: answer with Connection: close so it is not taken as the next request."""
        return self.headers.get("Content-Length", "0").strip() != "0" or "Transfer-Encoding" in self.headers

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering the error (411, 400, 413) already."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._error(HTTPStatus.LENGTH_REQUIRED, "Chunked requests are not supported.", close=True)
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            self._error(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required.", close=True)
            return None
        try:
            length = int(raw)
            if length < 0:
                raise ValueError(raw)
        except ValueError:
            self._error(HTTPStatus.BAD_REQUEST, "Invalid Content-Length.", close=True)
            return None
        if length > MAX_BODY:
            # Read (and drop) a moderately big body first, so the client sees our answer
            # instead of a reset connection; past that, answer and hang up.
            if length <= _DRAIN_LIMIT:
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 65536))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            self._error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"Request payload is larger than {MAX_BODY} bytes.", close=True
            )
            return None
        return self.rfile.read(length) if length else b""

    def _read_json(self) -> tuple[bool, Any]:
        body = self._read_body()
        if body is None:
            return False, None
        try:
            return True, json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self._send_json(400, invalid_message_error(InvalidMessage("Invalid JSON payload received.")))
            return False, None

    # ------------------------------------------------------------ routes

    def do_OPTIONS(self) -> None:
        if not urlsplit(self.path).path.startswith("/sink/"):
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, "Method not allowed.")
            return
        self.send_response(HTTPStatus.NO_CONTENT)
        self._cors()
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        if path == "/healthz":
            self._send_json(200, {"status": "ok"})
        elif path == "/sink/messages":
            self._get_messages(parts.query)
        elif path == "/sink/unregistered":
            self._send_json(200, self.server.store.unregistered())
        elif path in ("/sink/unregister", "/sink/messages") or _SEND_PATH.match(unquote(path)):
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, "Method not allowed.")
        else:
            self._error(HTTPStatus.NOT_FOUND, "Requested entity was not found.")

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_DELETE(self) -> None:
        path = urlsplit(self.path).path
        if path == "/sink/messages":
            self._send_json(200, {"cleared": self.server.store.clear()}, close=self._has_body())
        else:
            self._error(HTTPStatus.NOT_FOUND, "Requested entity was not found.", close=True)

    def do_POST(self) -> None:
        path = unquote(urlsplit(self.path).path)
        send = _SEND_PATH.match(path)
        if send:
            self._send(send.group(1))
        elif path == "/sink/unregister":
            self._unregister()
        elif path in ("/sink/messages", "/sink/unregistered", "/healthz"):
            # The body is left unread: hang up rather than parse it as the next request.
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, "Method not allowed.", close=True)
        else:
            self._error(HTTPStatus.NOT_FOUND, "Requested entity was not found.", close=True)

    def _send(self, project: str) -> None:
        ok, body = self._read_json()
        if not ok:
            return
        try:
            message, validate_only = validate_send_request(body)
        except InvalidMessage as exc:
            self._send_json(400, invalid_message_error(exc))
            return
        token = message.get("token") or message.get("fid")
        if token is not None:
            if token.startswith(INVALID_PREFIX):
                self._send_json(400, invalid_token_error())
                return
            if self.server.store.is_unregistered(token):
                self._send_json(404, unregistered_error())
                return
        if validate_only:
            self._send_json(200, {"name": f"projects/{project}/messages/fake_message_id"})
            return
        record = self.server.store.record(project, message)
        self._send_json(200, {"name": record["name"]})

    def _unregister(self) -> None:
        ok, body = self._read_json()
        if not ok:
            return
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            self._send_json(400, fcm_error(400, "INVALID_ARGUMENT", 'Body must be {"token": "<non-empty string>"}.'))
            return
        self.server.store.unregister(token)
        self._send_json(200, {"token": token, "unregistered": True})

    def _get_messages(self, query: str) -> None:
        token = fid = topic = None
        since = 0
        data: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key == "token":
                token = value
            elif key == "fid":
                fid = value
            elif key == "topic":
                topic = value
            elif key == "since":
                try:
                    since = int(value)
                except ValueError:
                    self._send_json(400, fcm_error(400, "INVALID_ARGUMENT", "'since' must be an integer."))
                    return
            elif key.startswith("data.") and len(key) > len("data."):
                data[key[len("data.") :]] = value
            else:
                self._send_json(400, fcm_error(400, "INVALID_ARGUMENT", f"Unknown query parameter {key!r}."))
                return
        records, oldest, last = self.server.store.query_window(
            token=token, fid=fid, topic=topic, since=since, data=data
        )
        self._send_json(200, records, headers={"X-Sink-Oldest-Seq": str(oldest), "X-Sink-Last-Seq": str(last)})


def _grpc_status(status: HTTPStatus) -> str:
    return {
        HTTPStatus.BAD_REQUEST: "INVALID_ARGUMENT",
        HTTPStatus.NOT_FOUND: "NOT_FOUND",
        HTTPStatus.METHOD_NOT_ALLOWED: "UNIMPLEMENTED",
        HTTPStatus.LENGTH_REQUIRED: "INVALID_ARGUMENT",
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "INVALID_ARGUMENT",
    }.get(status, "UNKNOWN")


# ---------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.fcm_sink", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9190)
    parser.add_argument("--store", required=True, help="JSON-lines file the accepted messages are kept in")
    parser.add_argument("--keep", type=int, default=KEEP, help="how many of the newest messages are kept")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = make_server(args.host, args.port, args.store, args.keep)

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    log.info("fcm sink listening on %s (store %s)", server.url, args.store)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
