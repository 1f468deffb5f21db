"""The card service on Cloud Run: its vault on an NFS share, its processor API on its one port.

run_services/cards.py refuses to start in production without FJB_VAULT_PATH
(fjordbank/config.py, Settings.card_vault): the image's state folder is memory on Cloud Run,
and every card number issued was lost at each start. terraform/ set neither FJB_VAULT_PATH
nor FJB_CARD_API_PORT, so the Cloud Run card service would have crash-looped with a
ConfigError, and the card processor's API was never served. The Knative path has both
(k8s/render.py: a volume claim at /mnt/vault, FJB_CARD_API_PORT = FJB_HTTP_PORT).

Each environment's Cloud Run services are worked out from the parsed HCL: the consumer
module's own env blocks (FJB_HTTP_PORT, the dynamic FJB_CARD_API_PORT), what the environment
passes it per service (local.service_env, local.nfs_volumes, serves_card_api) and the
topology module's lists. Each check is also fed a broken copy and must report it.
"""

from __future__ import annotations

import copy
import re
from pathlib import PurePosixPath

import pytest

from fjordbank import topology
from k8s import render
from tests.deploy.conftest import REPO, TERRAFORM
from tests.deploy.tfschema import is_meta, labelled, single_labelled, unquote

ENVS = sorted(p.name for p in (TERRAFORM / "envs").iterdir() if p.is_dir())
CONSUMER_TF = "terraform/modules/consumer/main.tf"
TOPOLOGY_TF = "terraform/modules/topology/main.tf"
CARD_VAULT_TF = "terraform/modules/card_vault/main.tf"
PROJECT_VARIABLES_TF = "terraform/modules/project/variables.tf"


# ---- a small evaluation of what each Cloud Run service gets ------------------------------------


def _locals(doc: dict) -> dict:
    merged: dict = {}
    for block in doc.get("locals", []):
        merged.update({k: v for k, v in block.items() if not is_meta(k)})
    return merged


def _module_call(doc: dict, name: str) -> dict | None:
    return next((body for call, body in single_labelled(doc, "module") if call == name), None)


def _topology_lists(docs: dict) -> dict[str, list[str]]:
    return {
        name: [str(unquote(v)) for v in value]
        for name, value in _locals(docs[TOPOLOGY_TF]).items()
        if isinstance(value, list) and all(isinstance(v, str) for v in value)
    }


def _resolve(value: str, env_locals: dict) -> str:
    """A string local (quotes and ${local.x} interpolations resolved)."""
    text = str(unquote(value))
    whole = re.fullmatch(r"\$\{local\.(\w+)\}", text)
    if whole:
        return _resolve(env_locals[whole.group(1)], env_locals)
    return re.sub(r"\$\{local\.(\w+)\}", lambda m: _resolve(env_locals[m.group(1)], env_locals), text)


def _members(expr: str, lists: dict[str, list[str]], var: str) -> list[str] | None:
    """`contains(module.topology.X, VAR)` -> the list X; None for anything else."""
    m = re.fullmatch(rf"\$\{{contains\(module\.topology\.(\w+), {var}\)\}}", str(expr))
    return lists.get(m.group(1), []) if m else None


def _service_env(env_locals: dict, lists: dict[str, list[str]], service: str) -> dict[str, str]:
    """local.service_env[service], without var.service_env (whose validation refuses these)."""
    text = str(env_locals.get("service_env", ""))
    out: dict[str, str] = {}
    for listed, entries in re.findall(r"contains\(module\.topology\.(\w+), name\) \? \{([^{}]*)\} : \{\}", text):
        if service in lists.get(listed, []):
            for key, ref in re.findall(r"(\w+) = local\.(\w+)", entries):
                out[key] = _resolve(env_locals[ref], env_locals)
    return out


