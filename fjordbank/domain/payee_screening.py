"""A payment to another bank screened by its payee's name against the sanctions list, and
what compliance decides on a payee the list may name (the rules; screening does it:
fjordbank.service_layer.screening).

Funds may not be made available to a listed person or enterprise (Council Regulation (EU)
No 269/2014, art. 2(2); in Norway the sanctions regulations under sanksjonsloven). A
customer's own screening (onboarding, then every new list: fjordbank.domain.rescreening)
covers money kept here, and a payment to another Fjordbank customer pays a screened
person. A payment to another bank pays whoever holds that account there, whom the bank
knows only by the name the customer gives (``payeeName``, the file's ``Cdtr/Nm``): that
name is screened, as a payer's name from another bank is (`SanctionsList.screen_counterparty`:
persons and enterprises, by name only, so never more than ``review``).

A name equal or similar to a listed one, or holding a listed name of two words or more
among other words ("... c/o Nordic Consulting Holding AS", "... AS avd. Oslo":
fjordbank.domain.sanctions), refuses the payment (``payee_in_review``: nothing is
reserved, the customer may pay again later; the customer is not told why) and raises an
**alert** per payee (the account and the name as screened, `payee_key`) for compliance,
with the list's entries found:

* **open**: waiting for a decision. Every payment to the payee's account is refused
  meanwhile, under any name or none (`refusal`'s ``others``: a name changed does not make
  another payee of an account being checked; the screening process that raised it knows
  at once, every other within 30 s: fjordbank.service_layer.screening).
* **cleared**: not the listed party. Payments to the payee under that name pass, until
  the list says something new of it (an entry not decided, or changed since: `match_key`).
  Then the alert is open again.
* **confirmed**: the listed party. Every payment to the payee's account is refused as a
  blocked counterparty (``blocked_counterparty``), under any name. Compliance may later
  ``clear`` it (a mistake: not the listed party, as for an open one) or ``lift`` it (the
  party delisted: payments pass while the list does not name it; listed again, even as
  before, a payment is refused and the alert open again). Before ``lift``, the only way
  was ``clear``, which decided the party's entries for good: listed again as before, it
  was paid with no alert (found in review, 2026-12-06).

Who tried to pay a payee is kept with each refused payment's screening decision (its
``payeeAccount``), not on the alert: a popular name like a listed one, paid from many
partitions at once, would otherwise make its alert a document every batch writes.

A payment with no payee name is not screened by name (the account's alerts and the
policy's blocked list still apply); see README.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fjordbank.domain.norway import normalize_account_number
from fjordbank.domain.rescreening import AlertRefused, match_key
from fjordbank.domain.sanctions import SanctionsList, ScreeningResult, entry_key, normalize_name

OPEN = "open"
CLEARED = "cleared"
CONFIRMED = "confirmed"
STATUSES = (OPEN, CLEARED, CONFIRMED)
CLEAR = "clear"
CONFIRM = "confirm"
LIFT = "lift"
ACTIONS = (CLEAR, CONFIRM, LIFT)

IN_REVIEW = "payee_in_review"
# why is not said: the customer is not told what the bank screens payees against
IN_REVIEW_MESSAGE = (
    "the bank must check this payee before it can be paid; nothing was paid: try again later, or contact the bank"
)
BLOCKED = "blocked_counterparty"
BLOCKED_MESSAGE = "payments to this account are not allowed"


def payee_key(to_account: str, name: str) -> str:
    """The alert's id: the account and the name as screened (normalised: case, accents and
    spacing do not make another payee), hashed so no name is in a document's path."""
    text = f"{normalize_account_number(to_account)}\x00{normalize_name(name)}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Finding:
    """What the payee's name resembles: the matches (as plain data, for the alert) and
    their keys (`match_key` with the entry's content), in the same order."""

    matches: tuple[dict[str, Any], ...]
    keys: tuple[str, ...]


