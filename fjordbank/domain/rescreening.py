"""Customers screened again against each new sanctions list, and what compliance decides on
a customer the list now names (the rules; fjordbank.service_layer.rescreening does it).

Onboarding screens a person once. The EU's consolidated list changes several times a month,
and a customer listed after they were taken on must have their funds frozen "without delay"
(Council Regulation (EU) No 269/2014, art. 2; in Norway the sanctions regulations under
sanksjonsloven): so every customer is screened again, by the same rules, against each new
list (`screen_customer`), and what it finds is an **alert** per customer:

* **frozen**: the list names the customer (the name and the birth date: a ``hit``). Every
  open account of theirs is frozen at once: nothing is paid from it (payments, card
  purchases, standing orders, closing it), money may still come in (art. 7: a credit to a
  frozen account is frozen with it), and no account is opened or card issued. Compliance
  lifts it (``clear``) only for a customer shown not to be the listed person, or delisted.
* **open**: a name like a listed one whose birth date does not rule it out (``review``):
  nothing is frozen, and compliance decides: ``freeze`` (it is the person) or ``clear``.
* **cleared**: decided: not (or no longer) the listed person.

A list entry decided on a customer's alert (whatever the decision) does not alert again
for them with the same verdict while the list says the same of it (`match_key`,
`decided_keys`): the same entry as a ``hit`` where it was a ``review`` (the list added the
birth date that now matches), an entry changed since, or one delisted and listed again
(fjordbank.service_layer.rescreening forgets the delisted) does. One decided at onboarding
(an application in review, approved) is known by entry and verdict only, as onboarding
recorded it: it alerts again as a ``hit``, not when its content changes.
Compliance confirms a freeze the rescreen made with ``freeze`` (once), and lifts one with
``clear``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fjordbank.domain.errors import Refused
from fjordbank.domain.sanctions import SanctionsList, ScreeningMatch, entry_key, shrunk_too_far

OPEN = "open"
FROZEN = "frozen"
CLEARED = "cleared"
STATUSES = (OPEN, FROZEN, CLEARED)
FREEZE = "freeze"
CLEAR = "clear"
ACTIONS = (FREEZE, CLEAR)
NOTE_LENGTH = (3, 500)  # a decision's note: why (kept with it)


class AlertRefused(Refused):
    """A compliance decision the bank refuses (no such alert, already decided, ...)."""

    code = "alert_decision_refused"


def version(updated: dt.datetime | None) -> str:
    """An alert as an officer saw it: the time it was last written (`seen`)."""
    return updated.isoformat() if updated is not None else ""


def seen(version_seen: object, updated: dt.datetime | None) -> None:
    """A decision on the alert as the officer listed it (``version_seen``, None: not said)
    is refused when the alert was written since: a match the rescreen found meanwhile (a
    hit that froze the customer) would otherwise be cleared by a decision on what it said
    before. Raises `AlertRefused` (``alert_changed``)."""
    if version_seen is not None and version_seen != version(updated):
        raise AlertRefused(
            "alert_changed", "the alert changed since it was listed: list it again and decide on what it says now"
        )


def list_refused(baseline: Mapping[str, Any], sanctions: SanctionsList, *, where: str) -> str | None:
    """Why ``sanctions`` may not be screened against, or None: a list under `MIN_KEPT` of the
    entries the ``baseline`` (the data of the list last screened against every customer:
    fjordbank.service_layer.rescreening.BASELINE) was screened with is a truncated export or
    a wrong file (`sanctions.shrunk_too_far`), unless compliance took it (``acceptShrunk``
    names its version, on the document ``where``). The rescreen refuses to walk it, and onboarding to load it: it took
    one, and approved the listed persons the file had lost while the rescreen was stuck on
    it (found in review, 2026-12-07)."""
    screened_before = baseline.get("entries")
    if not isinstance(screened_before, list) or baseline.get("acceptShrunk") == sanctions.version:
        return None
    if not shrunk_too_far(len(sanctions), len(screened_before)):
        return None
    return (
        f"list {sanctions.version} refused: {len(sanctions)} entries against {len(screened_before)} "
        f"screened before (truncated or wrong file?); to take it, set acceptShrunk={sanctions.version} "
        f"on {where}"
    )


def match_key(entity_id: str, verdict: str, entry: str | None = None) -> str:
    """A decided match: the entry and the verdict; with ``entry`` (its `entry_key`), that
    entry's content as well."""
    return f"{entity_id}:{verdict}" if entry is None else f"{entity_id}:{verdict}:{entry}"


