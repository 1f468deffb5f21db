"""The card vault: a Firestore database of its own that only the card service's identity reaches.

The vault (fjordbank/adapters/vault.py) was a SQLite file on a Filestore NFS share, which
Cloud Run mounts without locks: one instance only, and a rollout ran two on the file at
once. It is now the Firestore database FJB_VAULT_DATABASE (default "card-vault",
terraform/modules/card_vault). What must hold, per environment:

* the database exists, native mode, in the (default) database's location, with point-in-time
  recovery, delete protection (ABANDON, never DELETE), daily and weekly backups, and rules
  that deny every client, released to the database (cloud.firestore/DATABASE_ID);
* the card services' accounts, and only they, get roles/datastore.user conditioned to the
  vault's database; every other grant of a Firestore role is conditioned to "(default)",
  so that none reaches the vault (a project-wide datastore.user would);
* FJB_VAULT_DATABASE is set for the card services only, to the module's database; no
  FJB_VAULT_PATH, no NFS volume, no Filestore instance, API or address range anywhere;
* the card processor's API is served on the card service's one HTTP port, and Cloud Run sends
  the card service as many requests at once as that API's server answers.

Each environment's Cloud Run services are worked out from the parsed HCL: the consumer
module's own env blocks (FJB_HTTP_PORT, the dynamic FJB_CARD_API_PORT), what the environment
passes it per service (local.service_env, serves_card_api) and the topology module's lists.
Each check is also fed a broken copy and must report it.
"""

from __future__ import annotations

import copy
import re

import pytest

from fjordbank import topology
from fjordbank.runtime import http
from k8s import render
from tests.deploy.conftest import REPO, TERRAFORM
from tests.deploy.tfschema import is_meta, labelled, single_labelled, strings, unquote

ENVS = sorted(p.name for p in (TERRAFORM / "envs").iterdir() if p.is_dir())
CONSUMER_TF = "terraform/modules/consumer/main.tf"
CONSUMER_VARIABLES_TF = "terraform/modules/consumer/variables.tf"
TOPOLOGY_TF = "terraform/modules/topology/main.tf"
TOPOLOGY_OUTPUTS_TF = "terraform/modules/topology/outputs.tf"
CARD_VAULT_TF = "terraform/modules/card_vault/main.tf"
CARD_VAULT_VARIABLES_TF = "terraform/modules/card_vault/variables.tf"
CARD_VAULT_OUTPUTS_TF = "terraform/modules/card_vault/outputs.tf"
FIRESTORE_TF = "terraform/modules/firestore/main.tf"
FIRESTORE_VARIABLES_TF = "terraform/modules/firestore/variables.tf"
SERVICE_ACCOUNT_TF = "terraform/modules/service_account/main.tf"
PROJECT_VARIABLES_TF = "terraform/modules/project/variables.tf"

VAULT_DATABASE_OUTPUT = "module.card_vault.database_name"
# Firestore, "Configure per-database access permissions" (Create and manage databases):
# `--condition='expression=resource.name=="projects/PROJECT_ID/databases/DATABASE_ID"'`
VAULT_GRANT = 'resource.name == "projects/${var.project_id}/databases/${google_firestore_database.this.name}"'
DEFAULT_ONLY = re.compile(
    r'resource\.name == "projects/\$\{module\.project\.project_id\}/databases/'
    r'(?P<db>\$\{module\.firestore\.database_name\}|\(default\))"'
)
VAULT_SETTINGS = {  # as modules/firestore sets the ledger's database
    "type": "FIRESTORE_NATIVE",
    "concurrency_mode": "PESSIMISTIC",
    "app_engine_integration_mode": "DISABLED",
    "point_in_time_recovery_enablement": "POINT_IN_TIME_RECOVERY_ENABLED",
    "delete_protection_state": "DELETE_PROTECTION_ENABLED",
    "deletion_policy": "ABANDON",
}


# ---- reading the parsed HCL ----------------------------------------------------------------------


def _locals(doc: dict) -> dict:
    merged: dict = {}
    for block in doc.get("locals", []):
        merged.update({k: v for k, v in block.items() if not is_meta(k)})
    return merged


