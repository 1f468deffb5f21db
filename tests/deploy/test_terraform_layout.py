"""The terraform-google-modules conventions and the design's invariants, over the parsed HCL.

Conventions: each module has main.tf, variables.tf, outputs.tf, versions.tf and a README;
every variable has a description and a type, every output a description; every region or
location variable is validated against the EEA; versions are pinned alike; each
environment has a GCS backend with its own prefix and an example tfvars without secrets.
Invariants: what the design fixes (pull consumers never at zero, CPU always allocated,
/readyz startup probe, images by digest, NATS's client port only from the egress and
connector ranges and never the monitoring port, Dataplane V2, Workload Identity, private
nodes, PITR, delete protection, immutable tags, secrets readable per identity only).
Each check is also fed a broken copy and must report it.
"""

from __future__ import annotations

import copy
import re

import pytest

from tests.deploy.conftest import REPO, TERRAFORM
from tests.deploy.tfschema import is_meta, labelled, single_labelled, strings, unquote

# The EEA's Google Cloud regions. Not London (europe-west2) or Zurich (europe-west6).
EEA_REGION_PATTERN = "europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12))"
EEA_REGIONS = [
    "europe-central2", "europe-north1", "europe-north2", "europe-southwest1", "europe-west1", "europe-west3",
    "europe-west4", "europe-west8", "europe-west9", "europe-west10", "europe-west12",
]  # fmt: skip
NOT_EEA = ["europe-west2", "europe-west6", "us-central1", "us-east1", "asia-northeast1", "me-central1", "nam5", "us"]
LOCATION_VARIABLE = re.compile(r"(^|_)(region|regions|location|locations|location_id|zones)$")
# a literal Google Cloud region or zone anywhere in the configuration
LITERAL_REGION = re.compile(
    r"(?<![\w-])((?:us|europe|asia|australia|northamerica|southamerica|me|africa)-[a-z]+[0-9]+)(?:-[a-z])?(?![\w-])"
)
MODULE_FILES = {"main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"}
ENV_FILES = {"main.tf", "backend.tf", "variables.tf", "outputs.tf", "versions.tf", "terraform.tfvars.example"}
DIGEST = re.compile(r"^[a-z0-9][a-z0-9.-]*(:[0-9]+)?(/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}$")


def test_the_eea_pattern_means_the_eea():
    pattern = re.compile(f"^{EEA_REGION_PATTERN}$")
    assert all(pattern.match(r) for r in EEA_REGIONS)
    assert not any(pattern.match(r) for r in NOT_EEA)


# ---- conventions -------------------------------------------------------------------------------


def _missing_file_problems(files: dict[str, set[str]]) -> list[str]:
    """Each environment and module folder has the files its kind needs."""
    problems = []
    for folder, present in files.items():
        needed = ENV_FILES if folder.startswith("terraform/envs/") else MODULE_FILES
        if missing := needed - present:
            problems.append(f"{folder} lacks {sorted(missing)}")
    return problems


def _variable_problems(path: str, doc: dict) -> list[str]:
    """Every variable has a description and a type; a location one is validated against the EEA."""
    problems = []
    for name, body in single_labelled(doc, "variable"):
        if not unquote(body.get("description", "")):
            problems.append(f"{path}: variable {name} has no description")
        if "type" not in body:
            problems.append(f"{path}: variable {name} has no type")
        if LOCATION_VARIABLE.search(name):
            conditions = " ".join(strings(body.get("validation", [])))
            if EEA_REGION_PATTERN not in conditions:
                problems.append(f"{path}: variable {name} is not validated against the EEA pattern")
    return problems


def _literal_region_problems(path: str, doc: dict) -> list[str]:
    """No literal region or zone outside the EEA (variables' validations name others on purpose)."""
    return [
        f"{path}: {m.group(0)} is outside the EEA"
        for text in strings({k: v for k, v in doc.items() if k != "variable"})
        for m in LITERAL_REGION.finditer(text)
        if not re.fullmatch(EEA_REGION_PATTERN, m.group(1))
    ]


