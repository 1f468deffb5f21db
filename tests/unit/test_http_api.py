"""The partner API server answers malformed requests with a 4xx, never a dropped connection
or a 5xx, before any handler (or signature check) runs; and it counts every answer by route
and status (fjb_card_api_requests_total), the ones no handler decided included."""

from __future__ import annotations

import asyncio
import json

import pytest
from prometheus_client import REGISTRY

from fjordbank.runtime import http
from fjordbank.runtime.http import JsonApiServer


async def _exchange(raw: bytes) -> bytes:
    calls = []

    async def handler(headers, body):
        calls.append(body)
        return 200, {"ok": True}

    server = JsonApiServer("127.0.0.1", 0, {"/v1/x": handler})
    await server.start()
    port = server._server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        return answer
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"POST /v1/x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", b"200"),
        (b"POST /v1/x HTTP/1.1\r\nContent-Length: \xc2\xb2\r\n\r\n{}", b"400"),  # a superscript two
        (b"POST /v1/x HTTP/1.1\r\n\r\n{}", b"400"),
        (b"POST /v1/x HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", b"400"),
        (b"POST /v1/x HTTP/1.1\r\nContent-Length: 70000\r\n\r\n", b"413"),
        (b"POST /v1/x HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", b"431"),
        (b"POST /v1/x HTTP/1.1\r\n" + b"X: y\r\n" * 60 + b"Content-Length: 2\r\n\r\n{}", b"431"),
        (
            b"POST /v1/x HTTP/1.1\r\n" + b"X: " + b"a" * 1000 + b"\r\n" * 1 + (b"Y: " + b"b" * 1000 + b"\r\n") * 20,
            b"431",
        ),
        (b"GET /v1/x HTTP/1.1\r\n\r\n", b"404"),
        (b"POST /v1/other HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", b"404"),
    ],
    ids=[
        "ok",
        "unicode-length",
        "no-length",
        "huge-length",
        "too-large",
        "long-header",
        "many-headers",
        "headers-over-16k",
        "get",
        "path",
    ],
)
async def test_malformed_requests_get_a_4xx(raw, status):
    answer = await _exchange(raw)
    assert answer.split(b" ", 2)[1] == status, answer[:200]


