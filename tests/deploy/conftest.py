"""Fixtures of the offline deployment checks: parsed HCL, the provider schema, terraform.

The tools in .deploy-tools/ (scripts/deploy_tools.sh: the provider schema tarball and a venv
with python-hcl2) are required: the bootstrap installs them, so a test that needs them and
finds them missing FAILS with the command to run. The terraform binary is optional (it
cannot be installed from the registries this project uses): tests that need it skip, with
the reason, where it is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from tests.deploy import tfschema

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
TOOLS = REPO / ".deploy-tools"
INSTALL = "scripts/deploy_tools.sh"
HCL_PYTHON = TOOLS / "venv" / "bin" / "python"
HCL_DUMP = Path(__file__).with_name("hcl_dump.py")
PROVIDER_TGZ = TOOLS / "cdktf-provider-google-16.12.1.tgz"
SCHEMA_CACHE = TOOLS / "google-provider-schema.json"


def require_tools(*paths: Path) -> None:
    missing = [str(p.relative_to(REPO)) for p in paths if not p.exists()]
    if missing:
        pytest.fail(
            f"the offline deploy tools are not installed ({', '.join(missing)} missing): run `{INSTALL}` "
            "(the bootstrap runs it)",
            pytrace=False,
        )


def tf_files(root: Path = TERRAFORM) -> list[Path]:
    return sorted(p for p in root.rglob("*.tf") if ".terraform" not in p.parts)


def parse_hcl(paths: Iterable[Path]) -> dict[str, dict]:
    """{path relative to the repo (or absolute outside it): python-hcl2 document}."""
    require_tools(HCL_PYTHON)
    paths = [Path(p).resolve() for p in paths]
    proc = subprocess.run(
        [str(HCL_PYTHON), str(HCL_DUMP), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"hcl_dump.py failed ({proc.returncode}): {proc.stderr[-2000:]}", pytrace=False)
    docs = json.loads(proc.stdout)

    def key(p: str) -> str:
        path = Path(p)
        return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)

    return {key(p): doc for p, doc in docs.items()}


@pytest.fixture(scope="session")
def hcl() -> Callable[[Iterable[Path]], dict[str, dict]]:
    return parse_hcl


@pytest.fixture(scope="session")
def tf_docs() -> dict[str, dict]:
    """Every .tf file under terraform/, parsed once per session."""
    docs = parse_hcl(tf_files())
    broken = {p: d["__error__"] for p, d in docs.items() if "__error__" in d}
    assert not broken, f"terraform files that do not parse: {broken}"
    return docs


@pytest.fixture(scope="session")
def tfvars_examples() -> dict[str, dict]:
    """{environment: its terraform.tfvars.example, parsed}."""
    paths = sorted((TERRAFORM / "envs").glob("*/terraform.tfvars.example"))
    docs = parse_hcl(paths)
    return {p.parent.name: docs[str(p.relative_to(REPO))] for p in paths}


@pytest.fixture(scope="session")
def provider_schema() -> dict:
    require_tools(PROVIDER_TGZ)
    return tfschema.load_schema(PROVIDER_TGZ, SCHEMA_CACHE)


def terraform_env(tmp: Path) -> dict[str, str]:
    """terraform offline and quiet: no CLI config, no version check, no prompts."""
    cli_config = tmp / "terraformrc"
    cli_config.write_text("")
    return {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(cli_config),
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
    }


@pytest.fixture(scope="session")
def terraform(tmp_path_factory) -> Callable[..., subprocess.CompletedProcess]:
    """Run the terraform binary, or skip: it is optional (no registry here installs it)."""
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip(
            "no terraform binary on PATH: terraform fmt and the provider-free contract tests need one "
            "(optional: no registry this project installs from ships it)"
        )
    env = terraform_env(tmp_path_factory.mktemp("terraform-cli"))

    def run(*args: str, cwd: Path, timeout: float = 120, input_text: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [binary, *args],
            cwd=cwd,
            env=env,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
