"""The command line a compliance officer decides with in production (fjordbank.runtime.held,
fjordbank.runtime.sanctions_alerts): ``list`` what waits, and one decision per action on one
subject, with who decides and why."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence


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
    """``--project``; ``list [--status S]``; ``ACTION SUBJECT --by NAME --note WHY`` per action."""
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
    return parser


def emulator_mismatch(project: str) -> str | None:
    """Why the command must not run: the emulator's address set for a real project (the
    decision would go to the emulator, not to the bank), else None."""
    emulator = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if emulator and not project.startswith("demo-"):
        return f"FIRESTORE_EMULATOR_HOST is set ({emulator}): unset it to decide on {project}"
    return None
