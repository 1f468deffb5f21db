"""Every NATS user the servers' bcrypt Secret needs (k8s/render.py nats_users(): one per
topology identity, plus the system account's `system`) has its password in Secret Manager,
made by terraform, and k8s/README.md's loop fetches each of them. Before, terraform made no
`nats-system-password` (modules/topology listed the identities only), the README fetched
the system user's password from nowhere, and `bcrypt-secret` refuses to run without it."""

from __future__ import annotations

import copy
import json
import re
import shutil

from k8s import render
from tests.deploy.conftest import REPO, TERRAFORM
from tests.deploy.test_terraform_layout import first, resource
from tests.deploy.test_terraform_names import module_call, topology_locals
from tests.deploy.tfschema import unquote

README = REPO / "k8s" / "README.md"


def readme_fetches() -> dict[str, str]:
    """user -> the secret ID the README's loop reads into its folder's file USER."""
    text = README.read_text()
    loop = re.search(r"for id in ([a-z -]+); do\n\s*gcloud secrets versions access latest --secret=(.+?) >", text)
    assert loop, "k8s/README.md no longer has the password loop (for id in ...; do gcloud secrets ...)"
    ids, expr = loop.group(1).split(), loop.group(2).strip()
    choice = re.fullmatch(r"\$\( \[ \$id = (\w+) \] && echo (\S+) \|\| echo (\S+) \)", expr)
    assert choice, f"unexpected secret expression in the loop: {expr!r}"
    who, its, pattern = choice.groups()
    return {i: its if i == who else pattern.replace("$id", i) for i in ids}


def terraform_passwords(docs: dict) -> dict[str, str]:
    """user -> password secret ID as terraform's topology module declares it (HCL text)."""
    loc = topology_locals(docs)
    ids = [unquote(i) for i in loc["nats_identities"]]
    # {for id in ... : id => (id == "edge" ? {password = "EDGE", ...} : {password = "nats-${id}-password", ...})}
    spec = re.search(
        r'id == "(\w+)" \? \{password = "([^"]+)".*?\} : \{password = "([^"]+)"', str(loc["nats_secret_ids"])
    )
    assert spec, f"modules/topology nats_secret_ids changed shape: {loc['nats_secret_ids']}"
    who, its, pattern = spec.groups()
    out = {i: its if i == who else pattern.replace("${id}", i) for i in ids}
    system = loc.get("nats_system_password_secret_id")
    if system is not None:
        out[render.SYSTEM_USER] = unquote(system)
    return out


def system_secret_problems(docs: dict) -> list[str]:
    problems = []
    passwords = terraform_passwords(docs)
    if missing := [u for u in render.nats_users() if u not in passwords]:
        problems.append(f"terraform holds no password secret for {missing}")
    try:
        secret = resource(docs, "secrets", "google_secret_manager_secret", "system")
    except KeyError:
        return [*problems, "modules/secrets makes no google_secret_manager_secret.system"]
    if first(secret, "secret_id") != "${var.system_password_secret_id}":
        problems.append("the system secret's ID is not var.system_password_secret_id")
    if "var.replica_locations" not in str(secret.get("replication")):
        problems.append("the system secret is not replicated where the others are (var.replica_locations)")
    for env in ("dev", "prod"):
        arg = module_call(docs, env, "secrets").get("system_password_secret_id")
        if arg != "${module.topology.nats_system_password_secret_id}":
            problems.append(f"envs/{env} does not pass the topology's system password secret to module.secrets")
    return problems


def test_every_nats_user_has_a_password_secret_in_terraform(tf_docs):
    assert render.SYSTEM_USER in render.nats_users()
    assert system_secret_problems(tf_docs) == []
    assert terraform_passwords(tf_docs)[render.SYSTEM_USER] == "nats-system-password"


def test_the_readme_fetches_every_password_the_bcrypt_step_needs(tf_docs):
    fetched = readme_fetches()
    assert sorted(fetched) == sorted(render.nats_users())
    assert fetched == terraform_passwords(tf_docs)


def test_a_missing_system_secret_is_reported(tf_docs):
    docs = copy.deepcopy(tf_docs)
    for block in docs["terraform/modules/topology/main.tf"]["locals"]:
        block.pop("nats_system_password_secret_id", None)
    main = docs["terraform/modules/secrets/main.tf"]
    for entry in main["resource"]:
        entry.get('"google_secret_manager_secret"', {}).pop('"system"', None)
    problems = system_secret_problems(docs)
    assert any("no password secret for ['system']" in p for p in problems), problems
    assert any("makes no google_secret_manager_secret.system" in p for p in problems), problems


def test_the_topology_module_evaluates_the_system_secret(terraform, tmp_path):
    shutil.copytree(TERRAFORM / "modules" / "topology", tmp_path / "topology")
    expr = "jsonencode({system = local.nats_system_password_secret_id, ids = local.nats_secret_ids})"
    proc = terraform("console", "-no-color", cwd=tmp_path / "topology", input_text=expr)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(json.loads(proc.stdout))
    evaluated = {i: s["password"] for i, s in got["ids"].items()} | {render.SYSTEM_USER: got["system"]}
    assert evaluated == readme_fetches()
