"""Who hears of an alert: the managed Alertmanager's configuration
(monitoring/alertmanager/alertmanager.yaml, filled and wrapped into its Secret by
k8s/alertmanager.py at deploy time).

* the template holds no secret: every receiver's key or URL is a "${secret:ID}" placeholder,
  and no `*_file` field (the managed Alertmanager mounts only its configuration);
* filled with stand-ins, `amtool check-config` accepts it (amtool from Debian's
  prometheus-alertmanager, unpacked into .monitoring-tools/ by scripts/monitoring_tools.sh;
  these checks fail, saying how to install it, where it is missing, as promtool's do), and
  refuses a broken copy;
* scripts/monitoring_tools.sh, run on a copy against a stand-in apt-get, installs amtool on a
  machine without it and stops with an error when the download fails;
* `amtool config routes test`: every alert of monitoring/rules reaches the receiver its
  severity calls for (critical the pager, warning the chat channel), Watchdog the dead man's
  switch and nobody else; an unknown severity still reaches the chat channel;
* the same by reading the routing tree here (no amtool needed): every severity the rules use
  has its own route;
* grouping by alert name and every label that tells one failure from another (each label
  the rules' alerts keep, from their `by (...)` clauses and their promtool tests), the
  notification texts rendered by `amtool template render`, the Watchdog's short repeat, the
  inhibitions (each critical holds back its own warning, named pair by pair, on labels both
  alerts keep; nothing holds back a critical or the Watchdog);
* `python -m k8s.alertmanager secret` prints the Secret the GMP operator reads (gmp-public,
  `alertmanager`, key `alertmanager.yaml`) and refuses a missing, empty or malformed value;
  `--from-secret-manager`, against a stand-in gcloud, reads the secrets into memory and prints
  nothing when one cannot be read.
"""

from __future__ import annotations

import base64
import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from k8s import alertmanager as am
from tests.deploy.conftest import REPO

AMTOOL = REPO / ".monitoring-tools" / "amtool"
INSTALL = "bash scripts/monitoring_tools.sh"
RULES = sorted((REPO / "monitoring" / "rules").glob("*.rules.yaml"))
SECRET_IDS = [
    "alertmanager-deadmans-switch-url",
    "alertmanager-pagerduty-routing-key",
    "alertmanager-slack-webhook-url",
]
# stand-ins of the right shape: a URL where Alertmanager wants one, else a key
STAND_INS = {i: f"https://{i}.example.invalid/ping" if i.endswith("-url") else "0" * 32 for i in SECRET_IDS}
# the receiver each severity calls for (monitoring/README.md: critical pages, warning is a ticket)
SEVERITY_RECEIVER = {"critical": "pager", "warning": "chat"}
WATCHDOG = "Watchdog"
DEADMANS_SWITCH = "deadmans-switch"
# receiver fields that hold a key, a token or a URL with one in it (Alertmanager's receivers)
SECRET_FIELDS = {
    "routing_key",
    "service_key",
    "api_url",
    "api_key",
    "url",
    "webhook_url",
    "token",
    "bot_token",
    "password",
    "credentials",
    "auth_password",
    "auth_secret",
    "api_secret",
    "user_key",
}


def alerts() -> dict[str, str]:
    """alert name -> severity, over every rule file."""
    return {
        r["alert"]: r["labels"]["severity"]
        for p in RULES
        for g in yaml.safe_load(p.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }


def need_amtool() -> Path:
    """Fail (not skip) without amtool, saying how to install it, as the promtool tests do
    (tests/monitoring/test_rules.py): a missing tool must not leave the suite green."""
    if not (AMTOOL.is_file() and AMTOOL.stat().st_mode & 0o111):
        pytest.fail(
            f"amtool is not installed at {AMTOOL.relative_to(REPO)}: run `{INSTALL}` (it unpacks amtool from "
            "Debian's prometheus-alertmanager package; the bootstrap runs it)",
            pytrace=False,
        )
    return AMTOOL


def filled(doc: dict | None = None) -> dict:
    return am.fill(doc if doc is not None else am.template(), STAND_INS)


def write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "alertmanager.yaml"
    path.write_text(am.config_text(doc))
    return path


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(need_amtool()), *args], capture_output=True, text=True, timeout=60, check=False)


