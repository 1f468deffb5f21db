"""The names in terraform/ equal the code's constants, and fail the test when they differ.

* consumer services and NATS identities: fjordbank/topology.py (SERVICES, IDENTITIES);
* Pub/Sub topics: fjordbank/adapters/pubsub.py (PUSH_TOPIC, JOBS_TOPIC);
* Cloud Scheduler jobs, their schedules and their payload {"job": NAME}:
  fjordbank/service_layer/scheduled.py (JOBS, SCHEDULES) and what on_scheduled_job reads (functions/main.py);
* the functions' region and the secrets they bind (functions/main.py).

terraform/modules/topology restates these names once; both environments take them from it.
Plain checks over the parsed HCL (python-hcl2); where a terraform binary is installed, the
topology module is also evaluated (`terraform console`) and compared value by value.
"""

from __future__ import annotations

import ast
import base64
import copy
import json
import re
import shutil

from fjordbank import topology
from fjordbank.adapters.pubsub import JOBS_TOPIC, PUSH_TOPIC
from fjordbank.service_layer.scheduled import JOBS, SCHEDULES
from tests.deploy.conftest import REPO, TERRAFORM
from tests.deploy.tfschema import is_meta, single_labelled, unquote

TOPOLOGY_TF = "terraform/modules/topology/main.tf"
SCHEDULER_TF = "terraform/modules/pubsub_scheduler/main.tf"
FUNCTIONS_MAIN = REPO / "functions" / "main.py"
ENVS = sorted(p.name for p in (TERRAFORM / "envs").iterdir() if p.is_dir())


def functions_facts() -> dict:
    """What functions/main.py declares: its region and every secret a function binds."""
    tree = ast.parse(FUNCTIONS_MAIN.read_text())
    region, secrets = None, set()
    # module-level lists by name (NATS_SECRETS = [...]), for `secrets=NATS_SECRETS`
    named = {
        t.id: {e.value for e in node.value.elts if isinstance(e, ast.Constant)}
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List)
        for t in node.targets
        if isinstance(t, ast.Name)
    }

    def listed(value: ast.expr) -> set:
        if isinstance(value, ast.List | ast.Tuple):
            return {e.value for e in value.elts if isinstance(e, ast.Constant)}
        if isinstance(value, ast.Name):
            return named.get(value.id, set())
        return set()

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            for kw in node.keywords:
                if name == "set_global_options" and kw.arg == "region" and isinstance(kw.value, ast.Constant):
                    region = kw.value.value
                if kw.arg == "secrets":
                    secrets |= listed(kw.value)
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "secrets":
                    secrets |= listed(value)
    return {"region": region, "secrets": secrets, "reads_job": '.get("job"' in FUNCTIONS_MAIN.read_text()}


def push_publishing_services() -> list[str]:
    """The run_services that publish on PUSH_TOPIC."""
    return [s for s in topology.SERVICES if "PUSH_TOPIC" in (REPO / "run_services" / f"{s}.py").read_text()]


def clearing_exchange_services() -> list[str]:
    """The run_services that exchange files with the clearing house (Settings.clearing_channel)."""
    return [s for s in topology.SERVICES if "clearing_channel()" in (REPO / "run_services" / f"{s}.py").read_text()]


def sanctions_reading_services() -> list[str]:
    """The run_services that screen against the sanctions list (Settings.screening_list) and
    exchange no files with the clearing house."""
    return [
        s
        for s in topology.SERVICES
        if "screening_list()" in (text := (REPO / "run_services" / f"{s}.py").read_text())
        and "clearing_channel()" not in text
    ]


def topology_locals(docs: dict) -> dict:
    merged: dict = {}
    for block in docs[TOPOLOGY_TF].get("locals", []):
        merged.update({k: v for k, v in block.items() if not is_meta(k)})
    return merged


def unq_list(value) -> list:
    return [unquote(v) for v in value] if isinstance(value, list) else [value]


def module_call(docs: dict, env: str, name: str) -> dict:
    for call, body in single_labelled(docs[f"terraform/envs/{env}/main.tf"], "module"):
        if call == name:
            return body
    raise AssertionError(f"envs/{env} has no module {name!r}")


