"""`bankctl trace PAYMENT|REQUEST`: one payment's timeline from its trace.

What it reads (fjordbank/runtime/tracing.py writes the spans):

* the request document ``users/{uid}/paymentRequests/{requestId}``: status, reason and
  ``traceId`` (the edge writes it);
* the span files of the local stack (``FJB_TRACE_DIR``, ``.stack/traces/*.jsonl``, one JSON
  span per line): every span of the payment's trace(s) and every span that names the
  payment (``fjb.payment_id``). A payment the due-payments job submitted has a trace of its
  own besides the one in which it was scheduled: both are shown. In production the same
  spans are in Cloud Trace, found by the document's ``traceId``.

How the ID is found: ``UID/REQUEST_ID`` names the document; a payment id (``p`` and 34
hex digits, the request's ``paymentId``) is looked up in the ledger's record of the payment,
then among the requests (a collection-group query on ``paymentId``), then in the spans; a
request id alone is looked up in the spans (the edge's span records the uid and request
id), the one place that knows it without the uid.

The timeline: each step (the edge's handling, each delivery of a message to a service,
the other bank's answer, the push) at its offset from the trace's start, its duration,
the service, the delivery attempt (a replayed dead letter starts again at 1 and says so),
how long the message had waited since it was published (``queuedMs``; shown for first
deliveries, a redelivery's wait includes its backoff), the outcome (ack, nak,
dead_lettered) with its reason and what it published; under each step its Firestore
commits and writes. Then the end:
the final status, or where the payment is now (the service it waits for), or why it
stopped (dead-lettered at a consumer with the reason and the dead letter to replay,
rejected with the reason).

The pure part (``build``, ``render``) is unit tested on span lines.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from fjordbank import topology

PAYMENT_ID = re.compile(r"p[0-9a-f]{34}|in[0-9a-f]{30}")  # an app's or the bank's; one from another bank
TERMINAL = ("completed", "failed", "rejected", "cancelled")
# where a payment in a state waits: (who acts next, what for)
WAITING = {
    "received": ("the due-payments job", "a publish that failed at the edge (jobs run submit-due-payments)"),
    "scheduled": ("the due-payments job", "its due date"),
    "requested": ("screening", "payments.requested"),
    "approved": ("ledger", "payments.approved"),
    "reserved": ("clearing", "payments.reserved"),
    "submitted": ("clearing", "the other bank's answer (pain.002)"),
    "settled": ("ledger", "payments.settled"),
    "returned": ("ledger", "payments.returned"),
}
STEP_KINDS = ("CONSUMER", "SERVER")  # a step: a delivery, a trigger; the rest nest under them
# the service of the payment's pipeline that takes each payment subject on (the notifier
# and "my economy", which read them too, aside)
NEXT_SERVICE = {
    subject: spec.durable
    for spec in topology.CONSUMERS
    if spec.durable in ("screening", "ledger", "clearing")
    for subject in spec.filter_subjects
}


# ---- reading spans -------------------------------------------------------------------------------
def span_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jsonl")) if directory.is_dir() else []


def read_spans(directory: Path, needles: Iterable[str]) -> list[dict]:
    """Every span line that mentions one of ``needles`` (trace or payment ids), parsed.
    A torn or foreign line is skipped."""
    wanted = [n for n in needles if n]
    if not wanted:
        return []
    out = []
    for path in span_files(directory):
        try:
            with path.open(encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if not any(n in line for n in wanted):
                        continue
                    try:
                        span = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(span, dict) and isinstance(span.get("traceId"), str):
                        out.append(span)
        except OSError:
            continue
    return out


def spans_of_payment(directory: Path, payment_id: str | None, trace_ids: Iterable[str]) -> list[dict]:
    """The spans of the given traces and of every trace in which a span names the payment."""
    found = read_spans(directory, [payment_id or "", *trace_ids])
    traces = set(trace_ids) | {
        s["traceId"] for s in found if payment_id and (s.get("attributes") or {}).get("fjb.payment_id") == payment_id
    }
    unique = {(s["traceId"], s.get("spanId")): s for s in found if s["traceId"] in traces}
    return list(unique.values())


def find_request(directory: Path, request_id: str) -> tuple[str | None, str | None]:
    """(uid, payment id) from the edge's span of the request, or (None, None)."""
    for span in read_spans(directory, [request_id]):
        attrs = span.get("attributes") or {}
        if attrs.get("fjb.request_id") == request_id and attrs.get("fjb.uid"):
            return attrs["fjb.uid"], attrs.get("fjb.payment_id")
    return None, None