def _nfs_volumes(env_locals: dict, lists: dict[str, list[str]], service: str) -> dict[str, dict[str, str]]:
    """local.nfs_volumes[service]: volume name -> server, path (as expressions) and mount path."""
    text = str(env_locals.get("nfs_volumes", ""))
    out: dict[str, dict[str, str]] = {}
    pattern = (
        r"for name in module\.topology\.(\w+) : name => \{([\w-]+) = "
        r"\{server = ([^,{}]+), path = ([^,{}]+), mount_path = local\.(\w+)\}\}"
    )
    for listed, volume, server, path, mount in re.findall(pattern, text):
        if service in lists.get(listed, []):
            out[volume] = {"server": server, "path": path, "mount_path": _resolve(env_locals[mount], env_locals)}
    return out


def _consumer_container(docs: dict) -> tuple[dict, dict, int]:
    """(the consumer module's Cloud Run resource, its first container, local.port)."""
    run = next(
        body
        for rtype, name, body in labelled(docs[CONSUMER_TF], "resource")
        if (rtype, name) == ("google_cloud_run_v2_service", "this")
    )
    port = int(_locals(docs[CONSUMER_TF])["port"])
    return run, run["template"][0]["containers"][0], port


def cloud_run_services(docs: dict, env: str) -> dict[str, dict]:
    """Per consumer service of `env`: the environment variables it gets ({name: value}, values
    the module or the environment fixes) and its NFS volumes."""
    env_doc = docs[f"terraform/envs/{env}/main.tf"]
    env_locals = _locals(env_doc)
    lists = _topology_lists(docs)
    call = _module_call(env_doc, "consumer") or {}
    _run, container, port = _consumer_container(docs)

    def module_value(value: str) -> str:
        return str(port) if value == "${tostring(local.port)}" else str(unquote(value))

    static = {str(unquote(e["name"])): module_value(e.get("value", "")) for e in container.get("env", [])}
    services: dict[str, dict] = {}
    for service in lists.get("consumer_services", []):
        variables = dict(static)
        # the module's dynamic env blocks of a fixed name: `var.FLAG ? [tostring(local.port)] : []`
        for dyn in container.get("dynamic", []):
            body = dyn.get('"env"')
            if not body:
                continue
            content = body["content"][0]
            name = str(unquote(content["name"]))
            flag = re.fullmatch(r"\$\{var\.(\w+) \? \[tostring\(local\.port\)\] : \[\]\}", str(body["for_each"]))
            if flag and content.get("value") == "${env.value}":
                members = _members(call.get(flag.group(1), ""), lists, "each.key")
                if members is not None and service in members:
                    variables[name] = str(port)
        if call.get("env") == "${local.service_env[each.key]}":
            variables.update(_service_env(env_locals, lists, service))
        nfs = (
            _nfs_volumes(env_locals, lists, service)
            if call.get("nfs_volumes") == "${lookup(local.nfs_volumes, each.key, {})}"
            else {}
        )
        services[service] = {"env": variables, "nfs": nfs}
    return services


def _module_renders_nfs_volumes(run: dict, container: dict) -> bool:
    """The consumer module turns var.nfs_volumes into NFS volumes and their mounts."""
    volumes = [d['"volumes"'] for d in run["template"][0].get("dynamic", []) if '"volumes"' in d]
    mounts = [d['"volume_mounts"'] for d in container.get("dynamic", []) if '"volume_mounts"' in d]
    nfs = [
        v["content"][0]["nfs"][0]
        for v in volumes
        if v.get("for_each") == "${var.nfs_volumes}" and v["content"][0].get("nfs")
    ]
    return bool(
        nfs
        and nfs[0].get("server") == "${volumes.value.server}"
        and nfs[0].get("path") == "${volumes.value.path}"
        and any(
            m.get("for_each") == "${var.nfs_volumes}"
            and m["content"][0].get("mount_path") == "${volume_mounts.value.mount_path}"
            for m in mounts
        )
    )


# ---- the checks ----------------------------------------------------------------------------------


