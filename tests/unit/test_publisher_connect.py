"""fjordbank.adapters.publisher.SyncPublisher: publishes from many threads at once (the
due-payments job's lanes) share one connection; each made its own before, all but the
last left open (found in review, 2026-12-06)."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

from fjordbank.adapters import publisher as publisher_module
from fjordbank.adapters.publisher import SyncPublisher
from fjordbank.config import load_settings


class FakeJs:
    async def publish(self, *a, **k):
        return SimpleNamespace(stream="PAYMENTS", seq=1, duplicate=False)


class FakeConnection:
    def __init__(self) -> None:
        self.is_closed = False

    def jetstream(self) -> FakeJs:
        return FakeJs()

    async def close(self) -> None:
        self.is_closed = True


def test_publishes_from_many_threads_share_one_connection(monkeypatch) -> None:
    made: list[FakeConnection] = []

    async def connect(settings, *, name, **options):
        await asyncio.sleep(0.05)  # a TLS handshake's time: every thread is waiting by then
        made.append(FakeConnection())
        return made[-1]

    async def publish(js, subject, payload, *, headers, stream, timeout):
        return await js.publish()

    monkeypatch.setattr(publisher_module.nats_conn, "connect", connect)
    monkeypatch.setattr(publisher_module.jetstream_publish, "publish", publish)
    pub = SyncPublisher(load_settings({}).nats, name="test")
    threads = [
        threading.Thread(target=pub.publish_json, args=("payments.requested.1", {"n": i}), kwargs={"msg_id": str(i)})
        for i in range(32)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1