def find_payment(directory: Path, payment_id: str) -> tuple[str | None, str | None]:
    """(uid, request id) from the edge's span that names the payment, or (None, None)."""
    for span in read_spans(directory, [payment_id]):
        attrs = span.get("attributes") or {}
        if attrs.get("fjb.payment_id") == payment_id and attrs.get("fjb.uid") and attrs.get("fjb.request_id"):
            return attrs["fjb.uid"], attrs["fjb.request_id"]
    return None, None


# ---- the timeline --------------------------------------------------------------------------------
def _is_step(span: dict) -> bool:
    return span.get("kind") in STEP_KINDS or span.get("parentSpanId") is None


def _ordered_tree(spans: list[dict]) -> Iterator[tuple[dict, int]]:
    """Steps in time order, each followed by the spans under it (depth 1, 2, ...): a span
    nests under its parent unless it is a step itself (a step's parent is the step before
    it, in another service: shown one after the other, not nested)."""
    by_id = {(s["traceId"], s.get("spanId")): s for s in spans}
    children: dict[tuple, list[dict]] = {}
    tops = []
    for s in spans:
        parent = (s["traceId"], s.get("parentSpanId"))
        if _is_step(s) or parent not in by_id:
            tops.append(s)
        else:
            children.setdefault(parent, []).append(s)

    def walk(span: dict, depth: int) -> Iterator[tuple[dict, int]]:
        yield span, depth
        for child in sorted(
            children.get((span["traceId"], span.get("spanId")), []), key=lambda c: c.get("startNs") or 0
        ):
            yield from walk(child, depth + 1)

    for top in sorted(tops, key=lambda s: (s.get("startNs") or 0, s.get("endNs") or 0)):
        yield from walk(top, 0)


def _service_of(span: dict) -> str:
    return (span.get("attributes") or {}).get("fjb.consumer") or span.get("service") or "?"


def _step_name(span: dict) -> str:
    name = span.get("name") or ""
    attrs = span.get("attributes") or {}
    consumer = attrs.get("fjb.consumer")
    if consumer and name.startswith(f"{consumer} "):
        name = name[len(consumer) + 1 :]
    elif span.get("service") and name.startswith(f"{span['service']} "):
        name = name[len(span["service"]) + 1 :]
    if attrs.get("fjb.operation"):
        name += f" (batch of {attrs.get('fjb.batch_size', '?')})"
    elif attrs.get("fjb.pushes") is not None:
        counts = sorted((k.rsplit(".", 1)[1], v) for k, v in attrs.items() if k.startswith("fjb.pushes."))
        results = ", ".join(f"{k} {v}" for k, v in counts)
        name += f" ({attrs['fjb.pushes']} push(es){': ' + results if results else ''})"
    elif attrs.get("fjb.status") and name == "firestore request_doc":
        name += f" -> {attrs['fjb.status']}"
    return name


