"""Counters of the Firebase functions, as structured log lines.

A function cannot be scraped. Each event it counts is written as one JSON line on stdout
with a fixed ``metric`` field; Cloud Functions (Cloud Run) hands such a line to Cloud
Logging as the entry's jsonPayload, and a log-based metric (terraform/modules/
logging_metrics: google_logging_metric, DELTA INT64 counter) counts the entries whose
``jsonPayload.metric`` is its name, with the other fields as labels. PromQL (Cloud
Monitoring, Managed Prometheus) queries them as
``logging_googleapis_com:user_<name>`` (monitoring/metrics.yaml, source `functions_logs`).

* fjb_edge_requests: function, outcome (accepted, refused, error), reason. Written for
  every callable (functions/main.py ``endpoint``) and every payment request (the
  on_payment_request trigger).
* fjb_push_results: kind, outcome (sent, failed), reason. Written for each FCM send of
  on_push (fjordbank/service_layer/push.py).

``reason`` is a reason code (fjordbank/domain/reasons.py) or FCM's error code, ``none``
when accepted or sent. The lines carry no user data: no uid, account or token.
"""

from __future__ import annotations

import json
import sys
from typing import Any

EDGE_REQUESTS = "fjb_edge_requests"
PUSH_RESULTS = "fjb_push_results"
# the fields each metric's lines carry besides `metric` (its labels, in this order)
FIELDS = {
    EDGE_REQUESTS: ("function", "outcome", "reason"),
    PUSH_RESULTS: ("kind", "outcome", "reason"),
}
OUTCOMES = {
    EDGE_REQUESTS: ("accepted", "refused", "error"),
    PUSH_RESULTS: ("sent", "failed"),
}
ACCEPTED, REFUSED, ERROR = OUTCOMES[EDGE_REQUESTS]
SENT, FAILED = OUTCOMES[PUSH_RESULTS]
NONE = "none"  # the reason of an accepted request or a sent push
INTERNAL = "internal"  # the reason of an edge error that is no refusal (a bug, NATS away ...)


def emit(metric: str, **labels: str) -> dict[str, Any]:
    """Write one log line counted by ``metric``; returns it (as a dict)."""
    if set(labels) != set(FIELDS[metric]):
        raise ValueError(f"{metric} takes {FIELDS[metric]}, not {sorted(labels)}")
    if labels["outcome"] not in OUTCOMES[metric]:
        raise ValueError(f"{metric}: unknown outcome {labels['outcome']!r}")
    entry = {
        "severity": "INFO",
        "message": f"{metric} " + " ".join(f"{k}={labels[k]}" for k in FIELDS[metric]),
        "metric": metric,
        **{k: str(labels[k]) for k in FIELDS[metric]},
    }
    sys.stdout.write(json.dumps(entry, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return entry


def edge_request(function: str, outcome: str, reason: str | None = None) -> dict[str, Any]:
    return emit(EDGE_REQUESTS, function=function, outcome=outcome, reason=reason or NONE)


def push_result(kind: str, ok: bool, code: str | None = None) -> dict[str, Any]:
    return emit(PUSH_RESULTS, kind=kind, outcome=SENT if ok else FAILED, reason=NONE if ok else (code or "UNKNOWN"))
