"""The FCM-compatible sink (devstack.fcm_sink) and the push senders (fjordbank.adapters.push)."""

from __future__ import annotations

import json
import logging
import socket
import threading
from decimal import Decimal
from enum import Enum
from pathlib import Path

import pytest
import requests

from devstack import fcm_sink
from devstack.fcm_sink import MAX_BODY, make_server
from fjordbank.adapters.push import (
    FcmHttpSender,
    FirebaseAdminSender,
    InvalidPushPayload,
    PushResult,
    PushSender,
    classify_fcm_error,
    normalize_data,
    sender_from_config,
)

PROJECT = "demo-fjordbank"
TOKEN = "device-token-abcdefghijklmnop-123456"


class Sink:
    """A sink server on a free port, in a thread; restartable on the same store file."""

    def __init__(self, store: Path, **kw) -> None:
        self.store = store
        self.kw = kw  # e.g. keep=N
        self.server = None
        self.thread = None

    def start(self) -> Sink:
        self.server = make_server("127.0.0.1", 0, self.store, **self.kw)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def send_raw(self, body, **kw) -> requests.Response:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return requests.post(
            f"{self.url}/v1/projects/{PROJECT}/messages:send",
            data=data,
            headers={"Content-Type": "application/json"},
            timeout=5,
            **kw,
        )

    def messages(self, **params) -> list[dict]:
        resp = requests.get(f"{self.url}/sink/messages", params=params, timeout=5)
        assert resp.status_code == 200, resp.text
        return resp.json()


@pytest.fixture
def sink(tmp_path):
    s = Sink(tmp_path / "fcm" / "messages.jsonl").start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def sender(sink) -> FcmHttpSender:
    return FcmHttpSender(PROJECT, sink.url)


def send(sender: PushSender, token: str = TOKEN, **data) -> PushResult:
    return sender.send(token, title="Betaling mottatt", body="Du har fått 250,00 kr", data=data)


# ---------------------------------------------------------------- sending and recording


def test_send_succeeds_and_is_recorded(sink, sender):
    result = send(sender, kind="payment", paymentId="p-1", amount=25000)

    assert result.ok and not result.unregistered and result.error is None
    assert result.token == TOKEN
    assert result.message_id.startswith(f"projects/{PROJECT}/messages/")

    [record] = sink.messages()
    assert record["seq"] == 1
    assert record["name"] == result.message_id
    assert record["project"] == PROJECT
    assert record["received_at"].endswith("Z")
    message = record["message"]
    assert message["token"] == TOKEN
    assert message["notification"] == {"title": "Betaling mottatt", "body": "Du har fått 250,00 kr"}
    assert message["data"] == {"kind": "payment", "paymentId": "p-1", "amount": "25000"}
    assert message["android"] == {"priority": "high"}
    assert message["apns"]["headers"]["apns-priority"] == "10"


def test_filter_by_token_data_and_since(sink, sender):
    assert send(sender, "token-a-000001", kind="payment", paymentId="p-1").ok
    assert send(sender, "token-b-000002", kind="payment", paymentId="p-2").ok
    assert send(sender, "token-a-000001", kind="login").ok

    assert [m["seq"] for m in sink.messages(token="token-a-000001")] == [1, 3]
    assert [m["seq"] for m in sink.messages(**{"data.kind": "payment"})] == [1, 2]
    assert [m["seq"] for m in sink.messages(**{"data.kind": "payment", "data.paymentId": "p-2"})] == [2]
    assert [m["seq"] for m in sink.messages(token="token-a-000001", **{"data.kind": "payment"})] == [1]
    assert [m["seq"] for m in sink.messages(since=1)] == [2, 3]
    assert sink.messages(token="nobody") == []
    assert sink.messages(**{"data.missing": "x"}) == []
    assert requests.get(f"{sink.url}/sink/messages?since=x", timeout=5).status_code == 400