def _module_call(doc: dict, name: str) -> dict | None:
    return next((body for call, body in single_labelled(doc, "module") if call == name), None)


def _resource(doc: dict, rtype: str, name: str | None = None) -> list[dict]:
    return [body for t, n, body in labelled(doc, "resource") if t == rtype and (name is None or n == name)]


def _text(value: object) -> str:
    """An HCL string as written: quotes off, escaped quotes plain."""
    return str(unquote(value)).replace('\\"', '"')


def _variable_default(docs: dict, path: str, name: str):
    body = dict(single_labelled(docs.get(path, {}), "variable")).get(name, {})
    default = body.get("default")
    return unquote(default) if isinstance(default, str) else default


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
    """local.service_env[service], without var.service_env (whose validation refuses these):
    a `local.x` resolved to its value, any other expression (a module output) kept as written."""
    text = str(env_locals.get("service_env", ""))
    out: dict[str, str] = {}
    for listed, entries in re.findall(r"contains\(module\.topology\.(\w+), name\) \? \{([^{}]*)\} : \{\}", text):
        if service in lists.get(listed, []):
            for key, ref in re.findall(r"(\w+) = ([\w.]+)", entries):
                local = re.fullmatch(r"local\.(\w+)", ref)
                out[key] = _resolve(env_locals[local.group(1)], env_locals) if local else ref
    return out


def _consumer_container(docs: dict) -> tuple[dict, dict, int]:
    """(the consumer module's Cloud Run resource, its first container, local.port)."""
    run = _resource(docs[CONSUMER_TF], "google_cloud_run_v2_service", "this")[0]
    port = int(_locals(docs[CONSUMER_TF])["port"])
    return run, run["template"][0]["containers"][0], port


def cloud_run_services(docs: dict, env: str) -> dict[str, dict[str, str]]:
    """Per consumer service of `env`: the environment variables it gets ({name: value}, values
    the module or the environment fixes)."""
    env_doc = docs[f"terraform/envs/{env}/main.tf"]
    env_locals = _locals(env_doc)
    lists = _topology_lists(docs)
    call = _module_call(env_doc, "consumer") or {}
    _run, container, port = _consumer_container(docs)

    def module_value(value: str) -> str:
        return str(port) if value == "${tostring(local.port)}" else str(unquote(value))

    static = {str(unquote(e["name"])): module_value(e.get("value", "")) for e in container.get("env", [])}
    services: dict[str, dict[str, str]] = {}
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
        services[service] = variables
    return services


def _topology_number(docs: dict, output: str) -> int | None:
    """A number the topology module outputs (``value = local.x``), else None."""
    body = dict(single_labelled(docs.get(TOPOLOGY_OUTPUTS_TF, {}), "output")).get(output, {})
    local = re.fullmatch(r"\$\{local\.(\w+)\}", str(body.get("value")))
    value = _locals(docs[TOPOLOGY_TF]).get(local.group(1)) if local else None
    return value if type(value) is int else None


def request_concurrency(docs: dict, env: str) -> dict[str, int | None]:
    """Per consumer service of `env`: the max_concurrency its Cloud Run service gets (the
    consumer module's default where the environment passes none, or null; None for an
    expression not read here)."""
    call = _module_call(docs[f"terraform/envs/{env}/main.tf"], "consumer") or {}
    lists = _topology_lists(docs)
    services = lists.get("consumer_services", [])
    default = _variable_default(docs, CONSUMER_VARIABLES_TF, "max_concurrency")
    expr = call.get("max_concurrency")
    if expr is None or type(expr) is int:
        return dict.fromkeys(services, default if expr is None else expr)
    chosen = re.fullmatch(
        r"\$\{contains\(module\.topology\.(\w+), each\.key\) \? module\.topology\.(\w+) : (null|\d+)\}", str(expr)
    )
    if chosen is None:
        return dict.fromkeys(services, None)
    members, then = lists.get(chosen.group(1), []), _topology_number(docs, chosen.group(2))
    otherwise = default if chosen.group(3) == "null" else int(chosen.group(3))
    return {service: then if service in members else otherwise for service in services}


# ---- the checks ----------------------------------------------------------------------------------


