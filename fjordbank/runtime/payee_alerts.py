"""Payees at other banks whose name is like one on the sanctions list (screening refuses
every payment to them until compliance decides: fjordbank.domain.payee_screening), and the
decision on one: ``bankctl payees`` on the local stack, and in production (with the
officer's own credentials, which may write ``payeeAlerts``)::

    python -m fjordbank.runtime.payee_alerts --project PROJECT list [--status open|cleared|confirmed]
    python -m fjordbank.runtime.payee_alerts --project PROJECT clear KEY --by NAME --note WHY --seen VERSION
    python -m fjordbank.runtime.payee_alerts --project PROJECT confirm KEY --by NAME --note WHY [--seen VERSION]
    python -m fjordbank.runtime.payee_alerts --project PROJECT lift KEY --by NAME --note WHY --seen VERSION

``clear`` (an open alert or a confirmed one: not the listed party): payments to the payee
under that name pass again, until the list says something new of it. ``confirm`` (the
listed party): every payment to its account is refused, and still recorded; reporting it to
the authorities is the officer's, outside this system. ``lift`` (a confirmed party
delisted): payments pass while the list does not name it; listed again, even as before,
they are refused and the alert opens again (``clear`` there would pass it for good).
``list`` prints one JSON object per alert, with the payments refused at its account
(``attempts``, at most 1,000: ``attemptsCapped``) and who made them (``payers``), the oldest
200 alerts first, and its ``version``: a decision given it (``--seen``, required to clear or
lift) is refused if the alert was written since (a new list reopened it).
"""

from __future__ import annotations

import sys
from typing import Any

from fjordbank.domain import payee_screening as rules
from fjordbank.domain.rescreening import version
from fjordbank.runtime.decisions import officer_parser, run_officer
from fjordbank.service_layer import payee_alerts
from fjordbank.service_layer.ports import Doc, Documents


def row(doc: Doc, attempts: int = 0, payers: list[str] | None = None) -> dict[str, Any]:
    """What an officer decides on: the payee, what the list says, who tried to pay it (the
    payments refused for a payee at its account, under any name)."""
    data = doc.data
    return {
        "key": doc.id,
        "status": data.get("status"),
        "toAccount": data.get("toAccount"),
        "payeeName": data.get("payeeName"),
        "matches": data.get("matches") or [],
        "payers": payers or [],
        "attempts": attempts,
        "attemptsCapped": attempts >= payee_alerts.TRIED,
        "raisedAt": data.get("raisedAt"),
        "decisions": data.get("decisions") or [],
        "version": version(doc.updated),  # what a decision says it saw (--seen)
    }


LISTED = 200  # alerts listed at most, the oldest raised first


def listed(docs: Documents, status: str = rules.OPEN) -> list[dict[str, Any]]:
    rows = []
    for d in payee_alerts.alerts(docs, status=status, limit=LISTED):
        account = d.data.get("toAccount")
        attempts, payers = payee_alerts.tried(docs, account) if isinstance(account, str) else (0, [])
        rows.append(row(d, attempts, payers))
    return rows


def decide(docs: Documents, action: str, key: str, *, by: str, note: str, seen: str | None = None) -> dict[str, Any]:
    """Raises `fjordbank.domain.rescreening.AlertRefused`."""
    decided = payee_alerts.decide(docs, key, action, by=by, note=note, seen=seen)
    return {"key": key, "status": decided["status"], "decidedBy": by}


def main(argv: list[str] | None = None) -> int:
    parser = officer_parser(
        "python -m fjordbank.runtime.payee_alerts",
        __doc__,
        statuses=rules.STATUSES,
        default=rules.OPEN,
        actions=rules.ACTIONS,
        subject="key",
        what="payee's alert",
    )
    return run_officer(parser, argv, subject="key", listed=listed, decide=decide)


if __name__ == "__main__":
    sys.exit(main())