def decided_keys(screening: Iterable[Any], seen: Iterable[Any]) -> frozenset[str]:
    """The entries already decided for a customer: the onboarding screening's matches
    (``kyc.screening``; a customer approved from review had them decided by the reviewer;
    records made before matches carried a verdict were ``review``: a ``hit`` was refused),
    by entry and verdict; and every match an alert of theirs raised (``seen``), by entry,
    verdict and the entry's content, so an entry the list changes (a birth date added, the
    person listed again after a delisting) is raised again."""
    keys = {str(k) for k in seen if isinstance(k, str)}
    for match in screening:
        if isinstance(match, Mapping) and isinstance(match.get("entity_id"), str):
            keys.add(match_key(match["entity_id"], str(match.get("verdict") or "review")))
    return frozenset(keys)


@dataclass(frozen=True)
class Finding:
    """What a customer's screening found that was not decided before: the matches and
    their keys (`match_key` with the entry's content), in the same order."""

    outcome: Literal["hit", "review"]
    matches: tuple[ScreeningMatch, ...]
    keys: tuple[str, ...]

    @property
    def entries(self) -> tuple[str, ...]:
        """The `entry_key` of each match's entry (the third part of its key), where known."""
        return tuple(parts[2] for k in self.keys if len(parts := k.split(":")) == 3)

    def records(self) -> list[dict[str, Any]]:
        return [{**m._asdict(), "key": k} for m, k in zip(self.matches, self.keys, strict=True)]

    def undecided(self, decided: frozenset[str]) -> Finding | None:
        """What of this is still undecided against ``decided`` (None: nothing)."""
        pairs = [
            (m, k)
            for m, k in zip(self.matches, self.keys, strict=True)
            if k not in decided and match_key(m.entity_id, m.verdict) not in decided
        ]
        if not pairs:
            return None
        matches = tuple(m for m, _ in pairs)
        outcome: Literal["hit", "review"] = "hit" if any(m.verdict == "hit" for m in matches) else "review"
        return Finding(outcome, matches, tuple(k for _, k in pairs))


def screen_customer(kyc: Mapping[str, Any], sanctions: SanctionsList, decided: frozenset[str]) -> Finding | None:
    """The customer as their application recorded them (``kyc/{uid}``: name, birth date,
    the kind of identity number) screened as onboarding screens them; None when nothing new
    is found. Raises ValueError for a record with no name to screen."""
    name = kyc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("the customer's record has no name to screen")
    try:
        born: dt.date | None = dt.date.fromisoformat(str(kyc.get("birthDate")))
    except ValueError:
        born = None  # screened by the name alone: a listed name is then a review, never cleared
    # a D-number may be dated on its registration day: only its year vouches for the date
    result = sanctions.screen(name, born, year_only=kyc.get("idKind") == "dnr")
    if not result.matches:
        return None
    keys = []
    for m in result.matches:
        entry = sanctions.entry(m.entity_id)
        keys.append(match_key(m.entity_id, m.verdict, entry_key(entry) if entry is not None else None))
    return Finding("review", result.matches, tuple(keys)).undecided(decided)


def raised(current: str | None, finding: Finding) -> str:
    """An alert's status once ``finding`` is raised on it: a hit freezes, a review opens it
    (again, if it was cleared); a frozen customer stays frozen until compliance decides."""
    if current == FROZEN or finding.outcome == "hit":
        return FROZEN
    return OPEN


def decided(current: object, action: str, *, confirmed: bool = False) -> str:
    """The status compliance's ``action`` leaves: ``freeze`` an open alert, or confirm the
    freeze of one the rescreen froze (``confirmed``: it was confirmed or frozen by a
    decision before); ``clear`` an open or frozen one. Raises `AlertRefused`."""
    if action not in ACTIONS:
        raise AlertRefused("invalid_request", f"the decision is one of {', '.join(ACTIONS)}")
    if current not in (OPEN, FROZEN):
        raise AlertRefused("alert_not_open", f"the alert is {current or 'not there'}: nothing to decide")
    if action == FREEZE:
        if current == FROZEN and confirmed:
            raise AlertRefused("alert_not_open", "the customer's freeze was decided already")
        return FROZEN
    return CLEARED


def checked_note(by: object, note: object) -> tuple[str, str]:
    """Who decides and why, both kept with the decision. Raises `AlertRefused`."""
    low, high = NOTE_LENGTH
    if not isinstance(by, str) or not 2 <= len(by.strip()) <= 100 or not by.isprintable():
        raise AlertRefused("invalid_request", "by: who decides (2-100 characters)")
    if not isinstance(note, str) or not low <= len(note.strip()) <= high or not note.isprintable():
        raise AlertRefused("invalid_request", f"note: why ({low}-{high} characters)")
    return by.strip(), note.strip()
