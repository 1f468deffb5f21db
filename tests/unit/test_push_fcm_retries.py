"""A send into a throttled or overloaded FCM (found in review, 2026-12-07).

The production sender (`FirebaseAdminSender`, through firebase_admin's own messaging client)
sends each request once: firebase_admin retried a 500 or 503 up to 4 times, and a 429 or 503
with Retry-After after sleeping it, so that one send could outlast the push function's run
(`fjordbank.adapters.push.NO_RETRIES`). Shown against a local FCM on a free port, through
the real library. And once FCM answers a send of a message that it takes nothing more for
now (`push.THROTTLED`), the message's sends not started are held back for its next delivery
instead of each being answered the same.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from fjordbank.adapters.push import FirebaseAdminSender, PushResult
from fjordbank.service_layer import push
from tests.support.memory import MemoryDocuments
from tests.support.use_cases import fixed_clock, seed
from tests.unit.test_push_use_case import Sender, a_push, phone

PROJECT = "demo-fjordbank"


class FakeFcm:
    """FCM's send endpoint on 127.0.0.1 and a free port, giving every POST one answer."""

    def __init__(self) -> None:
        self.posts: list[float] = []
        self.answer: tuple[int, dict, dict[str, str]] = (200, {"name": f"projects/{PROJECT}/messages/1"}, {})
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                fake.posts.append(time.monotonic())
                status, payload, headers = fake.answer
                body = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {"content-type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def fcm() -> Iterator[FakeFcm]:
    fake = FakeFcm()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def firebase_app(monkeypatch: pytest.MonkeyPatch, url: str, name: str) -> object:
    """A firebase_admin app of its own whose messaging client sends to ``url`` (made on the
    app's first send, from the class's URL), with no credentials to fetch."""
    import firebase_admin
    from firebase_admin import credentials, messaging
    from google.auth.credentials import AnonymousCredentials

    class Anonymous(credentials.Base):
        def get_credential(self) -> AnonymousCredentials:
            return AnonymousCredentials()

    monkeypatch.setattr(messaging._MessagingService, "FCM_URL", f"{url}/v1/projects/{{0}}/messages:send")
    return firebase_admin.initialize_app(Anonymous(), {"projectId": PROJECT, "httpTimeout": 8.0}, name=name)


@pytest.fixture
def sender(monkeypatch: pytest.MonkeyPatch, fcm: FakeFcm) -> Iterator[FirebaseAdminSender]:
    import firebase_admin

    app = firebase_app(monkeypatch, fcm.url, "fcm-retries")
    yield FirebaseAdminSender(PROJECT, app=app)
    firebase_admin.delete_app(app)


def fcm_error(status: int, grpc: str, fcm_code: str | None = None) -> dict:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}]
    return {"error": {"code": status, "message": "busy", "status": grpc, "details": details if fcm_code else []}}


@pytest.mark.parametrize(
    ("status", "payload", "headers", "code"),
    [
        (503, fcm_error(503, "UNAVAILABLE"), {"Retry-After": "2"}, "UNAVAILABLE"),
        (429, fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), {"Retry-After": "2"}, "QUOTA_EXCEEDED"),
        (500, fcm_error(500, "INTERNAL", "INTERNAL"), {}, "INTERNAL"),
    ],
    ids=["503-retry-after", "429-retry-after", "500"],
)
def test_a_send_fcm_cannot_take_now_is_one_post_and_comes_back_at_once(fcm, sender, status, payload, headers, code):
    """firebase_admin made 5 POSTs of it, sleeping Retry-After (2 s here, up to 6 h) or its
    backoff (1, 2 and 4 s) between them: 8 s for this one send, four minutes with
    Retry-After 60."""
    fcm.answer = (status, payload, headers)
    began = time.monotonic()
    result = sender.send("tok-xyz123456", title="t", body="b", data={}, collapse_id="c" * 32)
    took = time.monotonic() - began
    assert len(fcm.posts) == 1
    assert not result.ok and result.code == code
    assert took < 1.5, f"one send took {took:.1f} s"


def test_each_send_is_one_post_and_one_sent_is_answered_with_its_name(fcm, sender):
    for n in range(3):
        assert sender.send(f"tok-{n}-123456", title="t", body="b", data={}).ok
    assert len(fcm.posts) == 3


def test_no_connection_to_fcm_is_a_transport_error_not_fcm_overloaded(monkeypatch):
    """firebase_admin calls a connection it could not make UNAVAILABLE, as it does FCM's
    own 503: only FCM's answer holds the message's other sends back."""
    import firebase_admin

    with socket.socket() as free:  # a port nothing listens on once it is closed
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    app = firebase_app(monkeypatch, f"http://127.0.0.1:{port}", "fcm-away")
    try:
        result = FirebaseAdminSender(PROJECT, app=app).send("tok-xyz123456", title="t", body="b", data={})
    finally:
        firebase_admin.delete_app(app)
    assert not result.ok and result.code == "TRANSPORT_ERROR"
    assert push.passes(result.code) and result.code not in push.THROTTLED


