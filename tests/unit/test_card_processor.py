"""The card-processor simulator's protocol: signed requests, a decision deadline, and a
reversal for every authorisation that got no answer in time."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import urllib3

from fjordbank.domain import signatures
from simulators.card_processor import CardProcessor

SECRET = b"shared-secret-for-the-simulator-test"


@pytest.fixture
def issuer():
    """A fake card service: slow to decide, quick to reverse; checks every signature."""
    seen: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            signatures.verify(SECRET, self.headers[signatures.HEADER], raw, path=self.path, now=time.time())
            seen.append((self.path, json.loads(raw)))
            if self.path == "/v1/authorizations":
                time.sleep(0.5)
            body = json.dumps({"status": "approved", "approved": True, "reason": None}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()


def test_no_answer_within_the_timeout_is_a_decline_followed_by_a_reversal(issuer):
    url, seen = issuer
    answer = CardProcessor(url, SECRET, timeout=0.1).authorize(
        pan="4992104472170267", exp_month=11, exp_year=2030, amount=1_000
    )
    assert answer["approved"] is False and answer["reason"] == "issuer_timeout" and answer["timedOut"] is True
    paths = [p for p, _ in seen]
    assert paths == ["/v1/authorizations", "/v1/reversals"]
    assert seen[1][1] == {"reference": answer["reference"]}


def test_an_answer_in_time_is_passed_on_and_nothing_is_reversed(issuer):
    url, seen = issuer
    answer = CardProcessor(url, SECRET, timeout=5).authorize(
        pan="4992104472170267", exp_month=11, exp_year=2030, amount=1_000, reference="ref-1"
    )
    assert answer == {"status": "approved", "approved": True, "reason": None, "reference": "ref-1"}
    assert [p for p, _ in seen] == ["/v1/authorizations"]


class _Answer:
    def __init__(self, status: int, body: bytes) -> None:
        self.status_code, self._body = status, body

    def json(self):
        return json.loads(self._body)


class FakeSession:
    """requests.Session as the network behaves: ``script`` says what each POST to a path
    does, in turn (an exception raised, or a status and body answered)."""

    def __init__(self, script: dict[str, list]) -> None:
        self.script, self.sent = script, []

    def post(self, url, data, headers, timeout):
        path = url.split("127.0.0.1:9", 1)[1]
        self.sent.append((path, json.loads(data)))
        step = self.script[path].pop(0) if len(self.script[path]) > 1 else self.script[path][0]
        if isinstance(step, Exception):
            raise step
        return _Answer(*step)


APPROVED = (200, json.dumps({"approved": True, "status": "approved"}).encode())
REVERSED = (200, b'{"status": "reversed"}')


def _processor(script: dict[str, list]) -> tuple[CardProcessor, FakeSession]:
    session = FakeSession(script)
    return CardProcessor("http://127.0.0.1:9", SECRET, session=session, reversal_patience=60), session


@pytest.mark.parametrize(
    "failure",
    [
        requests.ConnectionError(ConnectionResetError(104, "Connection reset by peer")),  # after the decision
        requests.exceptions.ChunkedEncodingError("the answer broke off"),
        (502, b"<html>bad gateway</html>"),  # an error page, not JSON
    ],
)
def test_an_answer_that_never_arrives_whole_is_a_decline_followed_by_a_reversal(failure):
    """The card service may have approved and held the money: without a reversal the hold
    stays for days and the customer's second try at the till is declined."""
    processor, session = _processor({"/v1/authorizations": [failure], "/v1/reversals": [REVERSED]})
    answer = processor.authorize(pan="4992104472170267", exp_month=11, exp_year=2030, amount=1_000, reference="r-1")
    assert answer["approved"] is False and answer["reason"] in ("issuer_unavailable", "issuer_timeout")
    assert [p for p, _ in session.sent][-1] == "/v1/reversals"


def test_a_card_service_not_there_is_an_error_and_nothing_is_reversed():
    processor, _ = _processor({"/v1/authorizations": [APPROVED], "/v1/reversals": [REVERSED]})
    processor.session = requests.Session()
    processor.url = "http://127.0.0.1:1"
    with pytest.raises(requests.ConnectionError):
        processor.authorize(pan="4992104472170267", exp_month=11, exp_year=2030, amount=1_000, reference="r-2")


def test_a_service_gone_after_a_503_is_a_decline_followed_by_a_reversal(monkeypatch):
    """The 503 may follow an approval whose answer was lost: the retry finding the card
    service restarting must not leave that hold for days."""
    monkeypatch.setattr("simulators.card_processor.time.sleep", lambda _s: None)
    gone = requests.ConnectionError(
        urllib3.exceptions.MaxRetryError(None, "/", urllib3.exceptions.NewConnectionError(None, "refused"))
    )
    unavailable = (503, b'{"error":"unavailable","retryable":true}')
    processor, session = _processor({"/v1/authorizations": [unavailable, gone], "/v1/reversals": [REVERSED]})
    answer = processor.authorize(pan="4992104472170267", exp_month=11, exp_year=2030, amount=1_000, reference="r-4")
    assert answer["approved"] is False and answer["reason"] == "issuer_unavailable"
    assert [p for p, _ in session.sent] == ["/v1/authorizations", "/v1/authorizations", "/v1/reversals"]


def test_a_reversal_is_tried_until_the_card_service_answers(monkeypatch):
    """A deploy or restart of the card service outlasted five tries in three seconds."""
    monkeypatch.setattr("simulators.card_processor.time.sleep", lambda _s: None)
    down = requests.ConnectionError(ConnectionRefusedError(111, "refused"))
    script = {"/v1/reversals": [down] * 8 + [(503, b"{}"), (500, b'{"error":"internal"}'), REVERSED]}
    processor, session = _processor(script)
    assert processor.reverse("r-3") == (200, {"status": "reversed"})
    assert len(session.sent) == 11


def test_a_capture_reference_fits_the_64_characters_of_a_reference():
    from simulators.card_processor import capture_reference_for

    assert capture_reference_for("ref-1") == "cap-ref-1"
    long = "r" * 64
    assert len(capture_reference_for(long)) <= 64 and capture_reference_for(long) != capture_reference_for("r" * 63)
    assert capture_reference_for(long) == capture_reference_for(long)
