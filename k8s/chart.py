"""The parts of the official NATS Helm chart (nats-io/k8s, chart 2.14.x) that the offline
checks need, rendered in Python: no helm binary exists in the registries this project uses.

What is rendered, and how faithfully:

* `nats_conf(values)`: the server configuration the chart's ConfigMap holds. Same structure
  and the same formatting rules as the chart (`files/config/*.yaml`, `nats.formatConfig`):
  pretty JSON with sorted keys, `"<< X >>"` strings written raw (units, `$VARIABLES`) and
  `"...$include": "f"` keys turned into `include f;`. `merge` blocks are deep-merged like
  Helm's `mergeOverwrite`; `patch` (JSON patch) is refused, so every value of this project
  goes through `merge`, which this renderer reproduces.
* `pod_disruption_budget(values)`, `stateful_set(values)`: the chart's PDB and an
  approximation of its StatefulSet (containers, env, resources, probes, volumes, spread
  constraints, the PVC template), precise enough for the Kubernetes 1.32 schema check of what
  these values put there. Not a substitute for `helm template` where helm exists.

`CHART_DEFAULTS` restates the chart's defaults for the keys this project relies on (from
the chart's values.yaml at release 2.14.6); `unknown_keys` reports any values key the chart
does not have, because Helm ignores a misspelt key silently.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

RELEASE = "nats"  # helm upgrade --install nats nats/nats: the chart's full name is then "nats"
NAMESPACE = "nats"
CHART_VERSION = "2.14.6"


def _tls(protocol: str) -> dict[str, Any]:
    return {
        "enabled": False,
        "secretName": None,
        "dir": f"/etc/nats-certs/{protocol}",
        "cert": "tls.crt",
        "key": "tls.key",
        "merge": {},
        "patch": [],
    }


def _image(repository: str, tag: str) -> dict[str, Any]:
    return {
        "repository": repository,
        "tag": tag,
        "pullPolicy": None,
        "registry": None,
        "digest": None,
        "fullImageName": None,
    }


CHART_DEFAULTS: dict[str, Any] = {
    "global": {"image": {"pullPolicy": None, "pullSecretNames": [], "registry": None}, "labels": {}},
    "nameOverride": None,
    "fullnameOverride": None,
    "namespaceOverride": None,
    "config": {
        "cluster": {
            "enabled": False,
            "port": 6222,
            "replicas": 3,
            "name": None,
            "noAdvertise": True,
            "routeURLs": {"user": None, "password": None, "useFQDN": False, "k8sClusterDomain": "cluster.local"},
            "tls": _tls("cluster"),
            "merge": {},
            "patch": [],
        },
        "nats": {"port": 4222, "tls": _tls("nats")},
        "leafnodes": {"enabled": False},
        "websocket": {"enabled": False},
        "mqtt": {"enabled": False},
        "gateway": {"enabled": False},
        "monitor": {"enabled": True, "port": 8222, "tls": {"enabled": False}},
        "profiling": {"enabled": False, "port": 65432},
        "resolver": {"enabled": False},
        "jetstream": {
            "enabled": False,
            "fileStore": {
                "enabled": True,
                "dir": "/data",
                "pvc": {
                    "enabled": True,
                    "size": "10Gi",
                    "storageClassName": None,
                    "merge": {},
                    "patch": [],
                    "name": None,
                },
                "maxSize": None,
            },
            "memoryStore": {"enabled": False, "maxSize": "1Gi"},
            "merge": {},
            "patch": [],
        },
        "serverNamePrefix": "",
        "lameDuckGracePeriod": "10s",
        "lameDuckDuration": "30s",
        "merge": {},
        "patch": [],
    },
    "container": {"image": _image("nats", "2.14.6-alpine"), "ports": {}, "env": {}, "merge": {}, "patch": []},
    "reloader": {
        "enabled": True,
        "image": _image("natsio/nats-server-config-reloader", "0.23.0"),
        "env": {},
        "natsVolumeMountPrefixes": ["/etc/"],
        "merge": {},
        "patch": [],
    },
    "promExporter": {
        "enabled": False,
        "image": _image("natsio/prometheus-nats-exporter", "0.17.3"),
        "port": 7777,
        "monitorDomain": "localhost",
        "env": {},
        "merge": {},
        "patch": [],
        "podMonitor": {"enabled": False, "merge": {}, "patch": [], "name": None},
    },
    "service": {"enabled": True, "ports": {}, "merge": {}, "patch": [], "name": None},
    "statefulSet": {"merge": {}, "patch": [], "name": None},
    "podTemplate": {
        "configChecksumAnnotation": False,
        "terminationGracePeriodSeconds": 60,
        "topologySpreadConstraints": {},
        "merge": {},
        "patch": [],
    },
    "headlessService": {"merge": {}, "patch": [], "name": None},
    "configMap": {"merge": {}, "patch": [], "name": None},
    "podDisruptionBudget": {"enabled": True, "merge": {}, "patch": [], "name": None},
    "serviceAccount": {"enabled": False, "merge": {}, "patch": [], "name": None},
    "natsBox": {"enabled": True},
    "tlsCA": {"enabled": False, "configMapName": None, "secretName": None, "dir": "/etc/nats-ca-cert", "key": "ca.crt"},
    "extraResources": [],
}

# Values whose content the chart passes on as it is (Kubernetes or NATS objects, env maps).
FREE_FORM = {"merge", "patch", "env", "ports", "labels", "topologySpreadConstraints", "extraResources"}


class ChartError(ValueError):
    """Values this renderer (or the chart) cannot take."""


def deep_merge(base: Any, override: Any) -> Any:
    """Helm's mergeOverwrite / values layering: maps merge key by key, anything else replaces."""
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        merged = {k: copy.deepcopy(v) for k, v in base.items()}
        for key, value in override.items():
            merged[key] = deep_merge(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


def load_values(*paths: Path) -> dict[str, Any]:
    """The chart's defaults with each values file layered on top, in order (helm -f a -f b)."""
    values: dict[str, Any] = copy.deepcopy(CHART_DEFAULTS)
    for path in paths:
        layer = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(layer, dict):
            raise ChartError(f"{path}: a values file must be a mapping")
        values = deep_merge(values, layer)
    return values


def unknown_keys(
    values: Mapping[str, Any], defaults: Mapping[str, Any] = CHART_DEFAULTS, prefix: str = ""
) -> list[str]:
    """Dotted paths of keys the chart does not know (below FREE_FORM keys anything goes)."""
    found = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if key not in defaults:
            found.append(path)
        elif key not in FREE_FORM and isinstance(value, Mapping) and isinstance(defaults[key], Mapping):
            found += unknown_keys(value, defaults[key], f"{path}.")
    return found


def patches_used(values: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every non-empty `patch` (JSON patch): this renderer refuses them."""
    found = []
    if isinstance(values, Mapping):
        for key, value in values.items():
            if key == "patch" and value:
                found.append(f"{prefix}{key}")
            elif key not in ("merge", "env"):
                found += patches_used(value, f"{prefix}{key}.")
    return found


def fullname(values: Mapping[str, Any]) -> str:
    return values.get("fullnameOverride") or RELEASE


def selector_labels(values: Mapping[str, Any]) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": values.get("nameOverride") or "nats",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": "nats",
    }


def _raw(value: Any) -> str:
    return f"<< {value} >>"


def _tls_block(values: Mapping[str, Any], tls: Mapping[str, Any]) -> dict[str, Any]:
    directory = tls["dir"].rstrip("/")
    block: dict[str, Any] = {"cert_file": f"{directory}/{tls['cert']}", "key_file": f"{directory}/{tls['key']}"}
    ca = values["tlsCA"]
    if ca["enabled"]:
        block["ca_file"] = f"{ca['dir'].rstrip('/')}/{ca['key']}"
    return deep_merge(block, tls.get("merge") or {})


def nats_conf_dict(values: Mapping[str, Any]) -> dict[str, Any]:
    """The server configuration as the chart builds it, before formatting."""
    if used := patches_used(values):
        raise ChartError(f"JSON patches are not rendered here, use merge instead: {', '.join(used)}")
    cfg = values["config"]
    name = fullname(values)
    conf: dict[str, Any] = {
        "server_name": _raw("$SERVER_NAME"),
        "lame_duck_grace_period": cfg["lameDuckGracePeriod"],
        "lame_duck_duration": cfg["lameDuckDuration"],
        "pid_file": "/var/run/nats/nats.pid" if values["reloader"]["enabled"] else "/var/run/nats.pid",
        "port": cfg["nats"]["port"],
    }
    if cfg["nats"]["tls"]["enabled"]:
        conf["tls"] = _tls_block(values, cfg["nats"]["tls"])
    cluster = cfg["cluster"]
    if cluster["enabled"]:
        urls = cluster["routeURLs"]
        auth = f"{urls['user']}:{urls['password']}@" if urls["user"] and urls["password"] else ""
        domain = (
            f".{values.get('namespaceOverride') or NAMESPACE}.svc.{urls['k8sClusterDomain']}" if urls["useFQDN"] else ""
        )
        proto = "tls" if cluster["tls"]["enabled"] else "nats"
        block: dict[str, Any] = {
            "name": cluster["name"] or name,
            "port": cluster["port"],
            "routes": [
                f"{proto}://{auth}{name}-{i}.{name}-headless{domain}:{cluster['port']}"
                for i in range(cluster["replicas"])
            ],
        }
        if cluster["noAdvertise"]:
            block["no_advertise"] = True
        if auth:
            block["authorization"] = {"user": urls["user"], "password": urls["password"]}
        if cluster["tls"]["enabled"]:
            block["tls"] = _tls_block(values, cluster["tls"])
        conf["cluster"] = deep_merge(block, cluster["merge"] or {})
    monitor = cfg["monitor"]
    if monitor["enabled"]:
        conf["https_port" if monitor["tls"]["enabled"] else "http_port"] = monitor["port"]
    js = cfg["jetstream"]
    if js["enabled"]:
        block = {}
        mem = js["memoryStore"]
        block["max_memory_store"] = _raw(mem["maxSize"]) if mem["enabled"] and mem["maxSize"] else 0
        store = js["fileStore"]
        if store["enabled"]:
            block["store_dir"] = store["dir"]
            if store["maxSize"]:
                block["max_file_store"] = _raw(store["maxSize"])
            elif store["pvc"]["enabled"]:
                block["max_file_store"] = _raw(store["pvc"]["size"])
        else:
            block["max_file_store"] = 0
        conf["jetstream"] = deep_merge(block, js["merge"] or {})
    return deep_merge(conf, cfg["merge"] or {})


_RAW = re.compile(r'"<<\s+(.*)\s+>>"')
_INCLUDE = re.compile(r'".*\$include": "(.*)",?')


def format_conf(conf: Mapping[str, Any]) -> str:
    """The chart's nats.formatConfig: pretty JSON, sorted keys, raw `<< >>` values, includes."""
    text = json.dumps(conf, indent=2, sort_keys=True, ensure_ascii=False)
    text = _INCLUDE.sub(r"include \1;", text)
    return _RAW.sub(r"\1", text) + "\n"


def nats_conf(values: Mapping[str, Any]) -> str:
    return format_conf(nats_conf_dict(values))


def _env_list(env: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The chart's nats.env: a map of NAME -> string or NAME -> {valueFrom: ...}, sorted by name."""
    out = []
    for name in sorted(env):
        value = env[name]
        if isinstance(value, str):
            out.append({"name": name, "value": value})
        elif isinstance(value, Mapping):
            out.append({"name": name, **copy.deepcopy(dict(value))})
        else:
            raise ChartError(f"env var {name} must be a string or a map, not {type(value).__name__}")
    return out


def _image_ref(image: Mapping[str, Any]) -> str:
    if image.get("fullImageName"):
        return image["fullImageName"]
    ref = f"{image['repository']}:{image['tag']}"
    if image.get("digest"):
        ref = f"{ref}@{image['digest']}"
    return f"{image['registry']}/{ref}" if image.get("registry") else ref


def _labels(values: Mapping[str, Any]) -> dict[str, str]:
    return {**selector_labels(values), "app.kubernetes.io/managed-by": "Helm", "helm.sh/chart": f"nats-{CHART_VERSION}"}


def _tls_secrets(values: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(volume name, secret name, mount dir) of each TLS secret the pod mounts."""
    out = []
    for protocol in ("nats", "leafnodes", "websocket", "mqtt", "cluster", "gateway"):
        block = values["config"].get(protocol, {})
        tls = block.get("tls", {})
        if (protocol == "nats" or block.get("enabled")) and tls.get("enabled") and tls.get("secretName"):
            out.append((f"{protocol}-tls", tls["secretName"], tls["dir"]))
    return out


def _ports(cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The nats container's ports: client always, cluster and monitor when enabled."""
    ports = [{"name": "nats", "containerPort": cfg["nats"]["port"]}]
    if cfg["cluster"]["enabled"]:
        ports.append({"name": "cluster", "containerPort": cfg["cluster"]["port"]})
    if cfg["monitor"]["enabled"]:
        ports.append({"name": "monitor", "containerPort": cfg["monitor"]["port"]})
    return ports


def _volume_claim(cfg: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The JetStream file store's PersistentVolumeClaim template, or None when it has none."""
    store = cfg["jetstream"]["fileStore"]
    if not (cfg["jetstream"]["enabled"] and store["enabled"] and store["pvc"]["enabled"]):
        return None
    claim: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": store["pvc"]["name"] or f"{name}-js"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": store["pvc"]["size"]}}},
    }
    if store["pvc"]["storageClassName"]:
        claim["spec"]["storageClassName"] = store["pvc"]["storageClassName"]
    return claim


def _ca_volume(ca: Mapping[str, Any]) -> dict[str, Any]:
    """The tlsCA volume: from its Secret when it names one, else from its ConfigMap."""
    source = (
        {"secret": {"secretName": ca["secretName"]}}
        if ca["secretName"]
        else {"configMap": {"name": ca["configMapName"]}}
    )
    return {"name": "tls-ca", **source}


def _volumes_and_mounts(
    values: Mapping[str, Any], name: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The pod's volumes, the nats container's mounts and the StatefulSet's claim templates."""
    cfg = values["config"]
    mounts = [{"name": "config", "mountPath": "/etc/nats-config"}, {"name": "pid", "mountPath": "/var/run/nats"}]
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": f"{name}-config"}},
        {"name": "pid", "emptyDir": {}},
    ]
    claims = []
    claim = _volume_claim(cfg, name)
    if claim is not None:
        store = cfg["jetstream"]["fileStore"]
        mounts.append({"name": claim["metadata"]["name"], "mountPath": store["dir"]})
        claims.append(deep_merge(claim, store["pvc"]["merge"] or {}))
    ca = values["tlsCA"]
    if ca["enabled"]:
        volumes.append(_ca_volume(ca))
        mounts.append({"name": "tls-ca", "mountPath": ca["dir"]})
    for volume, secret, directory in _tls_secrets(values):
        volumes.append({"name": volume, "secret": {"secretName": secret}})
        mounts.append({"name": volume, "mountPath": directory})
    return volumes, mounts, claims


def _nats_container(values: Mapping[str, Any], mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """The nats-server container, with the chart's probes, before values' container.merge."""
    cfg = values["config"]
    probe = {"initialDelaySeconds": 10, "timeoutSeconds": 5, "periodSeconds": 10, "successThreshold": 1}
    return {
        "name": "nats",
        "image": _image_ref(values["container"]["image"]),
        "ports": _ports(cfg),
        "args": ["--config", "/etc/nats-config/nats.conf"],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "SERVER_NAME", "value": f"{cfg['serverNamePrefix']}$(POD_NAME)"},
            *_env_list(values["container"]["env"]),
        ],
        "lifecycle": {"preStop": {"exec": {"command": ["nats-server", "-sl=ldm=/var/run/nats/nats.pid"]}}},
        "startupProbe": {"httpGet": {"path": "/healthz", "port": "monitor"}, **probe, "failureThreshold": 90},
        "readinessProbe": {
            "httpGet": {"path": "/healthz?js-server-only=true", "port": "monitor"},
            **probe,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz?js-enabled-only=true", "port": "monitor"},
            **probe,
            "periodSeconds": 30,
            "failureThreshold": 3,
        },
        "volumeMounts": mounts,
    }


