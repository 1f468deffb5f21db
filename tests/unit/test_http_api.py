"""The partner API server answers malformed requests with a 4xx, never a dropped connection
or a 5xx, before any handler (or signature check) runs."""

from __future__ import annotations

import asyncio

import pytest

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
        (b"POST /v1/x HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", b"400"),
        (b"POST /v1/x HTTP/1.1\r\n" + b"X: y\r\n" * 60 + b"Content-Length: 2\r\n\r\n{}", b"400"),
        (b"GET /v1/x HTTP/1.1\r\n\r\n", b"404"),
        (b"POST /v1/other HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", b"404"),
    ],
    ids=["ok", "unicode-length", "no-length", "huge-length", "too-large", "long-header", "many-headers", "get", "path"],
)
async def test_malformed_requests_get_a_4xx(raw, status):
    answer = await _exchange(raw)
    assert answer.split(b" ", 2)[1] == status, answer[:200]
