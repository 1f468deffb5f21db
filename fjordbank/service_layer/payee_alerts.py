"""Compliance's side of the payees screening refuses (fjordbank.domain.payee_screening,
raised by fjordbank.service_layer.screening): the alerts waiting, and one decision on one.

  payeeAlerts/{payee key}   status open | cleared | confirmed, the account and the name, the
                            list's entries found (matches, keys), and the decisions (who,
                            why, when)
  screeningDecisions/{id}   each payment refused for its payee names its account
                            (payeeAccount): who tried to pay it
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fjordbank.adapters.firestore import PAYEE_ALERTS, SCREENING_DECISIONS
from fjordbank.domain import payee_screening as rules
from fjordbank.domain.rescreening import AlertRefused, checked_note
from fjordbank.domain.rescreening import seen as check_seen
from fjordbank.service_layer.ports import (
    SERVER_TIME,
    Clock,
    Doc,
    Documents,
    OrderBy,
    UnitOfWork,
    Where,
    system_clock,
)

log = logging.getLogger(__name__)

KEY = re.compile(r"[0-9a-f]{32}")  # fjordbank.domain.payee_screening.payee_key
TRIED = 1_000  # refused payments read per payee account, for who tried


def alert_path(key: str) -> str:
    return f"{PAYEE_ALERTS}/{key}"


def decide(
    docs: Documents,
    key: str,
    action: str,
    *,
    by: object,
    note: object,
    seen: object = None,
    clock: Clock = system_clock,
) -> dict[str, Any]:
    """``clear`` an open payee alert (not the listed party: payments to the payee under this
    name pass, until the list says something new of it) or a confirmed one (a mistake), or
    ``confirm`` an open one (the listed party: every payment to its account is refused), or
    ``lift`` a confirmed one (the party delisted: listed again, it is refused again); who and
    why are kept in its ``decisions``. ``seen``: the alert's version as the
    officer listed it (refused when it was written since: a new list reopened it). Raises
    `fjordbank.domain.rescreening.AlertRefused`. Returns the alert as decided."""
    who, why = checked_note(by, note)
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise AlertRefused("invalid_request", "no such payee alert (its key is 32 hex digits)")

    def write(uow: UnitOfWork) -> dict[str, Any]:
        alert = uow.get(alert_path(key))
        if alert is None:
            raise AlertRefused("alert_not_open", f"no payee alert {key}")
        check_seen(seen, alert.updated)
        fields = rules.decided(alert.data, action)
        decision = {"action": action, "by": who, "note": why, "at": clock().isoformat()}
        decided = {
            **fields,
            "decisions": [*(alert.data.get("decisions") or ()), decision],
            "decidedBy": who,
            "decidedAt": SERVER_TIME,
            "updatedAt": SERVER_TIME,  # the screening processes read the alerts written since they last read
        }
        uow.update(alert.path, decided)
        return {**alert.data, **decided, "key": key}

    result = docs.transact(write, operation="payee_alert_decide")
    log.warning(
        "payee alert decided",
        extra={"payee": key, "action": action, "status": result["status"], "decided_by": who},
    )
    return result


def alerts(docs: Documents, *, status: str = rules.OPEN, limit: int = 200) -> list[Doc]:
    """The payee alerts in ``status``, oldest raised first."""
    if status not in rules.STATUSES:
        raise AlertRefused("invalid_request", f"status is one of {', '.join(rules.STATUSES)}")
    return docs.query(PAYEE_ALERTS, where=[Where("status", "==", status)], order_by=[OrderBy("raisedAt")], limit=limit)


def tried(docs: Documents, account: str) -> tuple[int, list[str]]:
    """The payments to ``account`` screening refused for their payee, under any name (at
    most `TRIED` of them: more is "at least", and then not necessarily the first ones; the
    decisions' decidedAt is not indexed, so none is ordered by it), and the customers who
    made them, in the order they were decided."""
    refused = docs.query(SCREENING_DECISIONS, where=[Where("payeeAccount", "==", account)], limit=TRIED)
    payers: list[str] = []
    for d in sorted(refused, key=lambda d: d.updated):
        if isinstance(uid := d.data.get("uid"), str) and uid not in payers:
            payers.append(uid)
    return len(refused), payers
