"""k8s/nats/topology: the Job that creates the JetStream streams, consumers and KV buckets in
production. It runs the command the image ships (fjordbank/adapters/jetstream_setup.py) as
the topology's admin identity, with that identity's Secret, from the namespace and with the
label the NetworkPolicy admits, reaching the servers by the name their certificate holds."""

from __future__ import annotations

import copy
import importlib.util
import re

import pytest

from fjordbank import topology
from k8s import chart, render
from tests.deploy import k8s_support as ks


def job() -> dict:
    return ks.find(ks.load_docs(render.TOPOLOGY_JOB_DIR / "job.yaml"), "Job", render.TOPOLOGY_JOB)


def job_problems(doc: dict) -> list[str]:
    """Where it runs and as whom (the pod), then what it runs (its container)."""
    problems = []
    admin = next(ident.name for ident in topology.IDENTITIES if ident.admin)
    spec = doc["spec"]["template"]["spec"]
    labels = doc["spec"]["template"]["metadata"]["labels"]
    if doc["metadata"]["namespace"] != chart.NAMESPACE:
        problems.append(f"namespace {doc['metadata']['namespace']}: the NetworkPolicy admits the admin job from nats")
    if labels.get("fjordbank.io/nats-client") != "true":
        problems.append("the pod lacks the label fjordbank.io/nats-client the NetworkPolicy admits")
    volumes = {v["name"]: v for v in spec["volumes"]}
    if volumes.get("nats-client", {}).get("secret", {}).get("secretName") != f"nats-client-{admin}":
        problems.append(f"the NATS files do not come from the Secret nats-client-{admin}")
    if spec.get("serviceAccountName") != render.ADMIN_SERVICE_ACCOUNT or spec.get("automountServiceAccountToken"):
        problems.append("not the admin ServiceAccount, or a Kubernetes API token mounted")
    if spec.get("restartPolicy") not in ("Never", "OnFailure"):
        problems.append("a Job's pod restarts Never or OnFailure")
    (container,) = spec["containers"]
    return problems + container_problems(container, admin)


def container_problems(container: dict, admin: str) -> list[str]:
    problems = []
    command = container.get("command", [])
    if command[-2:] != ["-m", "fjordbank.adapters.jetstream_setup"]:
        problems.append(f"runs {command}, not python -m fjordbank.adapters.jetstream_setup")
    elif "--check" in container.get("args", []):
        problems.append("runs --check: it would create nothing")
    env = {e["name"]: e for e in container["env"]}
    if env.get("FJB_NATS_USER", {}).get("value") != admin:
        problems.append(f"FJB_NATS_USER {env.get('FJB_NATS_USER')}: the admin identity is {admin!r}")
    secret = f"nats-client-{admin}"
    if env.get("FJB_NATS_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef", {}).get("name") != secret:
        problems.append(f"the password does not come from the Secret {secret}")
    if env.get("FJB_NATS_URLS", {}).get("value") != render.IN_CLUSTER_NATS_URL:
        problems.append("FJB_NATS_URLS is not the in-cluster Service the server certificate names")
    if not re.search(ks.DIGEST, container["image"]):
        problems.append(f"image {container['image']!r} is not pinned by digest")
    resources = container.get("resources", {})
    if not resources.get("requests") or resources["requests"] != resources.get("limits"):
        problems.append("resources must set requests equal to limits")
    return problems


def test_the_admin_job_runs_the_topology_command_as_the_admin_identity():
    assert job_problems(job()) == []


def test_the_command_is_in_the_image():
    """fjordbank/ is what the image ships (tests/deploy/test_dockerfile.py SHIPPED)."""
    assert importlib.util.find_spec("fjordbank.adapters.jetstream_setup") is not None


def test_the_service_account_is_the_admin_identitys():
    """terraform's envs name the admin identity's account fjb-nats-admin."""
    sa = ks.find(ks.load_docs(render.TOPOLOGY_JOB_DIR / "serviceaccount.yaml"), "ServiceAccount")
    assert sa["metadata"] == {
        "name": render.ADMIN_SERVICE_ACCOUNT,
        "namespace": chart.NAMESPACE,
        "labels": sa["metadata"]["labels"],
    }
    assert sa["automountServiceAccountToken"] is False
    for env in ("dev", "prod"):
        assert (
            f'account_id   = "{render.ADMIN_SERVICE_ACCOUNT}"'
            in (ks.REPO / "terraform" / "envs" / env / "main.tf").read_text()
        )


def test_the_network_policy_admits_the_job():
    for env in ks.ENVS:
        policy = ks.find(ks.extra_docs(env), "NetworkPolicy")
        peers = [p for rule in policy["spec"]["ingress"] for p in rule.get("from", [])]
        assert {"podSelector": {"matchLabels": {"fjordbank.io/nats-client": "true"}}} in peers, env
        assert policy["metadata"]["namespace"] == job()["metadata"]["namespace"]


BREAKS = {
    "a service's identity": (
        lambda d: next(
            e for e in d["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == "FJB_NATS_USER"
        ).update(value="ledger"),
        "the admin identity",
    ),
    "no NetworkPolicy label": (
        lambda d: d["spec"]["template"]["metadata"]["labels"].pop("fjordbank.io/nats-client"),
        "fjordbank.io/nats-client",
    ),
    "check only": (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(args=["--check"]), "--check"),
    "by tag": (
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="registry.example/fjordbank/services:1"),
        "by digest",
    ),
}


@pytest.mark.parametrize("name", BREAKS)
def test_a_broken_job_is_refused(name):
    doc = copy.deepcopy(job())
    breaker, expected = BREAKS[name]
    breaker(doc)
    problems = job_problems(doc)
    assert any(expected in p for p in problems), problems
