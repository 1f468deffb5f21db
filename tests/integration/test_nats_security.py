"""The NATS cluster refuses what it must: old TLS, missing certificates, wrong secrets,
and any publish or subscribe outside an identity's permissions."""

from __future__ import annotations

import asyncio
import json
import ssl

import nats
import nats.errors
import nats.js.errors
import pytest

from fjordbank import topology
from tests.support import natsclients

pytestmark = [pytest.mark.stack, pytest.mark.asyncio]


async def _refused(stack, identity, match: str, **kw):
    with pytest.raises((nats.errors.Error, ssl.SSLError, ConnectionError), match=match):
        nc = await natsclients.connect(stack, identity, max_reconnect_attempts=0, **kw)
        await nc.close()


async def test_tls_1_2_client_is_refused(stack):
    ctx = natsclients.tls(stack, "edge", max_version=ssl.TLSVersion.TLSv1_2)
    await _refused(stack, "edge", "PROTOCOL_VERSION", tls_ctx=ctx)


async def test_client_that_waits_for_the_servers_info_is_refused(stack):
    """handshake_first: the server says nothing before the client's TLS handshake, so a client
    that waits for an INFO in clear text (nats-py without tls_handshake_first) gets none, and
    the server drops it at its TLS timeout: no CONNECT, no password, ever goes out in clear."""
    with pytest.raises((nats.errors.Error, TimeoutError, ConnectionError)):
        nc = await natsclients.connect(stack, "edge", max_reconnect_attempts=0, tls_handshake_first=False)
        await nc.close()


async def test_client_without_certificate_is_refused(stack):
    ctx = natsclients.tls(stack, None, min_version=ssl.TLSVersion.TLSv1_3)
    # TLS 1.3 checks the client certificate after the client's handshake is done: the
    # server's alert arrives as that alert, or as the connection reset or closed under us.
    await _refused(stack, "edge", "CERTIFICATE_REQUIRED|Connection lost|Broken pipe|reset by peer", tls_ctx=ctx)


async def test_wrong_secret_is_refused(stack):
    await _refused(stack, "edge", "Authorization Violation", password="not-the-secret")


async def test_another_identitys_secret_is_refused(stack):
    await _refused(stack, "edge", "Authorization Violation", password=natsclients.secret(stack, "ledger"))


async def test_valid_identity_connects_with_a_tls_1_3_only_client(stack):
    ctx = natsclients.tls(stack, "edge", min_version=ssl.TLSVersion.TLSv1_3, max_version=ssl.TLSVersion.TLSv1_3)
    nc = await natsclients.connect(stack, "edge", tls_ctx=ctx)
    try:
        assert nc.is_connected
    finally:
        await nc.close()


async def _publish_denied(stack, identity: str, subject: str) -> bool:
    """True if the server reports a permissions violation for a publish."""
    errors: list = []
    nc = await natsclients.connect(stack, identity, errors=errors)
    try:
        await nc.publish(subject, b"{}")
        await nc.flush(timeout=2)
        await asyncio.sleep(0.3)
    finally:
        await nc.close()
    return any("permissions violation" in str(e).lower() for e in errors)


async def _subscribe_denied(stack, identity: str, subject: str) -> bool:
    errors: list = []
    nc = await natsclients.connect(stack, identity, errors=errors)
    try:
        await nc.subscribe(subject)
        await nc.flush(timeout=2)
        await asyncio.sleep(0.3)
    finally:
        await nc.close()
    return any("permissions violation" in str(e).lower() for e in errors)