# ---- the message's other sends held back -----------------------------------------------------


def customers(n: int, devices: int = 3) -> MemoryDocuments:
    docs = MemoryDocuments(fixed_clock())
    settings = {f"u{i}": {f"d{j}": phone(f"t{i}-{j}") for j in range(devices)} for i in range(n)}
    seed(docs, {push.settings_path(uid): {"devices": held} for uid, held in settings.items()})
    return docs


def message(n: int) -> dict:
    return {"pushes": [a_push(f"p{i}:failed", uid=f"u{i}") for i in range(n)]}


@pytest.mark.parametrize("code", ["QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", "HTTP_429", "UNAVAILABLE", "HTTP_503"])
def test_after_fcm_answers_that_it_takes_no_more_the_messages_other_sends_are_not_made(code):
    """100 pushes to 3 devices each were 300 sends at each of the message's deliveries, each
    answered the same (900 in 3 deliveries). Those in flight when the answers of
    `THROTTLED_DEVICES` devices come finish; none is started after them."""
    docs = customers(100)

    class Throttled(Sender):
        def send(self, token: str, **kwargs: object) -> PushResult:
            self.sent.append((token, None, None))
            return PushResult(token, ok=False, error="busy", code=code)

    sender = Throttled()
    for _delivery in range(3):
        with pytest.raises(push.PushesNotSent) as raised:
            push.deliver_batch(docs, sender, message(100))
        assert raised.value.outcomes == {"not_sent": 100} and raised.value.done == set()
    assert len(sender.sent) <= 3 * (push.WORKERS + push.THROTTLED_DEVICES)


def test_the_sends_held_back_are_made_at_the_next_delivery_and_those_done_are_not():
    docs = customers(40, devices=1)
    over = {f"t{i}-0" for i in range(push.THROTTLED_DEVICES)}
    answered = threading.Barrier(push.THROTTLED_DEVICES)

    class First(Sender):
        """FCM over the project's quota for the first sends; the others answered after them (in flight)."""

        def send(self, token: str, **kwargs: object) -> PushResult:
            self.sent.append((token, None, None))
            if token in over:
                answered.wait(5)
                return PushResult(token, ok=False, error="HTTP 429", code="QUOTA_EXCEEDED")
            time.sleep(0.2)
            return PushResult(token, ok=True, message_id="m")

    first = First()
    with pytest.raises(push.PushesNotSent) as raised:
        push.deliver_batch(docs, first, message(40))
    took = {t for t, _, _ in first.sent} - over
    assert len(took) < push.WORKERS  # those in flight
    assert raised.value.outcomes == {"not_sent": 40 - len(took)} | ({"sent": len(took)} if took else {})
    again = Sender()  # FCM takes them now
    outcomes = push.deliver_batch(docs, again, message(40), done=raised.value.done)
    assert outcomes == {"sent": 40 - len(took)} | ({"sent_before": len(took)} if took else {})
    assert {t for t, _, _ in again.sent} == {f"t{i}-0" for i in range(40)} - took  # the throttled ones' too


def test_one_device_over_its_own_rate_holds_back_no_other_push():
    """FCM's QUOTA_EXCEEDED also says one device is over its own rate: holding back the rest
    then would hold everyone's pushes of the message behind one busy phone at every delivery."""
    docs = customers(40, devices=1)
    busy = PushResult("t0-0", ok=False, error="HTTP 429", code="QUOTA_EXCEEDED")
    sender = Sender(**{"t0-0": busy})
    with pytest.raises(push.PushesNotSent) as raised:
        push.deliver_batch(docs, sender, message(40))
    assert raised.value.outcomes == {"not_sent": 1, "sent": 39}
    assert len(sender.sent) == 40


def test_a_send_that_fails_for_its_own_device_holds_nothing_back():
    """A token FCM does not know, or a payload it refuses, says nothing of FCM's load."""
    docs = customers(40, devices=1)
    gone = PushResult("t0-0", ok=False, unregistered=True, error="HTTP 404", code="UNREGISTERED")
    cut = PushResult("t1-0", ok=False, error="transport error", code="TRANSPORT_ERROR")
    sender = Sender(**{"t0-0": gone, "t1-0": cut})
    with pytest.raises(push.PushesNotSent) as raised:
        push.deliver_batch(docs, sender, message(40))
    assert raised.value.outcomes == {"no_devices": 1, "not_sent": 1, "sent": 38}
    assert len(sender.sent) == 40
