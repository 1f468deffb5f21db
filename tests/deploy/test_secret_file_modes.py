"""The NATS client files (CA, certificate, key) that a Secret volume mounts must be readable
by the user the services' image runs as (run_services/Dockerfile's last USER line, read
here), on both paths:

* Knative (k8s/knative/*.yaml) and the admin Job (k8s/nats/topology/job.yaml): the kubelet
  writes the files owned by root, group fsGroup when the pod sets one, with defaultMode. So
  the pod must run as the image's uid and gid, and the mode must let that user read: by
  group (fsGroup = the image's gid, 0440) or by everyone.
* Cloud Run (terraform/modules/consumer): the files are root's, with no fsGroup; only the
  "other" read bit helps (0444; Cloud Run's default when no mode is given).

Before the fix the key was 0400 on both paths with no fsGroup: readable by root only, and
every service failed to load its key at start.
"""

from __future__ import annotations

import copy

import pytest

from k8s import render
from tests.deploy import k8s_support as ks
from tests.deploy.test_dockerfile import DOCKERFILE, instructions
from tests.deploy.test_terraform_layout import resource
from tests.deploy.tfschema import unquote

CLOUD_RUN_DEFAULT_MODE = 0o444  # SecretVolumeSource.defaultMode when unset (Cloud Run API)
KUBERNETES_DEFAULT_MODE = 0o644  # SecretVolumeSource.defaultMode when unset (Kubernetes API)
NATS_FILES = {"ca.pem", "client.pem", "client-key.pem"}


def image_user() -> tuple[int, int]:
    """(uid, gid) of the Dockerfile's last USER instruction, parsed here on its own."""
    users = [args for word, args in instructions(DOCKERFILE.read_text()) if word == "USER"]
    assert users, "run_services/Dockerfile has no USER line"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), f"USER {users[-1]}: this check needs a numeric uid"
    return int(uid), int(gid or uid)


def readable(mode: int, *, owner: int, group: int | None, uid: int, gid: int) -> bool:
    """Whether a process of uid:gid (its supplementary groups include fsGroup) reads a file."""
    if uid == 0:
        return True
    if uid == owner:
        return bool(mode & 0o400)
    if group is not None and group == gid:
        return bool(mode & 0o040)
    return bool(mode & 0o004)


def pod_problems(doc: dict, uid: int, gid: int) -> list[str]:
    """Why a pod's NATS files would be unreadable by the image's user ([] when they are not)."""
    name = doc["metadata"]["name"]
    spec = doc["spec"]["template"]["spec"]
    pod = spec.get("securityContext") or {}
    problems = []
    for c in spec["containers"]:
        sc = c.get("securityContext") or {}
        run_uid = sc.get("runAsUser", pod.get("runAsUser", uid))  # unset: the image's USER
        run_gid = sc.get("runAsGroup", pod.get("runAsGroup", gid))
        if (run_uid, run_gid) != (uid, gid):
            problems.append(f"{name}: runs as {run_uid}:{run_gid}, the image as {uid}:{gid}")
        if not (sc.get("runAsNonRoot") or pod.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot is not set")
        mounted = {m["name"] for m in c.get("volumeMounts", [])}
        for volume in spec.get("volumes", []):
            secret = volume.get("secret")
            if volume["name"] not in mounted or secret is None:
                continue
            for item in secret.get("items", []):
                if item["path"] not in NATS_FILES:
                    continue
                mode = item.get("mode", secret.get("defaultMode", KUBERNETES_DEFAULT_MODE))
                if not readable(mode, owner=0, group=pod.get("fsGroup"), uid=run_uid, gid=run_gid):
                    problems.append(
                        f"{name}: {item['path']} is mode {mode:#o}, owner root, group {pod.get('fsGroup')}: "
                        f"unreadable by {run_uid}:{run_gid}"
                    )
    return problems


def nats_pods() -> list[dict]:
    """Every manifest that mounts NATS client files: the Knative services and the admin Job."""
    docs = [d for p in ks.kustomization_resources(ks.KNATIVE) for d in ks.load_docs(p)]
    docs += ks.load_docs(render.TOPOLOGY_JOB_DIR / "job.yaml")
    pods = [d for d in docs if d["kind"] in ("Service", "Job") and "template" in d.get("spec", {})]
    assert len(pods) == len(render.topology.SERVICES) + 1
    return pods


def test_the_image_runs_as_a_user_of_its_own():
    uid, gid = image_user()
    assert uid != 0 and gid != 0
    assert render.image_user() == (uid, gid)  # the generator reads the same line


@pytest.mark.parametrize("doc", nats_pods(), ids=lambda d: d["metadata"]["name"])
def test_kubernetes_pods_can_read_their_nats_files(doc):
    assert pod_problems(doc, *image_user()) == []


def test_the_old_mode_is_reported():
    """0400 and no fsGroup, as before: the key is root's alone."""
    doc = copy.deepcopy(nats_pods()[0])
    spec = doc["spec"]["template"]["spec"]
    spec.pop("securityContext")
    for volume in spec["volumes"]:
        if "secret" in volume:
            volume["secret"]["defaultMode"] = 0o400
    problems = pod_problems(doc, *image_user())
    assert any("client-key.pem is mode 0o400" in p for p in problems), problems


def test_a_pod_running_as_another_user_is_reported():
    doc = copy.deepcopy(nats_pods()[0])
    doc["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"] = 20002
    assert any("runs as 20002" in p for p in pod_problems(doc, *image_user()))


def cloud_run_problems(docs: dict, uid: int, gid: int) -> list[str]:
    """The consumer module's secret files, as Cloud Run mounts them: root-owned, no fsGroup."""
    run = resource(docs, "consumer", "google_cloud_run_v2_service", "this")
    template = run["template"][0]
    service = template["containers"][0]
    mounted = {unquote(m["name"]) for m in service.get("volume_mounts", [])}
    problems, seen = [], set()
    for volume in template.get("volumes", []):
        name = unquote(volume["name"])
        if name not in mounted or "secret" not in volume:
            continue
        secret = volume["secret"][0]
        for item in secret.get("items", []):
            path = unquote(item["path"])
            if path not in NATS_FILES:
                continue
            seen.add(path)
            mode = int(item.get("mode", secret.get("default_mode", CLOUD_RUN_DEFAULT_MODE)))
            if not readable(mode, owner=0, group=None, uid=uid, gid=gid):
                problems.append(f"Cloud Run {path} is mode {mode:#o}, root's: unreadable by {uid}:{gid}")
    if seen != NATS_FILES:
        problems.append(f"Cloud Run mounts {sorted(seen)}, expected {sorted(NATS_FILES)}")
    return problems


def test_cloud_run_consumers_can_read_their_nats_files(tf_docs):
    assert cloud_run_problems(tf_docs, *image_user()) == []


def test_the_old_cloud_run_mode_is_reported(tf_docs):
    docs = copy.deepcopy(tf_docs)
    run = resource(docs, "consumer", "google_cloud_run_v2_service", "this")
    for volume in run["template"][0]["volumes"]:
        if unquote(volume["name"]) == "nats-key":
            volume["secret"][0]["items"][0]["mode"] = 256  # 0400
    assert any("client-key.pem is mode 0o400" in p for p in cloud_run_problems(docs, *image_user()))
