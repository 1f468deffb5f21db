"""functions/ must be self-contained for the Functions emulator, as for `firebase deploy`:
the shared package is copied in by the deploy's own hook, scripts/vendor_shared.py, run here
as firebase.json's predeploy runs it (a process of its own, importing nothing of devstack),
so the emulator loads exactly what a deploy would upload."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from devstack.supervisor import StartError

HOOK = Path("scripts") / "vendor_shared.py"


def vendor_shared(repo: Path) -> Path:
    """Run the predeploy hook on ``repo``; returns functions/fjordbank. StartError if it fails."""
    proc = subprocess.run(
        [sys.executable, str(repo / HOOK), str(repo)], capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode != 0:
        said = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])  # the error, not the traceback
        raise StartError(f"{HOOK} could not copy the shared package into functions/:\n{said}")
    return repo / "functions" / "fjordbank"
