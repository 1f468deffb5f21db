"""Create or update the streams, consumers and KV buckets declared in `fjordbank.topology`.

Run with the admin identity only: services have no permission to touch stream config.
`ensure_topology` is the local stack's (devstack); production runs
`python -m fjordbank.adapters.jetstream_setup` (with the streams' budgets, and `--check`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from fjordbank import topology
from fjordbank.topology import DURABLES, STREAMS, ConsumerSpec, StreamSpec

log = logging.getLogger(__name__)


def stream_config(spec: StreamSpec, *, replicas: int | None = None, max_bytes: int | None = None) -> StreamConfig:
    """A topology stream. ``max_bytes`` is its file-store budget on every server holding a
    replica: production's come from fjordbank.adapters.jetstream_setup.STREAM_BUDGETS; the
    local stack (devstack, through ensure_topology) sets none, its store being the limit.

    A stream at its budget refuses new messages (DiscardPolicy.NEW) rather than dropping
    its oldest (OLD). Dropping would silently delete messages a consumer that fell behind
    has not read yet: a payment step, a card capture, an onboarding decision or a dead
    letter gone without a trace. Refused, the publisher keeps the message and tries again
    (the edge's outbox and received requests, a service's step redelivered by NATS, a
    dead letter left on its stream), and the refusal is loud: publish errors and the
    payment alerts (FjbPaymentNotFinal, FjbOutboxBacklog). max_age still removes what is
    older than the stream keeps, whatever the discard policy."""
    return StreamConfig(
        name=spec.name,
        description=spec.description or None,
        subjects=list(spec.subjects),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=replicas or spec.replicas,
        max_age=float(spec.max_age_seconds),
        max_bytes=max_bytes,
        duplicate_window=float(spec.duplicate_window_seconds),
        discard=DiscardPolicy.NEW,
        deny_delete=True,
        deny_purge=True,
    )


def consumer_config(spec: ConsumerSpec) -> ConsumerConfig:
    subjects = list(spec.filter_subjects)
    return ConsumerConfig(
        durable_name=spec.durable,
        description=spec.description or None,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=float(spec.ack_wait_seconds),
        # for ever: the runtime is what gives up (fjordbank/runtime/consumer.py,
        # UNSETTLED_DELIVERIES_FACTOR); spec.max_deliver is its limit
        max_deliver=-1,
        max_ack_pending=spec.max_ack_pending,
        filter_subject=subjects[0] if len(subjects) == 1 else None,
        filter_subjects=subjects if len(subjects) > 1 else None,
    )


async def ensure_topology(js: JetStreamContext, *, replicas: int | None = None, timeout: float = 90.0) -> None:
    """Idempotent: creates what is missing and brings existing config in line.

    Right after a cluster (re)starts, each stream elects its own leader after the meta
    leader is up; until then the JetStream API times out. Retry until ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await _ensure_once(js, replicas)
            return
        except (TimeoutError, nats.errors.TimeoutError, nats.errors.NoRespondersError, APIError) as exc:
            if not _not_ready(exc) or loop.time() >= deadline:
                raise
            log.info("JetStream not ready yet; retrying")
            await asyncio.sleep(1)


# "no suitable peers for placement, peer offline": the meta leader is up but has not yet
# heard from enough servers to place a replicated stream. Seen when the cluster was started
# right after the previous one was stopped (`make down` then `make up`); gone in seconds.
_PLACEMENT_NOT_READY = 10005


def _not_ready(exc: Exception) -> bool:
    """A JetStream API error that a cluster still forming answers with."""
    if not isinstance(exc, APIError):
        return True  # timeouts and no responders
    return isinstance(exc, ServiceUnavailableError) or exc.err_code == _PLACEMENT_NOT_READY


async def _ensure_once(js: JetStreamContext, replicas: int | None) -> None:
    for spec in STREAMS:
        config = stream_config(spec, replicas=replicas)
        try:
            await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(config)
            log.info("stream created", extra={"stream": spec.name})
        else:
            await js.update_stream(config)
    for durable in DURABLES:
        await js.add_consumer(durable.stream, consumer_config(durable))
        log.info("consumer ensured", extra={"consumer": durable.durable})
    await _remove_undeclared(js)
    for bucket in bucket_configs(replicas):
        await ensure_bucket(js, bucket)


def bucket_configs(replicas: int | None = None) -> tuple[KeyValueConfig, ...]:
    """The topology's KV buckets."""
    return owners_config(replicas), replayed_config(replicas), in_hand_config(replicas)


def owners_config(replicas: int | None = None) -> KeyValueConfig:
    """The partition leases (fjordbank/runtime/ownership.py): in memory (a lease is worth
    nothing after a whole cluster restart), replicated, every entry gone LEASE_SECONDS
    after its last write."""
    return KeyValueConfig(
        bucket=topology.OWNERS_BUCKET,
        description="Partition leases of the consumer services' instances.",
        history=1,
        ttl=topology.LEASE_SECONDS,
        storage=StorageType.MEMORY,
        replicas=replicas or 3,
        direct=True,
    )