async def _connected(server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = server._server.sockets[0].getsockname()[1]
    return await asyncio.open_connection("127.0.0.1", port)


async def test_a_head_trickled_slower_than_its_time_gets_408(monkeypatch):
    """A client that sends a header line every few seconds held the connection for minutes
    (the timeout was per line): the whole head has HEAD_SECONDS."""
    monkeypatch.setattr(http, "HEAD_SECONDS", 0.5)
    server = JsonApiServer("127.0.0.1", 0, {"/v1/x": _ok})
    await server.start()
    try:
        reader, writer = await _connected(server)
        writer.write(b"POST /v1/x HTTP/1.1\r\n")
        for _ in range(3):
            writer.write(b"X: y\r\n")
            await writer.drain()
            await asyncio.sleep(0.3)
        answer = await asyncio.wait_for(reader.read(), timeout=5)
        writer.close()
    finally:
        await server.stop()
    assert answer.split(b" ", 2)[1] == b"408"


async def test_past_its_connections_a_server_answers_503_with_retry_after(monkeypatch):
    monkeypatch.setattr(http, "MAX_CONNECTIONS", 1)
    server = JsonApiServer("127.0.0.1", 0, {"/v1/x": _ok})
    await server.start()
    try:
        _idle_reader, idle = await _connected(server)  # holds the one place, sends nothing
        await asyncio.sleep(0.1)
        reader, writer = await _connected(server)
        writer.write(b"POST /v1/x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        answer = await asyncio.wait_for(reader.read(), timeout=5)
        writer.close()
        idle.close()
    finally:
        await server.stop()
    assert answer.split(b" ", 2)[1] == b"503" and b"Retry-After: 1" in answer


async def test_a_request_in_flight_when_the_server_stops_is_answered():
    """The service's stop (every rollout) let a decision already committed go unanswered."""
    started, answered = asyncio.Event(), []

    async def slow(headers, body):
        started.set()
        await asyncio.sleep(0.3)
        answered.append(True)
        return 200, {"decided": True}

    server = JsonApiServer("127.0.0.1", 0, {"/v1/x": slow})
    await server.start()
    reader, writer = await _connected(server)
    writer.write(b"POST /v1/x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
    await writer.drain()
    await started.wait()
    await server.stop()
    assert answered  # stop() waited for it (after it, the service's loop cancels what is left)
    answer = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    assert answer.split(b" ", 2)[1] == b"200" and answer.endswith(b'{"decided":true}')


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /healthz HTTP/1.1\r\n\r\n", b"200"),
        (b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", b"431"),
        (b"GET /healthz HTTP/1.1\r\n" + b"X: y\r\n" * 60 + b"\r\n", b"431"),
    ],
    ids=["ok", "long-header", "many-headers"],
)
async def test_the_probe_server_answers_an_over_long_head_431(raw, status):
    server = http.ProbeServer(0, live=lambda: True, ready=lambda: True)
    server.port = 1  # start() binds only a port that is set: bind an ephemeral one instead
    server._server = await asyncio.start_server(server._handle, "127.0.0.1", 0, limit=http.MAX_HEAD_BYTES)
    try:
        reader, writer = await _connected(server)
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=5)
        writer.close()
    finally:
        await server.stop()
    assert answer.split(b" ", 2)[1] == status, answer[:100]


async def _ok(headers, body):
    return 200, {"ok": True}


async def _told(handler, *, deadlines: dict[str, float], hang_up: bool = False) -> list[tuple[str, int, float]]:
    """What the server tells ``unanswered`` of one request to /v1/x (its why, status and
    the handler's seconds), the caller waiting for the answer or hanging up first."""
    told: list[tuple[str, int, float]] = []

    async def unanswered(exchange, why):
        told.append((why, exchange.status, exchange.seconds))
        assert exchange.path == "/v1/x" and exchange.body == b"{}"

    server = JsonApiServer("127.0.0.1", 0, {"/v1/x": handler}, unanswered=unanswered, deadlines=deadlines)
    await server.start()
    reader, writer = await _connected(server)
    writer.write(b"POST /v1/x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
    await writer.drain()
    if hang_up:
        writer.transport.abort()  # a reset, as a processor giving up at its timeout
    else:
        await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
    await server.stop()
    return told


async def test_an_answer_decided_after_the_routes_deadline_is_told_as_late():
    async def slow(headers, body):
        await asyncio.sleep(0.3)
        return 200, {"approved": True}

    (told,) = await _told(slow, deadlines={"/v1/x": 0.1})
    assert told[0] == "late" and told[1] == 200 and told[2] >= 0.3
    assert await _told(slow, deadlines={"/v1/x": 5}) == []  # in time and written: nothing
    assert await _told(slow, deadlines={}) == []


async def test_an_answer_that_could_not_be_written_is_told():
    async def big_and_slow(headers, body):
        await asyncio.sleep(0.3)  # the caller has hung up meanwhile
        return 200, {"approved": True, "padding": "x" * 8_000_000}

    told = await _told(big_and_slow, deadlines={}, hang_up=True)
    assert [(why, status) for why, status, _s in told] == [("not_written", 200)]


async def test_stop_waits_for_the_unanswered_hook_as_for_an_answer():
    """The hook's work (a card approval's reversal) is part of the request: a rollout's stop
    must not cut it off, so the connection counts until the hook is through."""
    done: list[str] = []

    async def approve(headers, body):
        await asyncio.sleep(0.1)
        return 200, {"approved": True}

    async def unanswered(exchange, why):
        await asyncio.sleep(0.3)
        done.append(why)

    server = JsonApiServer("127.0.0.1", 0, {"/v1/x": approve}, unanswered=unanswered, deadlines={"/v1/x": 0.01})
    await server.start()
    reader, writer = await _connected(server)
    writer.write(b"POST /v1/x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
    await writer.drain()
    await asyncio.wait_for(reader.read(), timeout=10)  # answered, late: the hook now runs
    writer.close()
    await server.stop()
    assert done == ["late"]


async def _ask(server, raw: bytes) -> bytes:
    """One request to ``server`` and its whole answer (the writer is held until then:
    dropped, it closes the connection)."""
    reader, writer = await _connected(server)
    writer.write(raw)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    return answer


async def test_a_partner_api_is_served_on_the_probes_port_when_it_has_none_of_its_own():
    """Cloud Run and Knative give a container one port: the card processor's API is served
    beside /healthz, /readyz and /metrics (found in review, 2026-12-06: it was served on a
    second port, bound to 127.0.0.1, that no deploy exposed). Stopped, it refuses new
    requests (503) while the probes still answer."""
    api = JsonApiServer("127.0.0.1", None, {"/v1/x": _ok})
    await api.start()
    assert api._server is None  # listens on nothing itself
    probes = http.ProbeServer(0, live=lambda: True, ready=lambda: True, api=api)
    probes._server = await asyncio.start_server(probes._handle, "127.0.0.1", 0, limit=http.MAX_HEAD_BYTES)

    async def ask(raw: bytes) -> bytes:
        return await _ask(probes, raw)

    try:
        assert (await ask(b"GET /healthz HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200 OK")
        answer = await ask(b"POST /v1/x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b'{"ok":true}')
        assert (await ask(b"POST /v1/other HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")).startswith(b"HTTP/1.1 404")
        await api.stop()
        assert (await ask(b"POST /v1/x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")).startswith(b"HTTP/1.1 503")
        assert (await ask(b"GET /readyz HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200 OK")
    finally:
        await probes.stop()


async def test_on_the_shared_port_the_api_waits_for_readiness_and_never_starves_the_probes(monkeypatch):
    """The API's requests in flight filled the probes' pool (/healthz reset under card load:
    liveness restarts the pod), and a request before the service was ready reached handlers
    with nothing to work with, a 500 (found in review of the shared port)."""
    monkeypatch.setattr(http, "MAX_CONNECTIONS", 2)
    release = asyncio.Event()

    async def slow(headers, body):
        await release.wait()
        return 200, {"ok": True}

    ready = {"now": False}
    api = JsonApiServer("127.0.0.1", None, {"/v1/x": slow})
    probes = http.ProbeServer(0, live=lambda: True, ready=lambda: ready["now"], api=api)
    probes._server = await asyncio.start_server(probes._handle, "127.0.0.1", 0, limit=http.MAX_HEAD_BYTES)
    post = b"POST /v1/x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"

    async def send(raw: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await _connected(probes)
        writer.write(raw)
        await writer.drain()
        return reader, writer

    async def answer(raw: bytes) -> bytes:
        return await _ask(probes, raw)

    try:
        early = await answer(post)
        assert early.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in early
        ready["now"] = True
        in_flight = [await send(post) for _ in range(2)]  # the API's whole pool, held
        await asyncio.sleep(0.1)
        for _ in range(3):  # the probes still answer
            health = await answer(b"GET /healthz HTTP/1.1\r\n\r\n")
            assert health.startswith(b"HTTP/1.1 200 OK"), health
        over = await answer(post)
        assert over.startswith(b"HTTP/1.1 503") and b"Retry-After" in over  # the API's own refusal
        release.set()
        for reader, _writer in in_flight:
            assert (await asyncio.wait_for(reader.read(), timeout=5)).startswith(b"HTTP/1.1 200 OK")
    finally:
        release.set()
        await api.stop()
        await probes.stop()


# ---- fjb_card_api_requests_total ------------------------------------------------------------
def _answered(path: str, status: str) -> float:
    """How many answers the API counted under ``path`` and ``status`` (the counter is the
    process's: tests compare before and after)."""
    return REGISTRY.get_sample_value("fjb_card_api_requests_total", {"path": path, "status": status}) or 0.0


async def test_every_answer_is_counted_by_route_and_status_failures_included():
    """Only decisions were counted (fjb_card_decisions_total): a request the API refused or
    failed on counted nowhere (found in review). Paths that are no route are counted as
    "other", so a caller cannot make a series per path it sends."""

    async def failing(headers, body):
        raise RuntimeError("the vault is away")

    async def refusing(headers, body):
        return 401, {"error": "bad_signature"}

    server = JsonApiServer("127.0.0.1", 0, {"/v1/x": _ok, "/v1/fail": failing, "/v1/signed": refusing})
    await server.start()
    cases = [
        (b"POST /v1/x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", "/v1/x", "200"),
        (b"POST /v1/x?ref=42 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", "/v1/x", "200"),
        (b"POST /v1/x HTTP/1.1\r\nContent-Length: 70000\r\n\r\n", "/v1/x", "413"),
        (b"POST /v1/fail HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", "/v1/fail", "500"),
        (b"POST /v1/signed HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", "/v1/signed", "401"),
        (b"POST /v1/x/4111111111111111 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", "other", "404"),
        (b"GET /v1/x HTTP/1.1\r\n\r\n", "other", "404"),
    ]
    expected: dict[tuple[str, str], float] = {}
    for _raw, path, status in cases:
        expected[(path, status)] = expected.get((path, status), _answered(path, status)) + 1
    try:
        for raw, _path, status in cases:
            assert (await _ask(server, raw)).split(b" ", 2)[1] == status.encode()
    finally:
        await server.stop()
    assert {key: _answered(*key) for key in expected} == expected
    assert (
        REGISTRY.get_sample_value("fjb_card_api_requests_total", {"path": "/v1/x/4111111111111111", "status": "404"})
        is None
    )


async def test_requests_turned_away_are_counted_under_their_route():
    """A 503 before the service is ready, after the API stopped, or with every connection
    taken is an answer the processor got: on the probes' port, counted under its route."""
    api = JsonApiServer("127.0.0.1", None, {"/v1/x": _ok})
    ready = {"now": False}
    probes = http.ProbeServer(0, live=lambda: True, ready=lambda: ready["now"], api=api)
    probes._server = await asyncio.start_server(probes._handle, "127.0.0.1", 0, limit=http.MAX_HEAD_BYTES)
    post = b"POST /v1/x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
    before = _answered("/v1/x", "503"), _answered("other", "503"), _answered("/v1/x", "200")
    try:
        assert (await _ask(probes, post)).startswith(b"HTTP/1.1 503")  # not ready yet
        assert (await _ask(probes, b"POST /nowhere HTTP/1.1\r\nContent-Length: 0\r\n\r\n")).startswith(b"HTTP/1.1 503")
        ready["now"] = True
        assert (await _ask(probes, post)).startswith(b"HTTP/1.1 200")
        await api.stop()
        assert (await _ask(probes, post)).startswith(b"HTTP/1.1 503")  # stopping: refused
    finally:
        await probes.stop()
    assert (_answered("/v1/x", "503"), _answered("other", "503"), _answered("/v1/x", "200")) == (
        before[0] + 2,
        before[1] + 1,
        before[2] + 1,
    )


# ---- each route's handler is bounded ---------------------------------------------------------


async def _timed(server: JsonApiServer, path: str = "/v1/x") -> tuple[bytes, float]:
    """One request to ``path``: its whole answer, and the seconds it took to come."""
    await server.start()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await _ask(server, f"POST {path} HTTP/1.1\r\nContent-Length: 2\r\n\r\n{{}}".encode())
        return answer, loop.time() - started
    finally:
        await server.stop()


async def test_a_handler_slower_than_its_routes_timeout_is_answered_503_retryable_within_it(monkeypatch):
    """Nothing bounded a handler: a store that did not answer held the card processor's
    request for the store client's own waits (60 to 300 s), far past the processor's 2 s
    (found in review, 2026-12-06). Each route has its timeout, the others HANDLER_SECONDS."""
    # the limits far apart and far below the handler's 30 s, so a loaded machine's timing
    # cannot mistake one for another
    monkeypatch.setattr(http, "HANDLER_SECONDS", 1.5)

    async def stalled(headers, body):
        await asyncio.sleep(30)
        return 200, {"approved": True}

    routes = {"/v1/x": stalled, "/v1/y": stalled}
    answer, seconds = await _timed(JsonApiServer("127.0.0.1", 0, routes, timeouts={"/v1/x": 0.2}), "/v1/x")
    assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"error": "timeout", "retryable": True}
    assert 0.2 <= seconds < 1.5  # the route's, not HANDLER_SECONDS
    answer, seconds = await _timed(JsonApiServer("127.0.0.1", 0, routes, timeouts={"/v1/x": 0.2}), "/v1/y")
    assert answer.startswith(b"HTTP/1.1 503") and 1.5 <= seconds < 15  # HANDLER_SECONDS, not the handler's 30
    answer, _seconds = await _timed(JsonApiServer("127.0.0.1", 0, {"/v1/x": _ok}, timeouts={"/v1/x": 0.2}))
    assert answer.startswith(b"HTTP/1.1 200")


async def test_the_answer_at_the_timeout_does_not_wait_for_the_handler_to_stop_and_the_hook_does():
    """A transaction cancelled waits for its rollback: the 503 goes at the timeout, and the
    `unanswered` hook (the card service's release of what the handler decided) is told
    TIMED_OUT once the handler has stopped, its locks free."""
    events: list[str] = []

    async def slow_to_stop(headers, body):
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(3)  # the rollback of a store that does not answer
            events.append("handler stopped")
        return 200, {}

    async def unanswered(exchange, why):
        events.append(f"told {why} {exchange.status} {exchange.body.decode()}")

    server = JsonApiServer("127.0.0.1", 0, {"/v1/x": slow_to_stop}, unanswered=unanswered, timeouts={"/v1/x": 0.2})
    answer, seconds = await _timed(server)
    assert answer.startswith(b"HTTP/1.1 503") and seconds < 3  # before the handler stopped
    assert events == ["handler stopped", f"told {http.TIMED_OUT} 503 {{}}"]  # stop() waited for both


async def test_a_handler_that_answers_all_the_same_after_its_timeout_is_told_timed_out_with_its_answer():
    """One that does not stop when cancelled and answers: the caller had the 503, so the
    answer it made is one the caller never had. Told TIMED_OUT, whatever it answered (it was
    "late": the card API releases a late answer only when it is an approval, and one cut off
    mid-commit that answered 503 on a second try kept its first try's approval; found in
    review, 2026-12-06)."""
    told: list[tuple[str, int, dict]] = []

    async def stubborn(headers, body):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass
        return 200, {"approved": True}

    async def unanswered(exchange, why):
        told.append((why, exchange.status, exchange.answer))

    server = JsonApiServer("127.0.0.1", 0, {"/v1/x": stubborn}, unanswered=unanswered, timeouts={"/v1/x": 0.2})
    answer, _seconds = await _timed(server)
    assert answer.startswith(b"HTTP/1.1 503")
    assert told == [(http.TIMED_OUT, 200, {"approved": True})]


async def test_a_timed_out_request_frees_its_slot_at_its_answer_not_after_its_hook(monkeypatch):
    """The platform (containerConcurrency == MAX_CONNECTIONS) counts a request done once it
    is answered: a 503 at the timeout kept its slot until the hook (the reversal, several
    store calls) was through, and the platform's next request was turned away "busy", a
    decline to the processor (found in review, 2026-12-06)."""
    monkeypatch.setattr(http, "MAX_CONNECTIONS", 2)  # stands for the platform's concurrency
    hooks: list[str] = []

    async def stalled(headers, body):
        await asyncio.sleep(30)
        return 200, {"approved": True}

    async def unanswered(exchange, why):
        await asyncio.sleep(1.0)  # the reversal's transaction on a slow store
        hooks.append(why)

    server = JsonApiServer("127.0.0.1", 0, {"/v1/x": stalled}, unanswered=unanswered, timeouts={"/v1/x": 0.2})
    await server.start()
    raw = b"POST /v1/x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
    first = await asyncio.gather(_ask(server, raw), _ask(server, raw))  # the platform's 2 in flight
    assert all(b'"timeout"' in answer for answer in first)
    third = await _ask(server, raw)  # the platform: none in flight now, so the next
    assert b'"timeout"' in third and b'"busy"' not in third
    await server.stop()
    assert hooks == [http.TIMED_OUT] * 3  # stop() waited for the hooks


async def test_the_unanswered_hooks_run_at_most_max_hooks_at_once(monkeypatch):
    monkeypatch.setattr(http, "MAX_HOOKS", 1)
    running: list[int] = []
    at_once = 0

    async def stalled(headers, body):
        await asyncio.sleep(30)
        return 200, {}

    async def unanswered(exchange, why):
        nonlocal at_once
        running.append(1)
        at_once = max(at_once, len(running))
        await asyncio.sleep(0.2)
        running.pop()

    server = JsonApiServer("127.0.0.1", 0, {"/v1/x": stalled}, unanswered=unanswered, timeouts={"/v1/x": 0.1})
    await server.start()
    raw = b"POST /v1/x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
    await asyncio.gather(*(_ask(server, raw) for _ in range(3)))
    await server.stop()
    assert at_once == 1 and not running


async def test_hooks_the_stop_cuts_short_are_named(monkeypatch):
    """A stop past STOP_GRACE_SECONDS cut short the hooks still waiting or at work (the
    card service's releases of holds), and nothing said which (found in review,
    2026-12-06): each is told to `not_told` as it is cancelled."""
    monkeypatch.setattr(http, "MAX_HOOKS", 1)
    monkeypatch.setattr(http, "STOP_GRACE_SECONDS", 0.3)
    done: list[str] = []
    not_told: list[str] = []

    async def stalled(headers, body):
        await asyncio.sleep(30)
        return 200, {}

    async def unanswered(exchange, why):
        await asyncio.sleep(5)
        done.append(why)

    server = JsonApiServer(
        "127.0.0.1",
        0,
        {"/v1/x": stalled},
        unanswered=unanswered,
        timeouts={"/v1/x": 0.1},
        not_told=lambda exchange, why: not_told.append(why),
    )
    await server.start()
    raw = b"POST /v1/x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
    await asyncio.gather(*(_ask(server, raw) for _ in range(3)))
    await server.stop()
    left = [t for t in server._hooks.tasks if not t.done()]
    for task in left:  # what the event loop's end does
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)
    assert done == [] and not_told == [http.TIMED_OUT] * 3
