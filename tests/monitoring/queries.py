"""Helpers of the dashboard, runbook and SLO tests (tests/monitoring/catalogue.py has the
catalogue and the rules): the label values a query matches on, checked against the
catalogue's `label_values`; promtool's parser on a batch of bare PromQL queries; the
dashboards' queries; the `bankctl` command lines of a markdown file, parsed by bankctl's own
argparse parser, and its `python -m MODULE ...` command lines, parsed by each module's.

Each check returns what is wrong as a list of sentences, so a test asserts the list is
empty and its companion test shows the same function finding a planted fault.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import json
import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from fjordbank import topology
from tests.monitoring import catalogue as mon

DASHBOARDS = mon.MONITORING / "dashboards"
GRAFANA = DASHBOARDS / "grafana"
CLOUD = DASHBOARDS / "cloud-monitoring"
RUNBOOKS = mon.REPO / "docs" / "runbooks"
SLO_DOC = mon.REPO / "docs" / "slo.md"

# label values known beyond the catalogue's `label_values`: every durable consumer's name
EXTRA_VALUES = {"consumer": {c.durable for c in topology.CONSUMERS}}


# ---- label values -----------------------------------------------------------------------
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_PLAIN_ALTERNATION = re.compile(r"[A-Za-z0-9_.\-]+(\|[A-Za-z0-9_.\-]+)*")


def label_values(cat: mon.Catalogue) -> dict[str, dict[str, set[str]]]:
    """Queryable series name -> label -> the values the catalogue lists for it."""
    by_family: dict[str, dict[str, set[str]]] = {}
    for body in cat.raw["sources"].values():
        for entry in body["metrics"]:
            values = {k: set(map(str, v)) for k, v in (entry.get("label_values") or {}).items()}
            by_family[entry["name"]] = values
    return {name: by_family.get(m.name, {}) for name, m in cat.queryable().items()}


def _values_of(op: str, value: str) -> list[str] | None:
    """The literal values a matcher names, or None for a regex that is not a plain list."""
    if op in ("=", "!="):
        return [value]
    if _PLAIN_ALTERNATION.fullmatch(value):
        return value.split("|")
    return None


def label_value_problems(text: str, cat: mon.Catalogue, known: dict | None = None) -> list[str]:
    """Every `name{label="value"}` (also !=, and =~ / !~ with a plain a|b|c list) in ``text``
    whose label has listed values (the catalogue's label_values, EXTRA_VALUES) must name one
    of them: a typo in a matcher selects nothing and the rule stays quiet for ever."""
    known = label_values(cat) if known is None else known
    problems = []
    for sel in _SELECTOR.finditer(text):
        name = sel.group(1)
        listed = known.get(name, {})
        for label, op, value in _MATCHER.findall(sel.group(2)):
            allowed = listed.get(label) or EXTRA_VALUES.get(label)
            if not allowed:
                continue
            for v in _values_of(op, value) or ():
                if v not in allowed:
                    problems.append(f'{name}{{{label}{op}"{value}"}}: {v!r} is not one of {sorted(allowed)}')
    return problems


# ---- promtool on bare queries -----------------------------------------------------------
def promtool_parse(queries: Iterable[str], workdir: Path) -> mon.Run:
    """`promtool check rules` on a rules file with one recording rule per query: promtool
    parses each expression (and reports the one that does not parse with its rule name)."""
    rules = [{"record": f"query:check:n{i}", "expr": q} for i, q in enumerate(queries)]
    path = workdir / "queries.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}, sort_keys=False))
    return mon.check_rules(path)


# ---- dashboards -------------------------------------------------------------------------
@dataclass(frozen=True)
class DashboardQuery:
    file: str  # relative to monitoring/dashboards
    panel: str
    expr: str


def grafana_files() -> list[Path]:
    return sorted(GRAFANA.glob("*.json"))


def cloud_files() -> list[Path]:
    return sorted(CLOUD.glob("*.json"))


def grafana_queries(path: Path) -> Iterator[DashboardQuery]:
    for panel in json.loads(path.read_text())["panels"]:
        for target in panel.get("targets") or ():
            yield DashboardQuery(str(path.relative_to(DASHBOARDS)), panel["title"], target["expr"])


def cloud_queries(path: Path) -> Iterator[DashboardQuery]:
    for tile in json.loads(path.read_text())["mosaicLayout"]["tiles"]:
        widget = tile["widget"]
        queries = []
        if "xyChart" in widget:
            queries = [ds["timeSeriesQuery"] for ds in widget["xyChart"]["dataSets"]]
        elif "scorecard" in widget:
            queries = [widget["scorecard"]["timeSeriesQuery"]]
        for query in queries:
            yield DashboardQuery(str(path.relative_to(DASHBOARDS)), widget["title"], query["prometheusQuery"])


def all_dashboard_queries() -> list[DashboardQuery]:
    out = [q for p in grafana_files() for q in grafana_queries(p)]
    out += [q for p in cloud_files() for q in cloud_queries(p)]
    return out


# ---- bankctl command lines in markdown --------------------------------------------------
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_INLINE = re.compile(r"`([^`\n]+)`")
_BANKCTL = re.compile(r"(?:^|\s|-m\s+)(bankctl\s+\S.*)$")
# placeholders the runbooks write in capitals, and a value of the right shape for each
PLACEHOLDERS = {
    "SEQ": "7",
    "PAYMENT_ID": "p" + "0" * 34,
    "CONSUMER": "ledger",
    "ACCOUNT": "97100000002",
    "CUSTOMER": "kari@example.no",
    "OFFICER": "Kari Compliance",
    "REASON": "another company",
    "PAYEE_KEY": "0" * 32,
    "NAME": "Hansen Rør AS",
    "VERSION": "2026-12-05T10:00:00.123456+00:00",
    "PROJECT": "fjordbank-prod",
    "UID": "u" + "0" * 27,
    "SERVICE": "ledger",
}
_PLACEHOLDER = re.compile(r"[A-Z][A-Z_]+")


def code_texts(markdown: str) -> Iterator[str]:
    """The text of every fenced code block line and every inline code span."""
    for block in _FENCE.finditer(markdown):
        yield from block.group(1).splitlines()
    yield from _INLINE.findall(_FENCE.sub("", markdown))


def bankctl_lines(markdown: str) -> list[str]:
    """Every `bankctl ...` command line in the markdown's code (a bare `bankctl`, the tool's
    name, is no command line)."""
    out = []
    for text in code_texts(markdown):
        m = _BANKCTL.search(text.strip())
        if m:
            out.append(m.group(1).strip())
    return out


def bankctl_problems(line: str) -> list[str]:
    """Parse one `bankctl ...` line with bankctl's own parser (nothing runs)."""
    from bankctl.__main__ import build_parser

    try:
        words = shlex.split(line)
    except ValueError as exc:
        return [f"{line}: {exc}"]
    argv = []
    for word in words[1:]:
        if _PLACEHOLDER.fullmatch(word):
            if word not in PLACEHOLDERS:
                return [f"{line}: unknown placeholder {word} (known: {sorted(PLACEHOLDERS)})"]
            word = PLACEHOLDERS[word]
        argv.append(word)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):  # 0: --help
            return [f"{line}: bankctl refuses it (exit {exc.code}): {err.getvalue().strip()}"]
    return []