def name_mismatches(docs: dict) -> list[str]:
    """Every difference between the terraform names and the code's constants."""
    problems: list[str] = []

    def same(what: str, got, want) -> None:
        if got != want:
            problems.append(f"{what}: terraform has {got!r}, the code {want!r}")

    loc = topology_locals(docs)
    same("consumer_services (topology.SERVICES)", unq_list(loc.get("consumer_services")), list(topology.SERVICES))
    same(
        "nats_identities (topology.IDENTITIES)",
        unq_list(loc.get("nats_identities")),
        [i.name for i in topology.IDENTITIES],
    )
    same("push_topic (pubsub.PUSH_TOPIC)", unquote(loc.get("push_topic")), PUSH_TOPIC)
    same("jobs_topic (pubsub.JOBS_TOPIC)", unquote(loc.get("jobs_topic")), JOBS_TOPIC)
    jobs = loc.get("scheduled_jobs") or {}
    same("scheduled_jobs (scheduled.JOBS)", sorted(str(unquote(k)) for k in jobs if not is_meta(k)), sorted(JOBS))
    # compared for the jobs both sides name: a job missing from one side is the difference above
    tf_schedules = {str(unquote(k)): unquote((v or {}).get("schedule")) for k, v in jobs.items() if not is_meta(k)}
    same(
        "scheduled_jobs' schedules (scheduled.SCHEDULES)",
        {k: v for k, v in tf_schedules.items() if k in SCHEDULES},
        {k: v for k, v in SCHEDULES.items() if k in tf_schedules},
    )
    same(
        "push_publishers (run_services using PUSH_TOPIC)",
        unq_list(loc.get("push_publishers")),
        push_publishing_services(),
    )
    same(
        "clearing_services (run_services using clearing_channel())",
        unq_list(loc.get("clearing_services")),
        clearing_exchange_services(),
    )
    same(
        "sanctions_readers (run_services using screening_list() but not clearing_channel())",
        unq_list(loc.get("sanctions_readers")),
        sanctions_reading_services(),
    )
    for service, env in (loc.get("service_secret_env") or {}).items():
        if service not in topology.SERVICES:
            problems.append(f"service_secret_env names {service!r}, not a service in topology.SERVICES")
        for var in env:
            if var not in (REPO / "fjordbank" / "config.py").read_text():
                problems.append(f"service_secret_env[{service!r}] sets {var}, which fjordbank/config.py never reads")

    # the edge's secrets are the ones the functions bind, and they bind no other
    functions = functions_facts()
    edge = re.search(r'id == "edge" \? \{(.*?)\}', str(loc.get("nats_secret_ids", "")), re.S)
    same(
        "the edge's secrets (functions/main.py secrets=)",
        set(re.findall(r'= "([A-Za-z0-9_-]+)"', edge.group(1))) if edge else set(),
        functions["secrets"],
    )

    # the scheduler publishes {"job": NAME} for each job, which on_scheduled_job reads
    job = [body for rtype, _n, body in _resources(docs[SCHEDULER_TF]) if rtype == "google_cloud_scheduler_job"]
    if len(job) != 1:
        problems.append(f"{SCHEDULER_TF} must have one google_cloud_scheduler_job (for_each over the jobs)")
    else:
        same("scheduler job for_each", job[0].get("for_each"), "${var.jobs}")
        same("scheduler job name", job[0].get("name"), "${each.key}")
        target = (job[0].get("pubsub_target") or [{}])[0]
        same("scheduler job payload", target.get("data"), "${base64encode(jsonencode({job = each.key}))}")
        same("scheduler job topic", target.get("topic_name"), "${google_pubsub_topic.jobs.id}")
    if not functions["reads_job"]:
        problems.append('functions/main.py no longer reads message.get("job"): the scheduler payload changed')

    # both environments take every name from the topology module
    for env in ENVS:
        wiring = {
            ("pubsub_scheduler", "push_topic"): "${module.topology.push_topic}",
            ("pubsub_scheduler", "jobs_topic"): "${module.topology.jobs_topic}",
            ("pubsub_scheduler", "jobs"): "${module.topology.scheduled_jobs}",
            ("consumer", "for_each"): "${toset(module.topology.consumer_services)}",
            ("consumer_service_account", "for_each"): "${toset(module.topology.consumer_services)}",
            ("consumer", "env"): "${local.service_env[each.key]}",
            ("consumer", "storage_volumes"): "${lookup(local.storage_volumes, each.key, {})}",
        }
        for (call, arg), want in wiring.items():
            same(f"envs/{env} module.{call}.{arg}", module_call(docs, env, call).get(arg), want)
        identities = str(module_call(docs, env, "secrets").get("identities"))
        if "for id in module.topology.nats_identities" not in identities:
            problems.append(f"envs/{env} module.secrets.identities must iterate module.topology.nats_identities")
    return problems


def _resources(doc: dict):
    for entry in doc.get("resource", []):
        for qtype, named in entry.items():
            for qname, body in named.items():
                if not is_meta(qname):
                    yield unquote(qtype), unquote(qname), body


