"""Fjordbank's dashboards, declared once and written as Grafana and Cloud Monitoring JSON.

    .venv/bin/python monitoring/dashboards/build.py          # write grafana/*.json, cloud-monitoring/*.json
    .venv/bin/python monitoring/dashboards/build.py --check  # exit 1 if a written file is not what this builds

Each dashboard is a list of panels; each panel has one or more PromQL queries. The same
queries go into both formats:

* grafana/NAME.json: a Grafana dashboard JSON model (schemaVersion 39), the Prometheus data
  source a template variable (`datasource`), so it imports into any Grafana with a
  Prometheus-compatible source (GMP's frontend, a local Prometheus);
* cloud-monitoring/NAME.json: a Cloud Monitoring dashboard (the `Dashboard` resource of
  the Monitoring API, mosaicLayout, 48 columns) whose widgets query with
  timeSeriesQuery.prometheusQuery; `gcloud monitoring dashboards create
  --config-from-file=...` or terraform's google_monitoring_dashboard (dashboard_json)
  loads it.

The queries name raw metrics only, no recording rule, so the Cloud Monitoring dashboards
work without a rule evaluator, and every name is in monitoring/metrics.yaml
(tests/monitoring/test_dashboards.py checks each name and label against the catalogue, and
each query's syntax with promtool). Histogram `le` values as prometheus_client renders them
("2.0", "0.5"; see monitoring/rules/slo.rules.yaml). The functions' metrics
(logging_googleapis_com:user_*) and the NATS exporter's (nats_*) exist only in production.

Edit the panels here and run the script; do not edit the JSON by hand (the test fails
when the files and this script differ).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVICES = "screening|ledger|clearing|notifier|cards|insights"  # fjordbank.topology.SERVICES


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""  # Grafana legendFormat ({{label}}); Cloud Monitoring shows the labels itself


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"  # Grafana unit id; see CLOUD_UNITS for Cloud Monitoring
    kind: str = "timeseries"  # or "stat": one current value
    description: str = ""


@dataclass(frozen=True)
class Dashboard:
    name: str  # the files' name and Grafana uid suffix
    title: str
    description: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


def q(expr: str, legend: str = "") -> Query:
    return Query(" ".join(expr.split()), legend)


# Grafana unit -> Cloud Monitoring unitOverride (UCUM)
CLOUD_UNITS = {"short": "1", "ops": "1/s", "s": "s", "percentunit": "1", "bytes": "By"}


def _ratio_within(metric: str, matchers: str, le: str, window: str) -> str:
    bucket = ",".join(m for m in (matchers, f'le="{le}"') if m)
    count = f"{{{matchers}}}" if matchers else ""
    return f"sum(rate({metric}_bucket{{{bucket}}}[{window}])) / sum(rate({metric}_count{count}[{window}]))"


def _slo_panels(
    what: str, budget_of: str, histogram: tuple[str, str, str], error_budget: float, description: str
) -> tuple[Panel, Panel]:
    """An SLO's two panels: the share within its bound over 1 h and 1 d, and the 30 days'
    error budget left. ``histogram`` = (metric, matchers, the bucket bound as rendered)."""
    metric, matchers, le = histogram
    objective = f"{100 * (1 - error_budget):g} %"
    return (
        Panel(
            f"SLO: {what} (objective {objective})",
            (
                q(_ratio_within(metric, matchers, le, "1h"), "1h"),
                q(_ratio_within(metric, matchers, le, "1d"), "1d"),
            ),
            unit="percentunit",
            description=description,
        ),
        Panel(
            f"Error budget left, {budget_of} (30 days)",
            (q(f"1 - (1 - {_ratio_within(metric, matchers, le, '30d')}) / {error_budget:g}", "budget left"),),
            unit="percentunit",
            kind="stat",
            description="1 = untouched, 0 = spent, below 0 = the SLO is missed.",
        ),
    )


def _quantiles(metric: str, by: str, legend: str) -> tuple[Query, ...]:
    return tuple(
        q(
            f"histogram_quantile({p}, sum by ({by}, le) (rate({metric}_bucket[5m])))",
            f"p{int(p * 100)} {legend}",
        )
        for p in (0.5, 0.99)
    )


PAYMENTS = Dashboard(
    name="payments",
    title="Fjordbank: payments",
    description="Payments per step, latency per step, time to final and its SLO, open payments, "
    "the outbox, the ledger audit, Firestore contention, the edge and pushes. docs/slo.md, docs/runbooks/.",
    panels=(
        Panel(
            "Payment step results per second",
            (q("sum by (step, outcome) (rate(fjb_payment_steps_total[5m]))", "{{step}} {{outcome}}"),),
            unit="ops",
            description="fjb_payment_steps_total: screening approved/rejected, ledger reserved/completed/failed, "
            "clearing submitted/settled/returned.",
        ),
        Panel(
            "Latency per step (event published to result published)",
            _quantiles("fjb_payment_step_seconds", "step", "{{step}}"),
            unit="s",
        ),
        Panel(
            "Time to final (request to completed or failed)",
            _quantiles("fjb_payment_final_seconds", "kind", "{{kind}}"),
            unit="s",
            description="Observed by the ledger once per payment. External payments wait for the other bank.",
        ),
        *_slo_panels(
            "internal payments final within 2 s",
            "internal payments",
            ("fjb_payment_final_seconds", 'kind="internal"', "2.0"),
            0.001,
            "docs/slo.md SLO 1; burn-rate alerts FjbInternalPaymentLatencyBudgetBurn(Slow).",
        ),
        Panel(
            "Oldest open payment per state",
            (q("max by (state) (fjb_payments_open_oldest_age_seconds)", "{{state}}"),),
            unit="s",
            description="The ops sweep (notifier). FjbPaymentNotFinal: 15 min; received 30 min; submitted 4 days.",
        ),
        Panel(
            "Outbox and publish-pending backlog",
            (q("max by (kind) (fjb_outbox_pending)", "{{kind}}"),),
            description="Events not yet published (relay-outbox) and payment requests the edge could not "
            "publish (publish_pending: submit-due-payments).",
        ),
        Panel(
            "Oldest unpublished outbox event",
            (q("max by (kind) (fjb_outbox_oldest_age_seconds)", "{{kind}}"),),
            unit="s",
        ),
        Panel(
            "Ledger audit: last result (1 = sound)",
            (q("min(fjb_audit_last_success)", "last audit ok"),),
            kind="stat",
        ),
        Panel(
            "Ledger audit: time since the last run",
            (q("time() - max(fjb_audit_last_run_timestamp_seconds)", "since last audit"),),
            unit="s",
            kind="stat",
        ),
        Panel(
            "Ledger audit: problems by kind",
            (q("max by (kind) (fjb_audit_problems)", "{{kind}}"),),
        ),
        Panel(
            "Firestore transaction attempts retried or aborted",
            (
                q(
                    "sum by (operation, result) "
                    '(rate(fjb_firestore_transaction_attempts_total{result=~"retried|aborted"}[5m]))',
                    "{{operation}} {{result}}",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Hot-account contention: ledger attempts retried or aborted",
            (
                q(
                    'sum(rate(fjb_firestore_transaction_attempts_total{operation="ledger_post_batch",result=~"retried|aborted"}[5m]))'
                    ' / sum(rate(fjb_firestore_transaction_attempts_total{operation="ledger_post_batch"}[5m]))',
                    "ledger_post_batch",
                ),
            ),
            unit="percentunit",
            description="FjbHotAccountContention fires over 20 % for 10 minutes.",
        ),
        Panel(
            "Edge requests per function and outcome",
            (
                q(
                    "sum by (function, outcome) (rate(logging_googleapis_com:user_fjb_edge_requests[5m]))",
                    "{{function}} {{outcome}}",
                ),
            ),
            unit="ops",
            description="Log-based metric of the Firebase functions (production only).",
        ),
        Panel(
            "Edge refusals and errors by reason",
            (
                q(
                    "sum by (outcome, reason) "
                    '(rate(logging_googleapis_com:user_fjb_edge_requests{outcome=~"refused|error"}[5m]))',
                    "{{outcome}} {{reason}}",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Pushes sent and failed per kind",
            (
                q(
                    "sum by (kind, outcome) (rate(logging_googleapis_com:user_fjb_push_results[5m]))",
                    "{{kind}} {{outcome}}",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Push failures by FCM error code",
            (
                q(
                    'sum by (reason) (rate(logging_googleapis_com:user_fjb_push_results{outcome="failed"}[5m]))',
                    "{{reason}}",
                ),
            ),
            unit="ops",
            description="UNREGISTERED is a device that is gone (normal churn); FjbPushFailuresHigh leaves it out.",
        ),
    ),
)

PIPELINE = Dashboard(
    name="pipeline",
    title="Fjordbank: pipeline and NATS",
    description="The consumer services and their NATS consumers (lag, acks pending, redeliveries, dead "
    "letters) and the JetStream cluster's health. docs/runbooks/.",
    panels=(
        Panel(
            "Service instances up (scraped)",
            (q(f'sum by (job) (up{{job=~"{SERVICES}"}})', "{{job}}"),),
        ),
        Panel(
            "Service instances ready (consumers bound)",
            (q(f'sum by (job) (fjb_service_ready{{job=~"{SERVICES}"}})', "{{job}}"),),
        ),
        Panel(
            "Messages handled per consumer and outcome",
            (q("sum by (consumer, outcome) (rate(fjb_messages_processed_total[5m]))", "{{consumer}} {{outcome}}"),),
            unit="ops",
        ),
        Panel(
            "Consumer lag (messages not yet delivered)",
            (
                q("max by (consumer) (fjb_consumer_lag)", "{{consumer}} (service)"),
                q("max by (consumer_name) (nats_consumer_num_pending)", "{{consumer_name}} (broker)"),
            ),
        ),
        Panel(
            "Acks pending (delivered, not acknowledged; limit 2000)",
            (
                q("max by (consumer) (fjb_consumer_ack_pending)", "{{consumer}} (service)"),
                q("max by (consumer_name) (nats_consumer_num_ack_pending)", "{{consumer_name}} (broker)"),
            ),
        ),
        Panel(
            "Redeliveries",
            (
                q("sum by (consumer) (rate(fjb_messages_redelivered_total[5m]))", "{{consumer}} per s"),
                q("max by (consumer_name) (nats_consumer_num_redelivered)", "{{consumer_name}} outstanding"),
            ),
        ),
        Panel(
            "Dead letters (last hour)",
            (
                q("sum by (consumer) (increase(fjb_messages_dead_lettered_total[1h]))", "{{consumer}}"),
                q('max(increase(nats_stream_last_seq{stream_name="DLQ"}[1h]))', "DLQ stream"),
            ),
            description=(
                "bankctl dlq list; bankctl dlq replay SEQ --by OFFICER --note REASON"
                " (docs/runbooks/FjbMessageDeadLettered.md)."
            ),
        ),
        Panel(
            "Messages in the DLQ stream",
            (q('max(nats_stream_total_messages{stream_name="DLQ"})', "DLQ"),),
            kind="stat",
        ),
        Panel(
            "Handler time per message",
            _quantiles("fjb_processing_seconds", "consumer", "{{consumer}}"),
            unit="s",
        ),
        Panel(
            "NATS servers answering (of 3)",
            (
                q("count(nats_server_jetstream_disabled)", "servers"),
            ),  # /jsz: a hung server drops out (/varz keeps its last values)
            kind="stat",
        ),
        Panel(
            "JetStream meta leader present",
            (q('count(nats_server_jetstream_disabled{is_meta_leader="true"})', "meta leader"),),
            kind="stat",
        ),
        Panel(
            "NATS client connections per server",
            (q("sum by (server_id) (nats_varz_connections)", "{{server_id}}"),),
        ),
        Panel(
            "JetStream file store used per server",
            (
                q(
                    "max by (server_name) (nats_server_total_message_bytes / (nats_server_max_storage > 0))",
                    "{{server_name}}",
                ),
            ),
            unit="percentunit",
            description=(
                "The stream budgets alone are 80 %. NatsJetStreamStoreAlmostFull fires when the store, "
                "with every stream at its budget, would be over 90 %; one stream at its own budget is "
                "NatsStreamNearBudget's."
            ),
        ),
        Panel(
            "Service memory (resident)",
            (q(f'max by (job) (process_resident_memory_bytes{{job=~"{SERVICES}"}})', "{{job}}"),),
            unit="bytes",
        ),
    ),
)

CARDS = Dashboard(
    name="cards",
    title="Fjordbank: cards",
    description="Card authorisations decided by the card service: approvals, declines by reason, decision "
    "latency and its SLO. docs/slo.md, docs/runbooks/.",
    panels=(
        Panel(
            "Card decisions per second",
            (q("sum by (decision) (rate(fjb_card_decisions_total[5m]))", "{{decision}}"),),
            unit="ops",
        ),
        Panel(
            "Declines by reason",
            (q('sum by (reason) (rate(fjb_card_decisions_total{decision="declined"}[5m]))', "{{reason}}"),),
            unit="ops",
        ),
        Panel(
            "Share declined (15 minutes, and the day's)",
            (
                q(
                    'sum(rate(fjb_card_decisions_total{decision="declined"}[15m]))'
                    " / sum(rate(fjb_card_decisions_total[15m]))",
                    "15m",
                ),
                q(
                    'sum(rate(fjb_card_decisions_total{decision="declined"}[1d]))'
                    " / sum(rate(fjb_card_decisions_total[1d]))",
                    "1d",
                ),
            ),
            unit="percentunit",
            description="FjbCardDeclinesSpike: over 10 % and over twice the day's share.",
        ),
        Panel(
            "Decision latency",
            (
                q("histogram_quantile(0.5, sum by (le) (rate(fjb_card_decision_seconds_bucket[5m])))", "p50"),
                q("histogram_quantile(0.99, sum by (le) (rate(fjb_card_decision_seconds_bucket[5m])))", "p99"),
            ),
            unit="s",
        ),
        *_slo_panels(
            "authorisations decided within 500 ms",
            "card decisions",
            ("fjb_card_decision_seconds", "", "0.5"),
            0.01,
            "docs/slo.md SLO 2; burn-rate alerts FjbCardDecisionLatencyBudgetBurn(Slow).",
        ),
        Panel(
            "Card Firestore transactions by result",
            (
                q(
                    "sum by (operation, result) (rate(fjb_firestore_transaction_attempts_total"
                    '{operation=~"cards_authorize|cards_capture|cards_refund|cards_increment|cards_release"}[5m]))',
                    "{{operation}} {{result}}",
                ),
            ),
            unit="ops",
        ),
    ),
)

DASHBOARDS = (PAYMENTS, PIPELINE, CARDS)


# ---- Grafana ------------------------------------------------------------------------------
def _grafana_panel(panel: Panel, pid: int, x: int, y: int, w: int, h: int) -> dict:
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    out: dict = {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": datasource,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": datasource,
                "expr": query.expr,
                "legendFormat": query.legend or "__auto",
                "range": True,
            }
            for i, query in enumerate(panel.queries)
        ],
    }
    if panel.kind == "stat":
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    else:
        out["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
    return out


def grafana(d: Dashboard) -> dict:
    panels = []
    x = y = 0
    row_height = 0
    for pid, panel in enumerate(d.panels, start=1):
        w, h = (6, 5) if panel.kind == "stat" else (12, 8)
        if x + w > 24:
            x, y = 0, y + row_height
            row_height = 0
        panels.append(_grafana_panel(panel, pid, x, y, w, h))
        x += w
        row_height = max(row_height, h)
    return {
        "uid": f"fjordbank-{d.name}",
        "title": d.title,
        "description": d.description,
        "tags": ["fjordbank"],
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "refresh": "30s",
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                }
            ]
        },
        "panels": panels,
    }


# ---- Cloud Monitoring -----------------------------------------------------------------------
def _cloud_widget(panel: Panel) -> dict:
    unit = CLOUD_UNITS[panel.unit]
    if panel.kind == "stat":
        return {
            "title": panel.title,
            "scorecard": {"timeSeriesQuery": {"prometheusQuery": panel.queries[0].expr, "unitOverride": unit}},
        }
    return {
        "title": panel.title,
        "xyChart": {
            "dataSets": [
                {"timeSeriesQuery": {"prometheusQuery": query.expr, "unitOverride": unit}, "plotType": "LINE"}
                for query in panel.queries
            ],
            "chartOptions": {"mode": "COLOR"},
            "yAxis": {"scale": "LINEAR"},
        },
    }


def cloud_monitoring(d: Dashboard) -> dict:
    tiles = []
    x = y = 0
    row_height = 0
    for panel in d.panels:
        w, h = (12, 10) if panel.kind == "stat" else (24, 16)
        if x + w > 48:
            x, y = 0, y + row_height
            row_height = 0
        tiles.append({"xPos": x, "yPos": y, "width": w, "height": h, "widget": _cloud_widget(panel)})
        x += w
        row_height = max(row_height, h)
    return {
        "displayName": d.title,
        "labels": {"fjordbank": ""},
        "mosaicLayout": {"columns": 48, "tiles": tiles},
    }


# ---- files --------------------------------------------------------------------------------------
def render(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def files() -> dict[Path, str]:
    """Every dashboard file this script writes, with its content."""
    out = {}
    for d in DASHBOARDS:
        out[HERE / "grafana" / f"{d.name}.json"] = render(grafana(d))
        out[HERE / "cloud-monitoring" / f"{d.name}.json"] = render(cloud_monitoring(d))
    return out


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, text in files().items():
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path.relative_to(HERE))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(HERE)}")
    if stale:
        print(f"not what build.py builds: {', '.join(map(str, stale))} (run monitoring/dashboards/build.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
