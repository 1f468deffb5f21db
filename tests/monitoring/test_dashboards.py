"""The dashboards (monitoring/dashboards/): Grafana JSON models and Cloud Monitoring
dashboards, written by monitoring/dashboards/build.py.

- every file loads and has the structure its tool needs (Grafana: a Prometheus data source
  template variable, panels on the 24-column grid, each query a target with a refId; Cloud
  Monitoring: a mosaicLayout of 48 columns whose tiles hold a chart or a scorecard with a
  prometheusQuery), and both formats show the same panels with the same queries;
- the files are what build.py writes (no hand edits that the next build would lose);
- every query names only catalogued metrics with their labels and listed label values, no
  recording rule (the Cloud Monitoring dashboards must work without a rule evaluator), and
  parses (promtool, as recording rules of a generated file);
- together they show what issue 16 asks for: payments per step, latency per step, lag, DLQ,
  NATS cluster health, Firestore retries, card approvals, pushes, edge refusals, the outbox
  and the audit.

Companion tests show an unknown metric, a wrong label value and a query that does not parse
being reported.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import defaultdict

import pytest

from tests.monitoring import catalogue as mon
from tests.monitoring import queries as qs
from tests.monitoring.test_rules import need_promtool

GRAFANA_FILES = qs.grafana_files()
CLOUD_FILES = qs.cloud_files()


@pytest.fixture(scope="module")
def cat() -> mon.Catalogue:
    return mon.load_catalogue()


def load_build():
    spec = importlib.util.spec_from_file_location("dashboards_build", qs.DASHBOARDS / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_there_are_dashboards_in_both_formats_with_the_same_names():
    assert {p.name for p in GRAFANA_FILES} == {p.name for p in CLOUD_FILES}
    assert {p.stem for p in GRAFANA_FILES} >= {"payments", "pipeline", "cards"}


def test_the_files_are_what_build_py_writes():
    build = load_build()
    written = build.files()
    assert set(written) == set(GRAFANA_FILES) | set(CLOUD_FILES)
    stale = [str(p.relative_to(mon.REPO)) for p, text in written.items() if p.read_text() != text]
    assert stale == [], "run `.venv/bin/python monitoring/dashboards/build.py`"


# ---- structure --------------------------------------------------------------------------
@pytest.mark.parametrize("path", GRAFANA_FILES, ids=[p.name for p in GRAFANA_FILES])
def test_a_grafana_dashboard_has_a_prometheus_datasource_variable_and_well_placed_panels(path):
    d = json.loads(path.read_text())
    assert d["title"] and d["uid"].startswith("fjordbank-") and isinstance(d["schemaVersion"], int)
    (var,) = [v for v in d["templating"]["list"] if v["type"] == "datasource"]
    assert var["name"] == "datasource" and var["query"] == "prometheus"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in d["panels"]:
        assert panel["title"] and panel["type"] in ("timeseries", "stat")
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        g = panel["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["w"] > 0 and g["h"] > 0, panel["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        for t in panel["targets"]:
            assert t["expr"].strip() and t["datasource"] == panel["datasource"]


@pytest.mark.parametrize("path", CLOUD_FILES, ids=[p.name for p in CLOUD_FILES])
def test_a_cloud_monitoring_dashboard_is_a_mosaic_of_promql_widgets(path):
    d = json.loads(path.read_text())
    assert d["displayName"]
    assert set(d) <= {"displayName", "mosaicLayout", "labels", "dashboardFilters", "description"}
    layout = d["mosaicLayout"]
    assert layout["columns"] == 48
    cells: set[tuple[int, int]] = set()
    for tile in layout["tiles"]:
        assert 0 <= tile["xPos"] and tile["xPos"] + tile["width"] <= 48 and tile["height"] > 0
        mine = {
            (x, y)
            for x in range(tile["xPos"], tile["xPos"] + tile["width"])
            for y in range(tile["yPos"], tile["yPos"] + tile["height"])
        }
        assert not mine & cells, f"{tile['widget']['title']} overlaps another tile"
        cells |= mine
        widget = tile["widget"]
        kinds = set(widget) - {"title"}
        assert kinds in ({"xyChart"}, {"scorecard"}), kinds
        queries = (
            [ds["timeSeriesQuery"] for ds in widget["xyChart"]["dataSets"]]
            if "xyChart" in widget
            else [widget["scorecard"]["timeSeriesQuery"]]
        )
        assert queries
        for query in queries:
            assert set(query) <= {"prometheusQuery", "unitOverride"} and query["prometheusQuery"].strip()


def test_both_formats_show_the_same_panels_with_the_same_queries():
    def by_panel(queries):
        out = defaultdict(list)
        for q in queries:
            out[(q.file.split("/")[-1], q.panel)].append(q.expr)
        return dict(out)

    grafana = by_panel(q for p in GRAFANA_FILES for q in qs.grafana_queries(p))
    cloud = by_panel(q for p in CLOUD_FILES for q in qs.cloud_queries(p))
    # a Cloud Monitoring scorecard shows one query: the first of its Grafana stat panel
    assert set(grafana) == set(cloud)
    for key, exprs in cloud.items():
        assert exprs == grafana[key][: len(exprs)], key


# ---- the queries ------------------------------------------------------------------------
QUERIES = qs.all_dashboard_queries()


def test_every_dashboard_query_names_catalogued_metrics_labels_and_values(cat):
    recorded = mon.recorded_names()
    known = qs.label_values(cat)
    problems = [
        f"{q.file} / {q.panel}: {p}"
        for q in QUERIES
        for p in [*mon.expr_problems(q.expr, cat, set()), *qs.label_value_problems(q.expr, cat, known)]
    ]
    assert problems == []
    uses_rules = [f"{q.file} / {q.panel}" for q in QUERIES if {r.name for r in mon.metric_refs(q.expr)} & recorded]
    assert uses_rules == [], "dashboards query raw metrics only (Cloud Monitoring has no rule evaluator)"


def test_every_dashboard_query_parses(tmp_path):
    need_promtool()
    exprs = sorted({q.expr for q in QUERIES})
    run = qs.promtool_parse(exprs, tmp_path)
    assert run.ok, run.output
    assert f"SUCCESS: {len(exprs)} rules found" in run.output


def test_the_dashboards_show_what_issue_16_asks_for():
    used = {r.name for q in QUERIES for r in mon.metric_refs(q.expr)}
    expected = {
        "fjb_payment_steps_total": "payments per step",
        "fjb_payment_step_seconds_bucket": "latency per step",
        "fjb_payment_final_seconds_bucket": "time to final",
        "fjb_consumer_lag": "lag",
        "nats_consumer_num_pending": "lag (broker)",
        "fjb_consumer_ack_pending": "acks pending",
        "fjb_messages_redelivered_total": "redeliveries",
        "fjb_messages_dead_lettered_total": "DLQ",
        "nats_stream_last_seq": "DLQ (broker)",
        "nats_varz_connections": "NATS servers",
        "nats_server_jetstream_disabled": "JetStream meta leader",
        "nats_server_total_message_bytes": "file store",
        "fjb_firestore_transaction_attempts_total": "Firestore retries",
        "fjb_card_decisions_total": "card approvals",
        "fjb_card_decision_seconds_bucket": "card decision latency",
        "logging_googleapis_com:user_fjb_push_results": "pushes",
        "logging_googleapis_com:user_fjb_edge_requests": "edge refusals",
        "fjb_outbox_pending": "outbox",
        "fjb_payments_open_oldest_age_seconds": "payments not final",
        "fjb_audit_last_success": "audit",
        "fjb_service_ready": "services ready",
    }
    missing = {name: what for name, what in expected.items() if name not in used}
    assert missing == {}


# ---- the checks find what is wrong ------------------------------------------------------
def test_a_query_with_an_unknown_metric_or_a_wrong_label_value_is_reported(cat):
    expr = (
        'sum by (kind) (rate(logging_googleapis_com:user_fjb_push_results{kind="payment"}[5m]))'
        ' + fjb_payments_open_oldest_age_seconds{state=~"requested|aproved"}'
        ' + fjb_consumer_lag{consumer="ledgr"} + fjb_typo_total'
    )
    assert mon.expr_problems(expr, cat, set()) == ["fjb_typo_total is not in monitoring/metrics.yaml"]
    problems = qs.label_value_problems(expr, cat)
    assert len(problems) == 3, problems
    assert "'payment' is not one of" in problems[0]
    assert "'aproved' is not one of" in problems[1]
    assert "'ledgr' is not one of" in problems[2]


def test_a_query_that_does_not_parse_is_reported(tmp_path):
    need_promtool()
    run = qs.promtool_parse(["sum(rate(up[5m]))", "sum by (job (up)"], tmp_path)
    assert not run.ok
    assert "query:check:n1" in run.output