def test_topic_send_and_validate_only(sink):
    resp = sink.send_raw({"message": {"topic": "news", "data": {"a": "1"}}})
    assert resp.status_code == 200
    resp = sink.send_raw({"message": {"token": TOKEN}, "validate_only": True})
    assert resp.status_code == 200
    assert resp.json() == {"name": f"projects/{PROJECT}/messages/fake_message_id"}
    assert [m["message"].get("topic") for m in sink.messages()] == ["news"]
    assert len(sink.messages(topic="news")) == 1
    # firebase-admin 7.x may target a Firebase installation id instead of a token
    assert sink.send_raw({"message": {"fid": "installation-1"}}).status_code == 200
    assert [m["seq"] for m in sink.messages(fid="installation-1")] == [2]
    assert sink.send_raw({"message": {"fid": "unregistered-fid"}}).status_code == 404


def test_authorization_header_is_accepted_and_ignored(sink):
    s = FcmHttpSender(PROJECT, sink.url, headers={"Authorization": "Bearer not-a-real-token"})
    assert send(s).ok


# ---------------------------------------------------------------- unregistered tokens


def test_unregistered_token_is_reported_and_not_recorded(sink, sender):
    result = send(sender, "unregistered-0123456789")

    assert not result.ok
    assert result.unregistered
    assert result.message_id is None
    assert "UNREGISTERED" in result.error
    assert sink.messages() == []


def test_unregistered_error_has_fcm_shape(sink):
    resp = sink.send_raw({"message": {"token": "unregistered-x"}})
    assert resp.status_code == 404
    assert resp.json() == {
        "error": {
            "code": 404,
            "message": "Requested entity was not found.",
            "status": "NOT_FOUND",
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}],
        }
    }


def test_token_marked_unregistered_via_sink_api(sink, sender):
    assert send(sender).ok
    resp = requests.post(f"{sink.url}/sink/unregister", json={"token": TOKEN}, timeout=5)
    assert resp.status_code == 200
    assert requests.get(f"{sink.url}/sink/unregistered", timeout=5).json() == [TOKEN]

    result = send(sender)
    assert result.unregistered and not result.ok
    assert len(sink.messages()) == 1  # only the send from before
    assert requests.post(f"{sink.url}/sink/unregister", json={}, timeout=5).status_code == 400


def test_invalid_registration_token_counts_as_unregistered(sink, sender):
    result = send(sender, "invalid-token-xyz")
    assert result.unregistered and not result.ok
    assert "INVALID_ARGUMENT" in result.error


