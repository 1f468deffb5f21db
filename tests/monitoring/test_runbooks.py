"""The runbooks (docs/runbooks/): one per alert, named after it, reachable from the alert.

- every alert in monitoring/rules has an annotation runbook_url = docs/runbooks/ALERT.md,
  and that file exists; every runbook belongs to an alert, and the index lists them all;
- each runbook has the sections an on-call engineer looks for (what it means, impact,
  diagnose, mend, verify);
- every `bankctl ...` command line in a runbook parses with bankctl's real argparse parser
  (bankctl/__main__.py build_parser; nothing runs), so no runbook names a command, an option
  or a job that does not exist;
- the mends issue 16 names are in the runbooks that need them (DLQ replay, outbox relay,
  publish-pending requests, the audit, a payment's trace).

Companion tests show a wrong command line and an unknown placeholder being reported.
"""

from __future__ import annotations

import re

import pytest

from tests.monitoring import catalogue as mon
from tests.monitoring import queries as qs

ALERTS = {r["alert"]: r for p in mon.rule_files() for r in mon.rules_of(p) if "alert" in r}
RUNBOOK_FILES = sorted(p for p in qs.RUNBOOKS.glob("*.md") if p.name != "README.md")
SECTIONS = ("## What it means", "## Impact", "## Diagnose", "## Mend", "## Verify")


def test_every_alert_points_to_its_runbook_and_the_runbook_exists():
    problems = []
    for name, rule in sorted(ALERTS.items()):
        url = (rule.get("annotations") or {}).get("runbook_url")
        if url != f"docs/runbooks/{name}.md":
            problems.append(f"{name}: runbook_url is {url!r}")
        elif not (mon.REPO / url).is_file():
            problems.append(f"{name}: {url} does not exist")
    assert problems == []


def test_every_alert_has_a_severity_a_summary_and_a_description():
    problems = [
        f"{name}: {what}"
        for name, rule in sorted(ALERTS.items())
        for what, ok in (
            ("severity", (rule.get("labels") or {}).get("severity") in ("critical", "warning")),
            ("summary", bool((rule.get("annotations") or {}).get("summary"))),
            ("description", bool((rule.get("annotations") or {}).get("description"))),
        )
        if not ok
    ]
    assert problems == []


def test_every_runbook_belongs_to_an_alert_and_the_index_lists_every_one():
    assert {p.stem for p in RUNBOOK_FILES} == set(ALERTS)
    index = (qs.RUNBOOKS / "README.md").read_text()
    unlisted = [name for name in ALERTS if f"]({name}.md)" not in index]
    assert unlisted == []
    rows = dict(re.findall(r"^\| \[(\w+)\]\(\1\.md\) \| (\w+) \|", index, flags=re.M))
    wrong = {n: sev for n, sev in rows.items() if sev != ALERTS[n]["labels"]["severity"]}
    assert wrong == {}, "the index's severity differs from the rule's"


@pytest.mark.parametrize("path", RUNBOOK_FILES, ids=[p.stem for p in RUNBOOK_FILES])
def test_a_runbook_has_its_sections_and_names_its_alert_and_rule_file(path):
    text = path.read_text()
    assert text.startswith(f"# {path.stem}\n")
    missing = [s for s in SECTIONS if s not in text]
    assert missing == []
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions), "sections out of order"
    rule_file = next(p for p in mon.rule_files() if any(r.get("alert") == path.stem for r in mon.rules_of(p)))
    assert f"monitoring/rules/{rule_file.name}" in text


@pytest.mark.parametrize("path", [*RUNBOOK_FILES, qs.RUNBOOKS / "README.md"], ids=lambda p: p.stem)
def test_every_bankctl_command_in_a_runbook_parses(path):
    problems = [p for line in qs.bankctl_lines(path.read_text()) for p in qs.bankctl_problems(line)]
    assert problems == []


def test_the_runbooks_use_bankctl_and_the_mends_issue_16_names():
    lines = {p.stem: qs.bankctl_lines(p.read_text()) for p in RUNBOOK_FILES}
    assert sum(map(len, lines.values())) >= 40, "the runbooks hardly use bankctl"

    def has(runbook: str, pattern: str) -> bool:
        return any(re.fullmatch(pattern, line) for line in lines[runbook])

    expected = {
        "FjbMessageDeadLettered": [r"bankctl dlq list.*", r"bankctl dlq replay SEQ --by OFFICER --note REASON"],
        "NatsDeadLetterStreamGrowing": [r"bankctl dlq list", r"bankctl dlq replay SEQ --by OFFICER --note REASON"],
        "FjbOutboxBacklog": [r"bankctl jobs run relay-outbox"],
        "FjbPaymentNotFinal": [
            r"bankctl jobs run submit-due-payments",
            r"bankctl trace PAYMENT_ID",
            r"bankctl dlq replay SEQ --by OFFICER --note REASON",
        ],
        "FjbEdgeErrorRateHigh": [r"bankctl jobs run submit-due-payments"],
        "FjbAuditFailing": [r"bankctl audit", r"bankctl jobs run audit-ledger"],
        "FjbAuditNotRun": [r"bankctl jobs run audit-ledger"],
    }
    missing = [f"{rb}: {pat}" for rb, pats in expected.items() for pat in pats if not has(rb, pat)]
    assert missing == []
    # a stuck consumer: the runbooks name a partition's durable and the instance holding it
    for name in ("FjbConsumerStalled", "FjbConsumerBacklogGrowing", "FjbPaymentNotFinal"):
        text = (qs.RUNBOOKS / f"{name}.md").read_text()
        assert "-p" in text and "issue #14" not in text, name
    assert "partition-owners" in (qs.RUNBOOKS / "FjbConsumerStalled.md").read_text()


# ---- the checks find what is wrong ------------------------------------------------------
def test_a_bankctl_line_that_bankctl_refuses_is_reported():
    markdown = (
        "Run `bankctl dlq replay SEQ --by OFFICER --note REASON`, then `bankctl dlq replay` and"
        " `bankctl jobs run relay-outboxes`.\n"
        "```\nbankctl frobnicate --now\n.venv/bin/python -m bankctl audit --json\n```\n"
        "The tool is `bankctl` (`.venv/bin/python -m bankctl`); `bankctl trace PAYMENT` needs an id.\n"
    )
    lines = qs.bankctl_lines(markdown)
    assert lines == [
        "bankctl frobnicate --now",
        "bankctl audit --json",
        "bankctl dlq replay SEQ --by OFFICER --note REASON",
        "bankctl dlq replay",
        "bankctl jobs run relay-outboxes",
        "bankctl trace PAYMENT",
    ]
    problems = {line: qs.bankctl_problems(line) for line in lines}
    assert problems["bankctl dlq replay SEQ --by OFFICER --note REASON"] == []
    assert problems["bankctl audit --json"] == []
    assert "invalid choice" in problems["bankctl frobnicate --now"][0]
    assert "required" in problems["bankctl dlq replay"][0]
    assert "invalid choice: 'relay-outboxes'" in problems["bankctl jobs run relay-outboxes"][0]
    assert "unknown placeholder PAYMENT" in problems["bankctl trace PAYMENT"][0]
