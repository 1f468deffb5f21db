"""The service level objectives (docs/slo.md) against the rules that measure and watch them
(monitoring/rules/slo.rules.yaml and the alerts it names).

- every SLO section names recording rules and alerts, and each exists;
- the burn-rate alerts use the SLO's error budget and the SRE workbook's windows and burn
  rates; the SLIs read the histogram bucket whose bound is the objective's threshold, as
  prometheus_client writes it;
- the "no acknowledged payment lost" guards use the thresholds of FjbPaymentNotFinal.

The burn-rate alerts and recording rules are shown firing and quiet by promtool in
monitoring/rules/slo.rules.test.yaml (run by test_rules.py).
"""

from __future__ import annotations

import re

import pytest

from tests.monitoring import catalogue as mon
from tests.monitoring import queries as qs

RULES = {r.get("alert") or r.get("record"): r for p in mon.rule_files() for r in mon.rules_of(p)}
ALERTS = {name for name, r in RULES.items() if "alert" in r}
RECORDED = {name for name, r in RULES.items() if "record" in r}
_RECORD_NAME = re.compile(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+")
_ALERT_NAME = re.compile(r"(?:Fjb|Nats)[A-Za-z]+")


def slo_sections() -> dict[str, str]:
    text = qs.SLO_DOC.read_text()
    parts = re.split(r"^## (SLO \d+: .+)$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_slo_document_has_the_three_slos():
    titles = list(slo_sections())
    assert titles == [
        "SLO 1: internal payments final within 2 s",
        "SLO 2: card authorisations decided within 500 ms",
        "SLO 3: no acknowledged payment lost",
    ]


@pytest.mark.parametrize("title", list(slo_sections()))
def test_each_slo_names_recording_rules_and_alerts_that_exist(title):
    body = slo_sections()[title]
    code = set(re.findall(r"`([^`\n]+)`", body))
    rules = {c for c in code if _RECORD_NAME.fullmatch(c)}
    alerts = {c for c in code if _ALERT_NAME.fullmatch(c)}
    assert rules, f"{title} names no recording rule"
    assert alerts, f"{title} names no alert"
    assert rules - RECORDED == set(), "recording rules that do not exist"
    assert alerts - ALERTS == set(), "alerts that do not exist"


@pytest.mark.parametrize(
    ("alerts", "budget", "bucket"),
    [
        (("FjbInternalPaymentLatencyBudgetBurn", "FjbInternalPaymentLatencyBudgetBurnSlow"), "0.001", 'le="2.0"'),
        (("FjbCardDecisionLatencyBudgetBurn", "FjbCardDecisionLatencyBudgetBurnSlow"), "0.01", 'le="0.5"'),
    ],
)
def test_the_burn_rate_alerts_use_the_budget_windows_and_bucket_of_their_slo(alerts, budget, bucket):
    fast, slow = (" ".join(RULES[a]["expr"].split()) for a in alerts)
    # page: 14.4x over 1h and 5m, 6x over 6h and 30m; ticket: 3x over 1d and 2h, 1x over 3d and 6h
    for burn, windows in (("14.4", ("1h", "5m")), ("6", ("6h", "30m"))):
        assert f"> ({burn} * {budget})" in fast
        assert all(f"[{w}]" in fast for w in windows)
    assert f"> (3 * {budget})" in slow and f"> {budget}" in slow
    assert all(f"[{w}]" in slow for w in ("1d", "2h", "3d", "6h"))
    assert RULES[alerts[0]]["labels"]["severity"] == "critical"
    assert RULES[alerts[1]]["labels"]["severity"] == "warning"
    for expr in (fast, slow):
        buckets = set(re.findall(r"le=\"[^\"]+\"", expr))
        assert buckets == {bucket}


def test_the_loss_guards_use_the_thresholds_of_fjbpaymentnotfinal():
    pattern = re.compile(r'state(=|!~)"([^"]+)"\}\)\s*>\s*(?:bool\s+)?(\d+)')
    guard = set(pattern.findall(RULES["condition:fjb_payments_at_risk:bool"]["expr"]))
    alert = set(pattern.findall(RULES["FjbPaymentNotFinal"]["expr"]))
    assert guard == alert
    assert len(alert) == 3
