"""The metrics catalogue (monitoring/metrics.yaml) against the code and the running stack.

- Unit: every prometheus_client metric the code declares (read from its AST) is catalogued
  with its type and labels, and every catalogued service metric is still declared.
- Integration (`stack`): every metric a running service's /metrics exposes is catalogued,
  and every catalogued service metric is exposed by some service, each source's by every
  job its `exposed_by` names; after a payment, a card authorisation and a scheduled audit
  the labelled series the rules use have samples.
- The log-based metrics of the functions (source functions_logs): their lines are checked
  by tests/unit/test_log_metrics.py, their terraform by tests/deploy/test_terraform_logging_metrics.py.

Each check has a companion test that plants a fault and sees the same check report it.
"""

from __future__ import annotations

import textwrap

import pytest
import requests

from devstack.settings import service_of
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
    new = mon.Declared("fjb_ledger_retries_total", "counter", ("step", "outcome"), "run_services/ledger.py:1")
    relabelled = [
        mon.Declared(d.name, d.type, ("durable",), d.where) if d.name == "fjb_consumer_lag" else d for d in declared
    ]
    gone = [d for d in relabelled if d.name not in ("fjb_messages_failed_total", "fjb_audit_problems")]
    problems = "\n".join(mon.code_vs_catalogue([*gone, new], cat))
    assert "run_services/ledger.py:1: fjb_ledger_retries_total (counter) is not in monitoring/metrics.yaml" in problems
    assert "fjb_messages_failed_total is catalogued under services but no code declares it any more" in problems
    assert "fjb_audit_problems is catalogued under ops_sweep but no code declares it any more" in problems
    assert "fjb_consumer_lag has labels ['durable'] in the code, ['consumer'] in the catalogue" in problems


# ---- the running stack ------------------------------------------------------------------
def metrics_pages(stack) -> dict[str, str]:
    """service -> its first instance's /metrics."""
    return {service: pages[0] for service, pages in instance_pages(stack).items()}


def instance_pages(stack) -> dict[str, list[str]]:
    """service -> the /metrics of each of its instances (ledger, ledger-2 ... with
    FJB_REPLICAS_*): a payment's series are on the instance that holds its partition."""
    pages: dict[str, list[str]] = {}
    for name, port in stack.s.service_ports.items():
        resp = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert resp.status_code == 200, f"{name}: /metrics answered {resp.status_code}"
        pages.setdefault(service_of(name), []).append(resp.text)
    return pages


@pytest.fixture(scope="module")
def traffic(stack, auth, as_user, ledger_admin, admin_db):
    """What makes the labelled series appear: an internal payment, a card authorisation,
    and a ledger audit's summary for the notifier's sweep (the audit-ledger job's code,
    run here; tests/integration/test_ops_sweep.py runs the job itself)."""
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.service_layer import audit
    from tests.support.app import new_customer
    from tests.support.bank import callables_for, processor
    from tests.support.cards import buy, new_cardholder
    from tests.support.clients import wait_for

    payer = new_customer(auth, as_user, ledger_admin, 10_000, 0)
    doc = payer.wait_final(payer.request_payment(payer.accounts[1], 1_000), timeout=60)
    assert doc["status"] == "completed", doc
    holder = new_cardholder(stack, auth, as_user, callables_for(stack), ledger_admin)
    assert buy(processor(stack), holder, 1_000)["approved"] is True
    if "fjb_audit_last_success" not in metrics_pages(stack)["notifier"]:
        audit.run_and_record(FirestoreDocuments(admin_db))
        wait_for(  # the notifier's next sweep (every 30 s) reads it
            lambda: "fjb_audit_last_success" in metrics_pages(stack)["notifier"],
            timeout=75,
            interval=1,
            what="the audit gauges on the notifier",
        )


@pytest.mark.stack
def test_every_running_service_exposes_only_catalogued_metrics_and_all_of_them(stack, cat, traffic):
    pages = {service: mon.exposed_metrics(text) for service, text in metrics_pages(stack).items()}
    assert all(any(n.startswith("fjb_") for n in page) for page in pages.values())
    assert mon.scrape_vs_catalogue(pages, cat, sources=("python_runtime", *cat.scraped_sources())) == []
    assert mon.exposure_problems(pages, cat) == []