def test_classify_only_token_errors_as_unregistered():
    fcm = "type.googleapis.com/google.firebase.fcm.v1.FcmError"

    def err(code, status, message, error_code=None):
        details = [{"@type": fcm, "errorCode": error_code}] if error_code else []
        return {"error": {"code": code, "status": status, "message": message, "details": details}}

    assert classify_fcm_error(404, err(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"))[0]
    assert classify_fcm_error(403, err(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH"))[0]
    bad_token = err(400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token")
    bad_token["error"]["details"] = [{"@type": fcm, "errorCode": "INVALID_ARGUMENT"}]
    assert classify_fcm_error(400, bad_token)[0]
    # A payload problem, a wrong URL, an outage: the token stays.
    assert not classify_fcm_error(
        400, err(400, "INVALID_ARGUMENT", "Invalid value at 'message.data[0]'", "INVALID_ARGUMENT")
    )[0]
    assert not classify_fcm_error(404, err(404, "NOT_FOUND", "Requested entity was not found."))[0]
    assert not classify_fcm_error(503, err(503, "UNAVAILABLE", "The service is unavailable.", "UNAVAILABLE"))[0]
    assert not classify_fcm_error(502, None)[0]


def test_wrong_url_and_transport_errors_do_not_unregister(sink):
    wrong = FcmHttpSender(PROJECT, sink.url + "/nope")
    result = send(wrong)
    assert not result.ok and not result.unregistered

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = send(FcmHttpSender(PROJECT, f"http://127.0.0.1:{port}", timeout=1))
    assert not result.ok and not result.unregistered and "transport" in result.error


# ---------------------------------------------------------------- malformed requests


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"message": {"notification": {"title": "t", "body": "b"}}}, id="no-target"),
        pytest.param({"message": {"token": TOKEN, "topic": "news"}}, id="two-targets"),
        pytest.param({"message": {"token": TOKEN, "fid": "installation-1"}}, id="token-and-fid"),
        pytest.param({"message": {"token": TOKEN, "topic": "news", "condition": "'a' in topics"}}, id="three-targets"),
        pytest.param({"message": {"token": TOKEN, "data": {"amount": 250}}}, id="non-string-data"),
        pytest.param({"message": {"token": TOKEN, "data": {"nested": {"a": "b"}}}}, id="object-data"),
        pytest.param({"message": {"token": TOKEN, "data": {"from": "x"}}}, id="reserved-data-key"),
        pytest.param({"message": {"token": ""}}, id="empty-token"),
        pytest.param({"message": {"token": 42}}, id="token-not-string"),
        pytest.param({"message": {"token": TOKEN, "bogus": 1}}, id="unknown-field"),
        pytest.param({"message": {"token": TOKEN, "notification": {"title": 1}}}, id="bad-notification"),
        pytest.param({"message": {"token": TOKEN, "android": {"priority": "urgent"}}}, id="bad-priority"),
        pytest.param({"message": {"token": TOKEN}, "validate_only": "yes"}, id="bad-validate-only"),
        pytest.param({"msg": {"token": TOKEN}}, id="no-message"),
        pytest.param(["not", "an", "object"], id="not-an-object"),
        pytest.param(b"{not json", id="not-json"),
    ],
)
def test_malformed_message_is_400(sink, body):
    resp = sink.send_raw(body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == 400
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"]
    assert sink.messages() == []


def test_oversize_request_is_413(sink):
    big = {"message": {"token": TOKEN, "data": {"blob": "x" * (MAX_BODY + 1)}}}
    resp = sink.send_raw(big)
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == 413
    assert sink.messages() == []
    assert send(FcmHttpSender(PROJECT, sink.url)).ok  # the sink is fine afterwards


# ---------------------------------------------------------------- persistence, clearing


def test_messages_survive_a_restart(sink, sender):
    assert send(sender, kind="payment").ok
    assert send(sender, kind="login").ok
    requests.post(f"{sink.url}/sink/unregister", json={"token": "gone-token-999999"}, timeout=5)
    before = sink.messages()

    sink.restart()

    assert sink.messages() == before
    assert sink.store.read_text().count("\n") == 3
    again = FcmHttpSender(PROJECT, sink.url)
    assert send(again, kind="third").ok
    assert [m["seq"] for m in sink.messages()] == [1, 2, 3]  # numbering goes on
    assert send(again, "gone-token-999999").unregistered  # marks survive too


def test_a_cut_off_last_line_is_skipped_on_load(sink, sender):
    assert send(sender).ok
    sink.stop()
    with sink.store.open("a") as f:
        f.write('{"kind": "message", "seq": 2, "na')
    sink.start()
    assert [m["seq"] for m in sink.messages()] == [1]


def test_delete_clears_and_stays_cleared(sink, sender):
    assert send(sender).ok
    assert send(sender).ok
    resp = requests.delete(f"{sink.url}/sink/messages", timeout=5)
    assert resp.status_code == 200 and resp.json() == {"cleared": 2}
    assert sink.messages() == []

    sink.restart()
    assert sink.messages() == []
    assert send(FcmHttpSender(PROJECT, sink.url)).ok
    # seq never goes back, so a client polling with since=N misses nothing
    assert [m["seq"] for m in sink.messages()] == [3]


# ---------------------------------------------------------------- the newest only


def record_pushes(store, n: int, token: str = TOKEN) -> None:
    for i in range(n):
        store.record(PROJECT, {"token": token, "data": {"n": str(i)}})


def message_lines(path: Path) -> list[dict]:
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["kind"] == "message"]


def test_only_the_newest_messages_are_kept(tmp_path):
    store = fcm_sink.SinkStore(tmp_path / "sink.jsonl", keep=10)
    record_pushes(store, 25, token="someone-else-000001")
    store.record(PROJECT, {"token": TOKEN})  # what a test just caused is always among them
    assert [r["seq"] for r in store.query(token=TOKEN)] == [26]
    assert [r["seq"] for r in store.query()] == list(range(17, 27))
    assert [r["seq"] for r in store.query(since=22)] == [23, 24, 25, 26]
    assert store.query(since=26) == []
    # older than the window: they are gone, the reader gets what is kept (and is told so)
    assert [r["seq"] for r in store.query(since=3)] == list(range(17, 27))
    assert store.query_window(since=3)[1:] == (17, 26)
    assert len(store._messages) == 10


def test_the_store_file_is_compacted_and_a_restart_goes_on(tmp_path):
    path = tmp_path / "sink.jsonl"
    store = fcm_sink.SinkStore(path, keep=10)
    store.unregister("gone-token-000001")
    for _ in range(55):
        record_pushes(store, 1)
        assert len(message_lines(path)) <= 20  # twice the window at most
    assert [e["seq"] for e in message_lines(path)][-10:] == list(range(46, 56))

    again = fcm_sink.SinkStore(path, keep=10)
    assert [r["seq"] for r in again.query()] == list(range(46, 56))
    assert again.record(PROJECT, {"token": TOKEN})["seq"] == 56  # numbering goes on
    assert again.is_unregistered("gone-token-000001")  # marks survive a compaction
    assert again.clear() == 10
    assert fcm_sink.SinkStore(path, keep=10).record(PROJECT, {"token": TOKEN})["seq"] == 57


def test_a_big_store_file_is_read_back_to_the_window_only(tmp_path, monkeypatch):
    # a store file of before the window: every push since the stack was first started
    path = tmp_path / "sink.jsonl"
    lines = [{"kind": "unregister", "token": "gone-token-000001"}]
    lines += [
        {"kind": "message", "seq": i, "name": f"projects/{PROJECT}/messages/{i}", "project": PROJECT, "message": {}}
        for i in range(1, 1001)
    ]
    text = "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines)
    cut = text.index("\n", 5000) + 1
    path.write_text(text[:cut] + '{"kind":"message","seq":70,"na\n' + text[cut:])  # a torn line long ago
    parsed = []
    loads = json.loads
    monkeypatch.setattr(fcm_sink.json, "loads", lambda s, *a, **kw: parsed.append(1) or loads(s, *a, **kw))
    store = fcm_sink.SinkStore(path, keep=100)
    assert len(parsed) < 150  # the newest 100 and the other kinds, not the 900 before them
    monkeypatch.setattr(fcm_sink.json, "loads", loads)
    assert [r["seq"] for r in store.query()] == list(range(901, 1001))
    assert store.is_unregistered("gone-token-000001")
    assert [e["seq"] for e in message_lines(path)] == list(range(901, 1001))  # compacted at once
    assert store.record(PROJECT, {"token": TOKEN})["seq"] == 1001


def test_a_reader_is_told_what_is_no_longer_kept(tmp_path):
    sink = Sink(tmp_path / "sink.jsonl", keep=3).start()
    try:
        sender = FcmHttpSender(PROJECT, sink.url)
        for _ in range(5):
            assert send(sender).ok
        resp = requests.get(f"{sink.url}/sink/messages", params={"since": 0}, timeout=5)
        assert [m["seq"] for m in resp.json()] == [3, 4, 5]
        assert (resp.headers["X-Sink-Oldest-Seq"], resp.headers["X-Sink-Last-Seq"]) == ("3", "5")
        assert "X-Sink-Oldest-Seq" in resp.headers["Access-Control-Expose-Headers"]  # a browser may read it
        requests.delete(f"{sink.url}/sink/messages", timeout=5)
        resp = requests.get(f"{sink.url}/sink/messages", params={"since": 5}, timeout=5)
        assert resp.json() == [] and (resp.headers["X-Sink-Oldest-Seq"], resp.headers["X-Sink-Last-Seq"]) == ("6", "5")
    finally:
        sink.stop()


# ---------------------------------------------------------------- HTTP odds and ends


def test_healthz_cors_and_unknown_routes(sink):
    assert requests.get(f"{sink.url}/healthz", timeout=5).json() == {"status": "ok"}

    resp = requests.get(f"{sink.url}/sink/messages", headers={"Origin": "http://localhost:5173"}, timeout=5)
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    pre = requests.options(
        f"{sink.url}/sink/messages",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "DELETE"},
        timeout=5,
    )
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "*"
    assert "DELETE" in pre.headers["Access-Control-Allow-Methods"]

    assert requests.get(f"{sink.url}/nope", timeout=5).status_code == 404
    assert requests.post(f"{sink.url}/v1/projects/p/other:send", json={}, timeout=5).status_code == 404
    assert requests.get(f"{sink.url}/v1/projects/p/messages:send", timeout=5).status_code == 405