def _versions_problems(path: str, doc: dict) -> list[str]:
    """versions.tf: terraform >= 1.6, every provider hashicorp's at ~> 6.50, an environment
    pinning google and google-beta."""
    problems = []
    blocks = doc.get("terraform", [])
    if not blocks or unquote(blocks[0].get("required_version")) != ">= 1.6":
        problems.append(f"{path}: required_version must be >= 1.6")
    providers = {k: v for b in blocks for p in b.get("required_providers", []) for k, v in p.items() if not is_meta(k)}
    for name, spec in providers.items():
        if unquote(spec.get("source")) != f"hashicorp/{name}" or unquote(spec.get("version")) != "~> 6.50":
            problems.append(f"{path}: provider {name} must be hashicorp/{name} ~> 6.50")
    if path.startswith("terraform/envs/") and set(providers) != {"google", "google-beta"}:
        problems.append(f"{path}: an environment pins google and google-beta")
    return problems


def convention_problems(docs: dict, files: dict[str, set[str]]) -> list[str]:
    problems = _missing_file_problems(files)
    for path, doc in docs.items():
        problems += _variable_problems(path, doc)
        for name, body in single_labelled(doc, "output"):
            if not unquote(body.get("description", "")):
                problems.append(f"{path}: output {name} has no description")
        problems += _literal_region_problems(path, doc)
        if path.endswith("versions.tf"):
            problems += _versions_problems(path, doc)
    return problems


def tree_files() -> dict[str, set[str]]:
    folders = [*(TERRAFORM / "modules").iterdir(), *(TERRAFORM / "envs").iterdir()]
    return {str(f.relative_to(REPO)): {p.name for p in f.iterdir()} for f in folders if f.is_dir()}


def test_conventions(tf_docs):
    problems = convention_problems(tf_docs, tree_files())
    assert not problems, "\n".join(problems)


def test_conventions_report_broken_input(tf_docs):
    docs = copy.deepcopy(tf_docs)
    variables = docs["terraform/modules/consumer/variables.tf"]["variable"]
    image = next(v for v in variables if '"image"' in v)['"image"']
    del image["description"]
    region = next(v for v in variables if '"region"' in v)['"region"']
    del region["validation"]
    docs["terraform/modules/gke/main.tf"]["resource"][0]['"google_service_account"']['"nodes"']["description"] = (
        '"a note about us-central1"'
    )
    docs["terraform/envs/dev/versions.tf"]["terraform"][0]["required_providers"][0]["google"]["version"] = '">= 5.0"'
    files = tree_files()
    files["terraform/modules/firestore"].discard("README.md")
    problems = "\n".join(convention_problems(docs, files))
    for expected in [
        "terraform/modules/firestore lacks ['README.md']",
        "consumer/variables.tf: variable image has no description",
        "consumer/variables.tf: variable region is not validated against the EEA pattern",
        "gke/main.tf: us-central1 is outside the EEA",
        "envs/dev/versions.tf: provider google must be hashicorp/google ~> 6.50",
    ]:
        assert expected in problems, f"not reported: {expected}\n{problems}"


# ---- environments ------------------------------------------------------------------------------

ENVS = sorted(p.name for p in (TERRAFORM / "envs").iterdir() if p.is_dir())


@pytest.mark.parametrize("env", ENVS)
def test_environment_has_its_own_gcs_state_and_no_bucket_written_down(tf_docs, env):
    backend = tf_docs[f"terraform/envs/{env}/backend.tf"]["terraform"][0]["backend"][0]
    assert list(k for k in backend if not is_meta(k)) == ['"gcs"']
    gcs = backend['"gcs"']
    assert unquote(gcs["prefix"]) == f"fjordbank/{env}"
    assert "bucket" not in gcs, "the bucket is given at init (-backend-config), not written down"


