"""Customers the sanctions list names since they were taken on (fjordbank.service_layer.rescreening),
and compliance's decision on one: ``bankctl sanctions`` on the local stack, and in production
(with the officer's own credentials, which may write ``sanctionsAlerts``, ``customers`` and
``accounts``)::

    python -m fjordbank.runtime.sanctions_alerts --project PROJECT list [--status open|frozen|cleared]
    python -m fjordbank.runtime.sanctions_alerts --project PROJECT freeze UID --by NAME --note WHY [--seen VERSION]
    python -m fjordbank.runtime.sanctions_alerts --project PROJECT clear UID --by NAME --note WHY --seen VERSION

``freeze`` (it is the listed person): every open account of the customer's is frozen now.
``clear`` (not the listed person, or delisted): the accounts the alert froze open again.
``list`` prints one JSON object per alert (``frozen``: the customers frozen, who wait for a
decision too; ``open``: a name like a listed one, nothing frozen yet), with its ``version``:
a decision given it (``--seen``, required to clear) is refused if the alert was written
since, so a hit the rescreen found while the officer looked is never cleared unseen.
"""

from __future__ import annotations

import sys
from typing import Any

from fjordbank.domain import rescreening as rules
from fjordbank.runtime.decisions import officer_parser, run_officer
from fjordbank.service_layer import rescreening
from fjordbank.service_layer.ports import Doc, Documents


def row(doc: Doc) -> dict[str, Any]:
    """What an officer decides on: the customer, what the list says, what is frozen."""
    data = doc.data
    return {
        "uid": doc.id,
        "status": data.get("status"),
        "matches": data.get("matches") or [],
        "frozenAccounts": data.get("frozenAccounts") or [],
        "raisedAt": data.get("raisedAt"),
        "decisions": data.get("decisions") or [],
        "version": rules.version(doc.updated),  # what a decision says it saw (--seen)
    }


def listed(docs: Documents, status: str = rules.OPEN) -> list[dict[str, Any]]:
    return [row(d) for d in rescreening.alerts(docs, status=status)]


def decide(docs: Documents, action: str, uid: str, *, by: str, note: str, seen: str | None = None) -> dict[str, Any]:
    """Raises `fjordbank.domain.rescreening.AlertRefused`."""
    decided = rescreening.decide(docs, uid, action, by=by, note=note, seen=seen)
    return {"uid": uid, "status": decided["status"], "frozenAccounts": decided["frozenAccounts"], "decidedBy": by}


def main(argv: list[str] | None = None) -> int:
    parser = officer_parser(
        "python -m fjordbank.runtime.sanctions_alerts",
        __doc__,
        statuses=rules.STATUSES,
        default=rules.OPEN,
        actions=rules.ACTIONS,
        subject="uid",
        what="customer's alert",
    )
    return run_officer(parser, argv, subject="uid", listed=listed, decide=decide)


if __name__ == "__main__":
    sys.exit(main())
