"""Run the data migrations (fjordbank/service_layer/migrations.py) against a project's
Firestore: ``python -m fjordbank.runtime.migrate --project PROJECT``.

The deploy workflow runs it once a version's functions are deployed (with the workflow's
credentials); ``bankctl migrate`` runs the same against the local stack, and the stack's
``up`` runs that. Progress goes to stderr every 500 documents; the result is one JSON line
on stdout. Each migration is idempotent, so a run that stopped half-way is run again; one
recorded done is not run again unless asked (``--force``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable

from google.cloud import firestore

from fjordbank.adapters.documents import FirestoreDocuments, stream_group
from fjordbank.adapters.firestore import CATEGORY_OVERRIDES, SUBSCRIPTIONS, sync_client
from fjordbank.service_layer import migrations

WORKERS = 16  # transactions at a time: a million choices in minutes, not hours


def run(
    db: firestore.Client,
    progress: Callable[[int, int], None] | None = None,
    *,
    workers: int = WORKERS,
    force: bool = False,
) -> dict[str, dict[str, int | bool]]:
    """Every migration not done yet (``force``: every one), in order: {name: {"written":
    documents}} or {name: {"written": 0, "doneBefore": True}}."""
    docs = FirestoreDocuments(db)
    ran: dict[str, dict[str, int | bool]] = {}
    for name, collection, migrate in (
        (migrations.ECONOMY_CHOICES, CATEGORY_OVERRIDES, migrations.economy_choices),
        (migrations.SUBSCRIPTION_LAPSES, SUBSCRIPTIONS, migrations.subscription_lapses),
    ):
        if not migrations.to_run(docs, name, force=force):
            ran[name] = {"written": 0, "doneBefore": True}
            continue
        written = migrate(
            docs, stream_group(db, collection), now=dt.datetime.now(dt.UTC), progress=progress, workers=workers
        )
        ran[name] = {"written": written}
    return ran


def said(seen: int, written: int) -> None:
    print(f"  {seen} documents seen, {written} migrated ...", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fjordbank.runtime.migrate", description=__doc__)
    parser.add_argument("--project", required=True, help="the Google Cloud project whose Firestore is migrated")
    parser.add_argument("--workers", type=int, default=WORKERS, help="transactions at a time (default: %(default)s)")
    parser.add_argument(
        "--force", action="store_true", help="run the migrations done before again (each is idempotent)"
    )
    args = parser.parse_args(argv)
    emulator = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if emulator and not args.project.startswith("demo-"):
        # the client would quietly migrate the emulator and report it done, and the
        # project's own documents would never be migrated
        print(
            f"FIRESTORE_EMULATOR_HOST is set ({emulator}): this would migrate the emulator, not "
            f"{args.project}; unset it (the local stack's migration is bankctl migrate)",
            file=sys.stderr,
        )
        return 2
    print(json.dumps(run(sync_client(args.project), said, workers=args.workers, force=args.force)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