def example_problems(example: dict) -> list[str]:
    problems = []
    for key, value in example.items():
        if is_meta(key):
            continue
        if re.search(r"password|secret|token|private|_key$", key, re.I):
            problems.append(f"{key}: no secret belongs in tfvars")
        for text in strings(value):
            if re.search(r"(?i)(password|secret|token|key)\s*[=:]|BEGIN [A-Z ]*PRIVATE KEY", str(text)):
                problems.append(f"{key}: looks like a secret: {text[:40]}")
    for name, image in (example.get("images") or {}).items():
        if not DIGEST.match(str(unquote(image))):
            problems.append(f"images.{name} is not pinned by digest: {image}")
    for service, env in (example.get("service_env") or {}).items():
        for var in env:
            if re.search(r"PASSWORD|SECRET|_KEY$|TOKEN", var):
                problems.append(f"service_env.{service}.{var}: a secret in plain configuration")
    return problems


@pytest.mark.parametrize("env", ENVS)
def test_tfvars_example_has_digests_and_no_secrets(tfvars_examples, env):
    problems = example_problems(tfvars_examples[env])
    assert not problems, "\n".join(problems)


def test_tfvars_check_reports_a_tag_and_a_secret(tfvars_examples):
    example = copy.deepcopy(tfvars_examples["prod"])
    example["images"]["ledger"] = '"registry.example/fjordbank/services:latest"'
    example["service_env"]["cards"] = {"FJB_VAULT_KEY": '"c2VjcmV0"'}
    example["nats_password"] = '"hunter2"'
    problems = "\n".join(example_problems(example))
    assert "images.ledger is not pinned by digest" in problems
    assert "service_env.cards.FJB_VAULT_KEY" in problems
    assert "nats_password: no secret belongs in tfvars" in problems


def test_environments_compose_the_same_modules(tf_docs):
    """dev and prod differ in their variables, never in what they build."""
    bodies = {
        env: {
            call: {k: v for k, v in body.items() if not is_meta(k)}
            for call, body in single_labelled(tf_docs[f"terraform/envs/{env}/main.tf"], "module")
        }
        for env in ENVS
    }
    first, *rest = ENVS
    for env in rest:
        assert bodies[env] == bodies[first], f"envs/{env}/main.tf composes differently from envs/{first}"


# ---- invariants ----------------------------------------------------------------------------------


def resource(docs: dict, module: str, rtype: str, name: str) -> dict:
    for t, n, body in labelled(docs[f"terraform/modules/{module}/main.tf"], "resource"):
        if (t, n) == (rtype, name):
            return body
    raise KeyError(f"modules/{module} has no {rtype}.{name}")


def first(body: dict, *path: str):
    for key in path:
        value = body.get(key)
        body = value[0] if isinstance(value, list) and value and isinstance(value[0], dict) else value
        if body is None:
            return None
    if isinstance(body, list) and all(isinstance(v, str) for v in body):
        return [unquote(v) for v in body]
    return unquote(body) if isinstance(body, str) else body


class _Problems(list):
    """Problems found so far; ``want`` adds one when a setting is not what the design fixes."""

    def want(self, what: str, got, expected) -> None:
        if got != expected:
            self.append(f"{what}: {got!r}, expected {expected!r}")


