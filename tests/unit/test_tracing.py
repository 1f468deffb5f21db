"""fjordbank.runtime.tracing and its use in the consumer runtime, without I/O: the W3C trace
context in NATS headers and Pub/Sub attributes, the app's untrusted traceparent, trace ids
in log lines, the span file exporter, commit spans, and one message's way through the
runtime (its span, the next step's headers, the dead letter's headers)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from types import SimpleNamespace

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fjordbank import topology
from fjordbank.config import load_settings
from fjordbank.domain.payments import PaymentEvent, PaymentRequested
from fjordbank.runtime import events, logs, tracing
from fjordbank.runtime.consumer import Ack, ConsumerService, Delivery, Reject, Retry

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"


@pytest.fixture
def spans():
    """Spans recorded in memory for the test (the process's provider is replaced)."""
    tracing.reset_for_tests()
    exporter = InMemorySpanExporter()
    tracing.setup("test", load_settings({}), processor=SimpleSpanProcessor(exporter))
    yield exporter
    tracing.reset_for_tests()


# ---- the app's traceparent ----------------------------------------------------------------------
def test_a_valid_client_traceparent_is_continued_with_the_banks_own_sampling(spans):
    ctx = tracing.client_context(VALID)
    assert ctx is not None
    assert tracing.trace_id_of(ctx) == TRACE
    assert not tracing.span_in(ctx).get_span_context().trace_flags.sampled  # the bank decides
    with tracing.span("edge", ctx) as s:
        assert tracing.trace_id_of(s) == TRACE
    assert spans.get_finished_spans()[0].parent.span_id == int(SPAN, 16)


@pytest.mark.parametrize(
    "value",
    [
        None,
        42,
        "",
        "garbage",
        VALID.upper(),  # upper-case hex
        f"01-{TRACE}-{SPAN}-01",  # another version
        f"ff-{TRACE}-{SPAN}-01",
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
        f"00-{TRACE}-{SPAN}-01-extra",
        f" {VALID}",
        f"{VALID}\n",
        f"00-{TRACE[:-1]}g-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-1",
        VALID * 3,
    ],
)
def test_a_malformed_client_traceparent_is_ignored(value):
    assert tracing.client_context(value) is None


def test_a_malformed_client_traceparent_starts_a_new_trace(spans):
    with tracing.span("edge", tracing.client_context("00-not-a-trace")) as s:
        trace_id = tracing.trace_id_of(s)
    assert trace_id and trace_id != TRACE
    assert spans.get_finished_spans()[0].parent is None


# ---- carriers ----------------------------------------------------------------------------------
def test_inject_and_extract_through_nats_headers_keep_the_trace(spans):
    with tracing.span("step") as s:
        headers = {"Nats-Msg-Id": "p1:approved", **tracing.inject()}
        own = s.get_span_context()
    assert headers["traceparent"] == f"00-{own.trace_id:032x}-{own.span_id:016x}-{own.trace_flags:02x}"
    ctx = tracing.extract(headers)
    assert tracing.span_in(ctx).get_span_context().span_id == own.span_id
    assert tracing.span_in(ctx).get_span_context().is_remote
    # any case of the header name (a relay may change it)
    assert tracing.trace_id_of(tracing.extract({"TraceParent": headers["traceparent"]})) == tracing.trace_id_of(ctx)


def test_tracestate_travels_with_traceparent(spans):
    ctx = tracing.extract({"traceparent": VALID, "tracestate": "vendor=abc"})
    carrier = tracing.inject(ctx)
    assert carrier == {"traceparent": VALID, "tracestate": "vendor=abc"}


@pytest.mark.parametrize("carrier", [None, {}, {"traceparent": "nonsense"}, {"traceparent": 5}, {"x": "y"}])
def test_a_message_without_a_valid_context_starts_a_new_trace(spans, carrier):
    ctx = tracing.extract(carrier)
    assert tracing.trace_id_of(ctx) is None
    assert tracing.inject(ctx) == {}
    s = tracing.start_span("consumer x", ctx)
    s.end()
    assert spans.get_finished_spans()[0].parent is None


def test_outside_any_span_nothing_is_injected():
    assert tracing.inject() == {}
    assert tracing.traceparent_of(None) is None


def test_pubsub_attributes_carry_the_current_trace(spans, monkeypatch):
    from fjordbank.adapters import pubsub

    published = {}

    class Client:
        def __init__(self, batch_settings=None):
            self.batch_settings = batch_settings

        def topic_path(self, project, topic):
            return f"projects/{project}/topics/{topic}"

        def publish(self, topic, data, **attributes):
            published.update(attributes)
            return SimpleNamespace(result=lambda _timeout: "1")

    monkeypatch.setattr(pubsub.pubsub_v1, "PublisherClient", Client)
    topic = pubsub.TopicPublisher("demo", "t")
    with tracing.span("notifier") as s:
        asyncio.run(topic.publish_json({"pushes": []}))
    assert tracing.trace_id_of(tracing.extract(published)) == tracing.trace_id_of(s)
    published.clear()
    asyncio.run(topic.publish_json({"pushes": []}, traceparent=VALID))  # the caller's own wins
    assert published == {"traceparent": VALID}
    assert topic.client.batch_settings.max_messages == 1  # sent at once: the callers batch already


# ---- logs -----------------------------------------------------------------------------------------
def _json_line(record_maker) -> dict:
    formatter = logs.JsonFormatter("svc")
    return json.loads(formatter.format(record_maker()))


def _record(message: str = "hello") -> logging.LogRecord:
    return logging.getLogger("t").makeRecord("t", logging.INFO, __file__, 1, message, (), None)


def test_log_lines_inside_a_span_carry_its_trace_and_span_id(spans):
    tracing.install_log_fields("demo-project", cloud=False)
    with tracing.span("step") as s:
        line = _json_line(_record)
    assert line["trace_id"] == f"{s.get_span_context().trace_id:032x}"
    assert line["span_id"] == f"{s.get_span_context().span_id:016x}"
    assert "logging.googleapis.com/trace" not in line
    outside = _json_line(_record)
    assert "trace_id" not in outside and "span_id" not in outside


def test_log_lines_carry_cloud_loggings_trace_fields_in_production(spans):
    tracing.install_log_fields("fjordbank-prod", cloud=True)
    try:
        with tracing.span("step") as s:
            line = _json_line(_record)
    finally:
        tracing.install_log_fields("demo-project", cloud=False)
    trace_id = f"{s.get_span_context().trace_id:032x}"
    assert line["logging.googleapis.com/trace"] == f"projects/fjordbank-prod/traces/{trace_id}"
    assert line["logging.googleapis.com/spanId"] == f"{s.get_span_context().span_id:016x}"
    assert line["logging.googleapis.com/trace_sampled"] is True


# ---- the file exporter ----------------------------------------------------------------------------
def test_the_file_exporter_writes_one_json_line_per_span_and_rotates(tmp_path):
    tracing.reset_for_tests()
    exporter = tracing.JsonLinesExporter(tmp_path, "ledger", max_file_bytes=2000, max_dir_bytes=10**6)
    tracing.setup("ledger", load_settings({}), processor=SimpleSpanProcessor(exporter))
    try:
        for i in range(20):
            with tracing.span(f"step {i}", attrs={"fjb.payment_id": f"p{i}", "fjb.reason": "97100000019 failed"}):
                pass
    finally:
        tracing.reset_for_tests()
    current, previous = exporter.path, exporter.path.with_suffix(".1.jsonl")
    assert current.exists() and previous.exists()
    assert current.stat().st_size <= 2000
    lines = [json.loads(x) for p in (previous, current) for x in p.read_text().splitlines()]
    assert all(len(line["traceId"]) == 32 and len(line["spanId"]) == 16 for line in lines)
    assert lines[-1]["name"] == "step 19" and lines[-1]["service"] == "ledger"
    assert lines[-1]["attributes"]["fjb.reason"] == "*******0019 failed"  # masked like log lines
    assert lines[-1]["endNs"] >= lines[-1]["startNs"] > 0


def test_the_span_folder_is_bounded(tmp_path):
    for i in range(5):
        p = tmp_path / f"old-{i}.jsonl"
        p.write_bytes(b"x" * 1000)
    tracing.prune(tmp_path, 2500)
    assert sum(p.stat().st_size for p in tmp_path.glob("*.jsonl")) <= 2500


def test_an_unwritable_trace_folder_drops_spans_and_never_raises(spans, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    exporter = tracing.JsonLinesExporter(blocker / "traces", "svc")
    s = tracing.start_span("x")
    s.end()
    from opentelemetry.sdk.trace.export import SpanExportResult

    assert exporter.export([s]) == SpanExportResult.FAILURE  # type: ignore[list-item]


# ---- commit spans -----------------------------------------------------------------------------
def test_a_commit_is_a_child_span_in_each_messages_trace(spans):
    a, b = tracing.start_span("ledger payments.approved"), tracing.start_span("ledger payments.settled")
    contexts = [tracing.context_of(a), tracing.context_of(b), tracing.context_of(a), None]
    with tracing.commit("ledger_post_batch", contexts):
        pass
    commits = [s for s in spans.get_finished_spans() if s.name == "firestore ledger_post_batch"]
    assert sorted(c.parent.span_id for c in commits) == sorted(x.get_span_context().span_id for x in (a, b))
    assert {c.context.trace_id for c in commits} == {a.get_span_context().trace_id, b.get_span_context().trace_id}
    assert len({(c.start_time, c.end_time) for c in commits}) == 1  # one commit, its times in each trace
    assert all(c.attributes["fjb.batch_size"] == 4 for c in commits)


def test_a_failed_commit_is_an_error_span_and_the_error_propagates(spans):
    a = tracing.start_span("screening payments.requested")
    with pytest.raises(RuntimeError), tracing.commit("screening", [tracing.context_of(a)]):
        raise RuntimeError("deadline exceeded")
    (commit,) = [s for s in spans.get_finished_spans() if s.name == "firestore screening"]
    assert commit.status.status_code.name == "ERROR" and "deadline" in commit.status.description


# ---- the consumer runtime -----------------------------------------------------------------------
class FakeMsg:
    def __init__(self, subject: str, data: bytes, headers: dict | None, *, delivered: int = 1, seq: int = 7):
        self.subject, self.data, self.headers = subject, data, headers
        self.metadata = SimpleNamespace(
            num_delivered=delivered,
            sequence=SimpleNamespace(stream=seq),
            timestamp=dt.datetime.now(dt.UTC),
        )
        self.settled: list[str] = []

    async def ack(self):
        self.settled.append("ack")

    async def nak(self, delay=None):
        self.settled.append("nak")

    async def term(self):
        self.settled.append("term")


class FakeJs:
    def __init__(self):
        self.published: list[tuple[str, bytes, dict]] = []

    async def publish(self, subject, data, headers=None, **_kw):
        self.published.append((subject, data, dict(headers or {})))
        return SimpleNamespace(seq=len(self.published))


def _payment_event(status: str = "approved") -> PaymentEvent:
    payment = PaymentRequested(
        payment_id="p" + "a" * 34,
        uid="u1",
        request_id="req-00000001",
        kind="internal",
        from_account="97100000019",
        to_account="97100000027",
        amount=100,
        currency="NOK",
        message=None,
        kid=None,
        due_date="2026-11-30",
        body_hash="h",
        requested_at="2026-11-30T08:00:00+00:00",
    )
    return PaymentEvent(payment, status)


def _service(handler) -> tuple[ConsumerService, FakeJs]:
    service = ConsumerService(durable="ledger", settings=load_settings({}), handler=handler)
    service.js = FakeJs()
    return service, service.js


def test_a_handled_message_gets_a_span_and_its_next_step_carries_the_trace(spans):
    async def handler(batch: list[Delivery]):
        decoded, _outcomes = events.decode_batch(batch)
        out = [PaymentEvent(e.payment, "completed") for _, e in decoded]
        await events.publish(service.js, out)
        return [Ack() for _ in batch]

    service, js = _service(handler)
    approved = _payment_event()
    msg = FakeMsg(approved.subject, events.encode(approved), {"traceparent": VALID}, seq=42)
    asyncio.run(service.process([Delivery(msg)]))
    assert msg.settled == ["ack"]
    (span,) = [s for s in spans.get_finished_spans() if s.name == "ledger payments.approved"]
    assert span.context.trace_id == int(TRACE, 16) and span.parent.span_id == int(SPAN, 16)
    assert span.kind.name == "CONSUMER"
    assert span.attributes["fjb.outcome"] == "ack"
    assert span.attributes["fjb.stream_sequence"] == 42 and span.attributes["fjb.num_delivered"] == 1
    assert span.attributes["fjb.payment_id"] == "p" + "a" * 34
    assert list(span.attributes["fjb.published"]) == ["payments.completed"]
    ((subject, _data, headers),) = js.published
    # on the wire with the payer's partition; the span and the timeline name it without
    assert subject == PaymentEvent(approved.payment, "completed").subject and headers["Nats-Msg-Id"].endswith(
        ":completed"
    )
    parent = tracing.span_in(tracing.extract(headers)).get_span_context()
    assert parent.trace_id == int(TRACE, 16) and parent.span_id == span.context.span_id


def test_a_retried_message_is_a_nak_span_with_the_reason(spans):
    async def handler(batch):
        return [Retry("KeyError: 'balance' of 97100000019") for _ in batch]

    service, _js = _service(handler)
    msg = FakeMsg("payments.approved", events.encode(_payment_event()), {"traceparent": VALID}, delivered=2)
    asyncio.run(service.process([Delivery(msg)]))
    assert msg.settled == ["nak"]
    (span,) = spans.get_finished_spans()
    assert span.attributes["fjb.outcome"] == "nak" and span.attributes["fjb.num_delivered"] == 2
    assert span.attributes["fjb.reason"] == "KeyError: 'balance' of *******0019"
    assert span.status.status_code.name == "ERROR"


@pytest.mark.parametrize("outcome", [Reject("malformed payments.approved"), Retry("KeyError: 'balance'")])
def test_a_dead_letter_keeps_the_trace_and_its_span_names_the_dlq_sequence(spans, outcome):
    async def handler(batch):
        return [outcome for _ in batch]

    service, js = _service(handler)
    delivered = 1 if isinstance(outcome, Reject) else topology.consumer("ledger").max_deliver
    msg = FakeMsg("payments.approved", b"{}", {"traceparent": VALID}, delivered=delivered)
    for _ in range(delivered - 1):  # the handler's earlier failures, counted by this process
        service.tally.failed(("ledger", msg.metadata.sequence.stream))
    asyncio.run(service.process([Delivery(msg)]))
    assert msg.settled == ["term"]
    ((subject, _data, headers),) = js.published
    assert subject == topology.dlq_subject("ledger")
    (span,) = spans.get_finished_spans()
    assert span.attributes["fjb.outcome"] == "dead_lettered"
    assert span.attributes["fjb.dlq_sequence"] == 1
    dead = tracing.span_in(tracing.extract(headers)).get_span_context()
    assert dead.trace_id == int(TRACE, 16) and dead.span_id == span.context.span_id


def test_a_batch_publishes_each_step_in_the_trace_of_its_own_message(spans):
    traces = ["1" * 32, "2" * 32]

    async def handler(batch):
        decoded, _ = events.decode_batch(batch)
        await events.publish(service.js, [PaymentEvent(e.payment, "completed") for _, e in decoded])
        return [Ack() for _ in batch]

    service, js = _service(handler)
    msgs = []
    for n, trace_id in enumerate(traces):
        event = _payment_event()
        payment = PaymentRequested(**{**event.payment.to_json(), "payment_id": f"p{n}" + "b" * 33})
        msgs.append(
            FakeMsg(
                PaymentEvent(payment, "approved").subject,
                events.encode(PaymentEvent(payment, "approved")),
                {"traceparent": f"00-{trace_id}-{SPAN}-01"},
            )
        )
    asyncio.run(service.process([Delivery(m) for m in msgs]))
    got = {
        json.loads(data)["payment"]["payment_id"]: tracing.trace_id_of(tracing.extract(h))
        for _, data, h in js.published
    }
    assert got == {"p0" + "b" * 33: traces[0], "p1" + "b" * 33: traces[1]}
