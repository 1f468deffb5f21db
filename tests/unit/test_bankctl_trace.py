"""`bankctl trace`'s timeline, built from span lines as the services' file exporter writes
them (fjordbank.runtime.tracing.span_to_json): the steps in order with their deliveries
and outcomes, the commits under them, and the end: final, waiting, or stopped."""

from __future__ import annotations

import json

from bankctl import trace

T1 = "a" * 32
T2 = "b" * 32
PID = "p" + "1" * 34
MS = 1_000_000
T0 = 1_800_000_000_000_000_000


class Spans:
    """Span lines of one payment, written as the exporter writes them."""

    def __init__(self, trace_id: str = T1) -> None:
        self.trace_id = trace_id
        self.lines: list[dict] = []
        self.n = 0

    def add(self, name, *, start, ms, parent=None, kind="CONSUMER", service=None, status="UNSET", **attrs) -> str:
        self.n += 1
        span_id = f"{self.n:016x}"
        self.lines.append(
            {
                "traceId": self.trace_id,
                "spanId": span_id,
                "parentSpanId": parent,
                "name": name,
                "kind": kind,
                "service": service or name.split()[0],
                "startNs": T0 + start * MS,
                "endNs": T0 + (start + ms) * MS,
                "status": status,
                "statusMessage": attrs.get("fjb.reason") if status == "ERROR" else None,
                "attributes": {k: v for k, v in attrs.items() if v is not None},
                "events": [],
            }
        )
        return span_id

    def delivery(self, consumer, subject, *, start, ms=20, parent, attempt=1, outcome="ack", published=(), **extra):
        return self.add(
            f"{consumer} {subject}",
            start=start,
            ms=ms,
            parent=parent,
            service=consumer,
            status="UNSET" if outcome == "ack" else "ERROR",
            **{
                "fjb.consumer": consumer,
                "fjb.num_delivered": attempt,
                "fjb.outcome": outcome,
                "fjb.payment_id": PID,
                "fjb.published_ns": T0 + (start - 5) * MS,
                "fjb.published": list(published) or None,
                **extra,
            },
        )

    def edge(self, status="requested", reason=None) -> str:
        root = self.add(
            "edge on_payment_request",
            start=0,
            ms=100,
            service="edge",
            **{"fjb.uid": "u1", "fjb.request_id": "req-00000001", "fjb.payment_id": PID},
        )
        submit = self.add("edge submit", start=40, ms=60, parent=root, kind="INTERNAL", service="edge")
        self.add(
            "publish payments.requested",
            start=40,
            ms=30,
            parent=submit,
            kind="PRODUCER",
            service="edge",
            **{"messaging.destination.name": "payments.requested"},
        )
        self.add(
            "firestore request_doc",
            start=70,
            ms=30,
            parent=submit,
            kind="CLIENT",
            service="edge",
            **{"fjb.status": status, "fjb.reason": reason},
        )
        return submit

    def commit(self, operation, *, start, parent, service):
        self.add(
            f"firestore {operation}",
            start=start,
            ms=10,
            parent=parent,
            kind="CLIENT",
            service=service,
            **{"fjb.operation": operation, "fjb.batch_size": 3},
        )


def completed_internal() -> tuple[list[dict], dict]:
    s = Spans()
    edge = s.edge()
    screened = s.delivery("screening", "payments.requested", start=110, parent=edge, published=["payments.approved"])
    s.commit("screening", start=112, parent=screened, service="screening")
    posted = s.delivery("ledger", "payments.approved", start=140, parent=screened, published=["payments.completed"])
    s.commit("ledger_post_batch", start=142, parent=posted, service="ledger")
    s.delivery("notifier", "payments.completed", start=170, parent=posted)
    return s.lines, {"status": "completed", "traceId": T1, "paymentId": PID}


def returned_external() -> tuple[list[dict], dict]:
    s = Spans()
    edge = s.edge()
    screened = s.delivery("screening", "payments.requested", start=110, parent=edge, published=["payments.approved"])
    held = s.delivery("ledger", "payments.approved", start=140, parent=screened, published=["payments.reserved"])
    sent = s.delivery("clearing", "payments.reserved", start=170, parent=held, published=["payments.submitted"])
    answer = s.add(
        "clearing pain.002",
        start=900,
        ms=15,
        parent=sent,
        service="clearing",
        **{
            "fjb.consumer": "clearing",
            "fjb.outcome": "ack",
            "fjb.payment_id": PID,
            "fjb.reason": "AC04",
            "fjb.published": ["payments.returned"],
        },
    )
    s.delivery("ledger", "payments.returned", start=930, parent=answer, published=["payments.failed"])
    request = {
        "status": "failed",
        "reason": {"code": "AC04", "message": "the account is closed"},
        "traceId": T1,
        "paymentId": PID,
    }
    return s.lines, request


