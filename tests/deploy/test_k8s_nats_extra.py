"""k8s/nats/extra/ENV: the internal passthrough load balancer on terraform's reserved address
and ranges, the NetworkPolicy, the certificates (their names cover what clients and routes
dial) and the PodMonitoring, checked against the chart's values and terraform/envs/ENV."""

from __future__ import annotations

import copy
import fnmatch
from urllib.parse import urlparse

import pytest

from k8s import chart, render
from tests.deploy import k8s_support as ks

MONITOR_PORT = 8222


@pytest.fixture(scope="module")
def terraform(hcl) -> dict:
    """Per environment: its address plan (variables.tf cidrs) and its nats_lb module call;
    and the annotations the nats_lb module says the Service needs."""
    paths = [ks.REPO / f"terraform/envs/{env}/{f}" for env in ks.ENVS for f in ("variables.tf", "main.tf")]
    paths.append(ks.REPO / "terraform/modules/nats_lb/outputs.tf")
    docs = hcl(paths)
    out = {}
    for env in ks.ENVS:
        variables = dict(ks.hcl_blocks(docs[f"terraform/envs/{env}/variables.tf"], "variable"))
        modules = dict(ks.hcl_blocks(docs[f"terraform/envs/{env}/main.tf"], "module"))
        nats_lb = dict(modules["nats_lb"])
        address = str(nats_lb.get("address", ""))
        if address.startswith("${var.") and address.endswith("}"):  # address = var.X: its default
            nats_lb["address"] = variables.get(address[6:-1], {}).get("default")
        out[env] = {"cidrs": variables["cidrs"]["default"], "nats_lb": nats_lb}
    outputs = dict(ks.hcl_blocks(docs["terraform/modules/nats_lb/outputs.tf"], "output"))
    out["annotations"] = set(outputs["service_annotations"]["value"])
    return out


def _allowed(cidrs: dict) -> list[str]:
    """The ranges NATS clients come from: Cloud Run's egress and the connector."""
    return [cidrs["run_egress"], cidrs["connector"]]


def _lb_problems(docs: list[dict], cidrs: dict, tf_annotations: set[str], vals: dict) -> list[str]:
    """The load balancer: internal, on the nodes' subnet, open to the clients' ranges only."""
    problems = []
    allowed = _allowed(cidrs)
    lb = ks.find(docs, "Service", "nats-lb")
    spec, notes = lb["spec"], lb["metadata"].get("annotations", {})
    if spec.get("type") != "LoadBalancer" or notes.get("networking.gke.io/load-balancer-type") != "Internal":
        problems.append("the Service must be an internal LoadBalancer")
    if unknown := set(notes) - tf_annotations:
        problems.append(f"annotations terraform's nats_lb module does not know: {sorted(unknown)}")
    ip = spec.get("loadBalancerIP")
    if not ip or not ks.in_subnet(ip, cidrs["gke_nodes"]):
        problems.append(f"loadBalancerIP {ip} is not in the GKE nodes' subnet {cidrs['gke_nodes']}")
    if spec.get("loadBalancerSourceRanges") != allowed:
        problems.append(f"loadBalancerSourceRanges must be exactly {allowed}")
    if [p["port"] for p in spec.get("ports", [])] != [vals["config"]["nats"]["port"]]:
        problems.append("the load balancer exposes the client port only")
    if spec.get("externalTrafficPolicy") != "Local":
        problems.append("externalTrafficPolicy Local keeps the clients' addresses for the NetworkPolicy")
    if spec.get("selector") != chart.selector_labels(vals):
        problems.append("the Service must select the chart's NATS pods")
    return problems


def _ingress_rule_problems(rule: dict, allowed: list[str], vals: dict) -> list[str]:
    """One ingress rule: it names its ports, keeps the monitoring port shut, admits no range
    beyond ``allowed``, and admits routes from the NATS pods only."""
    problems = []
    ports = [p.get("port") for p in rule.get("ports", [])]
    if not ports:
        problems.append("an ingress rule without ports admits every port")
    if MONITOR_PORT in ports:
        problems.append("the monitoring port 8222 is open")
    blocks = [p["ipBlock"]["cidr"] for p in rule.get("from", []) if "ipBlock" in p]
    if any(b not in allowed for b in blocks):
        problems.append(f"ipBlocks beyond {allowed}: {blocks}")
    if ports == [vals["config"]["cluster"]["port"]] and rule.get("from") != [
        {"podSelector": {"matchLabels": chart.selector_labels(vals)}}
    ]:
        problems.append("routes are admitted from the NATS pods only")
    return problems


def _policy_problems(docs: list[dict], cidrs: dict, vals: dict) -> list[str]:
    """The NetworkPolicy: the chart's pods, each rule sound, the client port open to the
    clients' ranges."""
    problems = []
    allowed = _allowed(cidrs)
    policy = ks.find(docs, "NetworkPolicy")
    if policy["spec"]["podSelector"].get("matchLabels") != chart.selector_labels(vals):
        problems.append("the NetworkPolicy must select the chart's NATS pods")
    for rule in policy["spec"].get("ingress", []):
        problems += _ingress_rule_problems(rule, allowed, vals)
    client_rules = [
        r for r in policy["spec"]["ingress"] if [p["port"] for p in r["ports"]] == [vals["config"]["nats"]["port"]]
    ]
    if not client_rules or sorted(p["ipBlock"]["cidr"] for p in client_rules[0]["from"] if "ipBlock" in p) != sorted(
        allowed
    ):
        problems.append("the client port must admit the egress and connector ranges")
    return problems