def find(sanctions: SanctionsList, name: str) -> Finding | None:
    """The payee's name against the list: None when it resembles no listed name."""
    result: ScreeningResult = sanctions.screen_counterparty(name)
    if result.outcome == "clear":
        return None
    matches: list[dict[str, Any]] = []
    keys: list[str] = []
    for m in result.matches:
        entry = sanctions.entry(m.entity_id)
        keys.append(match_key(m.entity_id, m.verdict, entry_key(entry) if entry is not None else None))
        matches.append({"entity_id": m.entity_id, "alias": m.alias, "score": m.score, "verdict": m.verdict})
    if not keys:  # a name with no letters or digits to screen: reviewed, never let through
        keys.append(match_key("-", "review"))
    return Finding(tuple(matches), tuple(keys))


def refusal(
    finding: Finding | None, alert: Mapping[str, Any] | None, *, others: Iterable[str] = ()
) -> tuple[str, str] | None:
    """(reason, message) when the payment is refused for its payee, else None. ``alert``:
    the payee's own (its account and name); ``others``: the statuses of the other open or
    confirmed alerts on its account (under other names)."""
    around = set(others)
    if CONFIRMED in around:
        return BLOCKED, BLOCKED_MESSAGE
    if finding is not None:
        status = alert.get("status") if alert else None
        if status == CONFIRMED:
            return BLOCKED, BLOCKED_MESSAGE
        if not (status == CLEARED and set(finding.keys) <= set(_strings((alert or {}).get("clearedKeys")))):
            return IN_REVIEW, IN_REVIEW_MESSAGE
    if OPEN in around:
        return IN_REVIEW, IN_REVIEW_MESSAGE
    return None


def raised(
    alert: Mapping[str, Any] | None, finding: Finding, *, to_account: str, name: str, now: dt.datetime
) -> dict[str, Any] | None:
    """The alert after a payment to the payee was refused for its name, or None when it
    stays as it is: a new one is open; a cleared one (refused: the list says something not
    decided) is open again, with what the list says now; an open or confirmed one takes
    the list's entries as they are now, when they changed."""
    if alert is None:
        return {
            "status": OPEN,
            "toAccount": normalize_account_number(to_account),
            "payeeName": name,
            "matches": list(finding.matches),
            "keys": list(finding.keys),
            "raisedAt": now,
        }
    if alert.get("status") == CLEARED:
        return {"status": OPEN, "matches": list(finding.matches), "keys": list(finding.keys), "raisedAt": now}
    if list(finding.keys) != _strings(alert.get("keys")):
        return {"matches": list(finding.matches), "keys": list(finding.keys)}
    return None


FOR = {CLEAR: (OPEN, CONFIRMED), CONFIRM: (OPEN,), LIFT: (CONFIRMED,)}  # the statuses each is taken on


def decided(alert: Mapping[str, Any] | None, action: str) -> dict[str, Any]:
    """The fields compliance's ``action`` sets: ``clear`` an open alert or a confirmed one
    (not the listed party, or a mistake: what the list says now is decided); ``confirm`` an
    open one (the listed party); ``lift`` a confirmed one (the party delisted: nothing is
    decided, and what the list says of it again is refused and raised again; a clear made
    before the confirmation no longer stands). Raises `AlertRefused`."""
    if action not in ACTIONS:
        raise AlertRefused("invalid_request", f"the decision is one of {', '.join(ACTIONS)}")
    current = alert.get("status") if alert else None
    if current not in FOR[action]:
        raise AlertRefused("alert_not_open", f"the payee's alert is {current or 'not there'}: not for {action}")
    if action == CLEAR:
        cleared = sorted({*_strings((alert or {}).get("clearedKeys")), *_strings((alert or {}).get("keys"))})
        return {"status": CLEARED, "clearedKeys": cleared}
    if action == LIFT:
        return {"status": CLEARED, "clearedKeys": []}
    return {"status": CONFIRMED}


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list | tuple) else []