# identity -> subjects it must NOT publish to (payment subjects end in a partition: .3)
PUBLISH_DENIED = {
    "edge": [
        "payments.completed.3",
        "dlq.ledger",
        "$JS.API.STREAM.DELETE.PAYMENTS",
        "$JS.API.STREAM.PURGE.PAYMENTS",
        "$JS.API.CONSUMER.MSG.NEXT.PAYMENTS.ledger-p0",
    ],
    "ledger": [
        "payments.requested.3",
        "dlq.notifier",
        "$JS.API.STREAM.DELETE.PAYMENTS",
        "$JS.API.STREAM.PURGE.PAYMENTS",
        "$JS.API.CONSUMER.MSG.NEXT.PAYMENTS.notifier-p0",
        "$JS.API.CONSUMER.DELETE.PAYMENTS.ledger-p0",
    ],
    "notifier": [
        "payments.requested.3",
        "payments.completed.3",
        "dlq.ledger",
        "$JS.API.STREAM.DELETE.DLQ",
        "$JS.API.CONSUMER.MSG.NEXT.PAYMENTS.ledger-p0",
    ],
}
# identity -> subjects it MAY publish to (its outputs)
PUBLISH_ALLOWED = {
    "edge": ["payments.requested.3", "payments.failed.3"],  # failed: a due payment not covered
    "ledger": ["payments.completed.3", "payments.failed.3", "dlq.ledger"],
    "notifier": ["dlq.notifier"],
}
SUBSCRIBE_DENIED = {
    "edge": ["payments.>", "_INBOX_ledger.>", ">"],
    "ledger": ["payments.requested.3", "_INBOX_edge.>", "$JS.ACK.>"],
    "notifier": ["payments.completed.3", "_INBOX_ledger.>"],
}


@pytest.mark.parametrize(("identity", "subject"), [(i, s) for i, subjects in PUBLISH_DENIED.items() for s in subjects])
async def test_publish_outside_permissions_is_denied(stack, identity, subject):
    assert await _publish_denied(stack, identity, subject)


@pytest.mark.parametrize(("identity", "subject"), [(i, s) for i, subjects in PUBLISH_ALLOWED.items() for s in subjects])
async def test_publish_of_own_outputs_is_allowed(stack, identity, subject):
    # The payload "{}" is not a valid event: the consumer downstream dead-letters it as
    # malformed, which is the behaviour a stray message must get anyway.
    assert not await _publish_denied(stack, identity, subject)


@pytest.mark.parametrize(
    ("identity", "subject"), [(i, s) for i, subjects in SUBSCRIBE_DENIED.items() for s in subjects]
)
async def test_subscribe_outside_permissions_is_denied(stack, identity, subject):
    assert await _subscribe_denied(stack, identity, subject)


async def test_only_admin_may_delete_or_purge_streams(stack):
    for identity in ("edge", "ledger", "notifier"):
        nc = await natsclients.connect(stack, identity)
        try:
            with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError)):
                await nc.request("$JS.API.STREAM.DELETE.PAYMENTS", b"", timeout=1)
        finally:
            await nc.close()
    nc = await natsclients.connect(stack, "admin")
    try:
        info = json.loads((await nc.request("$JS.API.STREAM.INFO.PAYMENTS", b"", timeout=5)).data)
        assert info["config"]["name"] == "PAYMENTS"
        # even the admin cannot purge or delete messages: the money streams deny it
        assert info["config"]["deny_purge"] is True and info["config"]["deny_delete"] is True
    finally:
        await nc.close()


# ---- the whole matrix, on the live cluster ------------------------------------------------
# Who produces each event, written out independently of fjordbank/topology.py.
PRODUCERS = {
    "payments.requested": "edge",
    "payments.approved": "screening",
    "payments.rejected": "screening",
    "payments.reserved": "ledger",
    "payments.completed": "ledger",
    "payments.failed": {"ledger", "edge"},  # edge: a due payment the account could not cover
    "payments.submitted": "clearing",
    "payments.settled": "clearing",
    "payments.returned": "clearing",
    "customers.approved": "edge",
    "customers.review": "edge",
    "customers.rejected": "edge",
    "customers.account_opened": "edge",
    "customers.account_closed": "edge",
    "customers.device_changed": "edge",  # a security notice: nobody else may fake one
    "cards.commands.issue": "edge",
    "cards.commands.expire-holds": "edge",
    "cards.updated": "edge",
    "cards.issued": "cards",
    "cards.authorized": "cards",
    "cards.declined": "cards",
    "cards.captured": "cards",
    "cards.reversed": "cards",
    "cards.expired": "cards",
}
# Which durable consumers each service reads (its inputs).
READERS = {
    "screening": {"screening"},
    "ledger": {"ledger"},
    "clearing": {"clearing"},
    "notifier": {"notifier", "notifier-customers", "notifier-cards"},
    "cards": {"cards"},
    "insights": {"insights-payments", "insights-cards"},
    "edge": set(),
}
STREAM_OF = {
    "screening": "PAYMENTS",
    "ledger": "PAYMENTS",
    "clearing": "PAYMENTS",
    "notifier": "PAYMENTS",
    "notifier-customers": "CUSTOMERS",
    "notifier-cards": "CARDS",
    "cards": "CARDS",
    "insights-payments": "PAYMENTS",
    "insights-cards": "CARDS",
}