def replayed_config(replicas: int | None = None) -> KeyValueConfig:
    """The dead letters replayed (fjordbank/runtime/dead_letters.py): on file, replicated,
    each mark kept as long as the DLQ stream keeps its letter."""
    dlq = next(spec for spec in STREAMS if spec.name == topology.STREAM_DLQ)
    return KeyValueConfig(
        bucket=topology.REPLAYED_BUCKET,
        description="Dead letters published again: when, on which subject, how often.",
        history=1,
        ttl=float(dlq.max_age_seconds),
        storage=StorageType.FILE,
        replicas=replicas or dlq.replicas,
    )


def in_hand_config(replicas: int | None = None) -> KeyValueConfig:
    """The marks of messages handled alone after their process stopped
    (fjordbank/runtime/in_hand.py): on file (they must outlive the process), replicated,
    each gone a day after its last write."""
    return KeyValueConfig(
        bucket=topology.IN_HAND_BUCKET,
        description="Messages handled alone after their process stopped: times without an outcome.",
        history=1,
        ttl=float(topology.IN_HAND_SECONDS),
        storage=StorageType.FILE,
        replicas=replicas or 3,
        direct=True,
    )


def kv_stream(bucket: str) -> str:
    """The stream that holds a KV bucket (nats-py's and the server's naming)."""
    return f"KV_{bucket}"


# Every service writes its own keys into the same buckets (topology.Identity.permissions:
# $KV.<bucket>.<service>.>), each bucket one stream. nats-py's create_key_value makes that
# stream with allow_rollup_hdrs, so any one service could publish on one of its own keys
# with the header `Nats-Rollup: all` and purge the whole stream: every service's partition
# leases or in-hand marks gone at once. Only KeyValue.purge sends a roll-up (of its own
# key), and nothing here purges, so the buckets' streams refuse every roll-up; put, create,
# update, delete, get and watch do not need them (nats-py binds a bucket by its stream's
# max_msgs_per_subject alone).
def bucket_stream_config(kv: KeyValueConfig) -> StreamConfig:
    """A new bucket's stream: what nats-py's create_key_value makes of ``kv``, without roll-ups."""
    return StreamConfig(
        name=kv_stream(kv.bucket),
        description=kv.description,
        subjects=[f"$KV.{kv.bucket}.>"],
        allow_direct=kv.direct,
        allow_rollup_hdrs=False,
        # as nats-py makes it (KeyValue.create with a per-key TTL): the server never lets it be
        # turned off again, so a bucket it made has it for good
        allow_msg_ttl=True,
        deny_delete=True,
        discard=DiscardPolicy.NEW,
        duplicate_window=_bucket_duplicate_window(kv),
        max_age=kv.ttl,
        max_bytes=kv.max_bytes,
        max_consumers=-1,
        max_msg_size=kv.max_value_size,
        max_msgs=-1,
        max_msgs_per_subject=kv.history,
        num_replicas=kv.replicas,
        storage=kv.storage,
        republish=kv.republish,
    )


def bucket_stream_update(current: StreamConfig, kv: KeyValueConfig) -> StreamConfig:
    """An existing bucket's stream brought in line in place: what ``kv`` sets, and no roll-ups
    (a bucket nats-py made allows them; the server lets that be turned off). Everything else
    stays as the server has it (allow_msg_ttl cannot be changed back, storage not at all)."""
    return dataclasses.replace(
        current,
        description=kv.description,
        max_msgs_per_subject=kv.history,
        max_age=kv.ttl,
        duplicate_window=_bucket_duplicate_window(kv),
        num_replicas=kv.replicas,
        allow_direct=kv.direct,
        allow_rollup_hdrs=False,
    )


def _bucket_duplicate_window(kv: KeyValueConfig) -> float:
    """nats-py's: two minutes, or the bucket's TTL when shorter (the server wants it <= max_age)."""
    return min(120.0, kv.ttl) if kv.ttl else 120.0


async def ensure_bucket(js: JetStreamContext, kv: KeyValueConfig) -> None:
    """Create the bucket's stream, or bring an existing one in line (never create_key_value:
    its stream allows roll-ups, and on a stream made here it fails as a different config)."""
    try:
        info = await js.stream_info(kv_stream(kv.bucket))
    except NotFoundError:
        await js.add_stream(bucket_stream_config(kv))
        log.info("bucket created", extra={"bucket": kv.bucket})
    else:
        await js.update_stream(bucket_stream_update(info.config, kv))


async def _remove_undeclared(js: JetStreamContext) -> None:
    """The topology is declarative: a durable on one of its streams that it no longer
    declares (e.g. the unpartitioned ``ledger`` of an older release) is deleted, after
    logging what it still held. Drain the old consumers before deploying such a change."""
    declared = {(spec.stream, spec.durable) for spec in DURABLES}
    for stream in STREAMS:
        for info in await js.consumers_info(stream.name):
            if (stream.name, info.name) in declared:
                continue
            log.warning(
                "undeclared consumer deleted",
                extra={"stream": stream.name, "consumer": info.name, "pending": info.num_pending},
            )
            await js.delete_consumer(stream.name, info.name)