def _consumer_invariants(docs: dict) -> list[str]:
    """Pull consumers never at zero, CPU always allocated, /readyz, images by digest, internal."""
    problems = _Problems()
    want = problems.want
    run = resource(docs, "consumer", "google_cloud_run_v2_service", "this")
    want("consumer min instances", first(run, "template", "scaling", "min_instance_count"), "${var.min_instances}")
    want("consumer cpu_idle", first(run, "template", "containers", "resources", "cpu_idle"), False)
    want("consumer startup probe", first(run, "template", "containers", "startup_probe", "http_get", "path"), "/readyz")
    want("consumer image", first(run, "template", "containers", "image"), "${var.image}")
    want("consumer egress", first(run, "template", "vpc_access", "egress"), "PRIVATE_RANGES_ONLY")
    want("consumer ingress", first(run, "ingress"), "INGRESS_TRAFFIC_INTERNAL_ONLY")
    if first(run, "template", "max_instance_request_concurrency") is None:
        problems.append("consumer sets no max_instance_request_concurrency")
    if first(run, "template", "vpc_access", "network_interfaces", "subnetwork") is None:
        problems.append("consumer has no Direct VPC egress subnet")
    consumer_vars = dict(single_labelled(docs["terraform/modules/consumer/variables.tf"], "variable"))
    if "var.min_instances >= 1" not in " ".join(strings(consumer_vars["min_instances"].get("validation", []))):
        problems.append("consumer min_instances is not validated >= 1")
    if "@sha256:[0-9a-f]{64}$" not in " ".join(strings(consumer_vars["image"].get("validation", []))):
        problems.append("consumer image is not validated as a digest")
    return list(problems)


def _gke_invariants(docs: dict) -> list[str]:
    """Dataplane V2, Workload Identity, shielded private nodes, regional, one NATS node per zone."""
    problems = _Problems()
    want = problems.want
    gke = resource(docs, "gke", "google_container_cluster", "this")
    want("gke datapath", first(gke, "datapath_provider"), "ADVANCED_DATAPATH")
    want(
        "gke workload identity",
        first(gke, "workload_identity_config", "workload_pool"),
        "${var.project_id}.svc.id.goog",
    )
    want("gke release channel", first(gke, "release_channel", "channel"), "${var.release_channel}")
    want("gke shielded nodes", first(gke, "enable_shielded_nodes"), True)
    want("gke managed prometheus", first(gke, "monitoring_config", "managed_prometheus", "enabled"), True)
    want("gke private nodes", first(gke, "private_cluster_config", "enable_private_nodes"), True)
    want("gke regional", first(gke, "location"), "${var.region}")
    nats_pool = resource(docs, "gke", "google_container_node_pool", "nats")
    want("nats pool zones", first(nats_pool, "node_locations"), "${var.zones}")
    want("nats pool nodes per zone", first(nats_pool, "node_count"), 1)
    return list(problems)


def _network_invariants(docs: dict) -> list[str]:
    """NATS's client port only from the egress and connector ranges, never the monitoring
    port; private Google access on every subnet."""
    problems = _Problems()
    want = problems.want
    allow = resource(docs, "network", "google_compute_firewall", "nats_clients")
    want("nats firewall sources", first(allow, "source_ranges"), ["${var.run_egress_cidr}", "${var.connector_cidr}"])
    want("nats firewall ports", first(allow, "allow", "ports"), ["${tostring(var.nats_client_port)}"])
    for _t, name, body in labelled(docs["terraform/modules/network/main.tf"], "resource"):
        for rule in body.get("allow", []) if _t == "google_compute_firewall" else []:
            if any("8222" in str(p) for p in rule.get("ports", [])):
                problems.append(f"firewall {name} allows the monitoring port 8222")
    deny = resource(docs, "network", "google_compute_firewall", "nats_monitoring_deny")
    want("monitoring port denied", first(deny, "deny", "ports"), ["8222"])
    for subnet in ("gke", "run_egress", "connector"):
        body = resource(docs, "network", "google_compute_subnetwork", subnet)
        want(f"subnet {subnet} private google access", first(body, "private_ip_google_access"), True)
    return list(problems)


def _data_invariants(docs: dict) -> list[str]:
    """Firestore with PITR, delete protection and a daily backup; immutable image tags."""
    problems = _Problems()
    want = problems.want
    db = resource(docs, "firestore", "google_firestore_database", "this")
    want("firestore type", first(db, "type"), "FIRESTORE_NATIVE")
    want("firestore pitr", first(db, "point_in_time_recovery_enablement"), "POINT_IN_TIME_RECOVERY_ENABLED")
    want("firestore delete protection", first(db, "delete_protection_state"), "DELETE_PROTECTION_ENABLED")
    resource(docs, "firestore", "google_firestore_backup_schedule", "daily")

    repo = resource(docs, "artifact_registry", "google_artifact_registry_repository", "this")
    want("artifact registry immutable tags", first(repo, "docker_config", "immutable_tags"), True)
    return list(problems)