def routes_test(config: Path, labels: dict[str, str], receiver: str) -> subprocess.CompletedProcess[str]:
    return amtool(
        "config",
        "routes",
        "test",
        f"--config.file={config}",
        f"--verify.receivers={receiver}",
        *(f"{k}={v}" for k, v in labels.items()),
    )


# ---- the template: no secret ------------------------------------------------------------


def test_the_template_names_its_secrets_by_placeholder_only():
    doc = am.template()
    assert am.secret_ids(doc) == SECRET_IDS
    assert am.placeholder_problems(doc) == []
    problems = []
    for receiver in doc["receivers"]:
        for integration, configs in receiver.items():
            if integration == "name":
                continue
            for config in configs:
                for key, value in am._strings(config):
                    if key.endswith("_file"):
                        problems.append(f"{receiver['name']}: {key} names a file the managed Alertmanager lacks")
                    elif key in SECRET_FIELDS and not am.PLACEHOLDER.fullmatch(value):
                        problems.append(f"{receiver['name']}: {integration}.{key} is written out, not a placeholder")
    assert problems == []
    assert "global" not in doc or not any(k in SECRET_FIELDS or k.endswith("_file") for k in doc["global"])
    # and no address at all outside the comments (a receiver's URL holds its token)
    lines = [line for line in am.SOURCE.read_text().splitlines() if not line.lstrip().startswith("#")]
    assert [line for line in lines if "://" in line] == []


# ---- amtool check-config ----------------------------------------------------------------


def test_amtool_accepts_the_filled_configuration(tmp_path):
    run = amtool("check-config", str(write(tmp_path, filled())))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout and "3 receivers" in run.stdout and "4 inhibit rules" in run.stdout


def _unknown_receiver(doc):
    doc["route"]["routes"][1]["receiver"] = "pagr"


def _bad_matcher(doc):
    doc["route"]["routes"][0]["matchers"] = ['alertname=="Watchdog"']


def _no_scheme(doc):
    doc["receivers"][2]["webhook_configs"][0]["url"] = "deadmans-switch.example.invalid/ping"


@pytest.mark.parametrize(
    ("breaker", "expected"),
    [
        (_unknown_receiver, 'undefined receiver "pagr"'),
        (_bad_matcher, "unescaped double quote"),
        (_no_scheme, "unsupported scheme"),
    ],
    ids=["an unknown receiver", "a malformed matcher", "a URL without its scheme"],
)
def test_amtool_refuses_a_broken_configuration(tmp_path, breaker, expected):
    doc = filled()
    breaker(doc)
    run = amtool("check-config", str(write(tmp_path, doc)))
    assert run.returncode != 0
    assert "FAILED" in run.stdout + run.stderr and expected in run.stdout + run.stderr, run.stdout + run.stderr


# ---- routing: amtool config routes test ---------------------------------------------------


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("alertmanager"), filled())


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"alertname": "FjbServiceDown", "severity": "critical", "job": "ledger"}, "pager"),
        ({"alertname": "FjbConsumerBacklogGrowing", "severity": "warning", "job": "insights"}, "chat"),
        ({"alertname": WATCHDOG, "severity": "none"}, DEADMANS_SWITCH),
        # the heartbeat stays on its route whatever else it carries
        ({"alertname": WATCHDOG, "severity": "critical"}, DEADMANS_SWITCH),
        # an alert with no known severity is not dropped
        ({"alertname": "SomethingNew", "severity": "info"}, "chat"),
        ({"alertname": "SomethingNew"}, "chat"),
    ],
    ids=["critical pages", "warning to chat", "Watchdog to the switch", "Watchdog first", "unknown", "no severity"],
)
def test_amtool_routes_each_kind_of_alert_to_its_receiver(config_file, labels, receiver):
    run = routes_test(config_file, labels, receiver)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.split() == [receiver], "one receiver only"