# ---- `python -m MODULE ...` command lines in markdown -----------------------------------
# a module run with -m, and what follows it up to the end of the command (a shell operator)
_PYTHON_M = re.compile(r"(?:^|[\s/])python3?\s+-m\s+([A-Za-z_][\w.]*)([^|;&<>]*)")
# bankctl has its own check (bankctl_lines), with the local stack's placeholders
_OWN_CHECK = {"bankctl"}


def code_spans(markdown: str) -> Iterator[str]:
    """Like `code_texts`, but an inline code span may run over a line break (as Markdown
    reads it: the break is a space), so a command wrapped in the middle is still seen."""
    for block in _FENCE.finditer(markdown):
        yield from block.group(1).splitlines()
    for span in re.findall(r"`([^`]+)`", _FENCE.sub("", markdown)):
        yield " ".join(span.split())


def python_m_lines(text: str) -> list[str]:
    """Every `python -m MODULE ...` command line in the markdown's code, as ``MODULE
    ARGS...`` (the environment or interpreter path before it dropped). bankctl's are
    `bankctl_lines`'."""
    out = []
    for code in code_spans(text):
        for m in _PYTHON_M.finditer(code):
            if m.group(1) not in _OWN_CHECK:
                out.append(f"{m.group(1)}{m.group(2).rstrip()}")
    return out


class _Parsed(Exception):
    """Raised by the patched parse_args once the command line parsed: main() runs no further."""


def _entry_module(name: str) -> object:
    """What `python -m NAME` runs: the module, or a package's __main__."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise ModuleNotFoundError(name)
    return importlib.import_module(f"{name}.__main__" if spec.submodule_search_locations is not None else name)


def python_m_problems(line: str) -> list[str]:
    """Parse one ``MODULE ARGS...`` line (from `python_m_lines`) with the module's own
    argparse parser: its ``main(argv)`` is called with ArgumentParser.parse_args made to stop
    it right after a successful parse, so nothing runs (no connection, no Firestore).
    Placeholders in capitals are PLACEHOLDERS'."""
    try:
        module_name, *words = shlex.split(line, comments=True)
    except ValueError as exc:
        return [f"python -m {line}: {exc}"]
    argv = []
    for word in words:
        if _PLACEHOLDER.fullmatch(word):
            if word not in PLACEHOLDERS:
                return [f"python -m {line}: unknown placeholder {word} (known: {sorted(PLACEHOLDERS)})"]
            word = PLACEHOLDERS[word]
        argv.append(word)
    try:
        module = _entry_module(module_name)
    except ImportError as exc:
        return [f"python -m {line}: no module {module_name} ({exc})"]
    main = getattr(module, "main", None)
    if not callable(main):
        return [f"python -m {line}: {module_name} has no main() to parse its command line with"]

    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self: argparse.ArgumentParser, args: object = None, namespace: object = None) -> None:
        original(self, args, namespace)  # type: ignore[call-overload]
        raise _Parsed()

    err = io.StringIO()
    try:
        argparse.ArgumentParser.parse_args = parse_then_stop  # type: ignore[assignment, method-assign]
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            main(argv)
    except _Parsed:
        return []
    except SystemExit as exc:
        if exc.code in (0, None):  # --help
            return []
        return [f"python -m {line}: {module_name} refuses it (exit {exc.code}): {err.getvalue().strip()}"]
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
    return [f"python -m {line}: {module_name}'s main() returned without parsing a command line"]