def build(payment_id: str | None, request: dict | None, spans: list[dict], *, uid=None, request_id=None) -> dict:
    """The timeline of one payment (a dict, what ``--json`` prints)."""
    request = request or {}
    starts = [s["startNs"] for s in spans if isinstance(s.get("startNs"), int)]
    t0 = min(starts) if starts else None
    rows: list[dict] = []
    for span, depth in _ordered_tree(spans):
        attrs = span.get("attributes") or {}
        start, end = span.get("startNs"), span.get("endNs")
        published_ns = attrs.get("fjb.published_ns")
        rows.append(
            {
                "offsetMs": round((start - t0) / 1e6, 1) if t0 is not None and isinstance(start, int) else None,
                "durationMs": round((end - start) / 1e6, 1)
                if isinstance(start, int) and isinstance(end, int)
                else None,
                "queuedMs": round((start - published_ns) / 1e6, 1)
                if isinstance(published_ns, int) and isinstance(start, int)
                else None,
                "depth": depth,
                "step": depth == 0,
                "service": _service_of(span),
                "name": _step_name(span),
                "kind": span.get("kind"),
                "attempt": attrs.get("fjb.num_delivered"),
                "outcome": attrs.get("fjb.outcome") or ("error" if span.get("status") == "ERROR" else None),
                "reason": attrs.get("fjb.reason")
                or (span.get("statusMessage") if span.get("status") == "ERROR" else None),
                "published": list(attrs.get("fjb.published") or []),
                "dlqSequence": attrs.get("fjb.dlq_sequence"),
                "replay": bool(attrs.get("fjb.replay")),
                "traceId": span.get("traceId"),
                "spanId": span.get("spanId"),
                "parentSpanId": span.get("parentSpanId"),
            }
        )
    _summarise_steps(rows, spans)
    reason = request.get("reason") if isinstance(request.get("reason"), dict) else None
    trace_ids = sorted({s["traceId"] for s in spans})
    if request.get("traceId") and request["traceId"] not in trace_ids:
        trace_ids.append(request["traceId"])
    return {
        "paymentId": payment_id or request.get("paymentId"),
        "requestId": request_id,
        "uid": uid,
        "traceIds": trace_ids,
        "status": request.get("status"),
        "reason": reason,
        "steps": rows,
        "end": _end(request, rows),
    }


def _summarise_steps(rows: list[dict], spans: list[dict]) -> None:
    """A step that is no delivery (the edge's trigger) shows what the spans under it did:
    the subjects they published and the last status they wrote on the request."""
    by_id = {(s["traceId"], s.get("spanId")): s for s in spans}
    step = None
    for row in rows:
        if row["step"]:
            step = row
            continue
        if step is None:
            continue
        attrs = by_id.get((row["traceId"], row["spanId"]), {}).get("attributes") or {}
        subject = attrs.get("messaging.destination.name") if row["kind"] == "PRODUCER" else None
        subject = topology.base_subject(subject) if subject else None  # steps are named without partitions
        for published in [*(attrs.get("fjb.published") or []), *([subject] if subject else [])]:
            if published not in step["published"]:
                step["published"].append(published)
        if step["attempt"] is None and attrs.get("fjb.status"):
            step["outcome"] = attrs["fjb.status"]
            reason = (by_id.get((step["traceId"], step["spanId"]), {}).get("attributes") or {}).get("fjb.reason")
            step["reason"] = step["reason"] or reason


def _end(request: dict, rows: list[dict]) -> dict:
    """Where the payment ended, or is now, or why it stopped."""
    status = request.get("status")
    reason = request.get("reason") if isinstance(request.get("reason"), dict) else {}
    deliveries = [r for r in rows if r["step"] and r["attempt"] is not None]
    last = deliveries[-1] if deliveries else None
    elapsed = max(
        (r["offsetMs"] + (r["durationMs"] or 0) for r in rows if r["offsetMs"] is not None),
        default=None,
    )
    end: dict = {"status": status, "elapsedMs": elapsed}
    if status in TERMINAL:
        end["final"] = True
        if status == "rejected":
            at = next((r["service"] for r in rows if r["step"] and "payments.rejected" in r["published"]), "edge")
            end["summary"] = f"rejected at {at}: {reason.get('code')} ({reason.get('message')})"
        elif status == "failed":
            end["summary"] = f"failed: {reason.get('code')} ({reason.get('message')})"
        else:
            end["summary"] = status
        return end
    end["final"] = False
    if last is not None and last["outcome"] == "dead_lettered":
        seq = last["dlqSequence"]
        replay = f"; after mending the cause: bankctl dlq replay {seq} --by OFFICER --note REASON" if seq else ""
        end["deadLettered"] = {
            "consumer": last["service"],
            "subject": last["name"],
            "deliveries": last["attempt"],
            "reason": last["reason"],
            "dlqSequence": last["dlqSequence"],
        }
        end["summary"] = (
            f"stopped: dead-lettered at {last['service']} ({last['name']}) after {last['attempt']} "
            f"deliveries: {last['reason']}; the request shows {status}{replay}"
        )
        return end
    if last is not None and last["outcome"] == "nak":
        end["retrying"] = {"consumer": last["service"], "subject": last["name"], "attempt": last["attempt"]}
        end["summary"] = (
            f"now {status}: {last['service']} is retrying {last['name']} "
            f"(delivery {last['attempt']} failed: {last['reason']})"
        )
        return end
    if status is None:
        end["summary"] = "no request document: the timeline is all there is"
        return end
    who, what = _waiting_on(rows) or WAITING.get(status, ("?", "?"))
    end["waitingFor"] = {"service": who, "what": what}
    end["summary"] = f"now {status}: waiting for {who} ({what})"
    return end


