"""The card-processor simulator's protocol: signed requests, a decision deadline, and a
reversal for every authorisation that got no answer in time."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

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
