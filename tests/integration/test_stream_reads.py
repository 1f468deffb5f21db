"""Reading a bucket to its end on the real cluster (fjordbank/adapters/jetstream_read.py):
a read that begins right after a write has the write, every time, and writes going on
while it reads do not end it early. nats-py's KeyValue.keys() could take a bucket of one
mark for an empty one, so `bankctl dlq list` showed a letter just replayed as waiting
(CI, 2026-12-06; nats.py #842, #995)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from nats.js.api import KeyValueConfig, StorageType

from fjordbank.adapters.jetstream_read import kv_entries
from tests.support import natsclients

pytestmark = [pytest.mark.stack, pytest.mark.asyncio]


async def test_a_bucket_read_right_after_a_write_has_it_and_writes_meanwhile_do_not_end_it(stack):
    nc = await natsclients.connect(stack, "admin")
    js = nc.jetstream()
    name = f"test-reads-{uuid.uuid4().hex[:8]}"
    kv = await js.create_key_value(KeyValueConfig(bucket=name, history=1, storage=StorageType.FILE, replicas=3))
    try:
        for i in range(30):
            await kv.put(str(i), b"%d" % i)
            assert await kv_entries(js, name) == {str(j): b"%d" % j for j in range(i + 1)}, f"after {i + 1} writes"
        await kv.delete("0")
        await kv.put("1", b"again")
        read = await kv_entries(js, name)
        assert "0" not in read and read["1"] == b"again" and len(read) == 29

        written: set[str] = {str(j) for j in range(1, 30)}

        async def write() -> None:
            for j in range(30, 330):
                await kv.put(str(j), b"x")
                written.add(str(j))

        writer = asyncio.create_task(write())
        reads = 0
        while not writer.done():
            before = set(written)
            read = await kv_entries(js, name)
            assert before <= set(read), f"read {reads}: {len(before - set(read))} written before it are missing"
            reads += 1
        await writer
        assert reads >= 2 and set(await kv_entries(js, name)) == written
    finally:
        await js.delete_key_value(name)
        await nc.close()