def card_api_problems(docs: dict, env: str) -> list[str]:
    """The card services serve the processor's API on their one HTTP port; no other does."""
    problems = []
    card_services = set(render.CARD_SERVICES)
    for service, variables in cloud_run_services(docs, env).items():
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


def card_concurrency_problems(docs: dict, env: str) -> list[str]:
    """Each card service is sent at least as many requests at once as its processor API's
    server answers (fjordbank/runtime/http.py MAX_CONNECTIONS): the consumers' 10 left one
    card instance's platform to queue or refuse requests the service could have answered
    (found in review, 2026-12-06). The topology module restates the limit."""
    problems = []
    restated = _topology_number(docs, "card_api_max_connections")
    if restated != http.MAX_CONNECTIONS:
        problems.append(
            f"topology card_api_max_connections is {restated!r}, the card API server's MAX_CONNECTIONS "
            f"{http.MAX_CONNECTIONS}"
        )
    for service, concurrency in request_concurrency(docs, env).items():
        if service in render.CARD_SERVICES and (concurrency is None or concurrency < http.MAX_CONNECTIONS):
            problems.append(
                f"envs/{env} {service}: max_concurrency {concurrency!r} is below its card API server's "
                f"{http.MAX_CONNECTIONS} connections"
            )
    return problems


def vault_env_problems(docs: dict, env: str) -> list[str]:
    """FJB_VAULT_DATABASE of each card service is the card_vault module's database (the one
    its identity is granted); no other service has it; FJB_VAULT_PATH is set nowhere."""
    problems = []
    card_services = set(render.CARD_SERVICES)
    for service, variables in cloud_run_services(docs, env).items():
        if "FJB_VAULT_PATH" in variables:
            problems.append(f"envs/{env} {service}: FJB_VAULT_PATH is set (the vault is no file any more)")
        vault = variables.get("FJB_VAULT_DATABASE")
        if service not in card_services:
            if vault is not None:
                problems.append(f"envs/{env} {service}: FJB_VAULT_DATABASE set on a service that is not a card service")
            continue
        if vault is None:
            problems.append(
                f"envs/{env} {service}: no FJB_VAULT_DATABASE (the card service would guess the vault's name)"
            )
        elif vault != VAULT_DATABASE_OUTPUT:
            problems.append(
                f"envs/{env} {service}: FJB_VAULT_DATABASE is {vault!r}, not {VAULT_DATABASE_OUTPUT} "
                "(the database its identity is granted)"
            )
    default = _variable_default(docs, CARD_VAULT_VARIABLES_TF, "database_id")
    if default != render.CARD_VAULT_DATABASE:
        problems.append(
            f"modules/card_vault database_id defaults to {default!r}, Knative's is {render.CARD_VAULT_DATABASE!r}"
        )
    return problems


def vault_database_problems(docs: dict, env: str) -> list[str]:
    """The vault's database exists, set like the ledger's (native, PITR, delete protection,
    abandoned, not deleted), in the ledger's location, with daily and weekly backups."""
    env_doc = docs[f"terraform/envs/{env}/main.tf"]
    call = _module_call(env_doc, "card_vault")
    if call is None or unquote(call.get("source")) != "../../modules/card_vault":
        return [f"envs/{env} has no module card_vault (the card vault's database)"]
    problems = []
    if call.get("location_id") not in ("${module.firestore.location_id}", "${var.firestore_location}"):
        problems.append(f"envs/{env} card vault location {call.get('location_id')!r}: not the (default) database's")
    if "database_id" in call and unquote(call["database_id"]) == "(default)":
        problems.append(f"envs/{env} puts the card vault in the (default) database")
    databases = _resource(docs.get(CARD_VAULT_TF, {}), "google_firestore_database")
    if len(databases) != 1:
        return [*problems, f"modules/card_vault must hold one google_firestore_database, holds {len(databases)}"]
    db = databases[0]
    ledger = _resource(docs[FIRESTORE_TF], "google_firestore_database", "this")[0]
    for key, want in VAULT_SETTINGS.items():
        if unquote(db.get(key)) != want:
            problems.append(f"card vault database {key}: {unquote(db.get(key))!r}, expected {want!r}")
        if unquote(ledger.get(key)) != want:
            problems.append(f"the ledger's database {key}: {unquote(ledger.get(key))!r} (the vault follows it)")
    if db.get("name") != "${var.database_id}" or db.get("location_id") != "${var.location_id}":
        problems.append("card vault database: name or location_id is not the module's variable")
    schedules = {
        n: body
        for t, n, body in labelled(docs[CARD_VAULT_TF], "resource")
        if t == "google_firestore_backup_schedule" and body.get("database") == "${google_firestore_database.this.name}"
    }
    if "daily_recurrence" not in schedules.get("daily", {}) or "weekly_recurrence" not in schedules.get("weekly", {}):
        problems.append(f"card vault backups: {sorted(schedules)}, expected a daily and a weekly schedule")
    return problems