def _access_invariants(docs: dict) -> list[str]:
    """Secrets readable per identity only; no basic role granted in an environment."""
    problems = _Problems()
    want = problems.want
    for name in ("accessor", "ca"):
        grant = resource(docs, "secrets", "google_secret_manager_secret_iam_member", name)
        want(f"secret grant {name} role", first(grant, "role"), "roles/secretmanager.secretAccessor")
        want(f"secret grant {name} member", first(grant, "member"), "serviceAccount:${each.value.service_account}")
    for path, doc in docs.items():
        for t, n, body in labelled(doc, "resource"):
            if t.startswith("google_project_iam") and "secretmanager" in str(body.get("role", "")):
                problems.append(f"{path}: {t}.{n} grants Secret Manager project-wide")
    for path in docs:
        if path.startswith("terraform/envs/") and path.endswith("main.tf"):
            roles = " ".join(strings(docs[path]))
            problems += [f"{path} grants {basic}" for basic in ("roles/owner", "roles/editor") if basic in roles]
    return list(problems)


def _env_locals(docs: dict, env: str) -> dict:
    merged: dict = {}
    for block in docs[f"terraform/envs/{env}/main.tf"].get("locals", []):
        merged.update({k: v for k, v in block.items() if not is_meta(k)})
    return merged


def _clearing_invariants(docs: dict) -> list[str]:
    """The clearing house's file exchange: a private, versioned bucket in the EEA, mounted
    into the clearing services where FJB_CLEARING_DIR points (production has no default)."""
    problems = _Problems()
    want = problems.want
    bucket = resource(docs, "clearing_exchange", "google_storage_bucket", "this")
    want("clearing bucket location", first(bucket, "location"), "${var.location}")
    want("clearing bucket public access", first(bucket, "public_access_prevention"), "enforced")
    want("clearing bucket uniform access", first(bucket, "uniform_bucket_level_access"), True)
    want("clearing bucket versioning", first(bucket, "versioning", "enabled"), True)
    want("clearing bucket force_destroy", first(bucket, "force_destroy"), False)
    grant = resource(docs, "clearing_exchange", "google_storage_bucket_iam_member", "exchangers")
    want("clearing bucket grant", first(grant, "role"), "roles/storage.objectUser")
    # the sanctions list under sanctions/ is the deploy's: the payment files' movers may not touch it
    want(
        "clearing bucket grant condition",
        first(grant, "condition", "expression"),
        '!resource.name.startsWith(\\"${local.sanctions_objects}\\")',  # as HCL spells it
    )
    readers = resource(docs, "clearing_exchange", "google_storage_bucket_iam_member", "list_readers")
    want("sanctions list readers' role", first(readers, "role"), "roles/storage.objectViewer")
    want(
        "sanctions list readers' condition",
        first(readers, "condition", "expression"),
        'resource.name.startsWith(\\"${local.sanctions_objects}\\")'
        ' || resource.name == \\"projects/_/buckets/${var.name}\\"',  # listing: a request on the bucket
    )
    run = resource(docs, "consumer", "google_cloud_run_v2_service", "this")
    volumes = [d['"volumes"'] for d in run["template"][0].get("dynamic", []) if '"volumes"' in d]
    gcs = first(volumes[0], "content", "gcs", "bucket") if volumes else None
    want("consumer storage volumes", gcs, "${volumes.value.bucket}")
    for env in ENVS:
        loc = _env_locals(docs, env)
        mounted = str(loc.get("storage_volumes", ""))
        if "mount_path = local.clearing_dir" not in mounted or "module.clearing_exchange.bucket_name" not in mounted:
            problems.append(f"envs/{env} does not mount the clearing exchange at local.clearing_dir")
        if "FJB_CLEARING_DIR = local.clearing_dir" not in str(loc.get("service_env", "")):
            problems.append(f"envs/{env} does not point FJB_CLEARING_DIR at the mounted clearing exchange")
        # the clearing service screens payers against the list the deploy puts on that mount
        modules = docs[f"terraform/envs/{env}/main.tf"].get("module", [])
        exchange = next((b['"clearing_exchange"'] for b in modules if '"clearing_exchange"' in b), {})
        readers = str(exchange.get("list_readers", ""))
        if "module.topology.clearing_services" not in readers or "module.topology.sanctions_readers" not in readers:
            problems.append(f"envs/{env} does not let the clearing services and sanctions readers read the list")
        # screening: the exchange read-only, where its FJB_SANCTIONS_LIST points
        env_text = str(loc.get("service_env", ""))
        if not all(part in mounted for part in ("module.topology.sanctions_readers", "read_only = true")) or (
            "contains(module.topology.sanctions_readers, name) ? {FJB_SANCTIONS_LIST = local.sanctions_list}"
            not in env_text
        ):
            problems.append(f"envs/{env} does not mount the exchange read-only for the sanctions readers")
        listed = str(loc.get("sanctions_list", "")).strip('"')
        if "FJB_SANCTIONS_LIST = local.sanctions_list" not in str(loc.get("service_env", "")) or not listed.startswith(
            "${local.clearing_dir}/"
        ):
            problems.append(f"envs/{env} does not point FJB_SANCTIONS_LIST at the list on the clearing exchange")
    return list(problems)