def dead_lettered() -> tuple[list[dict], dict]:
    s = Spans()
    edge = s.edge()
    screened = s.delivery("screening", "payments.requested", start=110, parent=edge, published=["payments.approved"])
    for attempt in range(1, 7):
        s.delivery(
            "ledger",
            "payments.approved",
            start=140 + attempt * 1000,
            parent=screened,
            attempt=attempt,
            outcome="dead_lettered" if attempt == 6 else "nak",
            **{"fjb.reason": "KeyError: 'balance'", "fjb.dlq_sequence": 17 if attempt == 6 else None},
        )
    return s.lines, {"status": "approved", "traceId": T1, "paymentId": PID}


def test_a_completed_internal_payment_shows_each_step_and_its_commits_in_order():
    lines, request = completed_internal()
    t = trace.build(PID, request, lines, uid="u1", request_id="req-00000001")
    steps = [(r["service"], r["name"]) for r in t["steps"] if r["step"]]
    assert steps == [
        ("edge", "on_payment_request"),
        ("screening", "payments.requested"),
        ("ledger", "payments.approved"),
        ("notifier", "payments.completed"),
    ]
    edge = t["steps"][0]
    assert edge["offsetMs"] == 0 and edge["durationMs"] == 100
    assert edge["outcome"] == "requested" and edge["published"] == ["payments.requested"]
    ledger = next(r for r in t["steps"] if r["name"] == "payments.approved")
    assert ledger["attempt"] == 1 and ledger["outcome"] == "ack" and ledger["queuedMs"] == 5
    assert ledger["published"] == ["payments.completed"]
    nested = [(r["depth"], r["name"]) for r in t["steps"] if not r["step"]]
    assert (1, "firestore ledger_post_batch (batch of 3)") in nested
    assert (2, "firestore request_doc -> requested") in nested
    assert t["end"]["final"] and t["end"]["summary"] == "completed"
    assert t["traceIds"] == [T1]
    text = trace.render(t)
    assert "ledger" in text and "-> payments.completed" in text and text.splitlines()[-1].startswith("end: completed")


def test_an_external_payment_that_was_returned_shows_the_other_banks_answer_and_why_it_failed():
    lines, request = returned_external()
    t = trace.build(PID, request, lines)
    names = [(r["service"], r["name"]) for r in t["steps"] if r["step"]]
    assert ("clearing", "payments.reserved") in names and ("clearing", "pain.002") in names
    assert names[-1] == ("ledger", "payments.returned")
    answer = next(r for r in t["steps"] if r["name"] == "pain.002")
    assert answer["offsetMs"] == 900 and answer["published"] == ["payments.returned"]
    assert t["end"]["final"] and t["end"]["summary"] == "failed: AC04 (the account is closed)"
    assert "end: failed: AC04" in trace.render(t)


def test_a_dead_lettered_payment_shows_every_delivery_and_why_it_stopped():
    lines, request = dead_lettered()
    t = trace.build(PID, request, lines)
    ledger = [r for r in t["steps"] if r["service"] == "ledger"]
    assert [r["attempt"] for r in ledger] == [1, 2, 3, 4, 5, 6]
    assert [r["outcome"] for r in ledger] == ["nak"] * 5 + ["dead_lettered"]
    end = t["end"]
    assert not end["final"]
    assert end["deadLettered"] == {
        "consumer": "ledger",
        "subject": "payments.approved",
        "deliveries": 6,
        "reason": "KeyError: 'balance'",
        "dlqSequence": 17,
    }
    assert end["summary"].startswith("stopped: dead-lettered at ledger (payments.approved) after 6 deliveries")
    assert "bankctl dlq replay 17" in trace.render(t)


def test_a_replayed_dead_letter_continues_the_timeline_to_the_end():
    s = Spans()
    lines, _ = dead_lettered()
    s.lines, s.n = lines, len(lines)
    last = lines[-1]["spanId"]
    s.delivery(
        "ledger", "payments.approved", start=9000, parent=last, published=["payments.failed"], **{"fjb.replay": True}
    )
    request = {"status": "failed", "reason": {"code": "insufficient_funds", "message": "too low"}, "traceId": T1}
    t = trace.build(PID, request, s.lines)
    replayed = [r for r in t["steps"] if r["replay"]]
    assert len(replayed) == 1 and replayed[0]["attempt"] == 1 and replayed[0]["outcome"] == "ack"
    assert t["end"]["final"] and t["end"]["summary"].startswith("failed: insufficient_funds")
    assert "replayed, delivery 1" in trace.render(t)