def vault_grant_problems(docs: dict, env: str) -> list[str]:
    """The card services' accounts, and only they, get roles/datastore.user conditioned to
    the vault's database."""
    problems = []
    call = _module_call(docs[f"terraform/envs/{env}/main.tf"], "card_vault") or {}
    users = "${{for name in module.topology.card_services : name => module.consumer_service_account[name].email}}"
    if call.get("users") != users:
        problems.append(f"envs/{env} card vault users: {call.get('users')!r}, expected the card services' accounts")
    grants = _resource(docs.get(CARD_VAULT_TF, {}), "google_project_iam_member")
    if len(grants) != 1:
        return [*problems, f"modules/card_vault must grant one google_project_iam_member, grants {len(grants)}"]
    grant = grants[0]
    condition = (grant.get("condition") or [{}])[0]
    for what, got, want in [
        ("role", unquote(grant.get("role")), "roles/datastore.user"),
        ("member", unquote(grant.get("member")), "serviceAccount:${each.value}"),
        ("for_each", grant.get("for_each"), "${var.users}"),
        ("condition", _text(condition.get("expression", "")), VAULT_GRANT),
    ]:
        if got != want:
            problems.append(f"card vault grant {what}: {got!r}, expected {want!r}")
    return problems


def other_grant_problems(docs: dict, env: str) -> list[str]:
    """Every other grant of a Firestore role (roles/datastore.*) is conditioned to the
    (default) database: a project-wide one would reach the vault's too."""
    problems = []
    env_doc = docs[f"terraform/envs/{env}/main.tf"]
    env_locals = _locals(env_doc)
    db_default = _variable_default(docs, FIRESTORE_VARIABLES_TF, "database_id")
    module = _resource(docs[SERVICE_ACCOUNT_TF], "google_project_iam_member", "this")[0]
    wired = [
        d['"condition"']
        for d in module.get("dynamic", [])
        if '"condition"' in d and "var.project_role_conditions" in str(d['"condition"'].get("for_each"))
    ]
    if not wired or wired[0]["content"][0].get("expression") != "${condition.value.expression}":
        problems.append("modules/service_account does not put project_role_conditions on its grants")
    for name, call in single_labelled(env_doc, "module"):
        if unquote(call.get("source")) != "../../modules/service_account":
            continue
        roles = call.get("project_roles", [])
        local = re.fullmatch(r"\$\{local\.(\w+)\}", str(roles))
        roles = [str(unquote(r)) for r in (env_locals.get(local.group(1), []) if local else roles)]
        firestore_roles = [r for r in roles if r.startswith("roles/datastore.")]
        if not firestore_roles:
            continue
        given = re.fullmatch(r"\$\{local\.(\w+)\}", str(call.get("project_role_conditions", "")))
        conditions = {str(unquote(k)): v for k, v in (env_locals.get(given.group(1), {}) if given else {}).items()}
        for role in firestore_roles:
            expression = _text(conditions.get(role, {}).get("expression", ""))
            match = DEFAULT_ONLY.fullmatch(expression)
            if not match:
                problems.append(
                    f"envs/{env} module {name}: {role} is not conditioned to the (default) database "
                    f"({expression or 'no condition'}): it reaches the card vault"
                )
            elif match.group("db") != "(default)" and db_default != "(default)":
                problems.append(f"envs/{env} module {name}: module.firestore's database is {db_default!r}")
    # nothing else grants a Firestore role: no module but these two names one
    for path, doc in docs.items():
        if not path.endswith("main.tf") or path in (CARD_VAULT_TF, SERVICE_ACCOUNT_TF) or "/envs/" in path:
            continue
        if any("roles/datastore." in text for text in strings(doc)):
            problems.append(f"{path} grants a Firestore role")
    return problems