def test_amtool_routes_every_alert_of_the_rules_by_its_severity(config_file):
    wrong = {}
    for name, severity in sorted(alerts().items()):
        receiver = DEADMANS_SWITCH if name == WATCHDOG else SEVERITY_RECEIVER[severity]
        run = routes_test(config_file, {"alertname": name, "severity": severity, "job": "ledger"}, receiver)
        if run.returncode != 0 or run.stdout.split() != [receiver]:
            wrong[name] = f"{severity}: {run.stdout.strip()!r}, expected {receiver}"
    assert wrong == {}
    assert len(alerts()) > 30


def test_a_wrong_routing_expectation_is_reported(config_file):
    run = routes_test(config_file, {"alertname": "FjbServiceDown", "severity": "critical"}, "chat")
    assert run.returncode != 0 and "did not match" in run.stdout + run.stderr


# ---- the routing tree, read here (no amtool) ---------------------------------------------

_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=|!=)\s*"([^"]*)"\s*$')


def _matches(route: dict, labels: dict[str, str]) -> bool:
    for matcher in route.get("matchers", []):
        name, op, value = _MATCHER.match(matcher).groups()
        if (labels.get(name, "") == value) != (op == "="):
            return False
    return True


def receiver_for(route: dict, labels: dict[str, str]) -> tuple[str, bool]:
    """(receiver, whether a child route matched) as Alertmanager picks them: the first
    matching child, depth first, without `continue` (this configuration uses none)."""
    for child in route.get("routes", []):
        if _matches(child, labels):
            return receiver_for(child, labels)[0], True
    return route["receiver"], False


def test_every_severity_the_rules_use_has_its_own_route():
    route = am.template()["route"]
    assert not any(r.get("continue") for r in route.get("routes", []))
    problems = []
    for name, severity in sorted(alerts().items()):
        receiver, routed = receiver_for(route, {"alertname": name, "severity": severity})
        expected = DEADMANS_SWITCH if name == WATCHDOG else SEVERITY_RECEIVER.get(severity)
        if expected is None:
            problems.append(f"{name}: severity {severity!r} has no receiver here (SEVERITY_RECEIVER)")
        elif not routed or receiver != expected:
            problems.append(f"{name} ({severity}): {receiver}{'' if routed else ' by the default route'}")
    assert problems == []


def test_a_severity_without_a_route_is_reported():
    route = copy.deepcopy(am.template()["route"])
    route["routes"] = [r for r in route["routes"] if r.get("matchers") != ['severity="warning"']]
    assert receiver_for(route, {"alertname": "FjbAuditNotRun", "severity": "warning"}) == ("chat", False)


# ---- grouping, timing, inhibition --------------------------------------------------------


def seconds(duration: str) -> int:
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and duration, duration
    h, m, s = (int(p or 0) for p in parts.groups())
    return h * 3600 + m * 60 + s


# the labels an alert's expression keeps: those of its `by (...)` and `on (...)` clauses and
# those label_replace writes (a label a clause names but a later aggregation drops, such as
# consumer_name inside FjbConsumerStalled's `sum by (consumer)`, is counted too: more than
# kept, never less)
_CLAUSE = re.compile(r"\b(?:by|on)\s*\(([^)]*)\)")
_LABEL_REPLACE = re.compile(r'label_replace\s*\([^"]*"([a-zA-Z_][a-zA-Z0-9_]*)"')
# labels kept that do not tell one failure from another: `instance` is a pod of the service
# the alert's `job` names (FjbServiceNotReady, FjbOpsSweepStale); one page per service
NOT_A_FAILURE = {"instance"}


def expression_labels(expr: str) -> set[str]:
    labels = {name.strip() for m in _CLAUSE.finditer(expr) for name in m.group(1).split(",") if name.strip()}
    return labels | set(_LABEL_REPLACE.findall(expr))


