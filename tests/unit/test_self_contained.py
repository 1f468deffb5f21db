"""A clone with nothing beside it must pass its own tests: nothing the project runs reads
a file outside the repository (such as a ``shared/`` folder next to the checkout)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r"\.\./shared|parent / \"shared\"|\"shared\" /|parents\[[3-9]\]")
# Files allowed to look beside the checkout, each because what it reads ships in no package
# a registry here holds, and its tests skip with that reason when the folder is absent.
MAY_LOOK_BESIDE = {
    "tests/deploy/k8s_support.py": "the Knative Serving and GMP CRDs, for the custom-resource check",
}


def test_no_source_reads_beside_the_repository():
    files = subprocess.run(
        ["git", "ls-files", "*.py", "*.sh", "Makefile", ".ci/*"], cwd=REPO, capture_output=True, text=True
    )
    assert files.returncode == 0, files.stderr
    this = Path(__file__).resolve().relative_to(REPO).as_posix()
    hits = [
        f"{name}:{n}: {line.strip()}"
        for name in files.stdout.split()
        if name != this and name not in MAY_LOOK_BESIDE
        for n, line in enumerate((REPO / name).read_text(errors="replace").splitlines(), start=1)
        if OUTSIDE.search(line)
    ]
    assert not hits, hits
