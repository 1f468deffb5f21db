"""k8s/nats/values*.yaml: every key exists in the NATS chart, and the design's invariants hold
in every environment (3 servers over zones, JetStream file store with sync_interval always,
TLS 1.3 with verified certificates on clients and routes, the clients' TLS handshake first,
no advertising behind the load balancer, a PDB, requests = limits, the exporter on, no
nats-box). Each check is shown failing on a broken input."""

from __future__ import annotations

import copy

import pytest

from k8s import chart, render
from tests.deploy import k8s_support as ks


@pytest.mark.parametrize("path", sorted({p for files in ks.VALUES_FILES.values() for p in files}), ids=lambda p: p.name)
def test_every_values_key_exists_in_the_chart(path):
    layer = chart.load_values(path)  # the chart's defaults + this file alone
    assert chart.unknown_keys(layer) == [], f"{path.name}: keys the chart does not have (helm ignores them silently)"
    assert chart.patches_used(layer) == [], f"{path.name}: use merge, not JSON patch (the offline render needs merge)"


def test_a_misspelt_values_key_is_reported(tmp_path):
    broken = tmp_path / "values.yaml"
    broken.write_text(render.VALUES.read_text().replace("podDisruptionBudget:", "podDisruptionBudgett:"))
    assert chart.unknown_keys(chart.load_values(broken)) == ["podDisruptionBudgett"]
    broken.write_text(render.VALUES.read_text().replace("    noAdvertise: true", "    noAdvertize: true"))
    assert chart.unknown_keys(chart.load_values(broken)) == ["config.cluster.noAdvertize"]


@pytest.mark.parametrize("env", ks.ENVS)
def test_the_design_invariants_hold(env):
    assert ks.nats_values_problems(ks.values(env)) == []


BREAKS = {
    "two replicas": (lambda v: v["config"]["cluster"].update(replicas=2), "a cluster of 3 servers"),
    "advertising": (lambda v: v["config"]["cluster"]["merge"].update(no_advertise=False), "no_advertise"),
    "lazy fsync": (lambda v: v["config"]["jetstream"]["merge"].pop("sync_interval"), "sync_interval"),
    "routes unverified": (lambda v: v["config"]["cluster"]["tls"]["merge"].pop("verify"), "route TLS verifies"),
    "clients on TLS 1.2": (lambda v: v["config"]["nats"]["tls"]["merge"].update(min_version="1.2"), "client TLS 1.3"),
    "INFO in clear text": (
        lambda v: v["config"]["nats"]["tls"]["merge"].pop("handshake_first"),
        "client TLS handshake first",
    ),
    "a fallback to clear text": (
        lambda v: v["config"]["nats"]["tls"]["merge"].update(handshake_first="300ms"),
        "client TLS handshake first",
    ),
    "burstable": (lambda v: v["container"]["merge"]["resources"]["limits"].update(cpu="4"), "nats: requests = limits"),
    "no spread over zones": (
        lambda v: v["podTemplate"]["topologySpreadConstraints"].pop("topology.kubernetes.io/zone"),
        "spread over zones",
    ),
    "no PDB": (lambda v: v["podDisruptionBudget"].update(enabled=False), "PodDisruptionBudget"),
    "no exporter": (lambda v: v["promExporter"].update(enabled=False), "exporter"),
    "store = volume": (lambda v: v["config"]["jetstream"]["fileStore"].update(maxSize=None), "max_file_store below"),
}


@pytest.mark.parametrize("name", BREAKS)
def test_a_broken_invariant_is_reported(name):
    vals = copy.deepcopy(ks.values("prod"))
    breaker, expected = BREAKS[name]
    breaker(vals)
    problems = ks.nats_values_problems(vals)
    assert any(expected in p for p in problems), problems


def test_nats_pool_placement_equals_terraform(hcl):
    doc = hcl([ks.REPO / "terraform/modules/gke/outputs.tf"])["terraform/modules/gke/outputs.tf"]
    selector = dict(ks.hcl_blocks(doc, "output"))["nats_node_selector"]["value"]
    spec = ks.values("prod")["podTemplate"]["merge"]["spec"]
    assert spec["nodeSelector"] == selector["node_label"]
    assert selector["toleration"] in spec["tolerations"]
