"""Generate the Kubernetes files that follow from `fjordbank/topology.py`, the same source
the local stack renders its NATS configuration from (devstack/natsconf.py).

    python -m k8s.render            write the generated files: k8s/nats/accounts.generated.yaml,
                                    k8s/knative/*, k8s/nats/topology/* (the admin Job that
                                    creates the streams) and k8s/monitoring/* (GMP rules)
    python -m k8s.render --check    exit 1 (and name them) when a generated file is out of date
    python -m k8s.render nats-conf [-f VALUES ...]
                                    print the NATS server configuration the chart renders
                                    (default: k8s/nats/values.yaml + accounts.generated.yaml)
    python -m k8s.render bcrypt-secret --passwords-dir DIR [--cost N]
                                    print the Secret `nats-users-bcrypt` (bcrypt hashes of the
                                    files DIR/IDENTITY, one per NATS identity and `system`);
                                    needs bcrypt: run it with .deploy-tools/venv/bin/python

Passwords: the generated accounts carry no secret. Each user's password is the NATS variable
`$NATS_BCRYPT_<IDENTITY>`, which the server reads from its environment; the chart sets that
variable from the Secret `nats-users-bcrypt`, which holds only bcrypt hashes, made at deploy
time from the plaintext in Secret Manager (`bcrypt-secret`). Each hash is stored inside
double quotes: NATS parses an environment variable's value as configuration, and an unquoted
`$2b$...` would be read as a reference to another variable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fjordbank import topology
from k8s import chart

# Knative makes a revision's timeoutSeconds its pods' terminationGracePeriodSeconds, and
# their preStop hook waits for queue-proxy's drain (30 s) before the service has its
# SIGTERM (knative/serving#13953 and #15599): at 30 the service was killed about 2 s after
# its SIGTERM, with its batch in hand, its acks and its partitions' handover cut off
# (found in review, 2026-12-07). The stop's budget: a batch in hand up to the handler
# deadline (fjordbank.runtime.consumer.HANDLER_DEADLINE_SECONDS, 120 s), the background
# tasks' grace (8 s), the acks flushed (5 s), the port closed (5 s), with a margin (the
# leases are handed over as each partition's work stops). The bound on a request's time
# it also is does not matter here: the card API answers within its own 2 s.
KNATIVE_DRAIN_SECONDS = 30
STOP_BUDGET_SECONDS = 150
REVISION_TIMEOUT_SECONDS = KNATIVE_DRAIN_SECONDS + STOP_BUDGET_SECONDS

K8S = Path(__file__).resolve().parent
REPO = K8S.parent
NATS_DIR = K8S / "nats"
VALUES = NATS_DIR / "values.yaml"
VALUES_DEV = NATS_DIR / "values-dev.yaml"
ACCOUNTS = NATS_DIR / "accounts.generated.yaml"
KNATIVE_DIR = K8S / "knative"
TOPOLOGY_JOB_DIR = NATS_DIR / "topology"
MONITORING_DIR = K8S / "monitoring"
RULES_DIR = REPO / "monitoring" / "rules"
DOCKERFILE = REPO / "run_services" / "Dockerfile"
GENERATED_DIRS = (KNATIVE_DIR, TOPOLOGY_JOB_DIR, MONITORING_DIR)

BANK_ACCOUNT = "BANK"
SYSTEM_ACCOUNT = "SYS"
SYSTEM_USER = "system"
BCRYPT_SECRET = "nats-users-bcrypt"  # noqa: S105 - the Secret's name, not a secret
MIN_BCRYPT_COST = 11

CONSUMER_NAMESPACE = "fjordbank"
# In-cluster consumers reach NATS through the chart's ClusterIP Service (the internal load
# balancer is for Cloud Run and the functions); the server certificate names it.
IN_CLUSTER_NATS_URL = f"tls://{chart.RELEASE}.{chart.NAMESPACE}.svc.cluster.local:4222"
# The image CI builds (run_services/Dockerfile), by digest; the placeholder is what
# terraform's tfvars examples use, and CI replaces it (kustomize edit set image).
IMAGE_NAME = "registry.example/fjordbank/services"
IMAGE_PLACEHOLDER_DIGEST = "sha256:" + "0" * 64
HTTP_PORT = 8080
NATS_FILES = "/var/run/secrets/nats"
# The NATS client files (CA, certificate, key) are a Secret volume: root-owned files. The
# image runs as a user of its own (run_services/Dockerfile: USER uid:gid), so the pod runs
# as that uid and gid with fsGroup = its gid: the kubelet gives the files that group, and
# mode 0440 lets the process (and nobody else but root) read them. 0400 left them readable
# by root alone: the services could not load their key. Knative admits a pod securityContext
# only with its feature flag kubernetes.podspec-securitycontext enabled (k8s/README.md).
SECRET_FILE_MODE = 0o440
# Mirrors terraform/modules/topology (service_secret_env): a service's secrets beyond NATS,
# environment variable -> secret ID. The k8s Secret `fjb-NAME-secrets` holds them under the
# same IDs (tests/deploy/test_k8s_knative.py checks the two agree).
SERVICE_SECRET_ENV: dict[str, dict[str, str]] = {
    "cards": {
        "FJB_VAULT_KEY": "cards-vault-key",
        "FJB_CVV_KEY": "cards-cvv-key",
        "FJB_CARD_PROCESSOR_SECRET": "cards-processor-secret",
    },
}
# Pull consumers get no HTTP traffic, so Knative's autoscaler never scales them up or down:
# min-scale keeps one running, max-scale caps what an operator may raise min-scale to.
# clearing keeps local state (its pain.001/pain.002 directory): one. cards keeps no state of
# its own on disk any more (its vault is a Firestore database, below), but its processor API
# keeps in its process which references are being decided and which approvals the processor
# had (run_services/cards.py References and Delivered: "the card service runs alone"): one.
MAX_SCALE: dict[str, int] = {"cards": 1, "clearing": 1}
DEFAULT_MAX_SCALE = 3
# The clearing service's file exchange with the clearing house (FJB_CLEARING_DIR; in
# production it has no default and the service refuses to start without it): a volume
# claim mounted where terraform's Cloud Run service mounts its bucket. Knative admits a
# claim only with its feature flags kubernetes.podspec-persistent-volume-claim and
# kubernetes.podspec-persistent-volume-write on (k8s/README.md).
CLEARING_SERVICES = ("clearing",)
CLEARING_DIR = "/mnt/clearing"
# The EU sanctions list every payer of a payment from another bank (clearing) and every
# payee at another bank (screening) is screened against (FJB_SANCTIONS_LIST; in production
# these services refuse to start without it): kept on the same volume, where the operator
# puts each new list (the services read it again). Screening mounts the claim read-only (a
# subPath would bind the folder as it was when the pod started: a folder replaced, not
# overwritten, would go unseen).
SANCTIONS_LIST = f"{CLEARING_DIR}/sanctions/eu-fsf.xml"
SANCTIONS_READERS = ("screening",)  # besides the clearing services, which mount it to exchange files
CLEARING_CLAIM = "fjb-clearing-exchange"
# The card service's vault of card numbers: a Firestore database of its own
# (FJB_VAULT_DATABASE, fjordbank/config.py), the one terraform makes
# (terraform/modules/card_vault), which only the card service's Google service account
# fjb-cards may use (reached through Workload Identity) and whose rules deny every client. No
# volume: the pod keeps nothing of the vault. The card processor's API is served on the
# service's one port (FJB_CARD_API_PORT = FJB_HTTP_PORT: fjordbank/runtime/http.py); the
# service stays cluster-local, and the processor's private connection to it (an internal load
# balancer or a VPN, with mutual TLS) is the operator's to add: its requests are signed
# (FJB_CARD_PROCESSOR_SECRET) either way.
CARD_SERVICES = ("cards",)
CARD_VAULT_DATABASE = "card-vault"
# The requests Knative sends one pod at once (containerConcurrency): 10 for the probes and
# /metrics, as terraform's Cloud Run consumers (modules/consumer, max_concurrency). A card
# service's is its processor API server's connection limit (fjordbank/runtime/http.py
# MAX_CONNECTIONS, restated here: this module runs where the services' packages are not
# installed; tests/deploy/test_k8s_knative.py holds the two equal; terraform's
# card_api_max_connections): at 10, Knative queued the processor's requests that the one
# card pod could have answered (found in review, 2026-12-06).
CONTAINER_CONCURRENCY = 10
CARD_CONTAINER_CONCURRENCY = 64

HEADER = (
    "# Generated by `python -m k8s.render` from fjordbank/topology.py. Do not edit: change the\n"
    "# topology (or k8s/render.py) and run it again; tests/deploy fails while this file is stale.\n"
)


def env_var(identity: str) -> str:
    return "NATS_BCRYPT_" + identity.upper().replace("-", "_")


def nats_users() -> list[str]:
    return [ident.name for ident in topology.IDENTITIES] + [SYSTEM_USER]


def accounts_values() -> dict[str, Any]:
    """The values fragment: accounts and users (passwords by reference) and the env they read."""
    users = []
    for ident in topology.IDENTITIES:
        perms = ident.permissions()
        users.append(
            {
                "user": ident.name,
                "password": f"<< ${env_var(ident.name)} >>",
                "permissions": {
                    "publish": {"allow": list(perms["publish"])},
                    "subscribe": {"allow": list(perms["subscribe"])},
                },
            }
        )
    system = [{"user": SYSTEM_USER, "password": f"<< ${env_var(SYSTEM_USER)} >>"}]
    env = {
        env_var(name): {"valueFrom": {"secretKeyRef": {"name": BCRYPT_SECRET, "key": name}}} for name in nats_users()
    }
    return {
        "config": {
            "merge": {
                "accounts": {
                    BANK_ACCOUNT: {"jetstream": "enabled", "users": users},
                    SYSTEM_ACCOUNT: {"users": system},
                },
                "system_account": SYSTEM_ACCOUNT,
            }
        },
        "container": {"env": env},
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # no &anchors / *aliases in generated files
        return True


def _dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def accounts_file() -> str:
    return (
        HEADER
        + "# The NATS accounts: one user per topology.IDENTITIES entry, with exactly\n"
        + "# Identity.permissions(); passwords are bcrypt hashes from the Secret "
        + f"{BCRYPT_SECRET}\n"
        + "# (k8s/README.md). Layer it on the values:\n"
        + "#   helm ... -f k8s/nats/values.yaml -f k8s/nats/accounts.generated.yaml\n"
        + _dump(accounts_values())
    )


def knative_service(name: str) -> dict[str, Any]:
    """The Knative Service of one consumer (run_services/NAME.py): a pull consumer of NATS."""
    ident = topology.identity(name)
    env: list[dict[str, Any]] = [
        {"name": "SERVICE", "value": name},
        *nats_client_env(ident.name, f"nats-client-{name}"),
        {"name": "FJB_HTTP_PORT", "value": str(HTTP_PORT)},
    ]
    for var, secret_id in sorted(SERVICE_SECRET_ENV.get(name, {}).items()):
        env.append({"name": var, "valueFrom": {"secretKeyRef": {"name": f"fjb-{name}-secrets", "key": secret_id}}})
    mounts: list[dict[str, Any]] = [{"name": "nats-client", "mountPath": NATS_FILES, "readOnly": True}]
    volumes: list[dict[str, Any]] = [nats_client_volume(f"nats-client-{name}")]
    if name in CLEARING_SERVICES:
        env.append({"name": "FJB_CLEARING_DIR", "value": CLEARING_DIR})
        env.append({"name": "FJB_SANCTIONS_LIST", "value": SANCTIONS_LIST})
        mounts.append({"name": "clearing-exchange", "mountPath": CLEARING_DIR})
        volumes.append({"name": "clearing-exchange", "persistentVolumeClaim": {"claimName": CLEARING_CLAIM}})
    if name in CARD_SERVICES:
        env.append({"name": "FJB_VAULT_DATABASE", "value": CARD_VAULT_DATABASE})
        env.append({"name": "FJB_CARD_API_PORT", "value": str(HTTP_PORT)})
    if name in SANCTIONS_READERS:
        env.append({"name": "FJB_SANCTIONS_LIST", "value": SANCTIONS_LIST})
        mounts.append({"name": "clearing-exchange", "mountPath": CLEARING_DIR, "readOnly": True})
        volumes.append(
            {"name": "clearing-exchange", "persistentVolumeClaim": {"claimName": CLEARING_CLAIM, "readOnly": True}}
        )
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": "fjordbank",
        "fjordbank.io/nats-client": "true",
    }
    probe = {"httpGet": {"path": "/readyz"}}
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": CONSUMER_NAMESPACE,
            # no route from outside the cluster: the HTTP port serves health and metrics only
            "labels": {**labels, "networking.knative.dev/visibility": "cluster-local"},
        },
        "spec": {
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "autoscaling.knative.dev/min-scale": "1",
                        "autoscaling.knative.dev/max-scale": str(MAX_SCALE.get(name, DEFAULT_MAX_SCALE)),
                        "autoscaling.knative.dev/initial-scale": "1",
                    },
                },
                "spec": {
                    "serviceAccountName": f"fjb-{name}",
                    "securityContext": pod_security_context(),
                    "containerConcurrency": (
                        CARD_CONTAINER_CONCURRENCY if name in CARD_SERVICES else CONTAINER_CONCURRENCY
                    ),
                    "timeoutSeconds": REVISION_TIMEOUT_SECONDS,
                    "containers": [
                        {
                            "name": name,
                            "image": f"{IMAGE_NAME}@{IMAGE_PLACEHOLDER_DIGEST}",
                            "ports": [{"name": "http1", "containerPort": HTTP_PORT}],
                            "env": env,
                            "envFrom": [{"configMapRef": {"name": "fjordbank-env"}}],
                            "resources": {
                                "requests": {"cpu": "1", "memory": "512Mi"},
                                "limits": {"cpu": "1", "memory": "512Mi"},
                            },
                            # ready = connected to NATS; the same path starts it (terraform's
                            # Cloud Run startup probe: 5 s period, 36 tries)
                            "startupProbe": {**probe, "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 36},
                            "readinessProbe": {
                                **probe,
                                "periodSeconds": 10,
                                "timeoutSeconds": 3,
                                "failureThreshold": 3,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz"},
                                "periodSeconds": 10,
                                "timeoutSeconds": 3,
                                "failureThreshold": 3,
                            },
                            "securityContext": container_security_context(),
                            "volumeMounts": mounts,
                        }
                    ],
                    "volumes": volumes,
                },
            }
        },
    }


def image_user(dockerfile: Path = DOCKERFILE) -> tuple[int, int]:
    """(uid, gid) of the image's last USER line (run_services/Dockerfile: USER 10001:10001)."""
    users = [line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("USER ")]
    if not users:
        raise ValueError(f"{dockerfile} has no USER line")
    uid, _, gid = users[-1].partition(":")
    if not uid.isdigit() or not (gid or uid).isdigit():
        raise ValueError(f"{dockerfile}: USER {users[-1]} is not numeric uid[:gid]")
    return int(uid), int(gid or uid)


