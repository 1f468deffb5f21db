"""The local Prometheus's configuration (devstack/prometheus.py), generated from the stack's
settings: one scrape job per service named after it, the rule files and nothing else, the
intervals, retention and loopback address; a missing binary said before anything starts.
No Prometheus runs here (tests/integration/test_local_alerts.py runs the real one); promtool
checks the generated config as Prometheus would load it."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
import yaml

from devstack import __main__ as cli
from devstack import prometheus
from devstack import settings as stack_settings
from devstack.stack import Stack
from fjordbank import topology

REPO = Path(__file__).resolve().parents[2]
PROMTOOL = REPO / ".monitoring-tools" / "promtool"


@pytest.fixture
def settings(tmp_path):
    # a state dir of its own: a running stack's recorded replicas (.stack/run) are not this test's
    return stack_settings.load({"FJB_STATE_DIR": str(tmp_path / "state")})


def config_of(settings) -> dict:
    return yaml.safe_load(prometheus.render(settings, prometheus.rule_files(settings)))


def test_one_scrape_job_per_service_named_after_it_on_its_port_plus_prometheus_itself(settings):
    jobs = {job["job_name"]: job for job in config_of(settings)["scrape_configs"]}
    assert list(jobs) == [*topology.SERVICES, "prometheus"]
    catalogue = yaml.safe_load((REPO / "monitoring" / "metrics.yaml").read_text())
    assert list(jobs)[:-1] == catalogue["scrape_jobs"]["services"]["jobs"]  # the jobs the rules name
    for name, port in settings.service_ports.items():
        assert jobs[name]["metrics_path"] == "/metrics"
        assert jobs[name]["static_configs"] == [{"targets": [f"127.0.0.1:{port}"]}]
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["127.0.0.1:9090"]}]


def test_scrape_and_evaluation_every_5_seconds(settings):
    glob = config_of(settings)["global"]
    assert glob["scrape_interval"] == "5s" and glob["evaluation_interval"] == "5s"
    assert glob["scrape_timeout"] == "4s"  # Prometheus refuses a timeout above the interval


def test_rule_files_are_every_rules_file_of_the_repository_and_no_unit_test(settings):
    listed = [Path(p) for p in config_of(settings)["rule_files"]]
    on_disk = sorted((REPO / "monitoring" / "rules").glob("*.rules.yaml"))
    assert listed == on_disk
    assert {"pipeline.rules.yaml", "nats.rules.yaml"} <= {p.name for p in listed}
    assert not [p for p in listed if p.name.endswith(".test.yaml")]
    assert all(p.is_absolute() for p in listed)  # the config lives in .stack/, not beside them


def test_rule_files_are_read_when_the_config_is_written(tmp_path, settings):
    repo = tmp_path / "repo"
    rules = repo / "monitoring" / "rules"
    rules.mkdir(parents=True)
    s = dataclasses.replace(settings, repo=repo)
    assert prometheus.rule_files(s) == []
    assert yaml.safe_load(prometheus.render(s, []))["rule_files"] == []
    for name in ("b.rules.yaml", "a.rules.yaml", "a.rules.test.yaml", "notes.yaml", "README.md"):
        (rules / name).write_text("groups: []\n")
    (rules / "dir.rules.yaml").mkdir()
    assert [p.name for p in prometheus.rule_files(s)] == ["a.rules.yaml", "b.rules.yaml"]
    written = prometheus.write_config(s)
    assert written == s.state_dir / "prometheus.yml"
    assert [Path(p).name for p in yaml.safe_load(written.read_text())["rule_files"]] == ["a.rules.yaml", "b.rules.yaml"]
    (rules / "c.rules.yaml").write_text("groups: []\n")  # a file added later: the next write has it
    assert len(yaml.safe_load(prometheus.write_config(s).read_text())["rule_files"]) == 3


def test_ports_come_from_the_environment(tmp_path):
    fresh = {"FJB_STATE_DIR": str(tmp_path / "state")}
    s = stack_settings.load({**fresh, "FJB_PROMETHEUS_PORT": "19090", "FJB_SERVICE_PORT": "19101"})
    assert s.prometheus_port == 19090
    assert prometheus.url(s) == "http://127.0.0.1:19090"
    targets = prometheus.scrape_targets(s)
    assert targets["screening"] == ["127.0.0.1:19101"] and targets["prometheus"] == ["127.0.0.1:19090"]
    # replicas are further targets of their service's job, on ports after the first instances
    scaled = prometheus.scrape_targets(
        stack_settings.load({**fresh, "FJB_REPLICAS_LEDGER": "3", "FJB_SERVICE_PORT": "19101"})
    )
    assert scaled["ledger"] == ["127.0.0.1:19102", "127.0.0.1:19121", "127.0.0.1:19122"]
    with pytest.raises(SystemExit, match="FJB_REPLICAS_CARDS"):
        stack_settings.load({**fresh, "FJB_REPLICAS_CARDS": "2"})
    with pytest.raises(SystemExit, match="FJB_PROMETHEUS_PORT"):
        stack_settings.load({**fresh, "FJB_PROMETHEUS_PORT": "90900"})


def test_it_listens_on_loopback_keeps_its_data_in_the_state_dir_with_bounded_retention(settings):
    argv = prometheus.argv(settings)
    assert argv[0] == str(REPO / ".monitoring-tools" / "prometheus")
    assert "--web.listen-address=127.0.0.1:9090" in argv
    assert f"--storage.tsdb.path={settings.state_dir / 'prometheus'}" in argv
    assert f"--config.file={settings.state_dir / 'prometheus.yml'}" in argv
    assert any(a.startswith("--storage.tsdb.retention.time=") for a in argv)
    assert any(a.startswith("--storage.tsdb.retention.size=") for a in argv)


def test_promtool_accepts_the_generated_config_with_the_repositorys_rules(settings):
    if not (PROMTOOL.is_file() and PROMTOOL.stat().st_mode & 0o111):
        pytest.fail(f"promtool is not installed; run `{prometheus.INSTALL}`", pytrace=False)
    path = prometheus.write_config(settings)
    run = subprocess.run([str(PROMTOOL), "check", "config", str(path)], capture_output=True, text=True, check=False)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "SUCCESS" in out and "rules found" in out


# ---- the component ----------------------------------------------------------------------
def test_the_component_comes_after_every_service_and_is_ready_on_its_ready_endpoint(settings, monkeypatch):
    stack = Stack(settings, progress=lambda _m: None)
    names = [c.name for c in stack.components()]
    assert names[-1] == "prometheus"
    assert all(names.index(s) < names.index("prometheus") for s in topology.SERVICES)
    comp = stack.component("prometheus")
    assert comp.argv == prometheus.argv(settings) and comp.cwd == settings.state_dir
    polled = []
    monkeypatch.setattr(prometheus, "http_ok", lambda url: polled.append(url) or True)
    assert comp.ready() and polled == ["http://127.0.0.1:9090/-/ready"]


def test_before_it_starts_the_config_and_data_folder_are_made(settings):
    if not prometheus.binary(settings).is_file():
        pytest.fail(f"prometheus is not installed; run `{prometheus.INSTALL}`", pytrace=False)
    comp = prometheus.component(Stack(settings, progress=lambda _m: None))
    comp.before_start()
    assert (settings.state_dir / "prometheus").is_dir()
    assert yaml.safe_load((settings.state_dir / "prometheus.yml").read_text())["scrape_configs"]


def test_a_missing_binary_is_said_with_how_to_install_it_before_anything_starts(settings, capsys, monkeypatch):
    clone = dataclasses.replace(settings, repo=settings.state_dir / "clone")
    with pytest.raises(prometheus.NotInstalled) as err:
        prometheus.check_installed(clone)
    assert "bash scripts/monitoring_tools.sh" in str(err.value)
    assert "at .monitoring-tools/prometheus " in str(err.value)

    # the stack with the binary gone (its settings otherwise real, its state in a tmp folder)
    monkeypatch.setattr(prometheus, "binary", lambda _s: settings.state_dir / "missing" / "prometheus")
    with pytest.raises(prometheus.NotInstalled):
        prometheus.component(Stack(settings, progress=lambda _m: None)).before_start()

    class NoPrometheus(Stack):
        downs = 0

        def __init__(self):
            super().__init__(settings, progress=lambda _m: None)

        def down(self):
            self.downs += 1
            return []

        def ensure_topology(self):  # would be reached only if the check came too late
            raise AssertionError("something started before the missing binary was said")

    stack = NoPrometheus()
    stack.sup.start = lambda *a, **k: pytest.fail("a component was started")
    assert cli.cmd_up(stack, detach=True) == 1
    err = capsys.readouterr().err
    assert "ERROR: prometheus is not installed" in err and "bash scripts/monitoring_tools.sh" in err
    assert "Traceback" not in err
    assert stack.downs == 0  # nothing started, so nothing (of a running stack) is stopped

    # `python -m devstack restart prometheus` says it too (in the tmp state folder's stack)
    monkeypatch.setattr(cli.stack_settings, "load", lambda: settings)
    assert cli.main(["restart", "prometheus"]) == 1
    err = capsys.readouterr().err
    assert "ERROR: prometheus is not installed" in err and "Traceback" not in err


# ---- the reload `make up` does on a running Prometheus ----------------------------------
@pytest.mark.parametrize(("status", "body"), [(200, ""), (500, "loading groups failed: x.rules.yaml: parse error")])
def test_a_reload_writes_the_config_and_reports_what_prometheus_refuses(settings, status, body):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class FakePrometheus(BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(self.path)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        s = dataclasses.replace(settings, prometheus_port=server.server_address[1])
        if status == 200:
            prometheus.reload(s)
        else:
            with pytest.raises(prometheus.StartError, match=r"refused the new config or rules \(500\): loading groups"):
                prometheus.reload(s)
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["/-/reload"]
    assert (settings.state_dir / "prometheus.yml").is_file()
    # nothing listening: said, not a traceback of the socket
    with pytest.raises(prometheus.StartError, match="did not answer the reload"):
        prometheus.reload(s)


def test_a_stack_remembers_its_replicas_for_later_commands(tmp_path):
    """`devstack status|restart|down` run without FJB_REPLICAS_*: the counts `up` recorded."""
    env = {"FJB_STATE_DIR": str(tmp_path / "state")}
    started = stack_settings.load({**env, "FJB_REPLICAS_LEDGER": "2"})
    stack_settings.record_replicas(started)
    later = stack_settings.load(env)
    assert "ledger-2" in later.service_ports and later.service_ports == started.service_ports
    assert "ledger-2" not in stack_settings.load({**env, "FJB_REPLICAS_LEDGER": "1"}).service_ports
    assert stack_settings.service_of("ledger-2") == "ledger" and stack_settings.service_of("nats-2") == "nats-2"