def test_keep_alive_session_survives_errors(sink):
    with requests.Session() as s:
        url = f"{sink.url}/v1/projects/{PROJECT}/messages:send"
        assert s.post(f"{sink.url}/nope", json={"x": 1}, timeout=5).status_code == 404
        assert s.post(url, json={"message": {}}, timeout=5).status_code == 400
        assert s.post(url, json={"message": {"token": TOKEN}}, timeout=5).status_code == 200
        assert s.get(f"{sink.url}/healthz", timeout=5).status_code == 200


# ---------------------------------------------------------------- sender-side rules


class Kind(Enum):
    PAYMENT = "payment"


def test_normalize_data_converts_or_refuses():
    assert normalize_data({"s": "x", "i": 5, "b": True, "f": 1.5, "d": Decimal("250.00"), "e": Kind.PAYMENT}) == {
        "s": "x",
        "i": "5",
        "b": "true",
        "f": "1.5",
        "d": "250.00",
        "e": "payment",
    }
    assert normalize_data(None) == {}
    for bad in ({"x": None}, {"x": {"a": 1}}, {"x": [1]}, {"x": b"raw"}, {"x": float("nan")}):
        with pytest.raises(InvalidPushPayload):
            normalize_data(bad)
    for key in ("from", "message_type", "google.c.a", "gcm.notification", ""):
        with pytest.raises(InvalidPushPayload):
            normalize_data({key: "v"})


