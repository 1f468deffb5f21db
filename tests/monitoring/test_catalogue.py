"""The metrics catalogue (monitoring/metrics.yaml) against the code and the running stack.

- Unit: every prometheus_client metric the code declares (read from its AST) is catalogued
  with its type and labels, and every catalogued service metric is still declared.
- Integration (`stack`): every metric a running service's /metrics exposes is catalogued,
  and every catalogued service metric is exposed by some service.

Each check has a companion test that plants a fault and sees the same check report it.
"""

from __future__ import annotations

import textwrap

import pytest
import requests

from fjordbank import topology
from tests.monitoring import catalogue as mon


@pytest.fixture(scope="module")
def cat() -> mon.Catalogue:
    return mon.load_catalogue()


# ---- the catalogue itself ---------------------------------------------------------------
def test_the_catalogue_is_well_formed(cat):
    assert mon.catalogue_problems(cat) == []
    assert cat.source("services"), "no service metrics catalogued"
    assert {"job", "instance"} <= set(cat.target_labels)


def test_the_catalogue_names_the_scrape_jobs_of_every_consumer_service(cat):
    assert cat.service_jobs == topology.SERVICES


def test_a_malformed_entry_is_reported():
    raw = {
        "sources": {
            "services": {
                "metrics": [
                    {"name": "fjb_x", "type": "counter", "labels": [], "meaning": "no _total"},
                    {"name": "fjb_y_total", "type": "gauge", "labels": []},
                    {"name": "fjb_z", "type": "histogramm", "labels": [], "meaning": "typo"},
                ]
            }
        },
        "missing": [{"name": "fjb_y_total"}],
        "scrape_jobs": {"services": {"jobs": []}},
    }
    cat = mon.Catalogue(
        metrics={
            "fjb_y_total": mon.Metric("fjb_y_total", "gauge", (), "services"),
        },
        missing=("fjb_y_total",),
        target_labels=(),
        service_jobs=(),
        raw=raw,
    )
    problems = "\n".join(mon.catalogue_problems(cat))
    assert "fjb_x: a counter is queried as <name>_total" in problems
    assert "services/fjb_y_total: no meaning" in problems
    assert "fjb_y_total: only counters end in _total" in problems
    assert "fjb_z: unknown type 'histogramm'" in problems
    assert "fjb_y_total is both catalogued and listed as missing" in problems


# ---- the code ---------------------------------------------------------------------------
def test_every_metric_the_code_declares_is_catalogued_and_every_catalogued_one_is_declared(cat):
    files = mon.code_files()
    assert any(p.name == "consumer.py" and p.parent.name == "runtime" for p in files)
    declared, unreadable = mon.declared_in_code(files)
    assert unreadable == [], "metrics the test cannot read statically: give them literal names and labels"
    assert declared, "the AST scan found no prometheus_client metric at all"
    assert mon.code_vs_catalogue(declared, cat) == []


def test_the_code_scan_reads_every_way_of_declaring_a_metric():
    source = textwrap.dedent(
        """
        import collections
        import prometheus_client as pc
        from prometheus_client import Counter, Histogram as H

        A = Counter("fjb_a_total", "a", ["consumer"])
        B = Counter("fjb_b", "b")                       # exposed as fjb_b_total
        C = H("fjb_c_seconds", "c", labelnames=("step",))
        D = pc.Gauge("fjb_d", "d", ["x", "y"])
        E = pc.Summary(name="e", documentation="e", namespace="fjb", subsystem="ledger")
        F = pc.Info("fjb_build", "f")
        G = collections.Counter("not a metric")         # not prometheus_client
        N = Counter(PREFIX + "_n", "dynamic")           # cannot be read
        """
    )
    declared, unreadable = mon.declared_in_source(source, "x.py")
    got = {(d.name, d.type, d.labels) for d in declared}
    assert got == {
        ("fjb_a_total", "counter", ("consumer",)),
        ("fjb_b_total", "counter", ()),
        ("fjb_c_seconds", "histogram", ("step",)),
        ("fjb_d", "gauge", ("x", "y")),
        ("fjb_ledger_e", "summary", ()),
        ("fjb_build_info", "info", ()),
    }
    assert unreadable == ["x.py:13: a counter whose name is not a literal string"]


def test_a_metric_missing_from_the_catalogue_or_gone_from_the_code_is_reported(cat):
    declared, _ = mon.declared_in_code(mon.code_files())
    new = mon.Declared("fjb_payment_steps_total", "counter", ("step", "outcome"), "run_services/ledger.py:1")
    relabelled = [
        mon.Declared(d.name, d.type, ("durable",), d.where) if d.name == "fjb_consumer_lag" else d for d in declared
    ]
    gone = [d for d in relabelled if d.name != "fjb_messages_failed_total"]
    problems = "\n".join(mon.code_vs_catalogue([*gone, new], cat))
    assert "run_services/ledger.py:1: fjb_payment_steps_total (counter) is not in monitoring/metrics.yaml" in problems
    assert "fjb_messages_failed_total is catalogued under services but no code declares it any more" in problems
    assert "fjb_consumer_lag has labels ['durable'] in the code, ['consumer'] in the catalogue" in problems


# ---- the running stack ------------------------------------------------------------------
@pytest.mark.stack
def test_every_running_service_exposes_only_catalogued_metrics_and_all_of_them(stack, cat):
    pages = {}
    for service in topology.SERVICES:
        resp = requests.get(f"http://127.0.0.1:{stack.s.service_ports[service]}/metrics", timeout=10)
        assert resp.status_code == 200, f"{service}: /metrics answered {resp.status_code}"
        pages[service] = mon.exposed_metrics(resp.text)
    assert all(any(n.startswith("fjb_") for n in page) for page in pages.values())
    assert mon.scrape_vs_catalogue(pages, cat, sources=("services", "python_runtime")) == []


def test_an_exposed_metric_missing_from_the_catalogue_or_a_catalogued_one_not_exposed_is_reported(cat):
    page = textwrap.dedent(
        """
        # HELP fjb_messages_processed_total Messages handled, by outcome
        # TYPE fjb_messages_processed_total counter
        fjb_messages_processed_total{consumer="ledger",outcome="ack"} 3.0
        # HELP fjb_messages_processed_created Messages handled, by outcome
        # TYPE fjb_messages_processed_created gauge
        fjb_messages_processed_created{consumer="ledger",outcome="ack"} 1.7e+09
        # HELP fjb_messages_failed_total Handler failures
        # TYPE fjb_messages_failed_total counter
        # HELP fjb_consumer_lag lag
        # TYPE fjb_consumer_lag gauge
        fjb_consumer_lag{consumer="ledger",stream="PAYMENTS"} 0.0
        # HELP fjb_ledger_retries_total Firestore retries
        # TYPE fjb_ledger_retries_total counter
        fjb_ledger_retries_total 2.0
        """
    )
    exposed = mon.exposed_metrics(page)
    assert set(exposed) == {
        "fjb_messages_processed_total",
        "fjb_messages_failed_total",  # a family without samples still counts as exposed
        "fjb_consumer_lag",
        "fjb_ledger_retries_total",
    }
    problems = "\n".join(mon.scrape_vs_catalogue({"ledger": exposed}, cat, sources=("services",)))
    assert "ledger exposes fjb_ledger_retries_total (counter), which is not in monitoring/metrics.yaml" in problems
    assert "ledger exposes fjb_consumer_lag with labels ['stream'] the catalogue does not list" in problems
    assert "fjb_processing_seconds (services) is catalogued but no running service exposes it" in problems
    assert "fjb_messages_processed_total (services)" not in problems