def wire(subject: str) -> str:
    """A payment subject as published: with the payer's partition (any one will do)."""
    return f"{subject}.3" if subject.startswith("payments.") else subject


def on_the_server(durable: str) -> str:
    """A payment consumer is one durable per partition: its partition 0's."""
    return f"{durable}-p0" if STREAM_OF[durable] == "PAYMENTS" else durable


async def _denied_publishes(stack, identity: str, subjects: list[str]) -> set[str]:
    """The subjects the server refused this identity to publish to (one connection)."""
    errors: list = []
    nc = await natsclients.connect(stack, identity, errors=errors)
    try:
        for subject in subjects:
            await nc.publish(subject, b"")  # an empty payload: never a valid event or request
        await nc.flush(timeout=5)
        await asyncio.sleep(1.0)
    finally:
        await nc.close()
    text = " ".join(str(e) for e in errors).lower()  # nats-py lowercases the server's message
    return {s for s in subjects if f'"{s.lower()}"' in text}


@pytest.mark.parametrize("identity", sorted(READERS))
async def test_each_identity_publishes_exactly_its_outputs_and_fetches_exactly_its_inputs(stack, identity):
    fetches = {f"$JS.API.CONSUMER.MSG.NEXT.{STREAM_OF[d]}.{on_the_server(d)}": d for d in STREAM_OF}
    subjects = sorted(wire(s) for s in PRODUCERS) + sorted(fetches)
    denied = await _denied_publishes(stack, identity, subjects)
    for subject, producer in PRODUCERS.items():
        producers = producer if isinstance(producer, set) else {producer}
        assert (wire(subject) in denied) is (identity not in producers), (identity, subject)
    for subject, durable in fetches.items():
        assert (subject in denied) is (durable not in READERS[identity]), (identity, subject)


@pytest.mark.parametrize("identity", sorted(READERS))
async def test_no_service_identity_can_delete_or_purge_any_stream(stack, identity):
    subjects = [
        f"$JS.API.STREAM.{op}.{stream}"
        for stream in ("PAYMENTS", "CUSTOMERS", "CARDS", "DLQ")
        for op in ("DELETE", "PURGE", "UPDATE", "MSG.DELETE")
    ]
    assert await _denied_publishes(stack, identity, subjects) == set(subjects)


async def test_no_service_can_roll_up_a_kv_bucket(stack):
    """Each service may write its own keys of the shared buckets; a roll-up on one of them
    (`Nats-Rollup: all`) would purge every service's keys. The buckets' streams refuse any
    roll-up (a `sub` one here: had it been taken, it would have rolled up only its own key)."""
    nc = await natsclients.connect(stack, "admin")
    try:
        for bucket in (topology.OWNERS_BUCKET, topology.IN_HAND_BUCKET, topology.REPLAYED_BUCKET):
            info = json.loads((await nc.request(f"$JS.API.STREAM.INFO.KV_{bucket}", b"", timeout=5)).data)
            assert not info["config"].get("allow_rollup_hdrs"), bucket
    finally:
        await nc.close()
    nc = await natsclients.connect(stack, "ledger")
    try:
        js = nc.jetstream()
        for bucket in (topology.OWNERS_BUCKET, topology.IN_HAND_BUCKET):
            with pytest.raises(nats.js.errors.APIError, match="rollup not permitted"):
                await js.publish(f"$KV.{bucket}.ledger.rollup-probe", b"", headers={"Nats-Rollup": "sub"})
    finally:
        await nc.close()


async def test_every_stream_denies_delete_and_purge_even_to_the_admin(stack):
    nc = await natsclients.connect(stack, "admin")
    try:
        for stream in ("PAYMENTS", "CUSTOMERS", "CARDS", "DLQ"):
            info = json.loads((await nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=5)).data)
            assert info["config"]["deny_purge"] is True and info["config"]["deny_delete"] is True, stream
            assert info["config"]["num_replicas"] == 3, stream
    finally:
        await nc.close()