def kept_labels() -> dict[str, set[str]]:
    """alert name -> the labels its expression keeps: read from the expression, and the labels
    its promtool unit tests (monitoring/rules/*.rules.test.yaml) see it fire with, less the
    rule's own fixed labels (the same for every alert of the name)."""
    out: dict[str, set[str]] = {}
    fixed: dict[str, set[str]] = {}
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    out.setdefault(rule["alert"], set()).update(expression_labels(rule["expr"]))
                    fixed[rule["alert"]] = set(rule.get("labels", {}))
    for path in sorted((REPO / "monitoring" / "rules").glob("*.rules.test.yaml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                for alert in case.get("exp_alerts") or []:
                    out.setdefault(case["alertname"], set()).update(alert.get("exp_labels", {}))
    return {name: labels - fixed.get(name, set()) for name, labels in out.items()}


def test_every_label_that_tells_failures_apart_is_grouped_by():
    group_by = am.template()["route"]["group_by"]
    assert group_by[0] == "alertname" and "..." not in group_by
    kept = kept_labels()
    assert kept["FjbConsumerStalled"] >= {"consumer"} and kept["NatsConsumerPartitionStalled"] >= {"stream_name"}
    assert kept["FjbNatsCertificateEndsSoon"] == {"job", "cert"} and kept["FjbServiceNotReady"] == {"job", "instance"}
    missing = {name: sorted(labels - set(group_by) - NOT_A_FAILURE) for name, labels in sorted(kept.items())}
    assert {name: labels for name, labels in missing.items() if labels} == {}
    # and nothing grouped by that no alert keeps (a typo would group nothing)
    assert set(group_by) - {"alertname"} <= set().union(*kept.values())


def test_two_consumers_stalled_are_two_notifications():
    group_by = am.template()["route"]["group_by"]

    def key(labels: dict[str, str]) -> tuple[str, ...]:
        return tuple(labels.get(name, "") for name in group_by)

    first = {"alertname": "FjbConsumerStalled", "severity": "critical", "consumer": "ledger"}
    second = {**first, "consumer": "clearing"}
    assert key(first) != key(second)
    streams = [
        {"alertname": "NatsConsumerPartitionStalled", "stream_name": s, "consumer_name": "ledger-p0"}
        for s in ("PAYMENTS", "CARDS")
    ]
    assert key(streams[0]) != key(streams[1])
    # two pods of one service not ready are one page, the service's
    pods = [{"alertname": "FjbServiceNotReady", "job": "ledger", "instance": i} for i in ("a", "b")]
    assert key(pods[0]) == key(pods[1])


def test_a_label_kept_but_not_grouped_by_is_reported():
    expr = 'sum by (tenant) (rate(x_total[5m])) > 0 and on (tenant) label_replace(y, "region", "$1", "r", "(.*)")'
    assert expression_labels(expr) == {"tenant", "region"}
    assert {"tenant", "region"} - set(am.template()["route"]["group_by"]) == {"tenant", "region"}


def test_the_notification_texts_render(tmp_path):
    """amtool check-config does not parse the receivers' inline templates; amtool template
    render does (on its example data), so a typo in one fails here, not at the first page."""
    (tmp_path / "none.tmpl").write_text("")
    texts = sorted({text for _, text in am._strings(am.template()["receivers"]) if "{{" in text})
    assert len(texts) >= 4
    for text in texts:
        run = amtool("template", "render", f"--template.glob={tmp_path / 'none.tmpl'}", f"--template.text={text}")
        assert run.returncode == 0, f"{text}: {run.stdout}{run.stderr}"
    broken = amtool("template", "render", f"--template.glob={tmp_path / 'none.tmpl'}", "--template.text={{ .Nope ")
    assert broken.returncode != 0


def test_alerts_are_grouped_and_repeated_sensibly():
    route = am.template()["route"]
    assert 10 <= seconds(route["group_wait"]) <= 60
    assert 60 <= seconds(route["group_interval"]) <= 15 * 60
    assert 3600 <= seconds(route["repeat_interval"]) <= 24 * 3600
    pager = next(r for r in route["routes"] if r["receiver"] == "pager")
    assert seconds(pager.get("group_wait", route["group_wait"])) <= 30, "a page waits at most 30 s"
    assert seconds(pager["repeat_interval"]) <= seconds(route["repeat_interval"])


def test_the_watchdog_reaches_only_the_switch_and_often():
    doc = am.template()
    first = doc["route"]["routes"][0]
    assert first["matchers"] == [f'alertname="{WATCHDOG}"'] and first["receiver"] == DEADMANS_SWITCH
    assert not first.get("continue")
    assert seconds(first["group_wait"]) == 0
    assert seconds(first["repeat_interval"]) <= 5 * 60, "the switch expects a ping every 5 minutes"
    (switch,) = [r for r in doc["receivers"] if r["name"] == DEADMANS_SWITCH]
    assert set(switch) == {"name", "webhook_configs"}
    (hook,) = switch["webhook_configs"]
    assert hook["send_resolved"] is False  # it never resolves; a "resolved" ping would mean nothing
    # and no other route names the switch
    assert [r["receiver"] for r in doc["route"]["routes"]].count(DEADMANS_SWITCH) == 1
    assert doc["route"]["receiver"] != DEADMANS_SWITCH


def rule_labels() -> dict[str, dict[str, str]]:
    """alert name -> its rule's fixed labels (severity, slo)."""
    return {
        r["alert"]: r.get("labels", {})
        for p in RULES
        for g in yaml.safe_load(p.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }


def _alertname(matchers: list[str]) -> str | None:
    names = [m.group(3) for m in map(_MATCHER.match, matchers) if m and m.group(1, 2) == ("alertname", "=")]
    return names[0] if len(names) == 1 else None


def _side_problems(n: int, rule: dict, side: str, severity: str) -> list[str]:
    """One side (source or target) of inhibit rule n: a single existing alert of the
    severity, matched by the side's matchers, keeping every `equal` label."""
    fixed, kept = rule_labels(), kept_labels()
    name = _alertname(rule.get(f"{side}_matchers", []))
    if name is None:
        return [f"rule {n}: the {side} names no single alertname"]
    if name not in fixed:
        return [f"rule {n}: no alert {name!r} in monitoring/rules"]
    if fixed[name].get("severity") != severity:
        return [f"rule {n}: {side} {name} is {fixed[name].get('severity')}, not {severity}"]
    problems = []
    if not _matches({"matchers": rule[f"{side}_matchers"]}, {**fixed[name], "alertname": name}):
        problems.append(f"rule {n}: the {side} matchers do not match {name} itself")
    problems += [
        f"rule {n}: {name} does not keep {label!r} (equal)"
        for label in rule.get("equal", [])
        if label not in kept.get(name, set()) | set(fixed[name])
    ]
    return problems


def inhibition_problems(rules: list[dict]) -> list[str]:
    """Each inhibit rule names one existing critical as source and one existing warning as
    target, and both alerts keep every `equal` label (an `equal` label neither has would
    match everything, one only one has would match nothing); no rule can silence a
    critical, the Watchdog or an alert of unknown name."""
    problems = []
    for n, rule in enumerate(rules):
        problems += _side_problems(n, rule, "source", "critical") + _side_problems(n, rule, "target", "warning")
        if 'severity="warning"' not in rule.get("target_matchers", []):
            problems.append(f'rule {n}: the target matchers do not say severity="warning"')
        if not rule.get("equal"):
            problems.append(f"rule {n}: no equal labels")
    # nothing but a warning is a target: no critical, no Watchdog, whatever its labels
    problems += [
        f"rule {n}: silences {name} ({labels.get('severity')})"
        for name, labels in sorted(rule_labels().items())
        for n, rule in enumerate(rules)
        if labels.get("severity") != "warning"
        and _matches({"matchers": rule.get("target_matchers", [])}, {**labels, "alertname": name})
    ]
    return problems


def test_each_critical_inhibits_only_its_own_warning():
    rules = am.template()["inhibit_rules"]
    pairs = {(_alertname(r["source_matchers"]), _alertname(r["target_matchers"])): r["equal"] for r in rules}
    assert pairs == {
        ("FjbNatsCertificateEndsSoon", "FjbNatsCertificateExpiring"): ["job", "cert"],
        ("FjbConsumerStalled", "FjbConsumerBacklogGrowing"): ["consumer"],
        ("FjbInternalPaymentLatencyBudgetBurn", "FjbInternalPaymentLatencyBudgetBurnSlow"): ["slo"],
        ("FjbCardDecisionLatencyBudgetBurn", "FjbCardDecisionLatencyBudgetBurnSlow"): ["slo"],
    }
    assert inhibition_problems(rules) == []
    for watchdog in ({"alertname": WATCHDOG, "severity": "none"}, {"alertname": WATCHDOG, "severity": "warning"}):
        assert not any(_matches({"matchers": r["target_matchers"]}, watchdog) for r in rules)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["alertname"],
            },
            "names no single alertname",
        ),
        (
            {
                "source_matchers": ['alertname="FjbCertEndsSoon"'],
                "target_matchers": ['alertname="FjbNatsCertificateExpiring"', 'severity="warning"'],
                "equal": ["job", "cert"],
            },
            "no alert 'FjbCertEndsSoon'",
        ),
        (
            {
                "source_matchers": ['alertname="FjbConsumerStalled"'],
                "target_matchers": ['alertname="FjbConsumerBacklogGrowing"', 'severity="warning"'],
                "equal": ["job"],
            },
            "FjbConsumerStalled does not keep 'job'",
        ),
        (
            {
                "source_matchers": ['alertname="FjbNatsCertificateExpiring"'],
                "target_matchers": ['alertname="FjbNatsCertificateEndsSoon"'],
                "equal": ["job", "cert"],
            },
            "silences FjbNatsCertificateEndsSoon (critical)",
        ),
        (
            {
                "source_matchers": ['alertname="FjbServiceDown"'],
                "target_matchers": ['severity!="critical"'],
                "equal": ["job"],
            },
            "silences Watchdog (none)",
        ),
    ],
    ids=["by severity alone", "an unknown name", "a label the source drops", "a critical silenced", "the Watchdog"],
)
def test_a_wrong_inhibition_is_reported(rule, expected):
    problems = inhibition_problems([rule])
    assert any(expected in p for p in problems), problems


