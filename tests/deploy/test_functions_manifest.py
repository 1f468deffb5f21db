"""The functions' deploy manifest, as the Firebase Functions SDK emits it, against Terraform's
outputs: region, runtime service account, VPC connector and egress, the Pub/Sub topics the
triggers listen on, and the secrets they bind.

The manifest is what `firebase deploy` reads: the CLI loads functions/.env.PROJECT (written by
scripts/functions_env.py from `terraform output -json`) and asks the SDK for
/__/functions.yaml. Here the SDK's own `functions_as_yaml` builds it from a copy of
functions/ (main.py plus the shared package, as the predeploy hook vendors it), run in the
functions' venv with the environment that script writes from a sample of the outputs. The
sample takes its names from the same sources Terraform does (fjordbank.topology and the
adapters' constants): test_terraform_names.py checks that Terraform uses those.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fjordbank.adapters.pubsub import JOBS_TOPIC, PUSH_TOPIC
from scripts import functions_env
from tests.deploy.conftest import REPO

FUNCTIONS_PYTHON = REPO / "functions" / "venv" / "bin" / "python"
PROJECT = "fjordbank-prod"
REGION = "europe-west1"

# the shape of `terraform -chdir=terraform/envs/prod output -json` (terraform/envs/prod/outputs.tf)
SAMPLE_OUTPUTS = {
    "functions_region": {"value": REGION},
    "functions_service_account": {"value": f"fjb-edge@{PROJECT}.iam.gserviceaccount.com"},
    "vpc_connector": {"value": f"projects/{PROJECT}/locations/{REGION}/connectors/fjb-functions"},
    "vpc_connector_egress_settings": {"value": "PRIVATE_RANGES_ONLY"},
    "functions_secrets": {
        "value": {
            "password": "FJB_NATS_PASSWORD",
            "tls_cert": "FJB_NATS_CERT",
            "tls_key": "FJB_NATS_KEY",
            "ca": "FJB_NATS_CA",
        }
    },
    "push_topic": {"value": PUSH_TOPIC},
    "jobs_topic": {"value": JOBS_TOPIC},
    "nats_urls": {"value": ["tls://10.10.0.5:4222"]},
    "bank_regs": {"value": "9710"},
}

DUMP = """
import json, sys, yaml
from firebase_functions.private import serving
print(json.dumps(yaml.safe_load(serving.functions_as_yaml(serving.get_functions()))))
"""


def functions_copy(tmp: Path) -> Path:
    """functions/ as `firebase deploy` uploads it: main.py and the vendored package."""
    root = tmp / "functions"
    root.mkdir()
    shutil.copy2(REPO / "functions" / "main.py", root / "main.py")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "fjordbank", root / "fjordbank", ignore=ignore)
    shutil.copytree(REPO / "emulators" / "sanctions", root / "emulators" / "sanctions", ignore=ignore)
    return root


def manifest(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    if not FUNCTIONS_PYTHON.exists():
        pytest.fail("functions/venv is missing: run `make bootstrap` (the bootstrap makes it)", pytrace=False)
    return subprocess.run(
        [str(FUNCTIONS_PYTHON), "-c", DUMP],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "HOME": str(root), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def manifest_problems(doc: dict, outputs: dict) -> list[str]:
    """Every difference between the manifest and what Terraform made for the functions."""
    out = {k: v["value"] for k, v in outputs.items()}
    problems = []
    endpoints = doc.get("endpoints") or {}
    if not endpoints:
        return ["the manifest has no endpoints"]
    secrets = set(out["functions_secrets"].values())
    topics = {out["push_topic"], out["jobs_topic"]}
    for name, ep in sorted(endpoints.items()):

        def differs(what: str, got, want, name=name) -> None:
            if got != want:
                problems.append(f"{name}: {what} is {got!r}, Terraform's output is {want!r}")

        differs("region", ep.get("region"), [out["functions_region"]])
        differs("serviceAccountEmail", ep.get("serviceAccountEmail"), out["functions_service_account"])
        vpc = ep.get("vpc") or {}
        differs("vpc.connector", vpc.get("connector"), out["vpc_connector"])
        differs("vpc.egressSettings", vpc.get("egressSettings"), out["vpc_connector_egress_settings"])
        bound = {s.get("key") for s in ep.get("secretEnvironmentVariables") or []}
        if bound - secrets:
            problems.append(f"{name}: binds secrets Terraform does not make for the edge: {sorted(bound - secrets)}")
        if bound and bound != secrets:
            problems.append(f"{name}: reaches NATS but lacks the edge secrets {sorted(secrets - bound)}")
        trigger = ep.get("eventTrigger") or {}
        if trigger.get("eventType", "").startswith("google.cloud.pubsub"):
            topic = (trigger.get("eventFilters") or {}).get("topic")
            if topic not in topics:
                problems.append(f"{name}: listens on topic {topic!r}, not one Terraform makes ({sorted(topics)})")
    listened = {
        (ep.get("eventTrigger") or {}).get("eventFilters", {}).get("topic")
        for ep in endpoints.values()
        if (ep.get("eventTrigger") or {}).get("eventType", "").startswith("google.cloud.pubsub")
    }
    for topic in sorted(topics - listened):
        problems.append(f"no function listens on Terraform's topic {topic!r}")
    return problems


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> tuple[Path, dict]:
    root = functions_copy(tmp_path_factory.mktemp("deploy"))
    env = functions_env.env_from_outputs(SAMPLE_OUTPUTS, PROJECT)
    proc = manifest(root, env)
    assert proc.returncode == 0, f"the SDK could not build the manifest:\n{proc.stderr[-3000:]}"
    return root, json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_manifest_matches_terraforms_outputs(deployed):
    _root, doc = deployed
    assert manifest_problems(doc, SAMPLE_OUTPUTS) == []
    kinds = {next(k for k in ep if k.endswith("Trigger")) for ep in doc["endpoints"].values()}
    assert {"callableTrigger", "eventTrigger"} <= kinds


def test_every_output_reached_the_manifest_through_the_env_file(deployed, tmp_path):
    """The path the deploy takes: outputs JSON -> scripts/functions_env.py -> .env.PROJECT."""
    outputs = tmp_path / "tf-outputs.json"
    outputs.write_text(json.dumps(SAMPLE_OUTPUTS))
    env_file = tmp_path / f".env.{PROJECT}"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "functions_env.py"),
            str(outputs),
            "--project",
            PROJECT,
            "--out",
            str(env_file),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    written = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if not line.startswith("#"))
    assert written["FJB_FUNCTIONS_SERVICE_ACCOUNT"] == SAMPLE_OUTPUTS["functions_service_account"]["value"]
    assert written["FJB_VPC_CONNECTOR"] == SAMPLE_OUTPUTS["vpc_connector"]["value"]
    assert written["FJB_NATS_URLS"] == "tls://10.10.0.5:4222"
    assert written["FJB_NATS_USER"] == "edge"
    assert written["FJB_BANK_REGS"] == "9710"  # the functions tell the bank's accounts from others' by it
    # the real list, not the sample; relative to the package's root, as deployed
    assert written["FJB_SANCTIONS_LIST"] == "emulators/sanctions/eu-fsf.xml"
    from fjordbank.config import REPO_ROOT, load_settings

    settings = load_settings({**written, "FJB_NATS_PASSWORD": "x"})
    assert settings.sanctions_list_configured
    assert settings.sanctions_list == str(REPO_ROOT / "emulators" / "sanctions" / "eu-fsf.xml")
    assert not any("PASSWORD" in k or "KEY" in k for k in written), "secrets never go into the env file"


def test_a_missing_output_is_refused():
    broken = {k: v for k, v in SAMPLE_OUTPUTS.items() if k != "vpc_connector"}
    with pytest.raises(functions_env.OutputError, match="vpc_connector"):
        functions_env.env_from_outputs(broken, PROJECT)


def test_main_py_refuses_to_load_outside_the_emulator_without_the_outputs(deployed):
    root, _doc = deployed
    proc = manifest(root, {"FJB_PROJECT_ID": PROJECT})
    assert proc.returncode != 0
    assert "FJB_FUNCTIONS_SERVICE_ACCOUNT, FJB_VPC_CONNECTOR not set" in proc.stderr


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda ep: ep.update(serviceAccountEmail=None), "serviceAccountEmail is None"),
        (lambda ep: ep.update(vpc={"connector": "projects/x/locations/y/connectors/other"}), "vpc.connector"),
        (lambda ep: ep.update(region=["us-central1"]), "region is ['us-central1']"),
    ],
    ids=["no service account", "another connector", "another region"],
)
def test_the_check_reports_a_differing_endpoint(deployed, break_it, expected):
    doc = copy.deepcopy(deployed[1])
    break_it(doc["endpoints"]["on_payment_request"])
    problems = manifest_problems(doc, SAMPLE_OUTPUTS)
    assert any(p.startswith("on_payment_request:") and expected in p for p in problems), problems


def test_the_check_reports_a_topic_and_a_secret_terraform_does_not_make(deployed):
    doc = copy.deepcopy(deployed[1])
    doc["endpoints"]["on_push"]["eventTrigger"]["eventFilters"]["topic"] = "push-notification"
    doc["endpoints"]["on_payment_request"]["secretEnvironmentVariables"] = [{"key": "FJB_NATS_PASSWORD"}]
    problems = "\n".join(manifest_problems(doc, SAMPLE_OUTPUTS))
    assert "on_push: listens on topic 'push-notification'" in problems
    assert f"no function listens on Terraform's topic {PUSH_TOPIC!r}" in problems
    assert "on_payment_request: reaches NATS but lacks the edge secrets" in problems
