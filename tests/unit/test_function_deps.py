"""The functions' instance collaborators (functions/main.py ``deps``) are made whole or not
at all: the dict was filled a key at a time, so a failure midway (the NATS publisher or the
jobs' client not made) left it non-empty, and the next call took it as made and failed on a
missing key (KeyError: an INTERNAL for every later request of the instance; found in
review, 2026-12-07). Run in a subprocess, as the functions are loaded for deploy (their
module reads its deploy settings at import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import importlib.util, json
    from types import SimpleNamespace as NS

    spec = importlib.util.spec_from_file_location("fjb_functions_main", REPO + "/functions/main.py")
    main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(main)

    main.load_settings = lambda identity: NS(project_id="demo-fjordbank", nats=None)
    real_publisher = main.SyncPublisher
    calls = []
    def publisher(settings, *, name):
        calls.append(name)
        if len(calls) == 1:
            raise OSError("the NATS credentials could not be read")
        return real_publisher(NS(), name=name)
    main.SyncPublisher = publisher
    results = {}
    try:
        main.deps()
    except OSError as e:
        results["first"] = str(e)
    results["left"] = sorted(main._deps)
    db, pub, settings = main.deps()
    results["second"] = sorted(main._deps)
    results["made_once"] = main.deps()[1] is pub and len(calls) == 2
    print("RESULT " + json.dumps(results))
    """
)


def test_a_failure_while_making_the_instance_collaborators_leaves_nothing_half_made():
    env = {
        **os.environ,
        "FJB_FUNCTIONS_SERVICE_ACCOUNT": "fjb-edge@demo-fjordbank.iam.gserviceaccount.com",
        "FJB_VPC_CONNECTOR": "projects/demo-fjordbank/locations/europe-west1/connectors/fjordbank",
        # the clients make their channels on first use: no database is called here
        "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9",
        "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9",
    }
    env.pop("FUNCTIONS_EMULATOR", None)
    proc = subprocess.run(
        [sys.executable, "-c", f"REPO = {str(REPO)!r}\n" + SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    got = json.loads(line.removeprefix("RESULT "))
    assert got["first"] == "the NATS credentials could not be read"
    assert got["left"] == []  # nothing half-made
    assert got["second"] == [
        "collaborators",
        "db",
        "docs",
        "job_collaborators",
        "job_docs",
        "publisher",
        "sessions",
        "settings",
    ]
    assert got["made_once"]