def card_api_problems(docs: dict, env: str) -> list[str]:
    """The card services serve the processor's API on their one HTTP port; no other does."""
    problems = []
    card_services = set(render.CARD_SERVICES)
    for service, got in cloud_run_services(docs, env).items():
        variables = got["env"]
        if variables.get("FJB_HTTP_PORT") != str(render.HTTP_PORT):
            problems.append(f"envs/{env} {service}: FJB_HTTP_PORT is {variables.get('FJB_HTTP_PORT')!r}")
        api = variables.get("FJB_CARD_API_PORT")
        if service in card_services and api != variables.get("FJB_HTTP_PORT"):
            problems.append(
                f"envs/{env} {service}: FJB_CARD_API_PORT {api!r} is not its FJB_HTTP_PORT "
                f"{variables.get('FJB_HTTP_PORT')!r} (the processor's API is not served)"
            )
        if service not in card_services and api is not None:
            problems.append(f"envs/{env} {service}: FJB_CARD_API_PORT set on a service that is not a card service")
    return problems


def card_vault_problems(docs: dict, env: str) -> list[str]:
    """FJB_VAULT_PATH of each card service lies on an NFS mount of the card vault's share;
    no other service has FJB_VAULT_PATH."""
    problems = []
    run, container, _port = _consumer_container(docs)
    if not _module_renders_nfs_volumes(run, container):
        problems.append("modules/consumer does not mount var.nfs_volumes as NFS volumes")
    card_services = set(render.CARD_SERVICES)
    for service, got in cloud_run_services(docs, env).items():
        vault = got["env"].get("FJB_VAULT_PATH")
        if service not in card_services:
            if vault is not None:
                problems.append(f"envs/{env} {service}: FJB_VAULT_PATH set on a service that is not a card service")
            continue
        if vault is None:
            problems.append(f"envs/{env} {service}: no FJB_VAULT_PATH (the card service would not start)")
            continue
        if vault != f"{render.CARD_VAULT_DIR}/cards.db":
            problems.append(
                f"envs/{env} {service}: FJB_VAULT_PATH {vault!r}, the Knative path has {render.CARD_VAULT_DIR}"
            )
        on = [
            v
            for v in got["nfs"].values()
            if PurePosixPath(vault).is_relative_to(v["mount_path"]) and vault != v["mount_path"]
        ]
        if not on:
            problems.append(f"envs/{env} {service}: FJB_VAULT_PATH {vault!r} is under no NFS mount")
        elif on[0]["server"] != "module.card_vault.nfs_server" or on[0]["path"] != "module.card_vault.nfs_path":
            problems.append(f"envs/{env} {service}: FJB_VAULT_PATH is on an NFS share that is not the card vault's")
    return problems


def filestore_problems(docs: dict, env: str) -> list[str]:
    """The card vault's Filestore instance exists, in the bank's VPC, for the egress range only,
    with deletion protection; its API is on."""
    problems = []
    env_doc = docs[f"terraform/envs/{env}/main.tf"]
    call = _module_call(env_doc, "card_vault")
    if call is None or unquote(call.get("source")) != "../../modules/card_vault":
        return [f"envs/{env} has no module card_vault (the Filestore instance of the card vault)"]
    resources = labelled(docs.get(CARD_VAULT_TF, {}), "resource")
    instances = [body for rtype, _n, body in resources if rtype == "google_filestore_instance"]
    if len(instances) != 1:
        return [f"modules/card_vault must hold one google_filestore_instance, holds {len(instances)}"]
    fs = instances[0]
    network = fs.get("networks", [{}])[0]
    share = fs.get("file_shares", [{}])[0]
    export = share.get("nfs_export_options", [{}])[0]
    wants = [
        ("instance network", network.get("network"), "${var.network_name}"),
        ("env network", call.get("network_name"), "${module.network.network_name}"),
        ("export ranges", export.get("ip_ranges"), "${var.client_ranges}"),
        ("env clients", call.get("client_ranges"), ["${var.cidrs.run_egress}"]),
        ("deletion protection", fs.get("deletion_protection_enabled"), "${var.deletion_protection}"),
    ]
    problems += [
        f"envs/{env} card vault {what}: {got!r}, expected {want!r}" for what, got, want in wants if got != want
    ]
    if "deletion_protection" in call and call["deletion_protection"] is not True:
        problems.append(f"envs/{env} turns the card vault's deletion protection off")
    variables = dict(single_labelled(docs["terraform/modules/card_vault/variables.tf"], "variable"))
    if variables.get("deletion_protection", {}).get("default") is not True:
        problems.append("modules/card_vault: deletion protection is not on by default")
    apis = variables_default(docs[PROJECT_VARIABLES_TF], "services")
    if "file.googleapis.com" not in apis:
        problems.append("modules/project does not enable file.googleapis.com (Filestore)")
    return problems


