"""terraform/ scanned offline by checkov: its built-in Google checks and the project's own
policies (terraform/policies/), with --skip-download (no platform calls, no API key).

- the tree has no finding, every skip carries a reason, and every project policy is
  evaluated on at least one resource (a policy that matches nothing is dead);
- each project policy, and one built-in check, is shown failing on a copy of the tree with
  the invariant it guards broken.

checkov runs from .deploy-tools/checkov (scripts/deploy_tools.sh, pinned by
tests/deploy/checkov.lock); one scan of the tree takes about 8 s here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO, TERRAFORM, TOOLS, require_tools

CHECKOV = TOOLS / "checkov" / "bin" / "checkov"
POLICIES = TERRAFORM / "policies"


def policy_ids() -> list[str]:
    ids = []
    for path in sorted(POLICIES.glob("*.yaml")):
        found = re.search(r'^\s*id:\s*"?([A-Z0-9_]+)"?', path.read_text(), re.M)
        assert found, f"{path.relative_to(REPO)} has no metadata id"
        ids.append(found.group(1))
    return ids


def scan(root: Path) -> list[dict]:
    """checkov's JSON reports (one per framework) for the terraform tree at ``root``."""
    require_tools(CHECKOV)
    proc = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(root),
            "--framework",
            "terraform",
            "--skip-download",
            "--external-checks-dir",
            str(root / "policies"),
            "--output",
            "json",
            "--compact",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(TOOLS), "LOG_LEVEL": "ERROR", "BC_SKIP_MAPPING": "TRUE"},
    )
    # exit 1 = findings; anything else is checkov failing to run
    assert proc.returncode in (0, 1), f"checkov exited {proc.returncode}: {proc.stderr[-3000:]}"
    data = json.loads(proc.stdout)
    reports = data if isinstance(data, list) else [data]
    for report in reports:
        assert report.get("summary", {}).get("parsing_errors", 0) == 0, report["results"].get("parsing_errors")
    return reports


def checks(reports: list[dict], kind: str) -> list[dict]:
    return [c for r in reports for c in r.get("results", {}).get(kind, [])]


@cache
def tree_reports() -> tuple[dict, ...]:
    return tuple(scan(TERRAFORM))


def test_terraform_has_no_checkov_finding():
    failed = checks(list(tree_reports()), "failed_checks")
    assert not failed, "checkov findings:\n" + "\n".join(
        f"  {c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']}:{c['file_line_range'][0]})"
        for c in failed
    )


def test_every_skip_has_a_reason():
    skipped = checks(list(tree_reports()), "skipped_checks")
    assert skipped, "expected the documented skips (CMEK, Dataplane V2's network policy, RBAC groups)"
    for c in skipped:
        comment = (c.get("check_result") or {}).get("suppress_comment") or ""
        assert len(comment.strip()) >= 20, f"{c['check_id']} on {c['resource']} is skipped without a reason"


def test_every_project_policy_is_evaluated():
    ids = policy_ids()
    assert len(ids) == len(set(ids)) >= 5
    seen = {c["check_id"] for c in checks(list(tree_reports()), "passed_checks")}
    dead = [i for i in ids if i not in seen]
    assert not dead, f"project policies that match no resource of terraform/: {dead}"


# (file under terraform/, text to find, its broken replacement, the check that must fail).
# Breaks of different checks share a copy of the tree (one scan each copy, ~8 s); two breaks
# of one check need two copies, so each is shown to be found on its own.
BREAKS = [
    [
        (
            "modules/firestore/main.tf",
            '"POINT_IN_TIME_RECOVERY_ENABLED"',
            '"POINT_IN_TIME_RECOVERY_DISABLED"',
            "CKV2_FJB_1",
        ),
        ("modules/artifact_registry/main.tf", "immutable_tags = true", "immutable_tags = false", "CKV2_FJB_2"),
        ("modules/consumer/main.tf", "cpu_idle          = false", "cpu_idle          = true", "CKV2_FJB_3"),
        ("modules/pubsub_scheduler/main.tf", "message_storage_policy {", 'dynamic "unused" {', "CKV2_FJB_4"),
        ("modules/gke/main.tf", "enable_private_nodes    = true", "enable_private_nodes    = false", "CKV2_FJB_5"),
        # a built-in check: VPC flow logs on every subnet
        ("modules/network/main.tf", "log_config {", 'dynamic "no_log" {', "CKV_GCP_26"),
    ],
    [
        ("modules/consumer/main.tf", '"INGRESS_TRAFFIC_INTERNAL_ONLY"', '"INGRESS_TRAFFIC_ALL"', "CKV2_FJB_3"),
    ],
]
CASES = [(copy, *brk) for copy, breaks in enumerate(BREAKS) for brk in breaks]


@pytest.fixture(scope="module")
def broken_reports(tmp_path_factory) -> dict[int, list[dict]]:
    """checkov's reports of each broken copy of the tree."""
    out = {}
    for copy, breaks in enumerate(BREAKS):
        root = tmp_path_factory.mktemp(f"tf{copy}") / "terraform"
        shutil.copytree(TERRAFORM, root, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
        for rel, old, new, _check in breaks:
            path = root / rel
            text = path.read_text()
            assert old in text, f"{rel} no longer holds {old!r}: update BREAKS"
            path.write_text(text.replace(old, new, 1))
        out[copy] = scan(root)
    return out


@pytest.mark.parametrize(("copy", "rel", "old", "new", "check"), CASES, ids=[f"{c[4]}:{c[1]}" for c in CASES])
def test_a_broken_invariant_is_found(copy, rel, old, new, check, broken_reports):
    failed = {(c["check_id"], c["file_path"].lstrip("/")) for c in checks(broken_reports[copy], "failed_checks")}
    assert (check, rel) in failed, f"{check} did not fail in {rel} on the broken copy (failed: {sorted(failed)})"
