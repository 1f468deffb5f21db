"""The functions' instance collaborators (functions/main.py ``deps``) are made whole or not
at all: the dict was filled a key at a time, so a failure midway (the NATS publisher or the
jobs' client not made) left it non-empty, and the next call took it as made and failed on a
missing key (KeyError: an INTERNAL for every later request of the instance; found in
review, 2026-12-07). Run in a subprocess, as the functions are loaded for deploy (their
module reads its deploy settings at import)."""

from __future__ import annotations

import textwrap

from tests.support import functions_main

SCRIPT = textwrap.dedent(
    """
    import json
    from types import SimpleNamespace as NS

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
    # the clients make their channels on first use: no database is called here
    got = functions_main.result(
        SCRIPT, {"FIRESTORE_EMULATOR_HOST": "127.0.0.1:9", "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9"}
    )
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
