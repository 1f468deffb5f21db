"""The command line a compliance officer decides with in production (fjordbank.runtime.held,
fjordbank.runtime.sanctions_alerts): ``list`` what waits, and one decision per action on one
subject, with who decides and why."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from fjordbank.domain.errors import Refused
from fjordbank.service_layer.ports import Documents


def officer_parser(
    prog: str,
    description: str | None,
    *,
    statuses: Sequence[str],
    default: str,
    actions: Sequence[str],
    subject: str,
    what: str,
) -> argparse.ArgumentParser:
    """``--project``; ``list [--status S]``; ``ACTION SUBJECT --by NAME --note WHY [--seen VERSION]`` per action."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--project", required=True, help="the Google Cloud project")
    sub = parser.add_subparsers(dest="action", required=True)
    show = sub.add_parser("list", help=f"the {what}s (one JSON object each)")
    show.add_argument("--status", choices=statuses, default=default)
    for action in actions:
        one = sub.add_parser(action, help=f"{action} one {what}")
        one.add_argument(subject)
        one.add_argument("--by", required=True, help="who decides (kept with the decision)")
        one.add_argument("--note", required=True, help="why (kept with the decision)")
        # required to clear: lifting what the officer did not see (a hit found meanwhile) is
        # the mistake that cannot wait for the next list; a freeze or confirm on a stale view errs safe
        one.add_argument(
            "--seen",
            required=action in ("clear", "lift"),
            help="the version `list` showed: refused if the alert was written since (a match found meanwhile)",
        )
    return parser


def emulator_mismatch(project: str) -> str | None:
    """Why the command must not run: the emulator's address set for a real project (the
    decision would go to the emulator, not to the bank), else None."""
    emulator = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if emulator and not project.startswith("demo-"):
        return f"FIRESTORE_EMULATOR_HOST is set ({emulator}): unset it to decide on {project}"
    return None


def run_officer(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    *,
    subject: str,
    listed: Callable[[Documents, str], list[dict[str, Any]]],
    decide: Callable[..., dict[str, Any]],
) -> int:
    """An officer's command on the blocking document client (`officer_parser`'s arguments):
    ``list`` prints one JSON object per line, a decision prints its result; a decision the
    bank refuses prints why and exits 1, the emulator's address set for a real project exits 2."""
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.adapters.firestore import sync_client

    args = parser.parse_args(argv)
    if (refused := emulator_mismatch(args.project)) is not None:
        print(refused, file=sys.stderr)
        return 2
    docs = FirestoreDocuments(sync_client(args.project))
    if args.action == "list":
        for item in listed(docs, args.status):
            print(json.dumps(item, default=str, ensure_ascii=False))
        return 0
    try:
        print(json.dumps(decide(docs, args.action, getattr(args, subject), by=args.by, note=args.note, seen=args.seen)))
    except Refused as exc:
        print(f"refused: {exc.message}", file=sys.stderr)
        return 1
    return 0
