"""Every Kubernetes object under k8s/ against a schema.

* Kinds of Kubernetes itself (Service, NetworkPolicy, Namespace, ServiceAccount, and the
  chart's StatefulSet and PodDisruptionBudget as k8s/chart.py renders them from the values):
  `kubernetes-validate --strict` against Kubernetes 1.32 (GKE's regular channel).
* Custom resources (Knative Service, GKE Managed Prometheus PodMonitoring): their CRD's
  openAPIV3Schema with jsonschema, made strict where the CRD does not preserve unknown fields,
  because kubernetes-validate passes any custom resource silently and the API server would
  prune a misspelt field without a word.
* `kubectl kustomize` renders each kustomization (when kubectl is there: it comes with
  google-cloud-cli, not from a registry this project uses).
"""

from __future__ import annotations

import copy
import shutil
import subprocess

import pytest
import yaml

from k8s import chart
from tests.deploy import k8s_support as ks


def _core_docs() -> list[dict]:
    docs = [d for _, d in ks.all_docs() if ks.is_core(d)]
    for env in ks.ENVS:
        vals = ks.values(env)
        sts = chart.stateful_set(vals)
        sts["metadata"]["name"] = f"nats-{env}"  # one file per environment
        pdb = chart.pod_disruption_budget(vals)
        pdb["metadata"]["name"] = f"nats-{env}"
        docs += [sts, pdb]
    return docs


def test_core_kinds_match_the_kubernetes_schema(tmp_path):
    docs = _core_docs()
    kinds = {d["kind"] for d in docs}
    assert {
        "Service",
        "NetworkPolicy",
        "StatefulSet",
        "PodDisruptionBudget",
        "Namespace",
        "ServiceAccount",
        "Job",
    } <= kinds
    proc = ks.kubernetes_validate(docs, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_misspelt_field_of_a_core_kind_is_refused(tmp_path):
    policy = ks.find(ks.extra_docs("prod"), "NetworkPolicy")
    policy["spec"]["policyType"] = policy["spec"].pop("policyTypes")
    proc = ks.kubernetes_validate([policy], tmp_path)
    assert proc.returncode != 0 and "'policyType' was unexpected" in proc.stdout + proc.stderr


def test_a_misspelt_field_in_the_chart_values_is_refused(tmp_path):
    vals = copy.deepcopy(ks.values("prod"))
    vals["podTemplate"]["topologySpreadConstraints"]["topology.kubernetes.io/zone"]["whenUnsatisfable"] = (
        "DoNotSchedule"
    )
    proc = ks.kubernetes_validate([chart.stateful_set(vals)], tmp_path)
    assert proc.returncode != 0 and "whenUnsatisfable" in proc.stdout + proc.stderr


def test_every_custom_resource_has_a_schema_check():
    for path, doc in ks.all_docs():
        if not ks.is_core(doc):
            key = ks.group_kind(doc)
            assert key in ks.CRD_FILES or key in ks.UNCHECKED_KINDS, f"{path}: no schema check for {key}"


def _custom_resources() -> list[tuple[str, dict]]:
    return [
        (f"{p.relative_to(ks.K8S)}:{d['metadata']['name']}", d)
        for p, d in ks.all_docs()
        if ks.group_kind(d) in ks.CRD_FILES
    ]


@pytest.mark.parametrize(("where", "doc"), _custom_resources(), ids=[w for w, _ in _custom_resources()])
def test_custom_resources_match_their_crd(where, doc):
    crds = ks.require_crds()
    assert ks.custom_resource_errors(doc, crds) == []


def _ksvc() -> dict:
    return yaml.safe_load((ks.KNATIVE / "ledger.yaml").read_text())


def _container(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]["containers"][0]


def _break_readiness(doc):
    _container(doc)["readynessProbe"] = _container(doc).pop("readinessProbe")


def _break_concurrency(doc):
    doc["spec"]["template"]["spec"]["containerConcurrency"] = "0"


def _break_annotation(doc):
    doc["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] = 1


def _break_port(doc):
    _container(doc)["ports"][0]["containerPort"] = "8080"


@pytest.mark.parametrize(
    ("breaker", "expected"),
    [
        (_break_readiness, "readynessProbe"),
        (_break_concurrency, "'0' is not of type 'integer'"),
        (_break_annotation, "1 is not of type 'string'"),
        (_break_port, "'8080' is not of type 'integer'"),
    ],
    ids=["readynessProbe", "containerConcurrency as a string", "annotation as a number", "port as a string"],
)
def test_a_broken_knative_service_is_refused(breaker, expected):
    crds = ks.require_crds()
    doc = _ksvc()
    breaker(doc)
    errors = ks.custom_resource_errors(doc, crds)
    assert any(expected in e for e in errors), errors


def test_a_broken_pod_monitoring_is_refused():
    crds = ks.require_crds()
    doc = ks.find(ks.extra_docs("prod"), "PodMonitoring")
    doc["spec"]["endpoint"] = doc["spec"].pop("endpoints")
    errors = ks.custom_resource_errors(doc, crds)
    assert any("endpoint" in e for e in errors), errors


def test_the_strict_schema_keeps_what_the_crd_preserves():
    """Knative preserves unknown fields in template.metadata: an extra key there is fine."""
    crds = ks.require_crds()
    doc = _ksvc()
    doc["spec"]["template"]["metadata"]["generateName"] = "ledger-"
    assert ks.custom_resource_errors(doc, crds) == []


KUSTOMIZATIONS = [ks.KNATIVE, ks.NATS / "topology", ks.K8S / "monitoring", *(ks.EXTRA / env for env in ks.ENVS)]


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(ks.K8S)))
def test_kustomizations_render_every_file_they_list(directory):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl on PATH (it comes with google-cloud-cli, not from a registry this project uses)")
    proc = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rendered = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(proc.stdout) if d}
    listed = {
        (d["kind"], d["metadata"]["name"]) for p in ks.kustomization_resources(directory) for d in ks.load_docs(p)
    }
    assert rendered == listed
    # and a rendered image keeps its digest (CI's `kustomize edit set image` changes only the digest)
    for doc in yaml.safe_load_all(proc.stdout):
        if doc and doc["kind"] in ("Service", "Job") and doc["apiVersion"].startswith(("serving.knative.dev", "batch")):
            assert "@sha256:" in _container(doc)["image"]


def test_every_manifest_is_in_a_kustomization():
    listed = {p for d in KUSTOMIZATIONS for p in ks.kustomization_resources(d)}
    assert set(ks.manifest_files()) == listed, "a manifest no kustomization applies, or a missing file"
