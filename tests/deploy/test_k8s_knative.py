"""k8s/knative: one Knative Service per consumer of fjordbank/topology.py, which never scales
to zero (a pull consumer gets no requests), runs the image by digest, starts and is ready only
when NATS is reachable (/readyz), has requests = limits and no secret in plain text; and it
agrees with terraform's Cloud Run consumers (secrets, probe, sizes)."""

from __future__ import annotations

import copy

import pytest
import yaml

from fjordbank import topology
from fjordbank.runtime import http
from k8s import render
from tests.deploy import k8s_support as ks


def _services() -> dict[str, dict]:
    docs = [d for p in ks.kustomization_resources(ks.KNATIVE) for d in ks.load_docs(p)]
    return {d["metadata"]["name"]: d for d in docs if ks.group_kind(d) == ("serving.knative.dev", "Service")}


def test_one_knative_service_per_consumer():
    assert sorted(_services()) == sorted(topology.SERVICES)


@pytest.mark.parametrize("name", topology.SERVICES)
def test_consumer_policy(name):
    assert ks.knative_policy_errors(_services()[name]) == []


def _ledger() -> dict:
    return copy.deepcopy(_services()["ledger"])


def _container(doc):
    return doc["spec"]["template"]["spec"]["containers"][0]


BREAKS = {
    "min-scale 0": (
        lambda d: d["spec"]["template"]["metadata"]["annotations"].update({"autoscaling.knative.dev/min-scale": "0"}),
        "must never scale to zero",
    ),
    "no min-scale": (
        lambda d: d["spec"]["template"]["metadata"]["annotations"].pop("autoscaling.knative.dev/min-scale"),
        "min-scale must be set",
    ),
    "image by tag": (lambda d: _container(d).update(image="registry.example/fjordbank/services:latest"), "by digest"),
    "startup on /healthz": (lambda d: _container(d)["startupProbe"]["httpGet"].update(path="/healthz"), "startupProbe"),
    "no readiness probe": (lambda d: _container(d).pop("readinessProbe"), "readinessProbe"),
    "burstable": (lambda d: _container(d)["resources"]["limits"].update(cpu="2"), "requests equal to limits"),
    "literal password": (
        lambda d: _container(d)["env"].append({"name": "FJB_NATS_PASSWORD", "value": "hunter2"}),
        "literal value",
    ),
}


@pytest.mark.parametrize("name", BREAKS)
def test_a_broken_consumer_is_refused(name):
    doc = _ledger()
    breaker, expected = BREAKS[name]
    breaker(doc)
    errors = ks.knative_policy_errors(doc)
    assert any(expected in e for e in errors), errors