def _waiting_on(rows: list[dict]) -> tuple[str, str] | None:
    """The service the payment waits at, from its steps: the last subject a step published
    that the service taking it on has not delivered in a step after it. The request shows
    no state between "requested" and "submitted", nor "settled" (domain.payments.UNSHOWN),
    so its status alone sent the operator to screening for a payment the ledger or
    clearing held up, and to clearing for one the ledger had not settled (found in
    review, 2026-12-07). None: nothing published waits (the status says)."""
    steps = [r for r in rows if r["step"]]
    for place in range(len(steps) - 1, -1, -1):
        for subject in reversed(steps[place]["published"]):
            service = NEXT_SERVICE.get(subject)
            if service is None:
                continue
            if not any(r["name"] == subject and r["service"] == service for r in steps[place + 1 :]):
                return service, subject
    return None


# ---- text ---------------------------------------------------------------------------------------
def _ms(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value / 1000:.3f}s" if value >= 1000 else f"{value:.0f}ms"


def render(timeline: dict) -> str:
    head = [f"payment {timeline['paymentId'] or '?'}"]
    if timeline.get("requestId"):
        head.append(f"request {timeline['requestId']}")
    if timeline.get("uid"):
        head.append(f"user {timeline['uid']}")
    lines = ["  ".join(head), f"trace {', '.join(timeline['traceIds']) or '(none recorded)'}"]
    width = max((len(r["service"]) for r in timeline["steps"] if r["step"]), default=6)
    for r in timeline["steps"]:
        offset = f"+{r['offsetMs'] / 1000:.3f}s" if r["offsetMs"] is not None else "?"
        if r["step"]:
            text = f"{r['service']:<{width}}  {r['name']}"
            if r["attempt"] is not None:
                text += f"  {'replayed, ' if r['replay'] else ''}delivery {r['attempt']}"
            if r["queuedMs"] is not None and r["attempt"] == 1:  # later ones waited for their backoff too
                text += f" (queued {_ms(max(r['queuedMs'], 0))})"
            if r["outcome"]:
                text += f"  {r['outcome']}"
            if r["reason"]:
                text += f": {r['reason']}"
            if r["published"]:
                text += f"  -> {', '.join(r['published'])}"
        else:
            text = f"{' ' * width}  {'  ' * (r['depth'] - 1)}└ {r['name']}"
            if r["outcome"] == "error":
                text += f"  error: {r['reason']}"
        lines.append(f"  {offset:>9} {_ms(r['durationMs']):>8}  {text}")
    if not timeline["steps"]:
        lines.append("  (no spans found: tracing off, or the spans are not exported yet)")
    end = timeline["end"]
    after = f" ({_ms(end['elapsedMs'])} after the first span)" if end.get("elapsedMs") is not None else ""
    lines.append(f"end: {end['summary']}{after}" if end.get("final") else f"{end['summary']}")
    return "\n".join(lines)