def test_terraform_names_equal_the_code(tf_docs):
    problems = name_mismatches(tf_docs)
    assert not problems, "terraform/ and the code differ:\n" + "\n".join(problems)


def test_functions_region_equals_the_environments(tf_docs):
    region = functions_facts()["region"]
    assert region, "functions/main.py sets no region in set_global_options"
    for env in ENVS:
        variables = dict(single_labelled(tf_docs[f"terraform/envs/{env}/variables.tf"], "variable"))
        assert unquote(variables["functions_region"]["default"]) == region, env
        example = (TERRAFORM / "envs" / env / "terraform.tfvars.example").read_text()
        assert re.search(rf'^functions_region\s*=\s*"{region}"', example, re.M), env


def test_tfvars_examples_give_every_service_an_image(tfvars_examples):
    assert sorted(tfvars_examples) == ENVS
    for env, example in tfvars_examples.items():
        assert sorted(example["images"]) == sorted(topology.SERVICES), env


def test_topology_module_evaluates_to_the_code(terraform, tmp_path):
    """The evaluated locals (for expressions included), compared value by value."""
    shutil.copytree(TERRAFORM / "modules" / "topology", tmp_path / "topology")
    expr = (
        "jsonencode({services = local.consumer_services, identities = local.nats_identities, "
        "push = local.push_topic, jobs_topic = local.jobs_topic, jobs = keys(local.scheduled_jobs), "
        "secrets = local.nats_secret_ids, payloads = {for j in keys(local.scheduled_jobs) : "
        "j => base64encode(jsonencode({job = j}))}})"
    )
    proc = terraform("console", "-no-color", cwd=tmp_path / "topology", input_text=expr)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(json.loads(proc.stdout))
    assert got["services"] == list(topology.SERVICES)
    assert got["identities"] == [i.name for i in topology.IDENTITIES]
    assert (got["push"], got["jobs_topic"]) == (PUSH_TOPIC, JOBS_TOPIC)
    assert sorted(got["jobs"]) == sorted(JOBS)
    assert sorted(got["secrets"]) == sorted(i.name for i in topology.IDENTITIES)
    assert all(set(s) == {"password", "tls_cert", "tls_key"} for i, s in got["secrets"].items() if i != "edge")
    # the edge: the names its functions declare, one of them the CA's copy
    assert set(got["secrets"]["edge"].values()) == functions_facts()["secrets"]
    assert set(got["secrets"]["edge"]) == {"password", "tls_cert", "tls_key", "ca"}
    for name, payload in got["payloads"].items():
        assert json.loads(base64.b64decode(payload)) == {"job": name}  # what on_scheduled_job reads


# ---- fed broken inputs, the check reports each difference -----------------------------------------


def test_name_check_reports_every_difference(tf_docs):
    docs = copy.deepcopy(tf_docs)
    loc = docs[TOPOLOGY_TF]["locals"][0]
    loc["consumer_services"] = loc["consumer_services"][:-1]  # a service dropped
    loc["push_topic"] = '"push-notification"'  # a topic misspelt
    loc["scheduled_jobs"] = {k: v for k, v in loc["scheduled_jobs"].items() if "relay" not in k}
    audit = next(k for k in loc["scheduled_jobs"] if "audit" in k)
    loc["scheduled_jobs"][audit] = {**loc["scheduled_jobs"][audit], "schedule": '"0 * * * *"'}  # run at another time
    loc["nats_secret_ids"] = loc["nats_secret_ids"].replace("FJB_NATS_PASSWORD", "nats-edge-password")
    job = next(b for t, _n, b in _resources(docs[SCHEDULER_TF]) if t == "google_cloud_scheduler_job")
    job["pubsub_target"][0]["data"] = "${base64encode(jsonencode({name = each.key}))}"
    module_call(docs, "prod", "pubsub_scheduler")["jobs_topic"] = '"scheduled-jobs"'  # literal, not from topology

    problems = "\n".join(name_mismatches(docs))
    for expected in [
        "consumer_services (topology.SERVICES)",
        "push_topic (pubsub.PUSH_TOPIC)",
        "scheduled_jobs (scheduled.JOBS)",
        "scheduled_jobs' schedules (scheduled.SCHEDULES)",
        "the edge's secrets",
        "scheduler job payload",
        "envs/prod module.pubsub_scheduler.jobs_topic",
    ]:
        assert expected in problems, f"not reported: {expected}\n{problems}"
    assert len(problems.splitlines()) == 7, problems