@pytest.mark.parametrize("name", topology.SERVICES)
def test_identity_and_secrets(name):
    c = _container(_services()[name])
    env = {e["name"]: e for e in c["env"]}
    assert env["SERVICE"]["value"] == name and env["FJB_NATS_USER"]["value"] == name
    assert env["FJB_NATS_URLS"]["value"].startswith("tls://")
    assert env["FJB_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == f"nats-client-{name}"
    for var, secret_id in render.SERVICE_SECRET_ENV.get(name, {}).items():
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": f"fjb-{name}-secrets", "key": secret_id}
    assert int(env["FJB_HTTP_PORT"]["value"]) == c["ports"][0]["containerPort"]


def test_agrees_with_terraform(hcl):
    paths = [ks.REPO / "terraform/modules/topology/main.tf", ks.REPO / "terraform/modules/consumer/variables.tf"]
    docs = hcl(paths)
    locals_ = {
        k: v for block in docs["terraform/modules/topology/main.tf"]["locals"] for k, v in ks.unquote(block).items()
    }
    assert locals_["consumer_services"] == list(topology.SERVICES)
    assert locals_["service_secret_env"] == render.SERVICE_SECRET_ENV
    variables = dict(ks.hcl_blocks(docs["terraform/modules/consumer/variables.tf"], "variable"))
    for name, doc in _services().items():
        c = _container(doc)
        startup = {k: c["startupProbe"][k] for k in ("periodSeconds", "timeoutSeconds", "failureThreshold")}
        tf = variables["startup_probe"]["default"]
        assert startup == {
            "periodSeconds": tf["period_seconds"],
            "timeoutSeconds": tf["timeout_seconds"],
            "failureThreshold": tf["failure_threshold"],
        }, name
        assert c["resources"]["limits"] == {
            "cpu": variables["cpu"]["default"],
            "memory": variables["memory"]["default"],
        }
        concurrency = doc["spec"]["template"]["spec"]["containerConcurrency"]
        if name in render.CARD_SERVICES:  # the card API server's connection limit, as terraform's
            assert concurrency == locals_["card_api_max_connections"], name
        else:
            assert concurrency == variables["max_concurrency"]["default"], name


def test_a_card_pod_is_sent_as_many_requests_at_once_as_its_api_server_answers():
    """Knative sent the card pod 10 requests at once, as every consumer (the probes and
    /metrics), while it serves the card processor's API on that port and its server answers
    MAX_CONNECTIONS: the rest queued in Knative (found in review, 2026-12-06)."""
    assert render.CARD_CONTAINER_CONCURRENCY == http.MAX_CONNECTIONS  # restated in k8s/render.py
    services = _services()
    for name in render.CARD_SERVICES:
        assert services[name]["spec"]["template"]["spec"]["containerConcurrency"] >= http.MAX_CONNECTIONS, name


def test_consumers_may_reach_nats_through_its_network_policy():
    for env in ks.ENVS:
        policy = ks.find(ks.extra_docs(env), "NetworkPolicy")
        client_rule = next(r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == 4222)
        peers = [p for p in client_rule["from"] if "namespaceSelector" in p]
        for doc in _services().values():
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert any(
                p["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": doc["metadata"]["namespace"]}
                and all(labels.get(k) == v for k, v in p["podSelector"]["matchLabels"].items())
                for p in peers
            ), f"{env}: {doc['metadata']['name']} could not reach NATS"


def test_each_consumer_is_scraped_under_its_own_job():
    """Managed Prometheus names a target's job after its PodMonitoring: one per service,
    named as the rules' scrape jobs (monitoring/metrics.yaml), selecting that service only."""
    docs = list(yaml.safe_load_all((ks.KNATIVE / "podmonitoring.yaml").read_text()))
    catalogue = yaml.safe_load((ks.REPO / "monitoring" / "metrics.yaml").read_text())
    assert sorted(d["metadata"]["name"] for d in docs) == sorted(catalogue["scrape_jobs"]["services"]["jobs"])
    services = _services()
    for doc in docs:
        selector = doc["spec"]["selector"]["matchLabels"]
        selected = [
            name
            for name, svc in services.items()
            if all(svc["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in selector.items())
        ]
        assert selected == [doc["metadata"]["name"]]
        assert doc["spec"]["endpoints"][0]["path"] == "/metrics"


def _clearing_services() -> list[str]:
    """The run_services that exchange files with the clearing house (Settings.clearing_channel:
    in production they refuse to start without FJB_CLEARING_DIR)."""
    return [s for s in topology.SERVICES if "clearing_channel()" in (ks.REPO / "run_services" / f"{s}.py").read_text()]


def test_the_clearing_service_has_its_exchange_mounted_where_its_setting_points():
    assert _clearing_services() == list(render.CLEARING_SERVICES)
    docs = [d for p in ks.kustomization_resources(ks.KNATIVE) for d in ks.load_docs(p)]
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    for name in _clearing_services():
        pod = _services()[name]["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in _container(_services()[name])["env"]}
        mounts = {m["mountPath"]: m["name"] for m in _container(_services()[name])["volumeMounts"]}
        volume = mounts[env["FJB_CLEARING_DIR"]]  # the setting names a mounted volume
        claim = next(v for v in pod["volumes"] if v["name"] == volume)["persistentVolumeClaim"]["claimName"]
        assert claim in claims
    for name in set(topology.SERVICES) - set(_clearing_services()):
        assert "FJB_CLEARING_DIR" not in {e["name"] for e in _container(_services()[name])["env"]}


def _screening_services() -> list[str]:
    """The run_services that screen payments against the sanctions list
    (Settings.screening_list: in production they refuse to start without FJB_SANCTIONS_LIST)."""
    return [s for s in topology.SERVICES if "screening_list()" in (ks.REPO / "run_services" / f"{s}.py").read_text()]


def test_the_services_that_screen_payments_read_the_sanctions_list_from_a_mounted_volume():
    assert sorted(_screening_services()) == ["clearing", "screening"]
    for name in _screening_services():
        env = {e["name"]: e.get("value") for e in _container(_services()[name])["env"]}
        mounts = {m["mountPath"]: m for m in _container(_services()[name])["volumeMounts"]}
        listed = env["FJB_SANCTIONS_LIST"]
        assert listed.startswith("/") and listed.endswith(".xml")
        [mount] = [m for path, m in mounts.items() if listed.startswith(f"{path}/")]  # not the image's
        volume = next(v for v in _services()[name]["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
        assert volume["persistentVolumeClaim"]["claimName"] == render.CLEARING_CLAIM  # where the operator puts it
        if name not in _clearing_services():  # read-only, and no subPath (bound when the pod starts)
            assert mount["readOnly"] is True and "subPath" not in mount
            assert volume["persistentVolumeClaim"]["readOnly"] is True


def test_the_card_service_keeps_its_vault_in_its_database_and_serves_the_processor_on_its_one_port():
    """The card service's vault is the Firestore database FJB_VAULT_DATABASE (terraform's
    card_vault module, which grants it to the card service's account alone), not a volume:
    no claim, no mount. A container has one port: the processor's API is served on it
    (FJB_CARD_API_PORT = FJB_HTTP_PORT; it was set nowhere, found in review, 2026-12-06)."""
    cards = _services()["cards"]
    container = _container(cards)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FJB_CARD_API_PORT"] == env["FJB_HTTP_PORT"] == str(container["ports"][0]["containerPort"])
    assert env["FJB_VAULT_DATABASE"] == render.CARD_VAULT_DATABASE == "card-vault"
    assert "FJB_VAULT_PATH" not in env
    pod = cards["spec"]["template"]["spec"]
    assert [m["name"] for m in container["volumeMounts"]] == ["nats-client"]
    assert [v["name"] for v in pod["volumes"]] == ["nats-client"]
    claims = [
        d["metadata"]["name"]
        for p in ks.kustomization_resources(ks.KNATIVE)
        for d in ks.load_docs(p)
        if d["kind"] == "PersistentVolumeClaim"
    ]
    assert claims == [render.CLEARING_CLAIM]  # fjb-card-vault is gone
    assert not (ks.KNATIVE / "card-vault.yaml").exists()
    # one replica still: the processor API's references in flight and the approvals had
    # live in the process (run_services/cards.py), not in the vault
    assert cards["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/max-scale"] == "1"
    for name in set(topology.SERVICES) - set(render.CARD_SERVICES):
        names = {e["name"] for e in _container(_services()[name])["env"]}
        assert not names & {"FJB_VAULT_DATABASE", "FJB_VAULT_PATH", "FJB_CARD_API_PORT"}, name


def test_the_card_vault_database_is_terraform_s(hcl):
    """The Knative card service points at the database terraform makes and grants it."""
    path = ks.REPO / "terraform/modules/card_vault/variables.tf"
    variables = dict(ks.hcl_blocks(hcl([path])["terraform/modules/card_vault/variables.tf"], "variable"))
    assert variables["database_id"]["default"] == render.CARD_VAULT_DATABASE


def test_a_revision_gives_the_service_its_whole_stop_after_knatives_drain():
    """Knative's grace period is the revision's timeoutSeconds, and its drain (30 s) comes
    out of it before the service's SIGTERM: at 30 the service was killed about 2 s after
    it (found in review, 2026-12-07)."""
    from fjordbank.runtime import consumer

    stop = consumer.HANDLER_DEADLINE_SECONDS + consumer.BACKGROUND_GRACE_SECONDS + 10  # acks flushed, port closed
    assert render.STOP_BUDGET_SECONDS >= stop
    for name, doc in _services().items():
        timeout = doc["spec"]["template"]["spec"]["timeoutSeconds"]
        assert timeout - render.KNATIVE_DRAIN_SECONDS >= stop, name
        assert timeout <= 600, name  # Knative's max-revision-timeout-seconds by default