def test_a_payment_in_flight_says_what_it_waits_for_and_a_retry_says_so():
    lines, _ = completed_internal()
    waiting = trace.build(PID, {"status": "reserved", "traceId": T1}, lines[:7])
    assert waiting["end"]["waitingFor"] == {"service": "clearing", "what": "payments.reserved"}
    retry_lines, _ = dead_lettered()
    retrying = trace.build(PID, {"status": "approved"}, retry_lines[:-1])
    assert retrying["end"]["retrying"]["attempt"] == 5
    assert "is retrying payments.approved" in retrying["end"]["summary"]


def test_the_wait_is_read_from_the_steps_not_from_a_status_the_request_does_not_show():
    """The request shows "requested" until "submitted", and "submitted" until final
    (approved, reserved and settled are not shown): read from its status alone, a payment
    the ledger or clearing held up was said to wait for screening, and one the ledger had
    not settled for the other bank (found in review, 2026-12-07)."""
    s = Spans()
    edge = s.edge()
    screened = s.delivery("screening", "payments.requested", start=110, parent=edge, published=["payments.approved"])
    held = s.delivery("ledger", "payments.approved", start=140, parent=screened, published=["payments.reserved"])
    at_clearing = trace.build(PID, {"status": "requested", "traceId": T1}, list(s.lines))
    assert at_clearing["end"]["waitingFor"] == {"service": "clearing", "what": "payments.reserved"}
    sent = s.delivery("clearing", "payments.reserved", start=170, parent=held, published=["payments.submitted"])
    s.delivery("notifier", "payments.submitted", start=200, parent=sent)
    at_the_bank = trace.build(PID, {"status": "submitted", "traceId": T1}, list(s.lines))
    assert at_the_bank["end"]["waitingFor"]["service"] == "clearing"  # the other bank's answer
    answer = {"fjb.consumer": "clearing", "fjb.outcome": "ack", "fjb.payment_id": PID}
    s.add("clearing pain.002", start=900, ms=15, parent=sent, service="clearing", **answer,
          **{"fjb.published": ["payments.settled"]})  # fmt: skip
    settled = trace.build(PID, {"status": "submitted", "traceId": T1}, s.lines)
    assert settled["end"]["waitingFor"] == {"service": "ledger", "what": "payments.settled"}
    assert settled["end"]["summary"] == "now submitted: waiting for ledger (payments.settled)"


def test_a_rejected_payment_names_where_it_was_rejected():
    s = Spans()
    edge = s.edge()
    s.delivery("screening", "payments.requested", start=110, parent=edge, published=["payments.rejected"])
    request = {"status": "rejected", "reason": {"code": "over_daily_limit", "message": "above the daily limit"}}
    assert trace.build(PID, request, s.lines)["end"]["summary"].startswith("rejected at screening: over_daily_limit")
    edge_only = Spans()
    edge_only.edge(status="rejected", reason="insufficient_funds")
    request = {"status": "rejected", "reason": {"code": "insufficient_funds", "message": "too low"}}
    t = trace.build(PID, request, edge_only.lines)
    assert t["end"]["summary"].startswith("rejected at edge: insufficient_funds")


def test_span_files_are_searched_by_trace_and_by_payment_and_torn_lines_skipped(tmp_path):
    lines, _ = completed_internal()
    other = Spans(T2)
    other.delivery("ledger", "payments.approved", start=0, parent=None)  # the payment, in a second trace
    unrelated = Spans("c" * 32)
    unrelated.add("ledger payments.approved", start=0, ms=1, **{"fjb.payment_id": "p" + "9" * 34})
    (tmp_path / "ledger-1.jsonl").write_text(
        "".join(json.dumps(x) + "\n" for x in lines + other.lines + unrelated.lines) + '{"traceId": "' + T1
    )
    (tmp_path / "notes.txt").write_text(T1)
    found = trace.spans_of_payment(tmp_path, PID, [T1])
    assert {s["traceId"] for s in found} == {T1, T2}
    assert len(found) == len(lines) + 1
    assert trace.find_request(tmp_path, "req-00000001") == ("u1", PID)
    assert trace.find_payment(tmp_path, PID) == ("u1", "req-00000001")
    assert trace.find_request(tmp_path, "req-unknown1") == (None, None)
    assert trace.spans_of_payment(tmp_path / "missing", PID, [T1]) == []
