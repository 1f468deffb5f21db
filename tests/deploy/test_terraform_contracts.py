"""Check 2: the variables' validations, run by `terraform test` without any provider.

`terraform validate`/`plan` of the real modules need the google provider, which cannot be
downloaded here. A module's variables.tf alone needs none: copied into an empty directory
with its contract (terraform/tests/contracts/MODULE.tftest.hcl: `run` blocks with
`command = plan`, good values, and bad ones under `expect_failures = [var.x]`),
`terraform init -backend=false && terraform test` proves that the validations accept what
the environments pass and refuse a tag-only image, zero instances, a region outside the EEA.
The environments' terraform.tfvars.example files are planned against their variables.tf
the same way. Skips where no terraform binary is installed.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.deploy.conftest import TERRAFORM

CONTRACTS = TERRAFORM / "tests" / "contracts"
MODULES = sorted(p.name for p in (TERRAFORM / "modules").iterdir() if p.is_dir())
ENVS = sorted(p.name for p in (TERRAFORM / "envs").iterdir() if p.is_dir())


def variables_of(target: str) -> Path:
    kind, name = target.split("/")
    return TERRAFORM / kind / name / "variables.tf"


def contract_of(target: str) -> Path:
    kind, name = target.split("/")
    return CONTRACTS / ("env.tftest.hcl" if kind == "envs" else f"{name}.tftest.hcl")


def run_contract(terraform, workdir: Path, variables_tf: str, contract: Path):
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "variables.tf").write_text(variables_tf)
    shutil.copy(contract, workdir / contract.name)
    init = terraform("init", "-backend=false", "-input=false", "-no-color", cwd=workdir)
    assert init.returncode == 0, init.stdout + init.stderr
    return terraform("test", "-no-color", cwd=workdir)


def test_every_module_with_a_validation_has_a_contract():
    for module in MODULES:
        if "validation {" in variables_of(f"modules/{module}").read_text():
            assert (CONTRACTS / f"{module}.tftest.hcl").exists(), f"modules/{module} has validations but no contract"
    for contract in CONTRACTS.glob("*.tftest.hcl"):
        name = contract.name.removesuffix(".tftest.hcl")
        assert name == "env" or name in MODULES, f"{contract.name} names no module"


@pytest.mark.parametrize(
    "target",
    [f"modules/{m}" for m in MODULES if (CONTRACTS / f"{m}.tftest.hcl").exists()] + [f"envs/{e}" for e in ENVS],
)
def test_validations_keep_their_contract(terraform, tmp_path, target):
    proc = run_contract(terraform, tmp_path, variables_of(target).read_text(), contract_of(target))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and re.search(r"Success! \d+ passed, 0 failed", out), out


@pytest.mark.parametrize("env", ENVS)
def test_tfvars_example_passes_the_environment_validations(terraform, tmp_path, env):
    shutil.copy(variables_of(f"envs/{env}"), tmp_path / "variables.tf")
    assert terraform("init", "-backend=false", "-input=false", "-no-color", cwd=tmp_path).returncode == 0
    example = TERRAFORM / "envs" / env / "terraform.tfvars.example"
    proc = terraform("plan", "-input=false", "-lock=false", "-no-color", f"-var-file={example}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---- the same checks fed broken inputs: they must fail ------------------------------------------


def without_validation(variables_tf: str, variable: str) -> str:
    """variables.tf with the validation blocks of one variable removed."""
    start = variables_tf.index(f'variable "{variable}" {{')
    end = variables_tf.find('\nvariable "', start + 1)
    end = len(variables_tf) if end < 0 else end
    block = re.sub(r"\n  validation \{.*?\n  \}\n", "\n", variables_tf[start:end], flags=re.S)
    assert "validation" not in block
    return variables_tf[:start] + block + variables_tf[end:]


@pytest.mark.parametrize(
    ("target", "variable", "failing_run"),
    [
        ("modules/consumer", "image", "refuses_a_tag_only_image"),
        ("modules/consumer", "min_instances", "refuses_zero_instances"),
        ("modules/consumer", "region", "refuses_a_region_outside_the_eea"),
        ("envs/prod", "images", "refuses_a_tag_only_image"),
        ("envs/prod", "max_instances", "refuses_a_second_instance_of_a_service_with_local_state"),
    ],
)
def test_contract_fails_when_a_validation_is_dropped(terraform, tmp_path, target, variable, failing_run):
    weakened = without_validation(variables_of(target).read_text(), variable)
    proc = run_contract(terraform, tmp_path, weakened, contract_of(target))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert re.search(rf'run "{failing_run}"\.\.\. fail', out), out


def test_plan_refuses_a_tfvars_with_a_tag_only_image(terraform, tmp_path):
    shutil.copy(variables_of("envs/prod"), tmp_path / "variables.tf")
    assert terraform("init", "-backend=false", "-input=false", "-no-color", cwd=tmp_path).returncode == 0
    example = (TERRAFORM / "envs" / "prod" / "terraform.tfvars.example").read_text()
    broken = re.sub(r"@sha256:[0-9a-f]{64}", ":latest", example, count=1)
    assert broken != example
    (tmp_path / "broken.tfvars").write_text(broken)
    proc = terraform("plan", "-input=false", "-lock=false", "-no-color", "-var-file=broken.tfvars", cwd=tmp_path)
    assert proc.returncode != 0
    assert "must be pinned by digest" in proc.stdout + proc.stderr


@pytest.mark.parametrize("env", ENVS)
def test_the_services_with_local_state_run_one_instance_on_cloud_run_as_on_knative(env):
    """cards (the processor API's references in flight and approvals had, in its process:
    run_services/cards.py; its vault is a Firestore database now and limits nothing) and
    clearing (its file exchange) keep state of their own: Knative caps them at one
    (k8s/render.py MAX_SCALE); terraform did at 3 by default."""
    from k8s import render

    single = sorted(name for name, n in render.MAX_SCALE.items() if n == 1)
    listed = ", ".join(f'"{name}"' for name in single)
    main_tf = (TERRAFORM / "envs" / env / "main.tf").read_text()
    assert f"contains([{listed}], each.key) ? 1 : {render.DEFAULT_MAX_SCALE}" in main_tf
    assert f"contains([{listed}], k)" in variables_of(f"envs/{env}").read_text()


@pytest.mark.parametrize("env", ENVS)
def test_each_knative_consumer_s_kubernetes_account_may_act_as_its_service_account(env):
    """k8s/README.md promised the Workload Identity binding; nothing made it, and on GKE the
    consumers got 403 from Firestore and Secret Manager."""
    from k8s import render

    main_tf = (TERRAFORM / "envs" / env / "main.tf").read_text()
    block = main_tf[main_tf.index('module "consumer_service_account"') :]
    block = block[: block.index("\n}\n")]
    assert 'account_id    = "fjb-${each.key}"' in block
    assert f'workload_identity_users = ["{render.CONSUMER_NAMESPACE}/fjb-${{each.key}}"]' in block
    module = (TERRAFORM / "modules" / "service_account" / "main.tf").read_text()
    assert '"roles/iam.workloadIdentityUser"' in module and ".svc.id.goog[${each.value}]" in module