def rules_problems(docs: dict) -> list[str]:
    """The vault's own rules deny every client, released to the vault's database."""
    problems = []
    rulesets = _resource(docs.get(CARD_VAULT_TF, {}), "google_firebaserules_ruleset")
    releases = _resource(docs.get(CARD_VAULT_TF, {}), "google_firebaserules_release")
    if len(rulesets) != 1 or len(releases) != 1:
        return [f"modules/card_vault has {len(rulesets)} rulesets and {len(releases)} releases, expected one each"]
    content = " ".join(_text(f.get("content", "")) for s in rulesets[0].get("source", []) for f in s.get("files", []))
    allows = re.findall(r"allow\s+([^;]*);", content)
    if not allows or any(not re.fullmatch(r"[\w, ]+:\s*if\s+false", a.strip()) for a in allows):
        problems.append(f"card vault rules allow a client something: {allows}")
    if "match /{document=**}" not in content:
        problems.append("card vault rules do not cover every document")
    release = releases[0]
    name = _text(release.get("name"))
    if name != "cloud.firestore/${google_firestore_database.this.name}":
        problems.append(f"card vault rules released as {name!r}, not cloud.firestore/DATABASE_ID")
    ruleset = _text(release.get("ruleset_name"))
    ruleset_id = next(
        n for t, n, _b in labelled(docs[CARD_VAULT_TF], "resource") if t == "google_firebaserules_ruleset"
    )
    if f"google_firebaserules_ruleset.{ruleset_id}.name" not in ruleset:
        problems.append(f"card vault release refers to {ruleset!r}")
    output = dict(single_labelled(docs.get(CARD_VAULT_OUTPUTS_TF, {}), "output")).get("database_name", {})
    needed = {"${google_project_iam_member.users}", "${google_firebaserules_release.this}"}
    if not needed <= set(output.get("depends_on", [])):
        problems.append(
            "card vault database_name is known before its grants and rules: the card service may start first"
        )
    return problems


def no_filestore_problems(docs: dict) -> list[str]:
    """No Filestore instance, API, address range or NFS volume is left anywhere."""
    problems = []
    for path, doc in docs.items():
        for t, n, _body in labelled(doc, "resource"):
            if t.startswith("google_filestore_"):
                problems.append(f"{path}: {t}.{n}")
        if any(re.search(r"\bnfs_volumes\b|\bFJB_VAULT_PATH\b|cidrs\.card_vault", text) for text in strings(doc)):
            problems.append(f"{path} still mounts or points at the NFS vault")
    run, container, _port = _consumer_container(docs)
    dynamics = [*run["template"][0].get("dynamic", []), *container.get("dynamic", [])]
    if any(v.get("content", [{}])[0].get("nfs") for d in dynamics for v in d.values() if isinstance(v, dict)):
        problems.append("modules/consumer still renders NFS volumes")
    if "nfs_volumes" in dict(single_labelled(docs[CONSUMER_VARIABLES_TF], "variable")):
        problems.append("modules/consumer still has the variable nfs_volumes")
    apis = [
        str(unquote(v)) for v in dict(single_labelled(docs[PROJECT_VARIABLES_TF], "variable"))["services"]["default"]
    ]
    if "file.googleapis.com" in apis:
        problems.append("modules/project still enables file.googleapis.com (Filestore)")
    for env in ENVS:
        cidrs = dict(single_labelled(docs[f"terraform/envs/{env}/variables.tf"], "variable"))["cidrs"]
        if "card_vault" in str(cidrs.get("type")) or "card_vault" in cidrs.get("default", {}):
            problems.append(f"envs/{env} cidrs still reserves a range for the card vault's Filestore instance")
    return problems