def invariant_problems(docs: dict) -> list[str]:
    return [
        *_consumer_invariants(docs),
        *_clearing_invariants(docs),
        *_gke_invariants(docs),
        *_network_invariants(docs),
        *_data_invariants(docs),
        *_access_invariants(docs),
    ]


def test_design_invariants_hold(tf_docs):
    problems = invariant_problems(tf_docs)
    assert not problems, "\n".join(problems)


def test_invariants_report_broken_input(tf_docs):
    docs = copy.deepcopy(tf_docs)
    run = resource(docs, "consumer", "google_cloud_run_v2_service", "this")
    run["template"][0]["containers"][0]["resources"][0]["cpu_idle"] = True
    run["template"][0]["scaling"][0]["min_instance_count"] = 0
    run["template"][0]["containers"][0]["startup_probe"][0]["http_get"][0]["path"] = '"/healthz"'
    allow = resource(docs, "network", "google_compute_firewall", "nats_clients")
    allow["allow"][0]["ports"] = ['"4222"', '"8222"']
    allow["source_ranges"] = ['"0.0.0.0/0"']
    gke = resource(docs, "gke", "google_container_cluster", "this")
    gke["datapath_provider"] = '"LEGACY_DATAPATH"'
    db = resource(docs, "firestore", "google_firestore_database", "this")
    db["point_in_time_recovery_enablement"] = '"POINT_IN_TIME_RECOVERY_DISABLED"'
    bucket = resource(docs, "clearing_exchange", "google_storage_bucket", "this")
    bucket["public_access_prevention"] = '"inherited"'
    for block in docs["terraform/envs/dev/main.tf"]["locals"]:
        block.pop("service_env", None)
    problems = "\n".join(invariant_problems(docs))
    for expected in [
        "consumer cpu_idle: True",
        "consumer min instances: 0",
        "consumer startup probe: '/healthz'",
        "nats firewall sources",
        "firewall nats_clients allows the monitoring port 8222",
        "gke datapath: 'LEGACY_DATAPATH'",
        "firestore pitr",
        "clearing bucket public access: 'inherited'",
        "envs/dev does not point FJB_CLEARING_DIR at the mounted clearing exchange",
    ]:
        assert expected in problems, f"not reported: {expected}\n{problems}"