def test_invalid_payload_raises_before_sending(sink, sender):
    with pytest.raises(InvalidPushPayload):
        sender.send(TOKEN, title="t", body="b", data={"x": object()})
    with pytest.raises(InvalidPushPayload):
        sender.send("", title="t", body="b", data={})
    assert sink.messages() == []


def test_full_token_is_never_logged(sink, sender, caplog):
    caplog.set_level(logging.DEBUG)
    send(sender)
    send(sender, "unregistered-secret-token-abcdef")
    text = caplog.text + repr(send(sender))
    assert TOKEN not in text
    assert "unregistered-secret-token-abcdef" not in text
    assert TOKEN[-6:] in text


def test_sender_from_config():
    sink_sender = sender_from_config(PROJECT, "http://127.0.0.1:9190/")
    assert isinstance(sink_sender, FcmHttpSender)
    assert sink_sender.url == f"http://127.0.0.1:9190/v1/projects/{PROJECT}/messages:send"
    assert isinstance(sender_from_config(PROJECT, None), FirebaseAdminSender)  # no credentials needed to construct
    assert isinstance(sender_from_config(PROJECT, ""), FirebaseAdminSender)
    assert isinstance(sink_sender, PushSender)


def test_a_collapse_id_is_the_android_tag_the_apns_collapse_id_and_the_web_tag(sink, sender):
    """A push sent twice shows once: each platform replaces a shown notification with the same id."""
    assert sender.send(TOKEN, title="t", body="b", data={}, collapse_id="c" * 32).ok
    assert send(sender).ok  # without one, none is set
    first, second = (r["message"] for r in sink.messages())
    assert first["android"]["notification"]["tag"] == "c" * 32
    assert first["apns"]["headers"]["apns-collapse-id"] == "c" * 32
    assert first["webpush"]["notification"]["tag"] == "c" * 32
    assert "notification" not in second["android"] and "apns-collapse-id" not in second["apns"]["headers"]
    assert "webpush" not in second


