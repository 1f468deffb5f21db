"""Run a script with functions/main.py loaded as deploy loads it: in a subprocess, as the
module reads its deploy settings at import (what `firebase deploy` reads from
functions/.env.PROJECT, fjordbank.config.functions_deploy_options, is set here). The script
gets ``REPO`` and ``main`` (the module)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

LOAD_MAIN = """
import importlib.util
spec = importlib.util.spec_from_file_location("fjb_functions_main", REPO + "/functions/main.py")
main = importlib.util.module_from_spec(spec)
spec.loader.exec_module(main)
"""


def run(script: str, env: dict[str, str] | None = None) -> str:
    """``script`` run after the module is loaded; its standard output. ``env``: more of
    the environment (the emulators' addresses, say)."""
    environment = {
        **os.environ,
        "FJB_FUNCTIONS_SERVICE_ACCOUNT": "fjb-edge@demo-fjordbank.iam.gserviceaccount.com",
        "FJB_VPC_CONNECTOR": "projects/demo-fjordbank/locations/europe-west1/connectors/fjordbank",
        **(env or {}),
    }
    environment.pop("FUNCTIONS_EMULATOR", None)
    # `python -c` in the repository: the project imports from there (and is installed
    # editable in the venv besides), so the script edits no import path of its own
    proc = subprocess.run(
        [sys.executable, "-c", f"REPO = {str(REPO)!r}\n{LOAD_MAIN}\n{script}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=environment,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def result(script: str, env: dict[str, str] | None = None) -> Any:
    """What ``script`` printed as its one line ``RESULT <json>``."""
    (line,) = [x for x in run(script, env).splitlines() if x.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT "))
