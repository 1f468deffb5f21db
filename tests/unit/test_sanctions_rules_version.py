"""`sanctions.RULES` changes whenever the screening's outcomes do: the rescreen walks every
customer again under new rules only when it changes (fjordbank.service_layer.rescreening),
so a rule changed without it would never reach the customers screened clear before (found in
review, 2026-12-06). This screens a fixed set of names made from the sample list's aliases
(as listed, reordered, a letter dropped, among more words, one word, with and without the
birth date) and compares what is found with what was found when RULES was last set."""

from __future__ import annotations

import hashlib
from datetime import date

from fjordbank.domain import sanctions
from tests.unit.test_rescreening import SAMPLE

# RULES -> the fingerprint of the outcomes below under those rules. When this test fails
# because the outcomes changed on purpose: set sanctions.RULES to today's date and add it
# here with the new fingerprint (the failure prints it).
FINGERPRINTS = {"2026-12-06": "4b815b350f77", "2026-12-07": "ffd3833c7164", "2026-12-07b": "e2ddb3793d1d"}


def _variants(alias: str) -> list[str]:
    words = alias.split()
    out = [alias, " ".join(reversed(words)), words[0], f"Kari {alias} Hansen", f"{alias} AS"]
    if len(alias) > 4:
        cut = len(alias) // 2
        out.append(alias[:cut] + alias[cut + 1 :])
    # written around the screening (found in review, 2026-12-07): words split by spaces,
    # digits for letters, ø and å the ASCII way, modifier letters inside words
    out.append(" ".join(w if len(w) < 6 else f"{w[:2]} {w[2:-2]} {w[-2:]}" for w in words))
    out.append(alias.replace("o", "0").replace("i", "1"))
    out.append(alias.replace("ø", "oe").replace("Ø", "Oe").replace("å", "aa").replace("æ", "ae"))
    out.append(" ".join(w[:1] + "\u02d0" + w[1:] for w in words))
    # written around it again (found in review, 2026-12-07): the words run together, a
    # middle name left out of them, a first name cut to its initial
    out.append("".join(words))
    if len(words) >= 3:
        out.append(words[0] + words[-1])
    out.append(" ".join([f"{words[0][:1]}.", *words[1:]]))
    if len(words) >= 3:  # the first name as its initial, the middle one left out
        out.append(f"{words[0][:1]}. {words[-1]}")
    return out


def outcomes() -> list[tuple[str, str, str, tuple[tuple[str, str], ...]]]:
    found = []
    for entry in SAMPLE.entries:
        born = entry.birth_dates[0] if entry.birth_dates else None
        for alias in entry.names:
            for name in _variants(alias):
                for birth in (born, date(1901, 1, 1), None):
                    result = SAMPLE.screen(name, birth)
                    matches = tuple(sorted((m.entity_id, m.verdict) for m in result.matches))
                    found.append((name, str(birth), result.outcome, matches))
    return found


def fingerprint() -> str:
    return hashlib.sha256(repr(outcomes()).encode()).hexdigest()[:12]


def test_the_rules_version_changes_with_the_outcomes():
    found = outcomes()
    assert len(found) > 100 and {o for _n, _b, o, _m in found} == {"clear", "review", "hit"}
    now = fingerprint()
    assert FINGERPRINTS.get(sanctions.RULES) == now, (
        f"the screening's outcomes are {now} under RULES {sanctions.RULES!r}, recorded as "
        f"{FINGERPRINTS.get(sanctions.RULES)}: if the rules changed on purpose, set sanctions.RULES to a new "
        f"version and record {now} for it in FINGERPRINTS (the rescreen then walks every customer again)"
    )