# ---- the tree holds them -------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_the_card_service_serves_the_processor_api_on_its_http_port(tf_docs, env):
    problems = card_api_problems(tf_docs, env)
    assert not problems, "\n".join(problems)
    services = cloud_run_services(tf_docs, env)
    assert set(render.CARD_SERVICES) <= set(services)
    assert services["cards"]["FJB_CARD_API_PORT"] == services["cards"]["FJB_HTTP_PORT"] == "8080"


@pytest.mark.parametrize("env", ENVS)
def test_the_card_service_is_sent_as_many_requests_at_once_as_its_api_server_answers(tf_docs, env):
    problems = card_concurrency_problems(tf_docs, env)
    assert not problems, "\n".join(problems)
    concurrency = request_concurrency(tf_docs, env)
    assert concurrency["cards"] == http.MAX_CONNECTIONS
    assert {c for s, c in concurrency.items() if s not in render.CARD_SERVICES} == {10}  # the probes and /metrics


@pytest.mark.parametrize("env", ENVS)
def test_only_the_card_services_are_pointed_at_the_vault_database(tf_docs, env):
    problems = vault_env_problems(tf_docs, env)
    assert not problems, "\n".join(problems)
    services = cloud_run_services(tf_docs, env)
    assert [s for s, got in services.items() if "FJB_VAULT_DATABASE" in got] == ["cards"]
    assert services["cards"]["FJB_VAULT_DATABASE"] == VAULT_DATABASE_OUTPUT


@pytest.mark.parametrize("env", ENVS)
def test_the_vault_database_exists_with_recovery_and_delete_protection(tf_docs, env):
    problems = vault_database_problems(tf_docs, env)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("env", ENVS)
def test_only_the_card_services_may_use_the_vault_database(tf_docs, env):
    problems = vault_grant_problems(tf_docs, env) + other_grant_problems(tf_docs, env)
    assert not problems, "\n".join(problems)


def test_no_client_may_use_the_vault_database(tf_docs):
    problems = rules_problems(tf_docs)
    assert not problems, "\n".join(problems)


def test_no_filestore_anywhere(tf_docs):
    problems = no_filestore_problems(tf_docs)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("env", ENVS)
def test_service_env_may_not_move_the_vault_or_the_card_api(tf_docs, env):
    """What main.tf sets from the card_vault module and the consumer module cannot be
    overridden from tfvars."""
    body = dict(single_labelled(tf_docs[f"terraform/envs/{env}/variables.tf"], "variable"))["service_env"]
    conditions = " ".join(str(v.get("condition")) for v in body.get("validation", []))
    assert "FJB_VAULT_DATABASE" in conditions and "FJB_CARD_API_PORT" in conditions


def test_card_services_equal_the_code(tf_docs):
    """topology's card_services: the run_services that open the vault on
    settings.vault_database, which the Knative path points at the vault too (k8s/render.py
    CARD_SERVICES). Each runs one instance, no longer for the vault but for the processor
    API's state in its process (run_services/cards.py References, Delivered): when that
    goes, MAX_SCALE and the environments' max_instances may let cards scale."""
    sources = {s: (REPO / "run_services" / f"{s}.py").read_text() for s in topology.SERVICES}
    from_code = [s for s, text in sources.items() if "settings.vault_database" in text]
    assert _topology_lists(tf_docs).get("card_services") == from_code == list(render.CARD_SERVICES)
    for service in from_code:
        assert "class References" in sources[service] or "class Delivered" in sources[service], (
            f"{service} keeps no processor state in its process any more: lift its one-instance cap"
        )
        assert render.MAX_SCALE.get(service) == 1  # envs cap them at 1 too (test_terraform_contracts)


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


def test_card_concurrency_check_reports_the_probes_default_and_a_limit_restated_wrong(tf_docs):
    docs = copy.deepcopy(tf_docs)
    del _consumer_call(docs, "prod")["max_concurrency"]  # the change undone
    problems = card_concurrency_problems(docs, "prod")
    assert problems == [
        f"envs/prod cards: max_concurrency 10 is below its card API server's {http.MAX_CONNECTIONS} connections"
    ]

    docs = copy.deepcopy(tf_docs)
    next(b for b in docs[TOPOLOGY_TF]["locals"] if "card_api_max_connections" in b)["card_api_max_connections"] = 32
    problems = "\n".join(card_concurrency_problems(docs, "dev"))
    assert "topology card_api_max_connections is 32" in problems and "max_concurrency 32 is below" in problems, problems

    docs = copy.deepcopy(tf_docs)
    _consumer_call(docs, "dev")["max_concurrency"] = "${var.concurrency}"
    assert "max_concurrency None is below" in "\n".join(card_concurrency_problems(docs, "dev"))