def variables_default(doc: dict, name: str) -> list[str]:
    body = dict(single_labelled(doc, "variable")).get(name, {})
    return [str(unquote(v)) for v in body.get("default", [])]


# ---- the tree holds them -------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_the_card_service_serves_the_processor_api_on_its_http_port(tf_docs, env):
    problems = card_api_problems(tf_docs, env)
    assert not problems, "\n".join(problems)
    services = cloud_run_services(tf_docs, env)
    assert set(render.CARD_SERVICES) <= set(services)
    assert services["cards"]["env"]["FJB_CARD_API_PORT"] == services["cards"]["env"]["FJB_HTTP_PORT"] == "8080"


@pytest.mark.parametrize("env", ENVS)
def test_the_card_vault_is_on_an_nfs_share_and_no_other_service_has_one(tf_docs, env):
    problems = card_vault_problems(tf_docs, env)
    assert not problems, "\n".join(problems)
    services = cloud_run_services(tf_docs, env)
    assert services["cards"]["env"]["FJB_VAULT_PATH"] == "/mnt/vault/cards.db"
    assert [v["mount_path"] for v in services["cards"]["nfs"].values()] == ["/mnt/vault"]
    assert [s for s, got in services.items() if "FJB_VAULT_PATH" in got["env"]] == ["cards"]
    assert [s for s, got in services.items() if got["nfs"]] == ["cards"]


@pytest.mark.parametrize("env", ENVS)
def test_the_card_vault_s_filestore_instance_exists(tf_docs, env):
    problems = filestore_problems(tf_docs, env)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("env", ENVS)
def test_service_env_may_not_move_the_vault_or_the_card_api(tf_docs, env):
    """What main.tf sets from the mount and the module cannot be overridden from tfvars."""
    body = dict(single_labelled(tf_docs[f"terraform/envs/{env}/variables.tf"], "variable"))["service_env"]
    conditions = " ".join(str(v.get("condition")) for v in body.get("validation", []))
    assert "FJB_VAULT_PATH" in conditions and "FJB_CARD_API_PORT" in conditions


def test_card_services_equal_the_code(tf_docs):
    """topology's card_services: the run_services calling Settings.card_vault(), which the
    Knative path mounts the vault into (k8s/render.py CARD_SERVICES), each one instance."""
    from_code = [s for s in topology.SERVICES if "card_vault()" in (REPO / "run_services" / f"{s}.py").read_text()]
    assert _topology_lists(tf_docs).get("card_services") == from_code == list(render.CARD_SERVICES)
    assert all(render.MAX_SCALE.get(s) == 1 for s in from_code)  # envs cap them at 1 too (test_terraform_contracts)


# ---- fed broken inputs, each check reports it ----------------------------------------------------


def _consumer_call(docs: dict, env: str) -> dict:
    call = _module_call(docs[f"terraform/envs/{env}/main.tf"], "consumer")
    assert call is not None
    return call


def _env_locals_block(docs: dict, env: str, key: str) -> dict:
    return next(b for b in docs[f"terraform/envs/{env}/main.tf"]["locals"] if key in b)


