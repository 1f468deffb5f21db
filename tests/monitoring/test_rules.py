"""The alert and recording rules (monitoring/rules/*.rules.yaml) and their promtool unit
tests (*.test.yaml).

- `promtool check rules` and `promtool test rules` pass on every file (promtool from
  Debian's prometheus package, installed into .monitoring-tools/ by
  scripts/monitoring_tools.sh; without it these tests fail and say so);
- every alert has a unit test that shows it firing and one that shows it quiet (but
  Watchdog, the heartbeat that always fires);
- every expression names only catalogued metrics (monitoring/metrics.yaml) or recording
  rules, and alert expressions name no recording rule (Cloud Monitoring alert policies
  are built from them and evaluate them on their own); label values in matchers, and in
  the unit tests' input series, are ones the catalogue lists (or a topology consumer);
- the service jobs and the ack-pending threshold in the rules follow fjordbank.topology; the
  streams' budgets in the NATS rules are STREAM_BUDGETS (fjordbank/adapters/jetstream_setup.py),
  the partition count is topology.PAYMENT_PARTITIONS, and the streams a durable is watched on
  are the topology consumers'.

Companion tests show promtool reporting a broken rules file and an expected alert that
does not fire, and the catalogue check reporting an unknown metric or label.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest
import yaml

from fjordbank import topology
from fjordbank.adapters.jetstream_setup import STREAM_BUDGETS
from tests.monitoring import catalogue as mon
from tests.monitoring import queries as qs

RULE_FILES = mon.rule_files()
TEST_FILES = mon.rule_test_files()


def ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def need_promtool() -> None:
    """Fail (not skip) without promtool, saying how to install it."""
    if not (mon.PROMTOOL.is_file() and mon.PROMTOOL.stat().st_mode & 0o111):
        pytest.fail(
            f"promtool is not installed at {mon.PROMTOOL.relative_to(mon.REPO)}; run `{mon.INSTALL_PROMTOOL}` "
            "(it unpacks promtool from Debian's prometheus package; the bootstrap runs it)",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def cat() -> mon.Catalogue:
    return mon.load_catalogue()


def alerts_of(path: Path) -> list[dict]:
    return [r for r in mon.rules_of(path) if "alert" in r]


def test_there_are_rule_files_each_with_its_unit_tests():
    assert {p.name for p in RULE_FILES} >= {
        f"{n}.rules.yaml" for n in ("pipeline", "nats", "payments", "edge", "cards", "slo")
    }
    for path in RULE_FILES:
        test_file = path.with_name(path.name.removesuffix(".yaml") + ".test.yaml")
        assert test_file in TEST_FILES, f"{path.name} has no {test_file.name}"
        assert yaml.safe_load(test_file.read_text())["rule_files"] == [path.name]


# ---- promtool ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", RULE_FILES, ids=ids(RULE_FILES))
def test_promtool_check_rules_passes(path):
    need_promtool()
    run = mon.check_rules(path)
    assert run.ok, run.output
    assert "SUCCESS" in run.output


@pytest.mark.parametrize("path", TEST_FILES, ids=ids(TEST_FILES))
def test_promtool_unit_tests_pass(path):
    need_promtool()
    run = mon.run_rule_tests(path)
    assert run.ok, run.output
    assert "SUCCESS" in run.output


def test_a_rules_file_with_a_syntax_error_is_reported(tmp_path):
    need_promtool()
    bad_expr = tmp_path / "bad-expr.rules.yaml"
    bad_expr.write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum by (consumer (fjb_consumer_lag) > 1\n"
    )
    run = mon.check_rules(bad_expr)
    assert not run.ok
    assert "FAILED" in run.output and "parse error" in run.output

    bad_yaml = tmp_path / "bad-yaml.rules.yaml"
    bad_yaml.write_text("groups:\n  - name: g\n    rules:\n      - alert: A\n    expr: up == 0\n   for: 5m\n")
    assert not mon.check_rules(bad_yaml).ok


def test_a_unit_test_whose_expected_alert_does_not_fire_is_reported(tmp_path):
    need_promtool()
    shutil.copy(mon.RULES / "pipeline.rules.yaml", tmp_path / "pipeline.rules.yaml")
    every_service_up = "\n".join(
        f"      - series: 'up{{job=\"{s}\",instance=\"{s}-0\"}}'\n        values: '1x10'" for s in topology.SERVICES
    )
    (tmp_path / "wrong.test.yaml").write_text(
        f"""rule_files: [pipeline.rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
{every_service_up}
      - series: 'fjb_consumer_lag{{job="ledger",instance="ledger-0",consumer="ledger"}}'
        values: '0x10'
    alert_rule_test:
      - eval_time: 5m
        alertname: FjbServiceDown
        exp_alerts:
          - exp_labels: {{severity: critical, job: ledger}}
"""
    )
    run = mon.run_rule_tests(tmp_path / "wrong.test.yaml")
    assert not run.ok
    assert "FAILED" in run.output and "FjbServiceDown" in run.output


# ---- every alert shown firing and quiet -------------------------------------------------
def alert_cases() -> dict[str, dict[str, bool]]:
    """alert -> {"fires": shown firing?, "quiet": shown quiet?} over all unit tests."""
    seen: dict[str, dict[str, bool]] = {}
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for t in case.get("alert_rule_test") or ():
                entry = seen.setdefault(t["alertname"], {"fires": False, "quiet": False})
                entry["fires" if t.get("exp_alerts") else "quiet"] = True
    return seen


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_keeps_it_quiet():
    cases = alert_cases()
    alerts = [a["alert"] for p in RULE_FILES for a in alerts_of(p)]
    assert len(alerts) == len(set(alerts)), "two alerts share a name"
    for name in alerts:
        assert cases.get(name, {}).get("fires"), f"no unit test shows {name} firing"
        if name in mon.ALWAYS_FIRING:
            assert not cases[name]["quiet"], f"{name} always fires: a unit test shows it quiet"
            continue
        assert cases.get(name, {}).get("quiet"), f"no unit test shows {name} staying quiet"
    assert set(cases) <= set(alerts), f"unit tests of alerts that do not exist: {set(cases) - set(alerts)}"


def test_every_recording_rule_has_a_unit_test():
    tested = {
        mon.metric_refs(t["expr"])[0].name
        for path in TEST_FILES
        for case in yaml.safe_load(path.read_text())["tests"]
        for t in case.get("promql_expr_test") or ()
    }
    untested = mon.recorded_names() - tested
    assert untested == set(), f"recording rules without a promql_expr_test: {untested}"


# ---- only catalogued metrics ------------------------------------------------------------
@pytest.mark.parametrize("path", RULE_FILES, ids=ids(RULE_FILES))
def test_rules_name_only_catalogued_metrics_and_their_labels(cat, path):
    recorded = mon.recorded_names()
    problems = [
        f"{r.get('alert') or r.get('record')}: {p}"
        for r in mon.rules_of(path)
        for p in mon.expr_problems(r["expr"], cat, recorded)
    ]
    assert problems == []
    assert all(
        r["labels"]["severity"] in mon.SEVERITIES for r in alerts_of(path) if r["alert"] not in mon.ALWAYS_FIRING
    )


def test_the_watchdog_always_fires_and_pages_nobody():
    """Watchdog, the alerting pipeline's heartbeat (alerting.rules.yaml): `vector(1)`, no
    `for:`, severity none (no person is paged by it; the Alertmanager sends it to the dead
    man's switch, which pages when it stops: tests/deploy/test_alertmanager.py). It is the
    only alert exempt from the quiet case and from the page/ticket severities."""
    (watchdog,) = [a for p in RULE_FILES for a in alerts_of(p) if a["alert"] in mon.ALWAYS_FIRING]
    assert watchdog["alert"] == "Watchdog"
    assert watchdog["expr"].strip() == "vector(1)"
    assert "for" not in watchdog and "keep_firing_for" not in watchdog
    assert watchdog["labels"] == {"severity": "none"}


@pytest.mark.parametrize("path", RULE_FILES, ids=ids(RULE_FILES))
def test_alert_expressions_stand_alone_without_recording_rules(path):
    recorded = mon.recorded_names()
    for alert in alerts_of(path):
        used = {r.name for r in mon.metric_refs(alert["expr"])} & recorded
        assert used == set(), f"{alert['alert']} uses recording rules {used}: inline them"


@pytest.mark.parametrize("path", TEST_FILES, ids=ids(TEST_FILES))
def test_unit_tests_feed_only_catalogued_series(cat, path):
    known = cat.queryable()
    for case in yaml.safe_load(path.read_text())["tests"]:
        for s in case["input_series"]:
            name = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", s["series"]).group(0)
            assert name in known, f"{path.name} ({case.get('name')}): {name} is not catalogued"


@pytest.mark.parametrize("path", RULE_FILES, ids=ids(RULE_FILES))
def test_rules_match_only_the_label_values_the_catalogue_lists(cat, path):
    """A typo in a matcher's value (kind="payment" for "payments") selects nothing: the
    rule stays quiet for ever. tests/monitoring/queries.py label_value_problems."""
    known = qs.label_values(cat)
    problems = [
        f"{r.get('alert') or r.get('record')}: {p}"
        for r in mon.rules_of(path)
        for p in qs.label_value_problems(r["expr"], cat, known)
    ]
    assert problems == []


@pytest.mark.parametrize("path", TEST_FILES, ids=ids(TEST_FILES))
def test_unit_tests_feed_series_with_the_label_values_the_code_gives(cat, path):
    known = qs.label_values(cat)
    problems = [
        f"{case.get('name')}: {p}"
        for case in yaml.safe_load(path.read_text())["tests"]
        for s in case["input_series"]
        for p in qs.label_value_problems(s["series"], cat, known)
    ]
    assert problems == []


def test_the_catalogue_check_reports_an_unknown_metric_or_label(cat):
    recorded = mon.recorded_names()
    # a metric the catalogue lists under `missing` (planted: the real list may be empty)
    cat = dataclasses.replace(cat, missing=(*cat.missing, "fjb_not_yet_total"))
    problems = mon.expr_problems(
        'sum by (step) (rate(fjb_not_yet_total[5m])) > 0 and on () fjb_consumer_lag{durable="ledger"} > 0'
        ' or rate(fjb_processing_seconds_bucket{le="0.1"}[5m]) > 1 or {__name__="up"} == 0 or fjb_typo > 0',
        cat,
        recorded,
    )
    assert problems == [
        "fjb_not_yet_total is not in monitoring/metrics.yaml (listed as missing: the code does not expose it yet)",
        "fjb_consumer_lag has no label 'durable' (catalogue: ['consumer'])",
        "a selector without a metric name cannot be checked against the catalogue",
        "fjb_typo is not in monitoring/metrics.yaml",
    ]


# ---- the rules follow the topology ------------------------------------------------------
def test_the_service_jobs_in_the_rules_are_the_topologys_services():
    expected = set(topology.SERVICES)
    for path in RULE_FILES:
        for rule in mon.rules_of(path):
            expr = rule["expr"]
            for regex in re.findall(r'job=~"([^"]*)"', expr):
                assert set(regex.split("|")) == expected, f"{rule.get('alert')}: job=~{regex!r}"
            listed = re.findall(r'label_replace\(vector\(1\), "job", "([^"]+)"', expr)
            if listed:
                assert sorted(listed) == sorted(expected), f"{rule.get('alert')}: {listed}"


def test_the_ack_pending_threshold_is_80_percent_of_every_consumers_max_ack_pending():
    (rule,) = [a for a in alerts_of(mon.RULES / "pipeline.rules.yaml") if a["alert"] == "FjbConsumerAckPendingHigh"]
    threshold = float(re.search(r"\)\s*>\s*([0-9.]+)\s*$", rule["expr"].strip()).group(1))
    assert {c.max_ack_pending for c in topology.CONSUMERS} == {threshold / 0.8}


# ---- the NATS rules follow the streams' budgets and the topology ------------------------
LIVE_LIMIT = "max by (stream_name) (nats_stream_limit_bytes > 0)"
_BUDGET = re.compile(r'label_replace\(vector\((\d+)\), "stream_name", "([^"]+)", "", ""\)')
_STREAMS = re.compile(r'stream_name=~"([^"]*)"')


def alert(path_name: str, name: str) -> dict:
    (rule,) = [a for a in alerts_of(mon.RULES / path_name) if a["alert"] == name]
    return rule


def budget_problems(expr: str, budgets: dict[str, int]) -> list[str]:
    """Each budget an expression writes out (after the live limit, `LIVE_LIMIT or
    label_replace(vector(BYTES), "stream_name", STREAM, ...) or ...`) against ``budgets``:
    a stream missing, one too many, or a number that differs."""
    blocks = expr.split(LIVE_LIMIT)[1:]
    if not blocks:
        return ["no budget in the expression"]
    problems = []
    for n, block in enumerate(blocks, 1):
        written = {stream: int(number) for number, stream in _BUDGET.findall(_limit_block(block))}
        for stream in sorted(budgets.keys() - written.keys()):
            problems.append(f"budget {n}: no {stream} (STREAM_BUDGETS has {budgets[stream]})")
        for stream in sorted(written.keys() - budgets.keys()):
            problems.append(f"budget {n}: {stream} is no stream of STREAM_BUDGETS")
        for stream in sorted(written.keys() & budgets.keys()):
            if written[stream] != budgets[stream]:
                problems.append(f"budget {n}: {stream} is {written[stream]}, STREAM_BUDGETS says {budgets[stream]}")
    return problems


def _limit_block(after_live_limit: str) -> str:
    """The `or label_replace(...)` lines that follow the live limit, up to the bracket that
    closes the group they are in."""
    depth, out = 0, []
    for char in after_live_limit:
        if char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                break
            depth -= 1
        out.append(char)
    return "".join(out)


@pytest.mark.parametrize("name", ["NatsStreamNearBudget", "NatsStreamFullWithin24h"])
def test_the_stream_budget_rules_hold_the_budgets_of_stream_budgets(name):
    """Where the exporter reports no limit the rules compare with the repository's budgets,
    written out in PromQL: changed in STREAM_BUDGETS and not here, a stream would be alerted
    at the old number (or never). The expected lines, to copy in: one per stream,
    `or label_replace(vector(BYTES), "stream_name", "STREAM", "", "")`."""
    expr = alert("nats.rules.yaml", name)["expr"]
    assert budget_problems(expr, STREAM_BUDGETS) == []
    assert expr.count(LIVE_LIMIT) == (2 if name == "NatsStreamFullWithin24h" else 1)


def test_the_store_alert_counts_the_sum_of_the_budgets_and_their_streams():
    """NatsJetStreamStoreAlmostFull: the store holds the budgets (their sum, in bytes) plus
    what the budgeted streams do not (the store less those streams' bytes)."""
    expr = alert("nats.rules.yaml", "NatsJetStreamStoreAlmostFull")["expr"]
    (streams,) = _STREAMS.findall(expr)
    assert set(streams.split("|")) == set(STREAM_BUDGETS)
    assert re.search(rf"\+\s*{sum(STREAM_BUDGETS.values())}\s*\)", expr), f"the sum is {sum(STREAM_BUDGETS.values())}"


def test_a_budget_that_differs_from_stream_budgets_is_reported():
    expr = alert("nats.rules.yaml", "NatsStreamNearBudget")["expr"]
    drifted = {**STREAM_BUDGETS, "PAYMENTS": STREAM_BUDGETS["PAYMENTS"] + 1, "AUDIT": 1}
    del drifted["DLQ"]
    assert budget_problems(expr, drifted) == [
        "budget 1: no AUDIT (STREAM_BUDGETS has 1)",
        "budget 1: DLQ is no stream of STREAM_BUDGETS",
        f"budget 1: PAYMENTS is {STREAM_BUDGETS['PAYMENTS']}, STREAM_BUDGETS says {STREAM_BUDGETS['PAYMENTS'] + 1}",
    ]
    assert budget_problems("max by (stream_name) (nats_stream_total_bytes) > 0", STREAM_BUDGETS) == [
        "no budget in the expression"
    ]


def test_a_stalled_durable_is_watched_on_the_streams_of_the_topologys_consumers():
    expr = alert("nats.rules.yaml", "NatsConsumerPartitionStalled")["expr"]
    found = _STREAMS.findall(expr)
    assert len(found) == 2
    assert all(set(streams.split("|")) == {c.stream for c in topology.CONSUMERS} for streams in found)


def test_the_unowned_partitions_threshold_is_the_topologys_partition_count():
    rule = alert("pipeline.rules.yaml", "FjbPartitionsUnowned")
    threshold = int(re.search(r"<\s*(\d+)\s*$", rule["expr"].strip()).group(1))
    assert threshold == topology.PAYMENT_PARTITIONS
    assert f"of {topology.PAYMENT_PARTITIONS} payment partitions" in rule["annotations"]["summary"]
    assert f"the {topology.PAYMENT_PARTITIONS} payment partitions" in rule["annotations"]["description"]
