"""A message is terminated only once a letter of its own is in the DLQ stream.

JetStream drops a publish whose message id it has seen in the stream within its duplicate
window, whatever the subject, and answers it as stored. Dead letters were published with a
predictable id (``dlq:<stream>:<sequence>:<durable>``), and every service may publish on its
own dlq subject: the notifier could publish first with the id of the ledger's next letter,
the ledger's letter was dropped, the duplicate answer taken for it, and the payment step
terminated with no letter of it anywhere (found in review, 2026-12-07)."""

from __future__ import annotations

from nats.js.api import PubAck

from fjordbank import topology
from fjordbank.config import load_settings
from fjordbank.runtime.consumer import DEAD_LETTERED, Binding, ConsumerService, Delivery, Reject
from tests.unit.test_consumer_heartbeat import Msg


class Stream:
    """One JetStream stream as it deduplicates: a message id it holds is dropped and answered
    as a duplicate with the stored message's sequence, whatever the subject."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.messages: list[tuple[str, bytes, dict[str, str]]] = []
        self.ids: dict[str, int] = {}

    async def publish(self, subject, payload, timeout=None, stream=None, headers=None) -> PubAck:
        msg_id = (headers or {}).get("Nats-Msg-Id")
        if msg_id is not None and msg_id in self.ids:
            return PubAck(stream=self.name, seq=self.ids[msg_id], duplicate=True)
        self.messages.append((subject, payload, dict(headers or {})))
        if msg_id is not None:
            self.ids[msg_id] = len(self.messages)
        return PubAck(stream=self.name, seq=len(self.messages))

    def letters(self, subject: str) -> list[dict[str, str]]:
        return [headers for s, _data, headers in self.messages if s == subject]


class Step(Msg):
    """A payment step that notes the ledger's letters in the DLQ when it is terminated."""

    def __init__(self, seq: int, dlq: Stream) -> None:
        super().__init__(seq)
        self.subject, self.data = "payments.settled.3", b'{"payment": "uid1_req-0001"}'
        self.dlq = dlq
        self.letters_at_term: list[dict[str, str]] | None = None

    async def term(self):
        self.letters_at_term = self.dlq.letters("dlq.ledger")
        await super().term()


def ledger(dlq: Stream) -> tuple[ConsumerService, topology.ConsumerSpec]:
    svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=None)  # type: ignore[arg-type]
    svc.js = dlq  # type: ignore[assignment]
    return svc, topology.consumer("ledger").partitions()[3]


async def test_a_dead_letter_is_stored_even_when_another_service_published_its_old_id_first():
    notifier = next(i for i in topology.IDENTITIES if i.name == "notifier")
    assert "dlq.notifier" in notifier.permissions()["publish"]  # its own dlq subject, in the same stream
    dlq = Stream(topology.STREAM_DLQ)
    await dlq.publish("dlq.notifier", b"{}", headers={"Nats-Msg-Id": "dlq:PAYMENTS:1234:ledger-p3"})
    svc, spec = ledger(dlq)
    m = Step(1234, dlq)
    await svc._settle(Delivery(m), Reject("refused by the ledger"), spec)  # type: ignore[arg-type]
    (letter,) = dlq.letters("dlq.ledger")
    assert letter["Fjb-Original-Sequence"] == "1234" and letter["Fjb-Original-Subject"] == "payments.settled.3"
    assert "Nats-Msg-Id" not in letter, "no id another service can publish first"
    assert m.letters_at_term == [letter], "terminated once its own letter was stored"


async def test_a_dead_letter_the_stream_answers_as_a_duplicate_is_not_taken_for_stored():
    """Whatever the stream holds under a duplicate, it is not known to be this message's
    letter: the message is not terminated on it (it comes back, and is dead-lettered then)."""

    class Squatted(Stream):
        async def publish(self, subject, payload, timeout=None, stream=None, headers=None) -> PubAck:
            return PubAck(stream=self.name, seq=77, duplicate=True)

    dlq = Squatted(topology.STREAM_DLQ)
    svc, spec = ledger(dlq)

    async def refuses(batch):
        return [Reject("refused by the ledger") for _ in batch]

    m = Step(1234, dlq)
    before = DEAD_LETTERED.labels("ledger")._value.get()
    await svc.process([Delivery(m)], Binding(spec, refuses))  # type: ignore[arg-type]
    assert m.letters_at_term is None and [what for _t, what in m.log if what != "wpi"] == []
    assert DEAD_LETTERED.labels("ledger")._value.get() == before