def test_card_api_check_reports_a_missing_or_misplaced_port(tf_docs):
    docs = copy.deepcopy(tf_docs)
    del _consumer_call(docs, "prod")["serves_card_api"]  # the change undone
    problems = "\n".join(card_api_problems(docs, "prod"))
    assert "envs/prod cards: FJB_CARD_API_PORT None is not its FJB_HTTP_PORT '8080'" in problems, problems

    docs = copy.deepcopy(tf_docs)
    _consumer_call(docs, "dev")["serves_card_api"] = "${contains(module.topology.consumer_services, each.key)}"
    problems = "\n".join(card_api_problems(docs, "dev"))
    assert "envs/dev ledger: FJB_CARD_API_PORT set on a service that is not a card service" in problems, problems


def test_card_vault_check_reports_a_missing_vault_a_bucket_and_another_service(tf_docs):
    docs = copy.deepcopy(tf_docs)
    block = _env_locals_block(docs, "prod", "service_env")
    block["service_env"] = block["service_env"].replace(
        ", contains(module.topology.card_services, name) ? {FJB_VAULT_PATH = local.card_vault_path} : {}", ""
    )
    problems = "\n".join(card_vault_problems(docs, "prod"))
    assert "envs/prod cards: no FJB_VAULT_PATH (the card service would not start)" in problems, problems

    docs = copy.deepcopy(tf_docs)
    _consumer_call(docs, "prod")["nfs_volumes"] = "${lookup(local.storage_volumes, each.key, {})}"
    problems = "\n".join(card_vault_problems(docs, "prod"))
    assert "envs/prod cards: FJB_VAULT_PATH '/mnt/vault/cards.db' is under no NFS mount" in problems, problems

    docs = copy.deepcopy(tf_docs)
    block = _env_locals_block(docs, "dev", "service_env")
    block["service_env"] = block["service_env"].replace(
        "module.topology.card_services, name) ? {FJB_VAULT_PATH",
        "module.topology.consumer_services, name) ? {FJB_VAULT_PATH",
    )
    problems = "\n".join(card_vault_problems(docs, "dev"))
    assert "envs/dev ledger: FJB_VAULT_PATH set on a service that is not a card service" in problems, problems

    docs = copy.deepcopy(tf_docs)
    run, _container, _port = _consumer_container(docs)
    run["template"][0]["dynamic"] = [d for d in run["template"][0]["dynamic"] if "${var.nfs_volumes}" not in str(d)]
    assert "modules/consumer does not mount var.nfs_volumes as NFS volumes" in card_vault_problems(docs, "dev")


def test_filestore_check_reports_a_missing_instance_and_an_open_share(tf_docs):
    docs = copy.deepcopy(tf_docs)
    docs["terraform/envs/dev/main.tf"]["module"] = [
        m for m in docs["terraform/envs/dev/main.tf"]["module"] if '"card_vault"' not in m
    ]
    assert filestore_problems(docs, "dev") == [
        "envs/dev has no module card_vault (the Filestore instance of the card vault)"
    ]

    docs = copy.deepcopy(tf_docs)
    fs = next(b for t, _n, b in labelled(docs[CARD_VAULT_TF], "resource") if t == "google_filestore_instance")
    fs["file_shares"][0]["nfs_export_options"][0]["ip_ranges"] = ['"10.0.0.0/8"']
    fs["deletion_protection_enabled"] = False
    problems = "\n".join(filestore_problems(docs, "prod"))
    assert "envs/prod card vault export ranges" in problems and "deletion protection: False" in problems, problems


def test_the_card_api_is_not_behind_cloud_runs_iam_which_the_processor_cannot_pass(tf_docs):
    """The processor signs with the shared secret, not a Google identity: with Cloud Run's
    invoker check on, every one of its requests was answered 403 before the service saw it
    (found in review, 2026-12-06). Off for the card service only; the ingress stays internal."""
    run, _container, _port = _consumer_container(tf_docs)
    assert unquote(run["invoker_iam_disabled"]) in ("${var.serves_card_api}", "var.serves_card_api")
    assert unquote(run["ingress"]) == "INGRESS_TRAFFIC_INTERNAL_ONLY"
