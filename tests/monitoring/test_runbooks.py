"""The runbooks (docs/runbooks/): one per alert, named after it, reachable from the alert.

- every alert in monitoring/rules has an annotation runbook_url = docs/runbooks/ALERT.md,
  and that file exists; every runbook belongs to an alert, and the index lists them all;
- each runbook has the sections an on-call engineer looks for (what it means, impact,
  diagnose, mend, verify);
- every `bankctl ...` command line in a runbook parses with bankctl's real argparse parser
  (bankctl/__main__.py build_parser; nothing runs), so no runbook names a command, an option
  or a job that does not exist; likewise every `python -m MODULE ...` line (the production
  tools: dead letters, held payments, sanctions and payee alerts, the JetStream set-up,
  devstack) with its module's own parser, in the runbooks and in the alerts' annotations;
- no alert's annotation names bankctl: it reaches the local stack only (README, "Tools and
  where they reach"), and whoever is paged works on production;
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
            ("severity", (rule.get("labels") or {}).get("severity") in mon.severities_of(name)),
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


@pytest.mark.parametrize("path", [*RUNBOOK_FILES, qs.RUNBOOKS / "README.md"], ids=lambda p: p.stem)
def test_every_python_m_command_in_a_runbook_parses(path):
    """`dead_letters replay SEQ` without --by and --note, and the officers' tools with
    --project after their subcommand, were refused by the very tools they named (found in
    review): each line now goes through its module's own parser."""
    problems = [p for line in qs.python_m_lines(path.read_text()) for p in qs.python_m_problems(line)]
    assert problems == []


def test_the_alerts_point_at_production_commands_that_parse():
    """An annotation is read by whoever is paged, in production: bankctl reaches the local
    stack only; the runbooks' production commands do."""
    problems = []
    for name, rule in sorted(ALERTS.items()):
        for key, text in (rule.get("annotations") or {}).items():
            if re.search(r"\bbankctl\b", text):
                problems.append(f"{name}: its {key} names bankctl (the local stack's tool)")
            problems += [f"{name}: {p}" for line in qs.python_m_lines(text) for p in qs.python_m_problems(line)]
    assert problems == []
    replay = "fjordbank.runtime.dead_letters replay SEQ --by OFFICER --note REASON"
    for name in ("FjbMessageDeadLettered", "NatsDeadLetterStreamGrowing"):
        assert replay in qs.python_m_lines(ALERTS[name]["annotations"]["description"]), name
        assert replay in qs.python_m_lines((qs.RUNBOOKS / f"{name}.md").read_text()), name


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
    # a partition's lease is keyed by the service's NATS user (ownership.Ownership.key), not
    # the consumer's name: insights.p3 for insights-payments-p3
    for name in ("FjbConsumerStalled", "NatsConsumerPartitionStalled"):
        text = (qs.RUNBOOKS / f"{name}.md").read_text()
        assert "kv get partition-owners SERVICE.pN" in text and "partition-owners CONSUMER" not in text, name
        assert "insights.p3" in text, name


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


def test_a_python_m_line_its_module_refuses_is_reported():
    markdown = (
        "In production: `FJB_NATS_USER=admin python -m fjordbank.runtime.dead_letters replay SEQ`, or\n"
        "`.venv/bin/python -m fjordbank.runtime.held list --project PROJECT`, then `python -m\n"
        "fjordbank.runtime.held --project PROJECT list`.\n"
        "```\npython3 -m fjordbank.adapters.jetstream_setup --check --dry | tee out\n"
        "python -m fjordbank.nowhere --x\npython -m bankctl audit\n```\n"
        "`python -m fjordbank.runtime.dead_letters replay SEQ --by OFFICER --note REASON --when NOW`\n"
    )
    lines = qs.python_m_lines(markdown)
    assert lines == [
        "fjordbank.adapters.jetstream_setup --check --dry",
        "fjordbank.nowhere --x",
        "fjordbank.runtime.dead_letters replay SEQ",
        "fjordbank.runtime.held list --project PROJECT",
        "fjordbank.runtime.held --project PROJECT list",
        "fjordbank.runtime.dead_letters replay SEQ --by OFFICER --note REASON --when NOW",
    ]  # bankctl's line is bankctl_lines'
    problems = {line: qs.python_m_problems(line) for line in lines}
    assert problems["fjordbank.runtime.held --project PROJECT list"] == []
    assert "required: --by, --note" in problems["fjordbank.runtime.dead_letters replay SEQ"][0]
    assert "required: --project" in problems["fjordbank.runtime.held list --project PROJECT"][0]
    assert "unrecognized arguments: --dry" in problems["fjordbank.adapters.jetstream_setup --check --dry"][0]
    assert "no module fjordbank.nowhere" in problems["fjordbank.nowhere --x"][0]
    assert "unknown placeholder NOW" in problems[lines[-1]][0]
    assert qs.python_m_problems("fjordbank.topology --x") == [
        "python -m fjordbank.topology --x: fjordbank.topology has no main() to parse its command line with"
    ]
