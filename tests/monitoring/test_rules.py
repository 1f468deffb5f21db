"""The alert and recording rules (monitoring/rules/*.rules.yaml) and their promtool unit
tests (*.test.yaml).

- `promtool check rules` and `promtool test rules` pass on every file (promtool from
  Debian's prometheus package, installed into .monitoring-tools/ by
  scripts/monitoring_tools.sh; without it these tests fail and say so);
- every alert has a unit test that shows it firing and one that shows it quiet;
- every expression names only catalogued metrics (monitoring/metrics.yaml) or recording
  rules, and alert expressions name no recording rule (Cloud Monitoring alert policies
  are built from them and evaluate them on their own); label values in matchers, and in
  the unit tests' input series, are ones the catalogue lists (or a topology consumer);
- the service jobs and the ack-pending threshold in the rules follow fjordbank.topology.

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
    assert all(r["labels"]["severity"] in ("critical", "warning") for r in alerts_of(path))


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