def test_vault_env_check_reports_a_missing_database_another_service_and_the_old_path(tf_docs):
    entry = (
        ", contains(module.topology.card_services, name) ? {FJB_VAULT_DATABASE = module.card_vault.database_name} : {}"
    )
    docs = copy.deepcopy(tf_docs)
    block = _env_locals_block(docs, "prod", "service_env")
    assert entry in block["service_env"]
    block["service_env"] = block["service_env"].replace(entry, "")
    problems = "\n".join(vault_env_problems(docs, "prod"))
    assert "envs/prod cards: no FJB_VAULT_DATABASE" in problems, problems

    docs = copy.deepcopy(tf_docs)
    block = _env_locals_block(docs, "dev", "service_env")
    block["service_env"] = block["service_env"].replace(
        "module.topology.card_services, name) ? {FJB_VAULT_DATABASE",
        "module.topology.consumer_services, name) ? {FJB_VAULT_DATABASE",
    )
    problems = "\n".join(vault_env_problems(docs, "dev"))
    assert "envs/dev ledger: FJB_VAULT_DATABASE set on a service that is not a card service" in problems, problems

    docs = copy.deepcopy(tf_docs)
    block = _env_locals_block(docs, "dev", "service_env")
    block["service_env"] = block["service_env"].replace(
        "FJB_VAULT_DATABASE = module.card_vault.database_name", "FJB_VAULT_PATH = local.card_vault_path"
    )
    block["card_vault_path"] = '"/mnt/vault/cards.db"'
    problems = "\n".join(vault_env_problems(docs, "dev"))
    assert "envs/dev cards: FJB_VAULT_PATH is set" in problems and "no FJB_VAULT_DATABASE" in problems, problems


def test_vault_database_check_reports_a_missing_module_and_a_weaker_database(tf_docs):
    docs = copy.deepcopy(tf_docs)
    docs["terraform/envs/dev/main.tf"]["module"] = [
        m for m in docs["terraform/envs/dev/main.tf"]["module"] if '"card_vault"' not in m
    ]
    assert vault_database_problems(docs, "dev") == ["envs/dev has no module card_vault (the card vault's database)"]

    docs = copy.deepcopy(tf_docs)
    db = _resource(docs[CARD_VAULT_TF], "google_firestore_database")[0]
    db["point_in_time_recovery_enablement"] = '"POINT_IN_TIME_RECOVERY_DISABLED"'
    db["delete_protection_state"] = '"DELETE_PROTECTION_DISABLED"'
    db["deletion_policy"] = '"DELETE"'
    _module_call(docs["terraform/envs/prod/main.tf"], "card_vault")["location_id"] = '"nam5"'
    docs[CARD_VAULT_TF]["resource"] = [
        r for r in docs[CARD_VAULT_TF]["resource"] if '"google_firestore_backup_schedule"' not in r
    ]
    problems = "\n".join(vault_database_problems(docs, "prod"))
    for expected in [
        "card vault database point_in_time_recovery_enablement: 'POINT_IN_TIME_RECOVERY_DISABLED'",
        "card vault database delete_protection_state: 'DELETE_PROTECTION_DISABLED'",
        "card vault database deletion_policy: 'DELETE'",
        "envs/prod card vault location '\"nam5\"'",
        "card vault backups: []",
    ]:
        assert expected in problems, f"not reported: {expected}\n{problems}"