def _certificate_problems(docs: list[dict], vals: dict) -> list[str]:
    """The server certificate names what clients dial, the route certificate what routes
    dial; each in the Secret the values mount, from an issuer that is defined."""
    problems = []
    ip = ks.find(docs, "Service", "nats-lb")["spec"].get("loadBalancerIP")
    server = ks.find(docs, "Certificate", "nats-server-tls")["spec"]
    host = urlparse(render.IN_CLUSTER_NATS_URL).hostname
    if ip not in server.get("ipAddresses", []):
        problems.append(f"the server certificate does not name the load balancer's address {ip}")
    if host not in server.get("dnsNames", []):
        problems.append(f"the server certificate does not name {host}")
    if server["secretName"] != vals["config"]["nats"]["tls"]["secretName"]:
        problems.append("the server certificate's Secret is not the one the values mount")
    route = ks.find(docs, "Certificate", "nats-route-tls")["spec"]
    for url in chart.nats_conf_dict(vals)["cluster"]["routes"]:
        hostname = urlparse(url).hostname
        if not any(fnmatch.fnmatchcase(hostname, n) and n.count(".") == hostname.count(".") for n in route["dnsNames"]):
            problems.append(f"the route certificate does not cover {hostname}")
    if not {"server auth", "client auth"} <= set(route.get("usages", [])):
        problems.append("the route certificate serves mutual TLS: server auth and client auth")
    if route["secretName"] != vals["config"]["cluster"]["tls"]["secretName"]:
        problems.append("the route certificate's Secret is not the one the values mount")
    issuers = {d["metadata"]["name"] for d in docs if d["kind"] == "Issuer"}
    for cert in (server, route):
        if cert["issuerRef"]["name"] not in issuers:
            problems.append(f"issuer {cert['issuerRef']['name']} is not defined")
    return problems


def _monitoring_problems(docs: list[dict], vals: dict) -> list[str]:
    """The PodMonitoring scrapes the exporter, and the NetworkPolicy lets GMP reach it."""
    problems = []
    policy = ks.find(docs, "NetworkPolicy")
    monitor = ks.find(docs, "PodMonitoring")["spec"]
    if monitor["selector"]["matchLabels"] != chart.selector_labels(vals) or [
        e["port"] for e in monitor["endpoints"]
    ] != ["prom-metrics"]:
        problems.append("the PodMonitoring must scrape the chart's exporter port prom-metrics")
    exporter_rules = [
        r for r in policy["spec"]["ingress"] if [p["port"] for p in r["ports"]] == [vals["promExporter"]["port"]]
    ]
    if not exporter_rules:
        problems.append("GMP's collectors cannot reach the exporter")
    return problems


def extra_problems(docs: list[dict], cidrs: dict, tf_annotations: set[str], vals: dict) -> list[str]:
    """What is wrong with one environment's extra objects ([] when nothing is)."""
    return (
        _lb_problems(docs, cidrs, tf_annotations, vals)
        + _policy_problems(docs, cidrs, vals)
        + _certificate_problems(docs, vals)
        + _monitoring_problems(docs, vals)
    )


@pytest.mark.parametrize("env", ks.ENVS)
def test_extra_objects_agree_with_terraform_and_the_chart(env, terraform):
    problems = extra_problems(ks.extra_docs(env), terraform[env]["cidrs"], terraform["annotations"], ks.values(env))
    assert problems == []


def _breaks():
    def open_monitoring(docs):
        policy = next(d for d in docs if d["kind"] == "NetworkPolicy")
        policy["spec"]["ingress"][0]["ports"].append({"protocol": "TCP", "port": MONITOR_PORT})

    def everyone(docs):
        next(d for d in docs if d["kind"] == "Service")["spec"]["loadBalancerSourceRanges"] = ["0.0.0.0/0"]

    def wrong_address(docs):
        next(d for d in docs if d["kind"] == "Service")["spec"]["loadBalancerIP"] = "192.168.1.10"

    def narrow_route_cert(docs):
        cert = next(d for d in docs if d["kind"] == "Certificate" and d["metadata"]["name"] == "nats-route-tls")
        cert["spec"]["dnsNames"] = ["nats-headless"]

    def external(docs):
        next(d for d in docs if d["kind"] == "Service")["metadata"]["annotations"].pop(
            "networking.gke.io/load-balancer-type"
        )

    return {
        "8222 opened": (open_monitoring, "monitoring port 8222 is open"),
        "source 0.0.0.0/0": (everyone, "loadBalancerSourceRanges must be exactly"),
        "address outside the subnet": (wrong_address, "not in the GKE nodes' subnet"),
        "route SANs": (narrow_route_cert, "does not cover nats-0.nats-headless"),
        "external load balancer": (external, "internal LoadBalancer"),
    }


@pytest.mark.parametrize("name", list(_breaks()))
def test_a_broken_extra_object_is_reported(name, terraform):
    breaker, expected = _breaks()[name]
    docs = copy.deepcopy(ks.extra_docs("prod"))
    breaker(docs)
    problems = extra_problems(docs, terraform["prod"]["cidrs"], terraform["annotations"], ks.values("prod"))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("env", ks.ENVS)
def test_terraform_reserves_the_address_the_service_uses(env, terraform):
    ip = ks.find(ks.extra_docs(env), "Service", "nats-lb")["spec"]["loadBalancerIP"]
    assert terraform[env]["nats_lb"].get("address") == ip
