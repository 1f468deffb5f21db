"""The local Prometheus (devstack/prometheus.py) through its HTTP API: it scrapes every
service with the repository's rules loaded, and an alert goes the whole way: a consumer
service stopped makes FjbServiceDown fire for it (after the rule's `for:`, about two
minutes), and the alert is gone once the service is back.

The service stopped is `insights`: nothing else waits for it (it projects the payment
events into the customers' economy views and catches up from its stream when it is back).
It is always started again, whatever happens to the test.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests
import yaml

from devstack import prometheus
from devstack.settings import service_of
from fjordbank import topology

pytestmark = pytest.mark.stack

SERVICE = "insights"
ALERT = "FjbServiceDown"
POLL = 5  # seconds: Prometheus scrapes and evaluates every 5 s


def api(stack, path: str, **params) -> dict | list:
    try:
        resp = requests.get(f"{prometheus.url(stack.s)}/api/v1/{path}", params=params, timeout=10)
    except requests.ConnectionError as exc:
        pytest.fail(f"prometheus at {prometheus.url(stack.s)} does not answer (stopped?): {exc}", pytrace=False)
    assert resp.status_code == 200, f"/api/v1/{path}: {resp.status_code} {resp.text[:500]}"
    body = resp.json()
    assert body["status"] == "success", body
    return body["data"]


def wait_for(what: str, check, timeout: float, progress=None):
    """Poll ``check()`` until it returns something truthy; fail after ``timeout`` s."""
    began = time.monotonic()
    said = None
    while True:
        got = check()
        if got:
            return got
        elapsed = time.monotonic() - began
        if progress is not None:
            now = progress()
            if now != said:
                print(f"  {elapsed:5.0f}s  {now}", flush=True)
                said = now
        if elapsed > timeout:
            pytest.fail(f"{what}: not within {timeout:.0f}s (last: {said})", pytrace=False)
        time.sleep(POLL / 2)


def service_alerts(stack) -> list[dict]:
    """The active (pending or firing) FjbServiceDown alerts for the service."""
    return [
        a
        for a in api(stack, "alerts")["alerts"]
        if a["labels"].get("alertname") == ALERT and a["labels"].get("job") == SERVICE
    ]


def alert_state(stack) -> str:
    alerts = service_alerts(stack)
    return alerts[0]["state"] if alerts else "inactive"


def targets_by_job(stack) -> dict[str, dict]:
    """job -> its first target (a service's first instance)."""
    by_job: dict[str, dict] = {}
    for t in api(stack, "targets", state="active")["activeTargets"]:
        by_job.setdefault(t["labels"]["job"], t)
    return by_job


def all_targets(stack) -> list[dict]:
    return api(stack, "targets", state="active")["activeTargets"]


def rule_for_seconds(stack, name: str) -> float:
    """The `for:` of an alert in monitoring/rules, in seconds."""
    for path in prometheus.rule_files(stack.s):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == name:
                    amount, unit = re.fullmatch(r"(\d+)([smh])", rule["for"]).groups()
                    return int(amount) * {"s": 1, "m": 60, "h": 3600}[unit]
    raise AssertionError(f"no alert {name} in monitoring/rules")


@pytest.fixture(scope="module")
def prom(stack):
    """The running Prometheus with the rule files as they are now: `make up` reloads a
    Prometheus that was already running, and so does this (a rule file may have been added
    since the stack started)."""
    row = next(r for r in stack.status() if r.component == "prometheus")
    assert row.state == "ready", f"prometheus is {row.state}; see {row.log}"
    prometheus.reload(stack.s)
    return stack


def test_every_service_is_scraped_and_the_repositorys_rules_are_loaded(prom):
    stack = prom
    expected_jobs = {*topology.SERVICES, "prometheus"}

    def all_up():
        targets = all_targets(stack)
        jobs = {t["labels"]["job"] for t in targets}
        return targets if jobs == expected_jobs and all(t["health"] == "up" for t in targets) else None

    targets = wait_for(
        "every target up",
        all_up,
        60,
        progress=lambda: {j: t["health"] for j, t in sorted(targets_by_job(stack).items())},
    )
    # every instance (ledger-2 ... with FJB_REPLICAS_*) is a target of its service's job
    scraped = {(t["labels"]["job"], t["scrapeUrl"]) for t in targets}
    for name, port in stack.s.service_ports.items():
        assert (service_of(name), f"http://127.0.0.1:{port}/metrics") in scraped
    # every service's own metrics arrive under its job
    series = api(stack, "query", query='count by (job) ({__name__=~"fjb_.+"})')
    assert {r["metric"]["job"] for r in series["result"]} == set(topology.SERVICES)

    files = prometheus.rule_files(stack.s)
    expected = {
        (path.name, group["name"], len(group["rules"]))
        for path in files
        for group in yaml.safe_load(path.read_text())["groups"]
    }
    loaded_groups = api(stack, "rules")["groups"]
    loaded = {(Path(g["file"]).name, g["name"], len(g["rules"])) for g in loaded_groups}
    assert loaded == expected
    assert {Path(g["file"]) for g in loaded_groups} == set(files)

    # every rule evaluates (a rule naming a metric that does not exist locally is fine: it
    # selects nothing); wait two evaluations so that every group has run since the reload
    time.sleep(2 * POLL)
    broken = [
        f"{r['name']}: {r.get('lastError')}"
        for g in api(stack, "rules")["groups"]
        for r in g["rules"]
        if r["health"] == "err"
    ]
    assert broken == []


@pytest.mark.timeout(900)
def test_a_stopped_service_fires_its_alert_through_prometheus_and_it_resolves_when_back(prom):
    stack = prom
    hold = rule_for_seconds(stack, ALERT)  # `for: 2m`
    wait_for(
        f"{SERVICE} scraped up and no {ALERT} for it before the test",
        lambda: targets_by_job(stack).get(SERVICE, {}).get("health") == "up" and not service_alerts(stack),
        60,
        progress=lambda: alert_state(stack),
    )
    print(f"\n  killing {SERVICE}; {ALERT}{{job={SERVICE!r}}} should fire after {hold:.0f}s", flush=True)
    killed_at = time.time()
    try:
        stack.sup.kill(SERVICE)
        seen: list[str] = []

        def firing():
            if stack.sup.pid(SERVICE) is not None:
                pytest.fail(
                    f"{SERVICE} was started again by something else before its alert fired "
                    "(another session's `devstack up`?)",
                    pytrace=False,
                )
            state = alert_state(stack)
            if not seen or seen[-1] != state:
                seen.append(state)
            return service_alerts(stack)[0] if state == "firing" else None

        alert = wait_for(f"{ALERT} for {SERVICE} firing", firing, hold + 180, progress=lambda: seen[-1:])
        assert "pending" in seen, f"the alert fired without being pending for its `for:` first: {seen}"
        active_at = datetime.fromisoformat(alert["activeAt"].replace("Z", "+00:00")).timestamp()
        assert active_at >= killed_at - 1, "the firing alert began before the service was stopped"
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["summary"]
        up = api(stack, "query", query=f'up{{job="{SERVICE}"}}')["result"]
        assert [r["value"][1] for r in up] == ["0"]

        print(f"  {time.time() - killed_at:5.0f}s  firing; starting {SERVICE} again", flush=True)
        stack.restart(SERVICE)  # returns once its /readyz answers
        wait_for(
            f"{ALERT} for {SERVICE} resolved",
            lambda: not service_alerts(stack),
            120,
            progress=lambda: alert_state(stack),
        )
        print(f"  {time.time() - killed_at:5.0f}s  resolved", flush=True)
        assert targets_by_job(stack)[SERVICE]["health"] == "up"
    finally:
        comp = stack.component(SERVICE)
        if stack.sup.pid(SERVICE) is None or not comp.ready():
            stack.restart(SERVICE)
