"""functions/ must be self-contained for `firebase deploy`: copy the shared package in.

Standard library only, so the firebase.json predeploy hook runs it with any python3.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def vendor_shared(repo: Path) -> Path:
    src, dst = repo / "fjordbank", repo / "functions" / "fjordbank"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # The sanctions list onboarding screens against (FJB_SANCTIONS_LIST's default path,
    # relative to the package's parent). Replace it with the full list before a deploy.
    lists, lists_dst = repo / "emulators" / "sanctions", repo / "functions" / "emulators" / "sanctions"
    if lists_dst.exists():
        shutil.rmtree(lists_dst)
    shutil.copytree(lists, lists_dst)
    return dst