def _reloader_container(values: Mapping[str, Any], mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """The config reloader sidecar: it watches nats.conf and every certificate file it names."""
    reloader = values["reloader"]
    prefixes = tuple(reloader["natsVolumeMountPrefixes"])
    watched = sorted(
        {f for f in _conf_files(nats_conf_dict(values)) if f.startswith(prefixes) or f.startswith("/etc/nats-config")}
    )
    container = {
        "name": "reloader",
        "image": _image_ref(reloader["image"]),
        "args": ["-pid", "/var/run/nats/nats.pid", "-config", "/etc/nats-config/nats.conf"]
        + [arg for f in watched for arg in ("-config", f)],
        "volumeMounts": [m for m in mounts if m["mountPath"].startswith(prefixes) or m["name"] == "pid"],
    }
    if reloader["env"]:
        container["env"] = _env_list(reloader["env"])
    return deep_merge(container, reloader["merge"] or {})


def _exporter_container(values: Mapping[str, Any]) -> dict[str, Any]:
    """The Prometheus exporter sidecar, scraping the server's monitor port."""
    cfg = values["config"]
    exporter = values["promExporter"]
    args = [
        f"-port={exporter['port']}",
        "-connz",
        "-routez",
        "-subz",
        "-varz",
        "-prefix=nats",
        "-use_internal_server_id",
    ]
    if cfg["jetstream"]["enabled"]:
        args.append("-jsz=all")
    args.append(f"http://{exporter['monitorDomain']}:{cfg['monitor']['port']}/")
    container = {
        "name": "prom-exporter",
        "image": _image_ref(exporter["image"]),
        "ports": [{"name": "prom-metrics", "containerPort": exporter["port"]}],
        "args": args,
    }
    if exporter["env"]:
        container["env"] = _env_list(exporter["env"])
    return deep_merge(container, exporter["merge"] or {})


def _containers(values: Mapping[str, Any], mounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """nats, then the reloader and the exporter when enabled, each with its merge applied."""
    containers = [deep_merge(_nats_container(values, mounts), values["container"]["merge"] or {})]
    if values["reloader"]["enabled"]:
        containers.append(_reloader_container(values, mounts))
    if values["promExporter"]["enabled"]:
        containers.append(_exporter_container(values))
    return containers


def _pod_template(values: Mapping[str, Any], volumes: list[dict[str, Any]], mounts: list[dict[str, Any]]) -> Any:
    """The pod template, with podTemplate.merge applied."""
    pod_spec: dict[str, Any] = {
        "containers": _containers(values, mounts),
        "shareProcessNamespace": values["reloader"]["enabled"],
        "terminationGracePeriodSeconds": values["podTemplate"]["terminationGracePeriodSeconds"],
        "volumes": volumes,
    }
    spread = values["podTemplate"]["topologySpreadConstraints"]
    if spread:
        pod_spec["topologySpreadConstraints"] = [
            {"topologyKey": key, "labelSelector": {"matchLabels": selector_labels(values)}, **dict(spec)}
            for key, spec in sorted(spread.items())
        ]
    return deep_merge({"metadata": {"labels": _labels(values)}, "spec": pod_spec}, values["podTemplate"]["merge"] or {})


def stateful_set(values: Mapping[str, Any]) -> dict[str, Any]:
    """An approximation of the chart's StatefulSet, for the Kubernetes schema check."""
    cfg = values["config"]
    name = fullname(values)
    volumes, mounts, claims = _volumes_and_mounts(values, name)
    template = _pod_template(values, volumes, mounts)
    sts: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": _labels(values)},
        "spec": {
            "replicas": cfg["cluster"]["replicas"] if cfg["cluster"]["enabled"] else 1,
            "selector": {"matchLabels": selector_labels(values)},
            "serviceName": f"{name}-headless",
            "podManagementPolicy": "Parallel",
            "template": template,
        },
    }
    if claims:
        sts["spec"]["volumeClaimTemplates"] = claims
    return deep_merge(sts, values["statefulSet"]["merge"] or {})


def _conf_files(conf: Any) -> Iterable[str]:
    if isinstance(conf, Mapping):
        for key, value in conf.items():
            if key in ("cert_file", "key_file", "ca_file") and isinstance(value, str):
                yield value
            else:
                yield from _conf_files(value)


def pod_disruption_budget(values: Mapping[str, Any]) -> dict[str, Any] | None:
    pdb = values["podDisruptionBudget"]
    if not pdb["enabled"]:
        return None
    doc = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": pdb["name"] or fullname(values), "namespace": NAMESPACE, "labels": _labels(values)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(values)}},
    }
    return deep_merge(doc, pdb["merge"] or {})


_UNITS = {
    "": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
}


def size_bytes(value: str | int) -> int:
    """A size as NATS and Kubernetes write it (10Gi, 90GiB, 500M, 1073741824) in bytes."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtKMGT]i?)?[bB]?\s*", str(value))
    if not match:
        raise ChartError(f"not a size: {value!r}")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])


def quantity(value: str | int | float) -> float:
    """A Kubernetes CPU or memory quantity as a number (cores or bytes)."""
    text = str(value)
    if text.endswith("m") and text[:-1].replace(".", "", 1).isdigit():
        return float(text[:-1]) / 1000
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    return float(size_bytes(text))