@pytest.mark.stack
def test_after_a_payment_and_a_card_authorisation_the_series_the_rules_use_have_samples(stack, traffic):
    series = {
        service: {(name, frozenset(labels.items())) for text in texts for name, labels, _v in mon.samples(text)}
        for service, texts in instance_pages(stack).items()
    }

    def has(service: str, name: str, **labels: str) -> bool:
        return any(n == name and set(labels.items()) <= set(ls) for n, ls in series[service])

    expected = [
        ("screening", "fjb_payment_steps_total", {"step": "screening", "outcome": "approved"}),
        ("screening", "fjb_payment_step_seconds_bucket", {"step": "screening", "le": "+Inf"}),
        ("ledger", "fjb_payment_steps_total", {"step": "ledger", "outcome": "completed"}),
        ("ledger", "fjb_payment_final_seconds_bucket", {"kind": "internal", "outcome": "completed", "le": "2.0"}),
        (
            "ledger",
            "fjb_firestore_transaction_attempts_total",
            {"operation": "ledger_post_batch", "result": "committed"},
        ),
        ("notifier", "fjb_firestore_transaction_attempts_total", {"operation": "notifier_project"}),
        ("cards", "fjb_card_decisions_total", {"decision": "approved", "reason": "none"}),
        ("cards", "fjb_card_decision_seconds_bucket", {"le": "0.5"}),
        ("cards", "fjb_card_api_requests_total", {"path": "/v1/authorizations", "status": "200"}),
        ("cards", "fjb_firestore_transaction_attempts_total", {"operation": "cards_authorize", "result": "committed"}),
        ("notifier", "fjb_payments_open_oldest_age_seconds", {"state": "approved"}),
        ("notifier", "fjb_outbox_pending", {"kind": "publish_pending"}),
        ("notifier", "fjb_outbox_oldest_age_seconds", {"kind": "cards"}),
        ("notifier", "fjb_audit_last_success", {}),
        ("notifier", "fjb_audit_last_run_timestamp_seconds", {}),
        ("notifier", "fjb_audit_problems", {"kind": "conservation"}),
        ("notifier", "fjb_ops_sweep_last_success_timestamp_seconds", {}),
    ]
    missing = [f"{service}: {name}{labels}" for service, name, labels in expected if not has(service, name, **labels)]
    assert missing == []
    for service in topology.SERVICES:
        assert ("fjb_service_ready", frozenset()) in series[service], service


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


def test_a_source_metric_missing_from_one_of_its_jobs_is_reported(cat):
    page = textwrap.dedent(
        """
        # HELP fjb_outbox_pending Outbox documents not yet published, by kind
        # TYPE fjb_outbox_pending gauge
        fjb_outbox_pending{kind="cards"} 0.0
        """
    )
    pages = {"notifier": mon.exposed_metrics(page)}
    problems = "\n".join(mon.exposure_problems(pages, cat))
    assert "notifier does not expose fjb_audit_last_success (ops_sweep)" in problems
    assert "notifier does not expose fjb_outbox_pending" not in problems
    assert "payment_steps: no /metrics page of ledger" in problems


def test_a_log_based_metric_is_named_as_promql_names_it():
    raw = {
        "sources": {
            "functions_logs": {
                "metrics": [
                    {
                        "name": "fjb_edge_requests_total",
                        "type": "counter",
                        "labels": [],
                        "meaning": "m",
                        "log_metric": "fjb_edge_requests",
                    },
                    {
                        "name": "logging_googleapis_com:user_fjb_push_results",
                        "type": "counter",
                        "labels": [],
                        "meaning": "m",
                        "log_metric": "fjb_push_results",
                    },
                ],
                "exposed_by": ["functions"],
            }
        },
        "scrape_jobs": {"services": {"jobs": ["notifier"]}},
    }
    cat = mon.Catalogue(metrics={}, missing=(), target_labels=(), service_jobs=("notifier",), raw=raw)
    problems = mon.catalogue_problems(cat)
    assert problems == [
        "functions_logs: exposed_by names 'functions', not a service scrape job",
        "fjb_edge_requests_total: a log-based metric is queried as logging_googleapis_com:user_fjb_edge_requests",
    ]