def test_grant_checks_report_an_unconditioned_or_misdirected_grant(tf_docs):
    # the vault's grant without its condition, to everyone
    docs = copy.deepcopy(tf_docs)
    grant = _resource(docs[CARD_VAULT_TF], "google_project_iam_member")[0]
    del grant["condition"]
    _module_call(docs["terraform/envs/dev/main.tf"], "card_vault")["users"] = (
        "${{for name in module.topology.consumer_services : name => module.consumer_service_account[name].email}}"
    )
    problems = "\n".join(vault_grant_problems(docs, "dev"))
    assert "card vault grant condition: ''" in problems and "envs/dev card vault users" in problems, problems

    # the consumers' datastore.user back to project-wide
    docs = copy.deepcopy(tf_docs)
    del _module_call(docs["terraform/envs/prod/main.tf"], "consumer_service_account")["project_role_conditions"]
    problems = "\n".join(other_grant_problems(docs, "prod"))
    assert (
        "envs/prod module consumer_service_account: roles/datastore.user is not conditioned to the (default) database"
        in problems
    ), problems

    # the functions' condition turned into "the vault's"
    docs = copy.deepcopy(tf_docs)
    block = _env_locals_block(docs, "dev", "firestore_default_only")
    entry = block["firestore_default_only"]['"roles/datastore.user"']
    entry["expression"] = entry["expression"].replace("${module.firestore.database_name}", "card-vault")
    problems = "\n".join(other_grant_problems(docs, "dev"))
    assert "envs/dev module edge_service_account: roles/datastore.user is not conditioned" in problems, problems

    # another module granting a Firestore role of its own, and the module dropping the conditions
    docs = copy.deepcopy(tf_docs)
    nodes = _resource(docs["terraform/modules/gke/main.tf"], "google_project_iam_member")[0]
    nodes["role"] = '"roles/datastore.owner"'
    _resource(docs[SERVICE_ACCOUNT_TF], "google_project_iam_member", "this")[0].pop("dynamic")
    problems = "\n".join(other_grant_problems(docs, "dev"))
    assert "terraform/modules/gke/main.tf grants a Firestore role" in problems, problems
    assert "modules/service_account does not put project_role_conditions on its grants" in problems, problems


def test_rules_check_reports_an_open_rule_and_the_default_release(tf_docs):
    docs = copy.deepcopy(tf_docs)
    ruleset = _resource(docs[CARD_VAULT_TF], "google_firebaserules_ruleset")[0]
    files = ruleset["source"][0]["files"][0]
    files["content"] = files["content"].replace("allow read, write: if false;", "allow read: if request.auth != null;")
    release = _resource(docs[CARD_VAULT_TF], "google_firebaserules_release")[0]
    release["name"] = '"cloud.firestore"'
    problems = "\n".join(rules_problems(docs))
    assert "card vault rules allow a client something" in problems, problems
    assert "card vault rules released as 'cloud.firestore'" in problems, problems


def test_no_filestore_check_reports_a_share_a_mount_and_the_api(tf_docs):
    docs = copy.deepcopy(tf_docs)
    docs[CARD_VAULT_TF]["resource"].append({'"google_filestore_instance"': {'"this"': {"name": '"vault"'}}})
    block = _env_locals_block(docs, "dev", "service_env")
    block["nfs_volumes"] = "${{for name in module.topology.card_services : name => {}}}"
    services = dict(single_labelled(docs[PROJECT_VARIABLES_TF], "variable"))["services"]
    services["default"] = [*services["default"], '"file.googleapis.com"']
    problems = "\n".join(no_filestore_problems(docs))
    for expected in [
        "terraform/modules/card_vault/main.tf: google_filestore_instance.this",
        "terraform/envs/dev/main.tf still mounts or points at the NFS vault",
        "modules/project still enables file.googleapis.com",
    ]:
        assert expected in problems, f"not reported: {expected}\n{problems}"


def test_the_card_api_is_not_behind_cloud_runs_iam_which_the_processor_cannot_pass(tf_docs):
    """The processor signs with the shared secret, not a Google identity: with Cloud Run's
    invoker check on, every one of its requests was answered 403 before the service saw it
    (found in review, 2026-12-06). Off for the card service only; the ingress stays internal."""
    run, _container, _port = _consumer_container(tf_docs)
    assert unquote(run["invoker_iam_disabled"]) in ("${var.serves_card_api}", "var.serves_card_api")
    assert unquote(run["ingress"]) == "INGRESS_TRAFFIC_INTERNAL_ONLY"
