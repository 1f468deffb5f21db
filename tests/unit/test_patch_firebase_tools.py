"""The patches to firebase-tools (scripts/patch_firebase_tools.py) as installed by the bootstrap.

Patch 5: Python workers started at once must never share a port (a request would run the
wrong function). The reservation code is taken from the installed, patched emulator and run
under node against a port finder that, like the real one before anybody binds, keeps
answering the same port.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts import patch_firebase_tools as patch

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "node_modules" / "firebase-tools"

pytestmark = pytest.mark.skipif(
    not (PACKAGE / patch.EMULATOR_JS).exists() or shutil.which("node") is None,
    reason="firebase-tools is not installed (scripts/bootstrap.sh installs and patches it)",
)


def test_the_installed_package_is_patched_and_patching_again_changes_nothing(tmp_path):
    for rel in {rel for rel, _, _ in patch.PATCHES}:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PACKAGE / rel, tmp_path / rel)
    assert patch.apply(tmp_path) == []


def test_workers_started_at_once_get_different_ports_and_a_port_is_reused_after_exit():
    text = (PACKAGE / patch.EMULATOR_JS).read_text()
    code = re.search(r"const reservedWorkerPorts = new Set\(\);.*?\n}\n", text, re.S)
    assert code, "the port reservation (patch 5) is not in the installed emulator"
    script = f"""
const utils_1 = {{ randomInt: () => 0 }};
// nobody has bound anything yet: the lowest port from the start is free
const portfinder = {{ getPortPromise: async ({{ port }}) => port }};
{code.group(0)}
(async () => {{
    const ports = await Promise.all([1, 2, 3, 4, 5, 6].map(() => reserveWorkerPort()));
    reservedWorkerPorts.delete(ports[2]);
    const again = await reserveWorkerPort();
    console.log(JSON.stringify({{ ports, again }}));
}})();
"""
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True, timeout=30)
    result = json.loads(out.stdout)
    assert len(set(result["ports"])) == 6
    assert result["ports"][0] == 8081
    assert result["again"] == result["ports"][2]
