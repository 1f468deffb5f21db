"""The delivery pipeline (.github/workflows) checked offline: actionlint and the pins.

The linter is jactionlint (a fork of rhysd/actionlint that keeps its checks: unknown keys,
`runs-on`, `needs`, expressions, action inputs; plus security rules such as script
injection), from the hash-pinned wheel in tests/deploy/tools.lock. shellcheck and pyflakes
check the `run:` scripts where they are installed; where not, their integration is off.
Every check has a companion that feeds it a broken input and sees it fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO, TOOLS, require_tools

WORKFLOWS = REPO / ".github" / "workflows"
ACTIONLINT = TOOLS / "venv" / "bin" / "jactionlint"

# `uses: owner/repo[/path]@<40 hex> # v1.2.3`: a full commit SHA and the version it is.
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*['\"]?(?P<action>[^@\s'\"]+)(?:@(?P<ref>[^\s'\"#]+))?['\"]?(?P<rest>.*)$")
SHA = re.compile(r"^[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v\d+(\.\d+)*\b")


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    require_tools(ACTIONLINT)
    args = [str(ACTIONLINT), "--no-color"]
    for tool in ("shellcheck", "pyflakes"):
        if shutil.which(tool) is None:
            args.append(f"--{tool}=")  # empty: that integration off
    return subprocess.run([*args, *map(str, files)], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def unpinned(text: str) -> list[str]:
    """The `uses:` lines of a workflow that are not pinned to a commit SHA with a version comment."""
    bad = []
    for number, line in enumerate(text.splitlines(), 1):
        match = USES.match(line)
        if not match or match["action"].startswith("./"):
            continue  # not a `uses:`, or a workflow/action of this repository
        if match["action"].startswith("docker://"):
            if "@sha256:" not in line:
                bad.append(f"{number}: {line.strip()} (a container by tag, not digest)")
            continue
        if not match["ref"] or not SHA.match(match["ref"]):
            bad.append(f"{number}: {line.strip()} (not a full commit SHA)")
        elif not VERSION_COMMENT.search(match["rest"]):
            bad.append(f"{number}: {line.strip()} (no comment naming the version)")
    return bad


def test_the_pipeline_exists() -> None:
    names = {p.name for p in workflow_files()}
    assert {"ci.yml", "deliver.yml"} <= names, names


def test_actionlint_accepts_the_workflows() -> None:
    proc = actionlint(*workflow_files())
    assert proc.returncode == 0, proc.stdout + proc.stderr


BROKEN = {
    "unknown key": (
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    stepz:\n      - run: echo hi\n",
        "stepz",
    ),
    "runs-on missing": (
        "on: push\njobs:\n  a:\n    steps:\n      - run: echo hi\n",
        "runs-on",
    ),
    "needs an undefined job": (
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    needs: [build]\n    steps:\n      - run: echo hi\n",
        "build",
    ),
    "script injection": (
        "on: pull_request\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n',
        "github.event.pull_request.title",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_actionlint_rejects_a_broken_workflow(case: str, tmp_path: Path) -> None:
    text, named = BROKEN[case]
    path = tmp_path / ".github" / "workflows" / "broken.yml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    proc = actionlint(path)
    assert proc.returncode != 0, f"{case}: actionlint accepted it\n{proc.stdout}{proc.stderr}"
    assert named in proc.stdout, proc.stdout


def test_every_action_is_pinned_by_commit_sha() -> None:
    bad = {p.name: unpinned(p.read_text()) for p in workflow_files()}
    assert not any(bad.values()), {name: lines for name, lines in bad.items() if lines}
    assert any(USES.match(line) for p in workflow_files() for line in p.read_text().splitlines())


def test_the_pin_check_rejects_tags_and_missing_versions() -> None:
    text = (
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "      - uses: actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065\n"
        "      - uses: docker/build-push-action\n"
        "      - uses: docker://alpine:3\n"
        "      - uses: actions/setup-node@49933ea5288caeca8642d1e84afbd3f7d6820020 # v4.4.0\n"
        "      - uses: ./.github/workflows/deploy.yml\n"
    )
    assert [line.split(":")[0] for line in unpinned(text)] == ["2", "3", "4", "5"]


def test_no_secret_literal_in_the_workflows() -> None:
    """Credentials come from Workload Identity Federation, `secrets.*` or `vars.*`, never the files."""
    suspicious = re.compile(
        r"BEGIN [A-Z ]*PRIVATE KEY|\"private_key\"|credentials_json"
        r"|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|ghp_[0-9A-Za-z]{36}"
    )
    hits = [f"{p.name}: {m.group(0)}" for p in workflow_files() for m in suspicious.finditer(p.read_text())]
    assert not hits, hits


def test_the_same_digest_is_promoted_behind_environments() -> None:
    """dev, then test, then prod: each a call of deploy.yml with the digest built once, in its
    GitHub environment (test and prod: required reviewers, set in the repository's settings)."""
    yaml = pytest.importorskip("yaml")
    deliver = yaml.safe_load((WORKFLOWS / "deliver.yml").read_text())
    deploy = yaml.safe_load((WORKFLOWS / "deploy.yml").read_text())
    jobs = deliver["jobs"]
    build = jobs["build"]["steps"]
    push = next(s for s in build if "docker/build-push-action@" in s.get("uses", ""))
    assert push["with"]["sbom"] is True and push["with"]["provenance"], push
    assert any("cosign sign" in s.get("run", "") for s in build)
    order = {"dev": "build", "test": "dev", "prod": "test"}
    for env, previous in order.items():
        job = jobs[env]
        assert job["uses"] == "./.github/workflows/deploy.yml", job
        assert previous in job["needs"], job
        assert job["with"]["environment"] == env
        assert job["with"]["digest"] == "${{ needs.build.outputs.digest }}", job
    assert deploy["jobs"]["deploy"]["environment"] == "${{ inputs.environment }}"


def _steps(workflow: str) -> list[dict]:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((WORKFLOWS / workflow).read_text())["jobs"]["deploy"]["steps"]


def _step_running(steps: list[dict], text: str) -> int:
    return next(i for i, s in enumerate(steps) if text in s.get("run", ""))


def test_a_promotion_copies_the_digest_to_a_tag_of_its_own() -> None:
    """The registry's tags are immutable: a cosign copy to a target without a tag writes
    :latest, and moving it failed every promotion after the first (found in review,
    2026-12-07)."""
    [copy] = [
        line.strip() for s in _steps("deploy.yml") for line in s.get("run", "").splitlines() if "cosign copy" in line
    ]
    target = copy.split()[-1].strip('"')
    assert target.startswith("$TARGET:") and "DIGEST" in target, copy


def test_the_firestore_indexes_are_ready_before_the_services_roll_out() -> None:
    """firebase deploy of the indexes, waited for, before terraform apply rolls out the
    revisions that query them (found in review, 2026-12-07)."""
    steps = _steps("deploy.yml")
    indexes = _step_running(steps, "--only firestore:indexes")
    assert "gcloud firestore indexes composite list" in steps[indexes]["run"]
    apply = next(
        i for i, s in enumerate(steps) if s.get("run", "").strip() == 'terraform -chdir="$TF_DIR" apply -auto-approve'
    )
    assert indexes < apply