def pod_security_context() -> dict[str, Any]:
    uid, gid = image_user()
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": gid, "fsGroup": gid}


def container_security_context() -> dict[str, Any]:
    uid, gid = image_user()
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def nats_client_env(user: str, secret: str, url: str = IN_CLUSTER_NATS_URL) -> list[dict[str, Any]]:
    """A NATS identity's settings (fjordbank/config.py): its files in the Secret volume
    mounted at NATS_FILES, its password from the same Secret."""
    return [
        {"name": "FJB_NATS_USER", "value": user},
        {"name": "FJB_NATS_URLS", "value": url},
        {"name": "FJB_NATS_CA", "value": f"{NATS_FILES}/ca.pem"},
        {"name": "FJB_NATS_CERT", "value": f"{NATS_FILES}/client.pem"},
        {"name": "FJB_NATS_KEY", "value": f"{NATS_FILES}/client-key.pem"},
        {"name": "FJB_NATS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}},
    ]


def nats_client_volume(secret: str) -> dict[str, Any]:
    return {
        "name": "nats-client",
        "secret": {
            "secretName": secret,
            "defaultMode": SECRET_FILE_MODE,
            "items": [
                {"key": "ca.pem", "path": "ca.pem"},
                {"key": "client.pem", "path": "client.pem"},
                {"key": "client-key.pem", "path": "client-key.pem"},
            ],
        },
    }


def clearing_claim() -> dict[str, Any]:
    """The clearing exchange's volume (one clearing instance: MAX_SCALE; the transfer
    service that talks to the clearing house mounts the same claim)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLEARING_CLAIM, "namespace": CONSUMER_NAMESPACE},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "10Gi"}}},
    }


def service_account(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": f"fjb-{name}",
            "namespace": CONSUMER_NAMESPACE,
            "labels": {"app.kubernetes.io/name": name},
        },
        "automountServiceAccountToken": False,
    }


def pod_monitoring(name: str) -> dict[str, Any]:
    """GKE Managed Prometheus scrapes the consumer's /metrics (Knative's user port). One per
    service, named after it: Managed Prometheus sets the ``job`` label to the PodMonitoring's
    name, and the rules expect each service's own job (monitoring/metrics.yaml scrape_jobs;
    one PodMonitoring for all made every series job="fjordbank-consumers", and
    FjbServiceDown fired for every service)."""
    return {
        "apiVersion": "monitoring.googleapis.com/v1",
        "kind": "PodMonitoring",
        "metadata": {"name": name, "namespace": CONSUMER_NAMESPACE},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "fjordbank"}},
            "endpoints": [{"port": "user-port", "path": "/metrics", "interval": "30s"}],
        },
    }


def knative_files() -> dict[Path, str]:
    files: dict[Path, str] = {}
    header = HEADER + "# One Knative Service per consumer for a GKE-only install (k8s/README.md).\n"
    files[KNATIVE_DIR / "namespace.yaml"] = header + _dump(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CONSUMER_NAMESPACE}}
    )
    files[KNATIVE_DIR / "serviceaccounts.yaml"] = header + "---\n".join(
        _dump(service_account(n)) for n in topology.SERVICES
    )
    files[KNATIVE_DIR / "podmonitoring.yaml"] = header + "---\n".join(
        _dump(pod_monitoring(n)) for n in topology.SERVICES
    )
    files[KNATIVE_DIR / "clearing-exchange.yaml"] = header + _dump(clearing_claim())
    for name in topology.SERVICES:
        files[KNATIVE_DIR / f"{name}.yaml"] = header + _dump(knative_service(name))
    resources = [
        "namespace.yaml",
        "serviceaccounts.yaml",
        "clearing-exchange.yaml",
        *[f"{n}.yaml" for n in topology.SERVICES],
        "podmonitoring.yaml",
    ]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
        # CI pins the image it built: kustomize edit set image IMAGE_NAME=REPOSITORY@sha256:DIGEST
        "images": [{"name": IMAGE_NAME, "digest": IMAGE_PLACEHOLDER_DIGEST}],
    }
    files[KNATIVE_DIR / "kustomization.yaml"] = header + _dump(kustomization)
    return files


# ---- the admin Job that creates the streams, consumers and KV buckets ----------------------

TOPOLOGY_JOB = "fjb-nats-topology"
# The topology's admin identity runs it, as terraform's service account fjb-nats-admin
# (envs/*/main.tf, module nats_admin_service_account): the Kubernetes ServiceAccount has the
# same name. Its NATS files and password are the Secret nats-client-admin in namespace nats
# (k8s/README.md), like a consumer's nats-client-NAME. It needs no Google API (no Workload
# Identity): it talks to NATS only, over the in-cluster Service.
ADMIN_SERVICE_ACCOUNT = "fjb-nats-admin"


def admin_identity() -> topology.Identity:
    admins = [ident for ident in topology.IDENTITIES if ident.admin]
    assert len(admins) == 1, "the topology declares one admin identity"
    return admins[0]


def topology_job() -> dict[str, Any]:
    """`python -m fjordbank.adapters.jetstream_setup` once, in namespace nats, labelled so
    that the NetworkPolicy admits it (fjordbank.io/nats-client). A Job's pod template cannot
    change: delete the finished Job before applying a new image (k8s/README.md)."""
    admin = admin_identity().name
    labels = {
        "app.kubernetes.io/name": "nats-topology",
        "app.kubernetes.io/part-of": "fjordbank",
        "fjordbank.io/nats-client": "true",
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": TOPOLOGY_JOB, "namespace": chart.NAMESPACE, "labels": labels},
        "spec": {
            "backoffLimit": 3,
            "activeDeadlineSeconds": 900,
            # kept a day for its log (`kubectl -n nats logs job/fjb-nats-topology`), then deleted
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": ADMIN_SERVICE_ACCOUNT,
                    "automountServiceAccountToken": False,
                    "restartPolicy": "Never",
                    "securityContext": {**pod_security_context(), "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "name": "topology",
                            "image": f"{IMAGE_NAME}@{IMAGE_PLACEHOLDER_DIGEST}",
                            "command": ["python", "-m", "fjordbank.adapters.jetstream_setup"],
                            "args": ["--timeout", "300"],
                            "env": nats_client_env(admin, f"nats-client-{admin}"),
                            "resources": {
                                "requests": {"cpu": "250m", "memory": "256Mi"},
                                "limits": {"cpu": "250m", "memory": "256Mi"},
                            },
                            "securityContext": {**container_security_context(), "readOnlyRootFilesystem": True},
                            "volumeMounts": [{"name": "nats-client", "mountPath": NATS_FILES, "readOnly": True}],
                        }
                    ],
                    "volumes": [nats_client_volume(f"nats-client-{admin}")],
                },
            },
        },
    }


def admin_service_account() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": ADMIN_SERVICE_ACCOUNT,
            "namespace": chart.NAMESPACE,
            "labels": {"app.kubernetes.io/name": "nats-topology", "app.kubernetes.io/part-of": "fjordbank"},
        },
        "automountServiceAccountToken": False,
    }


def topology_job_files() -> dict[Path, str]:
    header = (
        HEADER
        + "# The JetStream streams, consumers and KV buckets of fjordbank/topology.py, made by the admin\n"
        + "# identity: kubectl -n nats delete job fjb-nats-topology --ignore-not-found, then\n"
        + "# kubectl apply -k k8s/nats/topology (k8s/README.md, first-time set-up step 5).\n"
    )
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["serviceaccount.yaml", "job.yaml"],
        "images": [{"name": IMAGE_NAME, "digest": IMAGE_PLACEHOLDER_DIGEST}],
    }
    return {
        TOPOLOGY_JOB_DIR / "serviceaccount.yaml": header + _dump(admin_service_account()),
        TOPOLOGY_JOB_DIR / "job.yaml": header + _dump(topology_job()),
        TOPOLOGY_JOB_DIR / "kustomization.yaml": header + _dump(kustomization),
    }


# ---- the alert and recording rules for GKE Managed Prometheus -----------------------------

# GlobalRules, not Rules or ClusterRules: a Rules object sees only its own namespace's data
# and ClusterRules only its own cluster's, while the rules join the consumers' metrics
# (namespace fjordbank on the Knative path; on the Cloud Run path cluster "__run__" and a
# namespace per service, from the Managed Service for Prometheus sidecar), the NATS
# exporters' (namespace nats) and the functions' log-based metrics (Cloud Monitoring
# metrics, which only GlobalRules may query). Scoped narrower, FjbServiceDown, which fires
# when no `up{job=SERVICE}` is 1, would page for ever on the Cloud Run path. The GKE
# cluster's managed rule evaluator runs them for the whole project: one per environment.
RULES_KIND = "GlobalRules"


def rules_objects() -> list[dict[str, Any]]:
    """One GlobalRules per monitoring/rules/NAME.rules.yaml (never its NAME.rules.test.yaml),
    its groups as they stand (the same file promtool checks)."""
    objects = []
    for path in sorted(RULES_DIR.glob("*.rules.yaml")):
        doc = yaml.safe_load(path.read_text())
        objects.append(
            {
                "apiVersion": "monitoring.googleapis.com/v1",
                "kind": RULES_KIND,
                "metadata": {
                    "name": "fjordbank-" + path.name.removesuffix(".rules.yaml"),
                    "labels": {"app.kubernetes.io/part-of": "fjordbank"},
                },
                "spec": {"groups": doc["groups"]},
            }
        )
    return objects


class _BlockDumper(_Dumper):
    """Multi-line strings (PromQL, descriptions) as literal blocks, readable in review."""


def _str_block(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_block)


def monitoring_files() -> dict[Path, str]:
    header = (
        "# Generated by `python -m k8s.render` from monitoring/rules/*.rules.yaml. Do not edit: change\n"
        "# the rules (or k8s/render.py) and run it again; tests/deploy fails while this file is stale.\n"
        "# For GKE Managed Prometheus's rule evaluator (k8s/README.md): kubectl apply -k k8s/monitoring\n"
    )
    rules = "---\n".join(
        yaml.dump(doc, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False, width=120)
        for doc in rules_objects()
    )
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["rules.yaml"],
    }
    return {
        MONITORING_DIR / "rules.yaml": header + rules,
        MONITORING_DIR / "kustomization.yaml": header + _dump(kustomization),
    }


def generated() -> dict[Path, str]:
    """Every generated file and the content the topology gives it now."""
    return {ACCOUNTS: accounts_file(), **knative_files(), **topology_job_files(), **monitoring_files()}


def stale() -> list[str]:
    """Generated files (relative to the repository) that differ from what the generator makes
    now, plus leftovers: a YAML file in a generated folder the generator no longer makes."""
    wanted = generated()
    out = [str(p.relative_to(REPO)) for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    for directory in GENERATED_DIRS:
        if directory.exists():
            out += [
                str(p.relative_to(REPO)) + " (no longer generated)"
                for p in sorted(directory.glob("*.yaml"))
                if p not in wanted
            ]
    return out


def write() -> list[Path]:
    changed = []
    for path, text in generated().items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    return changed


def bcrypt_secret(passwords: Mapping[str, str], *, cost: int = 12) -> str:
    """The Secret the NATS servers read their users' bcrypt hashes from (quoted, see above)."""
    import bcrypt  # the deploy tools' venv (scripts/deploy_tools.sh); not needed for anything else

    if cost < MIN_BCRYPT_COST:
        raise ValueError(f"bcrypt cost {cost} is below {MIN_BCRYPT_COST}")
    missing = [name for name in nats_users() if not passwords.get(name)]
    if missing:
        raise ValueError(f"no password for {', '.join(missing)}")
    data = {}
    for name in nats_users():
        digest = bcrypt.hashpw(passwords[name].encode(), bcrypt.gensalt(cost)).decode()
        data[name] = f'"{digest}"'
    doc = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": BCRYPT_SECRET, "namespace": chart.NAMESPACE},
        "type": "Opaque",
        "stringData": data,
    }
    return "# bcrypt hashes of the NATS users' passwords (k8s/render.py); apply, never commit.\n" + _dump(doc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m k8s.render", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when a generated file is stale")
    sub = parser.add_subparsers(dest="command")
    conf = sub.add_parser("nats-conf", help="print the NATS server configuration the chart renders")
    conf.add_argument("-f", "--values", action="append", type=Path, help="values files, in helm's order")
    secret = sub.add_parser("bcrypt-secret", help="print the bcrypt Secret from a directory of password files")
    secret.add_argument("--passwords-dir", type=Path, required=True, help="one file per NATS user, named after it")
    secret.add_argument("--cost", type=int, default=12)
    args = parser.parse_args(argv)

    if args.command == "nats-conf":
        print(chart.nats_conf(chart.load_values(*(args.values or [VALUES, ACCOUNTS]))), end="")
        return 0
    if args.command == "bcrypt-secret":
        passwords = {}
        for name in nats_users():
            path = args.passwords_dir / name
            passwords[name] = path.read_text().strip() if path.exists() else ""
        print(bcrypt_secret(passwords, cost=args.cost), end="")
        return 0
    if args.check:
        if out := stale():
            print("stale generated files (run `python -m k8s.render`):\n  " + "\n  ".join(out), file=sys.stderr)
            return 1
        return 0
    for path in write():
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
