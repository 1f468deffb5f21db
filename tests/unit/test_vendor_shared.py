"""The deploy's predeploy hook (scripts/vendor_shared.py, firebase.json) copies the shared
package into functions/ with no simulator and no cache, runs with nothing of the project
importable (standard library only: no devstack, no import-path edits), and the local stack
vendors through the very same hook (devstack/vendor.py). Each on a repository made in a
temporary folder: the running stack's functions/ is not touched."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import vendor
from devstack.supervisor import StartError

REPO = Path(__file__).resolve().parents[2]
HOOK = REPO / "scripts" / "vendor_shared.py"


def fake_repo(root: Path) -> Path:
    """A checkout with the hook, a package holding what must not be copied, and a stale copy."""
    for rel, text in {
        "scripts/vendor_shared.py": HOOK.read_text(),
        "fjordbank/__init__.py": "",
        "fjordbank/domain/money.py": "MINOR = 100\n",
        "fjordbank/simulators/counterparty.py": "# a simulator that strayed into the package\n",
        "fjordbank/__pycache__/money.cpython-311.pyc": "",
        "emulators/sanctions/eu-fsf-sample.xml": "<export/>\n",
        "functions/main.py": "",
        "functions/fjordbank/stale.py": "# from an earlier copy\n",
    }.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def copied(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root / "functions")) for p in (root / "functions").rglob("*") if p.is_file())


EXPECTED = ["emulators/sanctions/eu-fsf-sample.xml", "fjordbank/__init__.py", "fjordbank/domain/money.py", "main.py"]


def test_the_hook_copies_the_package_without_simulators_or_caches_with_nothing_of_the_project_importable(tmp_path):
    root = fake_repo(tmp_path / "repo")
    # -I: isolated, as firebase.json runs it: no PYTHONPATH, no user site, not even the script's folder
    proc = subprocess.run(
        ["python3", "-I", str(root / "scripts" / "vendor_shared.py")],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert copied(root) == EXPECTED


def test_the_hook_imports_only_the_standard_library_and_leaves_sys_path_alone():
    tree = ast.parse(HOOK.read_text())
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert {m.split(".")[0] for m in modules} - {"__future__"} <= set(sys.stdlib_module_names), modules
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "path" and
                isinstance(n.value, ast.Name) and n.value.id == "sys"]  # fmt: skip


def test_firebase_runs_the_hook_isolated_before_a_deploy():
    functions = json.loads((REPO / "firebase.json").read_text())["functions"]
    assert [f["predeploy"] for f in functions] == [['python3 -I "$PROJECT_DIR/scripts/vendor_shared.py"']]


def test_the_stack_vendors_through_the_same_hook(tmp_path):
    root = fake_repo(tmp_path / "repo")
    assert vendor.vendor_shared(root) == root / "functions" / "fjordbank"
    assert copied(root) == EXPECTED


def test_a_failing_hook_stops_the_stack_with_its_reason(tmp_path):
    root = fake_repo(tmp_path / "repo")
    (root / "emulators" / "sanctions" / "eu-fsf-sample.xml").unlink()
    (root / "emulators" / "sanctions").rmdir()
    with pytest.raises(StartError, match=r"(?s)scripts/vendor_shared.py could not copy .*No such file .*sanctions"):
        vendor.vendor_shared(root)