def test_firebase_admin_sender_sets_the_collapse_id(monkeypatch):
    from firebase_admin import messaging

    sent = []
    monkeypatch.setattr(messaging, "send", lambda message, dry_run=False, app=None: sent.append(message) or "m")
    fb = FirebaseAdminSender(PROJECT, app=object())
    assert fb.send("good", title="t", body="b", data={}, collapse_id="k" * 32).ok
    assert fb.send("good", title="t", body="b", data={}).ok
    tagged, plain = sent
    assert tagged.android.notification.tag == "k" * 32 and tagged.webpush.notification.tag == "k" * 32
    assert tagged.apns.headers == {"apns-priority": "10", "apns-collapse-id": "k" * 32}
    assert plain.android.notification is None and plain.webpush is None
    assert plain.apns.headers == {"apns-priority": "10"}


def test_firebase_admin_sender_maps_errors(monkeypatch):
    from firebase_admin import exceptions, messaging

    sent = []

    def fake_send(message, dry_run=False, app=None):
        sent.append(message)
        token = message.token
        if token == "gone":
            raise messaging.UnregisteredError("Requested entity was not found.")
        if token == "other-sender":
            raise messaging.SenderIdMismatchError("SenderId mismatch")
        if token == "bad":
            raise exceptions.InvalidArgumentError("The registration token is not a valid FCM registration token")
        if token == "payload":
            raise exceptions.InvalidArgumentError("Invalid value at 'message.data'")
        if token == "down":
            raise exceptions.UnavailableError("The service is unavailable.")
        return f"projects/{PROJECT}/messages/0:123"

    monkeypatch.setattr(messaging, "send", fake_send)
    fb = FirebaseAdminSender(PROJECT, app=object())

    ok = fb.send("good", title="t", body="b", data={"n": 1})
    assert ok.ok and ok.message_id == f"projects/{PROJECT}/messages/0:123"
    assert sent[0].data == {"n": "1"}
    assert sent[0].android.priority == "high"
    assert sent[0].notification.title == "t"

    for token in ("gone", "other-sender", "bad"):
        r = fb.send(token, title="t", body="b", data={})
        assert r.unregistered and not r.ok, token
    for token in ("payload", "down"):
        r = fb.send(token, title="t", body="b", data={})
        assert not r.unregistered and not r.ok and r.error, token


def test_answers_are_not_held_back_by_nagles_algorithm(sink, sender):
    """The sink's connections set TCP_NODELAY: its answers are written in two parts, and on a
    kept-alive connection Nagle's algorithm held the second until the client's delayed ACK
    (40 ms a push; `make bench` measures the push function's time)."""
    import socket

    from devstack.fcm_sink import _Handler

    seen: list[int] = []
    original = _Handler.setup

    def setup(self):
        original(self)
        seen.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    _Handler.setup = setup
    try:
        assert sender.send("token-" + "x" * 30, title="t", body="b", data={}).ok
    finally:
        _Handler.setup = original
    assert seen and all(seen)