# ---- scripts/monitoring_tools.sh: amtool on a fresh machine -----------------------------

_FAKE_APT = """#!/bin/sh
# a stand-in apt-get: `download PACKAGE` copies $DEBS/PACKAGE_*.deb here, or fails as apt-get
# does when the package is not found; `update` succeeds
case "$1" in
  update) exit 0 ;;
  download) for p in "$@"; do :; done
    ls "$DEBS/$p"_*.deb >/dev/null 2>&1 || { echo "E: Unable to locate package $p" >&2; exit 100; }
    cp "$DEBS/$p"_*.deb . ;;
  *) exit 1 ;;
esac
"""


def _deb(debs: Path, package: str, binaries: list[str]) -> None:
    root = debs / f"{package}.root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 9.9.9-1\nArchitecture: all\nMaintainer: t <t@example.invalid>\n"
        "Description: a stand-in\n"
    )
    (root / "usr" / "bin").mkdir(parents=True)
    for name in binaries:
        path = root / "usr" / "bin" / name
        path.write_text(f"#!/bin/sh\necho '{name}, version 9.9.9'\n")
        path.chmod(0o755)
    built = subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-b", str(root), str(debs / f"{package}_9.9.9-1_all.deb")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr


def run_monitoring_tools(tmp_path: Path, packages: dict[str, list[str]]) -> tuple[subprocess.CompletedProcess, Path]:
    """scripts/monitoring_tools.sh, copied into an empty checkout, with a stand-in apt-get
    that serves the given packages and nothing else; (the run, the tools folder)."""
    if shutil.which("dpkg-deb") is None:
        pytest.fail("dpkg-deb is needed (scripts/monitoring_tools.sh unpacks Debian packages with it)", pytrace=False)
    checkout, bin_dir, debs = tmp_path / "checkout", tmp_path / "bin", tmp_path / "debs"
    for d in (checkout / "scripts", bin_dir, debs):
        d.mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "monitoring_tools.sh", checkout / "scripts")
    (bin_dir / "apt-get").write_text(_FAKE_APT)
    (bin_dir / "apt-get").chmod(0o755)
    for package, binaries in packages.items():
        _deb(debs, package, binaries)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DEBS": str(debs)}
    env.pop("FJB_PROMTOOL_REINSTALL", None)
    run = subprocess.run(
        ["bash", str(checkout / "scripts" / "monitoring_tools.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    return run, checkout / ".monitoring-tools"


PROMETHEUS_DEB = {"prometheus": ["promtool", "prometheus"]}


def test_the_install_script_puts_amtool_on_a_machine_without_it(tmp_path):
    run, tools = run_monitoring_tools(tmp_path, {**PROMETHEUS_DEB, "prometheus-alertmanager": ["amtool"]})
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tools / "amtool").stat().st_mode & 0o111
    assert (tools / "alertmanager.version").read_text().startswith("prometheus-alertmanager 9.9.9-1 ")
    assert (tools / "promtool").is_file() and (tools / "prometheus.version").is_file()


def test_the_install_script_fails_loudly_when_amtool_cannot_be_fetched(tmp_path):
    run, tools = run_monitoring_tools(tmp_path, PROMETHEUS_DEB)
    assert run.returncode != 0, run.stdout + run.stderr
    assert "error: 'apt-get download prometheus-alertmanager' failed" in run.stderr
    assert not (tools / "amtool").exists() and not (tools / "alertmanager.version").exists()


def test_without_amtool_its_checks_fail_not_skip(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "AMTOOL", REPO / ".monitoring-tools" / "amtool-missing")
    with pytest.raises(pytest.fail.Exception, match=r"amtool is not installed at .*scripts/monitoring_tools\.sh"):
        need_amtool()


# ---- the Secret ----------------------------------------------------------------------------


def _secrets_dir(tmp_path: Path, values: dict[str, str]) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir()
    for secret_id, value in values.items():
        (directory / secret_id).write_text(value + "\n")  # as `gcloud secrets versions access` > file
    return directory


def test_the_secret_is_the_one_the_gmp_operator_reads(tmp_path, capsys):
    assert am.main(["secret", "--secrets-dir", str(_secrets_dir(tmp_path, STAND_INS))]) == 0
    (doc,) = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert (doc["apiVersion"], doc["kind"]) == ("v1", "Secret")
    assert doc["metadata"]["name"] == "alertmanager" and doc["metadata"]["namespace"] == "gmp-public"
    assert list(doc["data"]) == ["alertmanager.yaml"], "the operator copies a single key"
    config = yaml.safe_load(base64.b64decode(doc["data"]["alertmanager.yaml"]))
    assert config == filled()
    (pager,) = [r for r in config["receivers"] if r["name"] == "pager"]
    assert pager["pagerduty_configs"][0]["routing_key"] == "0" * 32


def test_secret_ids_lists_what_the_deploy_fetches(capsys):
    assert am.main(["secret-ids"]) == 0
    assert capsys.readouterr().out.split() == SECRET_IDS


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"alertmanager-pagerduty-routing-key": None}, "alertmanager-pagerduty-routing-key: no value"),
        ({"alertmanager-slack-webhook-url": ""}, "alertmanager-slack-webhook-url: no value"),
        ({"alertmanager-slack-webhook-url": "http://hooks.example.invalid/x"}, "needs an https:// URL"),
        ({"alertmanager-pagerduty-routing-key": "abc\nroute: {}"}, "holds whitespace"),
    ],
    ids=["missing", "empty", "plain http", "a line break"],
)
def test_a_missing_or_malformed_value_is_refused(tmp_path, capsys, change, expected):
    values = {k: v for k, v in {**STAND_INS, **change}.items() if v is not None}
    assert am.main(["secret", "--secrets-dir", str(_secrets_dir(tmp_path, values))]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and expected in captured.err


def test_a_placeholder_inside_a_longer_string_is_refused():
    doc = am.template()
    doc["receivers"][2]["webhook_configs"][0]["url"] = (
        "https://x.example.invalid/${secret:alertmanager-deadmans-switch-url}"
    )
    with pytest.raises(ValueError, match="inside a longer string"):
        am.fill(doc, STAND_INS)


# a stand-in gcloud: `secrets versions access latest --secret=ID [--project=P]` prints the
# file $SECRETS/ID as is (as gcloud prints a version's data) and logs its arguments; no file,
# or the ID in $DENIED, fails as gcloud does
_FAKE_GCLOUD = """#!/bin/sh
echo "$*" >> "$SECRETS/.calls"
[ "$1 $2 $3 $4" = "secrets versions access latest" ] || { echo "ERROR: unexpected $*" >&2; exit 2; }
id=${5#--secret=}
case " $DENIED " in *" $id "*)
  echo "ERROR: (gcloud.secrets.versions.access) PERMISSION_DENIED: Permission denied on secret $id" >&2; exit 1 ;;
esac
[ -f "$SECRETS/$id" ] || { echo "ERROR: (gcloud.secrets.versions.access) NOT_FOUND: [$id]" >&2; exit 1; }
cat "$SECRETS/$id"
"""


@pytest.fixture
def fake_gcloud(tmp_path, monkeypatch):
    """A stand-in gcloud first on PATH; returns the folder of its secrets (a file per ID)."""
    bin_dir, secrets = tmp_path / "bin", tmp_path / "secret-manager"
    bin_dir.mkdir()
    secrets.mkdir()
    (bin_dir / "gcloud").write_text(_FAKE_GCLOUD)
    (bin_dir / "gcloud").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("SECRETS", str(secrets))
    monkeypatch.setenv("DENIED", "")
    for secret_id, value in STAND_INS.items():
        (secrets / secret_id).write_text(value + "\n")  # as `gcloud secrets versions add --data-file=-` from echo
    return secrets


def test_the_secret_is_filled_from_secret_manager_in_memory(fake_gcloud, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.rglob("*"))
    assert am.main(["secret", "--from-secret-manager", "--project", "fjb-prod"]) == 0
    (doc,) = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert (doc["metadata"]["namespace"], doc["metadata"]["name"]) == ("gmp-public", "alertmanager")
    assert yaml.safe_load(base64.b64decode(doc["data"]["alertmanager.yaml"])) == filled()
    calls = (fake_gcloud / ".calls").read_text().splitlines()
    assert calls == [f"secrets versions access latest --secret={i} --project=fjb-prod" for i in SECRET_IDS]
    # nothing written but the stand-in's own log
    assert set(tmp_path.rglob("*")) - before == {fake_gcloud / ".calls"}


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda s, mp: (s / "alertmanager-slack-webhook-url").unlink(), "alertmanager-slack-webhook-url: gcloud"),
        (lambda s, mp: mp.setenv("DENIED", "alertmanager-pagerduty-routing-key"), "PERMISSION_DENIED"),
        (lambda s, mp: (s / "alertmanager-deadmans-switch-url").write_text("\n"), "deadmans-switch-url: no value"),
        (lambda s, mp: (s / "alertmanager-slack-webhook-url").write_text("http://x.example.invalid/\n"), "https://"),
        (lambda s, mp: mp.setenv("PATH", "/nonexistent"), "gcloud is not on PATH"),
    ],
    ids=["a secret not found", "no access", "an empty version", "plain http", "no gcloud"],
)
def test_a_secret_manager_failure_prints_nothing(fake_gcloud, capsys, monkeypatch, setup, expected):
    setup(fake_gcloud, monkeypatch)
    assert am.main(["secret", "--from-secret-manager"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "", "kubectl apply must get nothing to apply"
    assert expected in captured.err
    assert "0" * 32 not in captured.err and "example.invalid/ping" not in captured.err, "no value in an error"


def test_the_deploy_step_is_documented():
    readme = (REPO / "k8s" / "README.md").read_text()
    step = readme[readme.index("8. Who hears of the alerts") :]
    step = step[: step.index("\n\n")]
    assert "python -m k8s.alertmanager secret --from-secret-manager" in step
    assert "python -m k8s.alertmanager secret-ids" in step
    assert "kubectl apply --server-side" in step and "last-applied-configuration-" in step
    assert "managedAlertmanager.externalURL" in step and "prometheus-engine issue #1550" in step
    # no fixed folder a leftover of an aborted run could fill the configuration from
    assert "/tmp" not in step and "--secrets-dir" not in step
