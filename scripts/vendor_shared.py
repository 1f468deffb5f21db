"""Copy the shared `fjordbank` package into functions/ (the firebase.json predeploy hook).

`firebase deploy` uploads functions/ alone, so it must hold the package it imports. The
hook runs this file with any python3: standard library only, and it imports nothing of the
project (no devstack, no import-path edits), so a deploy runs no development code. The local
stack (devstack/vendor.py) runs this same file before the Functions emulator starts, so the
emulator loads what a deploy uploads.

What is copied: fjordbank/ without caches and without any simulated outside party (those
live in simulators/, outside the package; a `simulators` folder inside it is skipped all the
same), and the sample sanctions list, FJB_SANCTIONS_LIST's local default (relative to the
package's parent; production names its list, fjordbank/config.py).

    python3 scripts/vendor_shared.py [REPO]     # REPO: this checkout by default
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

SKIPPED = ("__pycache__", "*.pyc", "simulators")


def vendor_shared(repo: Path) -> Path:
    """Replace functions/fjordbank (and functions/emulators/sanctions) with fresh copies;
    returns the package's copy."""
    src, dst = repo / "fjordbank", repo / "functions" / "fjordbank"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*SKIPPED))
    lists, lists_dst = repo / "emulators" / "sanctions", repo / "functions" / "emulators" / "sanctions"
    if lists_dst.exists():
        shutil.rmtree(lists_dst)
    shutil.copytree(lists, lists_dst)
    return dst


def main(argv: list[str]) -> int:
    repo = Path(argv[0]).resolve() if argv else Path(__file__).resolve().parent.parent
    dst = vendor_shared(repo)
    print(f"copied fjordbank/ into {dst.relative_to(repo)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
