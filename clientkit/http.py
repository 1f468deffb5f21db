"""The one HTTP helper under `Auth` and `Callables`.

POSTs of JSON to one part of the stack with a timeout; its transport errors become
one-line errors naming that part (`clientkit.errors.talking_to`); an answer "busy, try
again" (HTTP 429 or RESOURCE_EXHAUSTED with reason rate_limited, contention or busy) is
tried again a bounded number of times, after retryAfter seconds when the answer gives
them (`busy_wait`). `send` is one try and nothing more: what a test that looks at each
refusal (a rate limit's 429 among them) needs.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
from dataclasses import dataclass
from http.client import RemoteDisconnected
from typing import Any

import requests

from clientkit.errors import StackUnreachable, talking_to

BUSY_REASONS = frozenset({"rate_limited", "contention", "busy"})  # refused now, fine a little later
BUSY_RETRIES = 4  # at most this many tries again of a "busy" answer
BUSY_MAX_WAIT = 30.0  # seconds: a longer retryAfter is not waited for (the refusal is reported)
_rnd = random.SystemRandom()


@dataclass(frozen=True)
class Answer:
    status: int
    data: dict | None  # the JSON object answered, None if the body was not one
    tries: int = 1  # a "busy" answer is the last of this many

    @property
    def tried(self) -> str:
        return f" (tried {self.tries} times)" if self.tries > 1 else ""

    @property
    def error(self) -> dict:
        error = (self.data or {}).get("error")
        return error if isinstance(error, dict) else {}

    @property
    def details(self) -> dict:
        details = self.error.get("details")
        return details if isinstance(details, dict) else {}

    @property
    def reason(self) -> str | None:
        """The bank's reason code of a refusal (details.reason), else the error's status."""
        return self.details.get("reason") or self.error.get("status")


def busy_wait(answer: Answer, attempt: int) -> float | None:
    """Seconds to wait before trying again if ``answer`` says "busy" (HTTP 429 or
    RESOURCE_EXHAUSTED, without a reason or with one of BUSY_REASONS), else None."""
    if attempt >= BUSY_RETRIES:
        return None
    if answer.status != 429 and answer.error.get("status") != "RESOURCE_EXHAUSTED":
        return None
    reason = answer.details.get("reason")
    if reason is not None and reason not in BUSY_REASONS:
        return None  # e.g. registry_exhausted: trying again does not help
    retry_after = answer.details.get("retryAfter")
    if isinstance(retry_after, int | float) and not isinstance(retry_after, bool) and retry_after >= 0:
        return None if retry_after > BUSY_MAX_WAIT else max(float(retry_after), 0.2) + _rnd.uniform(0, 0.2)
    return min(8.0, 0.5 * 2**attempt) * _rnd.uniform(1.0, 1.25)


def closed_unanswered(exc: BaseException) -> bool:
    """Whether the server closed the connection without a word of answer: the emulators
    (Node's HTTP server) close a kept-alive connection after 5 s idle, and a POST sent on it
    at that moment meets the close (seen in a chaos run: a load batch's first sign-up, 5 s
    after the batch before). In that race the server read nothing, so the POST is sent
    again, once (a server that died mid-request also answers nothing: the second POST then
    finds nothing listening, or the first one done, which sign-up and the callables refuse
    to repeat). A refused connection (nothing listening) is not this."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError):
            return False
        if isinstance(cause, RemoteDisconnected | ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
            return True
        cause = next(
            (c for c in (*cause.args, cause.__cause__, cause.__context__) if isinstance(c, BaseException)), None
        )
    return False


class Http:
    """POSTs of JSON to one part of the stack (``what`` at ``host``) with ``timeout``."""

    def __init__(self, what: str, host: str, timeout: float, session: requests.Session | None = None) -> None:
        self.what, self.host, self.timeout = what, host, timeout
        self.session = session or requests.Session()

    def post(self, url: str, body: Any, headers: dict | None = None) -> Answer:
        """The answer, after trying a "busy" one again (bounded)."""
        for attempt in itertools.count():
            answer = self.send(url, body, headers)
            wait = busy_wait(answer, attempt)
            if wait is None:
                return dataclasses.replace(answer, tries=attempt + 1)
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def send(self, url: str, body: Any, headers: dict | None = None, *, timeout: float | None = None) -> Answer:
        """One POST: the answer as it came, whatever it says. A POST on a kept-alive
        connection the server closed meanwhile (`closed_unanswered`) is sent once more, on
        a new connection."""
        timeout = timeout or self.timeout
        with talking_to(self.what, self.host, timeout=timeout):
            try:
                resp = self.session.post(url, json=body, headers=headers or {}, timeout=timeout)
            except requests.ConnectionError as exc:
                if not closed_unanswered(exc):
                    raise
                resp = self.session.post(url, json=body, headers=headers or {}, timeout=timeout)
        try:
            data = resp.json()
        except ValueError:
            data = None
        return Answer(resp.status_code, data if isinstance(data, dict) else None)

    def failed(self, answer: Answer, name: str) -> StackUnreachable:
        """An answer that is the server's failure (5xx), not the bank's refusal."""
        message = answer.error.get("message")
        return StackUnreachable(
            self.what,
            self.host,
            f"answered HTTP {answer.status} to {name}" + (f": {message}" if message else "") + answer.tried,
        )
