"""The AsyncAPI 3.0 document of Fjordbank's messaging, from fjordbank.topology and the contracts.

A channel per subject (a payment subject's partition is its ``{partition}`` parameter),
a ``send`` operation per identity and subject it publishes, a ``receive`` operation per
durable consumer and subject it filters, and a message per contract version whose payload
is that version's schema file. JetStream has no place in AsyncAPI, so its streams and the
consumers' settings are extensions: ``x-streams`` and each operation's ``x-jetstream``.
"""

from __future__ import annotations

from typing import Any

from fjordbank import topology
from fjordbank.contracts import catalog
from fjordbank.contracts.schema import describe

DLQ_CHANNEL = "dlq"
HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "Nats-Msg-Id": {
            "type": "string",
            "description": "the JetStream dedupe key: the same step published twice is stored once",
        },
        "traceparent": {"type": "string", "description": "W3C trace context of the step that led to this one"},
    },
}
DEAD_LETTER_HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "Fjb-Reason": {"type": "string", "description": "why the consumer gave up on the message"},
        "Fjb-Original-Subject": {"type": "string"},
        "Fjb-Original-Sequence": {"type": "string"},
        "Fjb-Deliveries": {"type": "string"},
        "Fjb-Original-Time": {
            "type": "string",
            "description": "when the message first entered its stream (ISO 8601, UTC); a replay carries it",
        },
        "traceparent": {"type": "string"},
    },
}


def document() -> dict[str, Any]:
    subjects = _subjects()
    channels = {channel_id(s): _channel(s) for s in subjects}
    channels[DLQ_CHANNEL] = _dlq_channel()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Fjordbank messaging",
            "version": "1.0.0",
            "description": (
                "Every NATS JetStream subject, stream, durable consumer and message of the bank. Generated "
                "from fjordbank/topology.py and the event types by `python -m fjordbank.contracts`; do not edit."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": {**_sends(), **_receives(), **_dead_letters()},
        "components": {
            "messages": {**{e.key: _message(e) for e in catalog.ENTRIES}, "dead_letter": _dead_letter()},
            "schemas": {"headers": HEADERS, "dead_letter_headers": DEAD_LETTER_HEADERS},
        },
        "x-streams": [_stream(s) for s in topology.STREAMS],
    }


def channel_id(subject: str) -> str:
    """``cards.commands.expire-holds`` -> ``cards_commands_expire-holds``."""
    return subject.replace(".", "_")


def _subjects() -> list[str]:
    """Every subject published or consumed (payment subjects without their partition)."""
    published = {s.removesuffix(".*") for ident in topology.IDENTITIES for s in ident.publishes}
    consumed = {s for spec in topology.CONSUMERS for s in spec.filter_subjects}
    return sorted(published | consumed)


def _partitioned(subject: str) -> bool:
    return subject.startswith("payments.")


def _channel(subject: str) -> dict[str, Any]:
    entry = catalog.entry_for(subject)
    channel: dict[str, Any] = {
        "address": f"{subject}.{{partition}}" if _partitioned(subject) else subject,
        "messages": {entry.name: {"$ref": f"#/components/messages/{entry.key}"}},
    }
    if _partitioned(subject):
        channel["parameters"] = {
            "partition": {
                "description": "the partition of the account the step is routed by (topology.partition_of)",
                "enum": [str(n) for n in range(topology.PAYMENT_PARTITIONS)],
            }
        }
    channel["x-stream"] = _stream_of(subject)
    return channel


def _dlq_channel() -> dict[str, Any]:
    return {
        "address": "dlq.{consumer}",
        "description": "Messages a consumer gave up on, unchanged, with the reason in their headers.",
        "messages": {"dead_letter": {"$ref": "#/components/messages/dead_letter"}},
        "parameters": {
            "consumer": {
                "description": "the declared consumer that gave up",
                "enum": [spec.durable for spec in topology.CONSUMERS],
            }
        },
        "x-stream": topology.STREAM_DLQ,
    }


def _stream_of(subject: str) -> str:
    for stream in topology.STREAMS:
        for pattern in stream.subjects:
            if subject == pattern or (pattern.endswith(">") and subject.startswith(pattern[:-1])):
                return stream.name
    raise KeyError(f"no stream takes {subject}")


def _messages_of(channel: str) -> list[dict[str, str]]:
    entry_name = catalog.entry_for(channel).name
    return [{"$ref": f"#/channels/{channel_id(channel)}/messages/{entry_name}"}]


def _sends() -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for ident in topology.IDENTITIES:
        for published in ident.publishes:
            subject = published.removesuffix(".*")
            operations[f"{ident.name}_sends_{channel_id(subject)}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{channel_id(subject)}"},
                "messages": _messages_of(subject),
                "x-identity": ident.name,
            }
    return operations


def _receives() -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for spec in topology.CONSUMERS:
        for subject in spec.filter_subjects:
            operations[f"{spec.durable}_receives_{channel_id(subject)}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel_id(subject)}"},
                "messages": _messages_of(subject),
                "description": spec.description,
                "x-identity": _consumer_identity(spec.durable),
                "x-jetstream": _consumer(spec),
            }
    return operations


def _dead_letters() -> dict[str, Any]:
    return {
        f"{spec.durable}_dead_letters": {
            "action": "send",
            "channel": {"$ref": f"#/channels/{DLQ_CHANNEL}"},
            "messages": [{"$ref": f"#/channels/{DLQ_CHANNEL}/messages/dead_letter"}],
            "description": f"what {spec.durable} gives up on after {spec.max_deliver} deliveries",
            "x-identity": _consumer_identity(spec.durable),
        }
        for spec in topology.CONSUMERS
    }


def _consumer_identity(durable: str) -> str:
    return next(ident.name for ident in topology.IDENTITIES if durable in ident.consumes)


def _consumer(spec: topology.ConsumerSpec) -> dict[str, Any]:
    return {
        "stream": spec.stream,
        "durable": f"{spec.durable}-p{{partition}}" if spec.partitioned else spec.durable,
        "filter_subjects": [f"{s}.{{partition}}" if spec.partitioned else s for s in spec.filter_subjects],
        "max_deliver": spec.max_deliver,
        "ack_wait_seconds": spec.ack_wait_seconds,
        "backoff_seconds": list(spec.backoff_seconds),
        "max_ack_pending": spec.max_ack_pending,
        "dead_letter_subject": spec.dead_letter_subject,
    }


def _message(entry: catalog.Entry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "title": f"{entry.name} v{entry.version}",
        "summary": describe(entry.cls),
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/headers"},
        "payload": {"$ref": entry.path},
        "x-version": entry.version,
    }


def _dead_letter() -> dict[str, Any]:
    return {
        "name": "dead_letter",
        "title": "dead letter",
        "summary": "The original message's body, unchanged (any of the messages above, or one that is none).",
        "headers": {"$ref": "#/components/schemas/dead_letter_headers"},
        "payload": {},
    }


def _stream(stream: topology.StreamSpec) -> dict[str, Any]:
    return {
        "name": stream.name,
        "subjects": list(stream.subjects),
        "replicas": stream.replicas,
        "max_age_seconds": stream.max_age_seconds,
        "duplicate_window_seconds": stream.duplicate_window_seconds,
        "description": stream.description,
    }
