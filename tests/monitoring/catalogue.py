"""Helpers of the monitoring tests: the metrics catalogue (monitoring/metrics.yaml), the
metrics the code declares (read from its AST), the metrics a /metrics page exposes, the
metric names a PromQL expression uses, and promtool.

Each check returns what is wrong as a list of sentences, so a test asserts the list is
empty and its companion test shows the same function finding a planted fault.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
CATALOGUE = MONITORING / "metrics.yaml"
RULES = MONITORING / "rules"
PROMTOOL = REPO / ".monitoring-tools" / "promtool"
INSTALL_PROMTOOL = "bash scripts/monitoring_tools.sh"
# An alert's severity: critical pages, warning is a ticket (monitoring/README.md). Watchdog
# (alerting.rules.yaml) always fires, with severity none: the Alertmanager sends it to the
# dead man's switch only (monitoring/alertmanager), which pages when it stops.
SEVERITIES = ("critical", "warning")
ALWAYS_FIRING = {"Watchdog": "none"}


def severities_of(alert: str) -> tuple[str, ...]:
    """The severities an alert of this name may carry."""
    return (ALWAYS_FIRING[alert],) if alert in ALWAYS_FIRING else SEVERITIES


# where the services' and the functions' code lives (functions/ holds a copy of fjordbank/
# and a venv: only its own modules are read)
CODE_DIRS = ("fjordbank", "run_services", "bankctl")
CODE_FILES_GLOBS = ("functions/*.py",)

TYPES = {"counter", "gauge", "histogram", "summary", "info", "stateset"}
PROMETHEUS_CLIENT_TYPES = {
    "Counter": "counter",
    "Gauge": "gauge",
    "Histogram": "histogram",
    "Summary": "summary",
    "Info": "info",
    "Enum": "stateset",
}
# series a histogram or summary family is queried by
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
# a Cloud Logging log-based metric NAME as PromQL (Cloud Monitoring, GMP) names it: a DELTA
# counter keeps its name (no _total)
LOG_METRIC_PREFIX = "logging_googleapis_com:user_"


# ---- the catalogue ----------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    name: str
    type: str
    labels: tuple[str, ...]
    source: str
    created_series: bool = False
    log_metric: str | None = None  # a log-based metric: the google_logging_metric's name


@dataclass(frozen=True)
class Catalogue:
    metrics: dict[str, Metric]
    missing: tuple[str, ...]
    target_labels: tuple[str, ...]
    service_jobs: tuple[str, ...]
    raw: dict
    # source -> the scrape jobs that expose every metric of it (sources the services'
    # code declares; the others are the exporter's, Prometheus's or log-based)
    exposed_by: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def source(self, name: str) -> list[Metric]:
        return [m for m in self.metrics.values() if m.source == name]

    def scraped_sources(self) -> tuple[str, ...]:
        """The sources the services' code declares (those with `exposed_by`)."""
        return tuple(self.exposed_by)

    def log_based(self) -> list[Metric]:
        return [m for m in self.metrics.values() if m.log_metric]

    def queryable(self) -> dict[str, Metric]:
        """Every series name a query may use: the metric's name, and a histogram's or a
        summary's _bucket/_sum/_count."""
        out = {}
        for m in self.metrics.values():
            out[m.name] = m
            for suffix in SUFFIXES.get(m.type, ()):
                out[m.name + suffix] = m
        return out


def load_catalogue(path: Path = CATALOGUE) -> Catalogue:
    raw = yaml.safe_load(path.read_text())
    metrics: dict[str, Metric] = {}
    for source, body in raw["sources"].items():
        for entry in body["metrics"]:
            name = entry["name"]
            if name in metrics:
                raise ValueError(f"{name} is catalogued twice ({metrics[name].source} and {source})")
            metrics[name] = Metric(
                name=name,
                type=entry["type"],
                labels=tuple(entry.get("labels") or ()),
                source=source,
                created_series=bool(entry.get("created_series")),
                log_metric=entry.get("log_metric"),
            )
    return Catalogue(
        metrics=metrics,
        missing=tuple(m["name"] for m in raw.get("missing") or ()),
        target_labels=tuple(raw.get("target_labels") or ()),
        service_jobs=tuple(raw["scrape_jobs"]["services"]["jobs"]),
        raw=raw,
        exposed_by={s: tuple(b["exposed_by"]) for s, b in raw["sources"].items() if b.get("exposed_by")},
    )


def _entry_problems(source: str, entry: dict) -> list[str]:
    """One catalogue entry: its keys, a known type, and a name as the type is queried."""
    problems = []
    name = entry.get("name", "?")
    for key in ("name", "type", "labels", "meaning"):
        if key not in entry:
            problems.append(f"{source}/{name}: no {key}")
    if entry.get("type") not in TYPES:
        problems.append(f"{name}: unknown type {entry.get('type')!r}")
    if entry.get("log_metric"):
        expected = LOG_METRIC_PREFIX + entry["log_metric"]
        if name != expected:
            problems.append(f"{name}: a log-based metric is queried as {expected}")
        if entry.get("type") != "counter":
            problems.append(f"{name}: the log-based metrics are counters")
    elif entry.get("type") == "counter" and not name.endswith("_total"):
        problems.append(f"{name}: a counter is queried as <name>_total")
    if entry.get("type") != "counter" and name.endswith("_total"):
        problems.append(f"{name}: only counters end in _total")
    if entry.get("type") in ("histogram", "summary") and name.endswith(SUFFIXES["histogram"]):
        problems.append(f"{name}: catalogue a histogram or summary by its family name")
    return problems


def catalogue_problems(cat: Catalogue) -> list[str]:
    problems = []
    for source, body in cat.raw["sources"].items():
        for job in body.get("exposed_by") or ():
            if job not in cat.service_jobs:
                problems.append(f"{source}: exposed_by names {job!r}, not a service scrape job")
        for entry in body["metrics"]:
            problems += _entry_problems(source, entry)
    for name in cat.missing:
        if name in cat.metrics:
            problems.append(f"{name} is both catalogued and listed as missing")
    return problems


# ---- the code ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Declared:
    name: str  # as queried: a counter with _total, an Info with _info
    type: str
    labels: tuple[str, ...]
    where: str


def code_files(repo: Path = REPO) -> list[Path]:
    files = [p for d in CODE_DIRS for p in sorted((repo / d).rglob("*.py"))]
    files += [p for g in CODE_FILES_GLOBS for p in sorted(repo.glob(g))]
    return [p for p in files if "__pycache__" not in p.parts]


def _literal_strings(node: ast.expr | None) -> tuple[str, ...] | None:
    if node is None:
        return ()
    if isinstance(node, ast.List | ast.Tuple) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
    ):
        return tuple(e.value for e in node.elts)  # type: ignore[attr-defined]
    return None


def _imported_names(tree: ast.AST) -> tuple[dict[str, str], set[str]]:
    """(local name of each metric class imported from prometheus_client -> its metric type,
    local names of the prometheus_client module itself)."""
    classes: dict[str, str] = {}
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "prometheus_client":
            for alias in node.names:
                if alias.name in PROMETHEUS_CLIENT_TYPES:
                    classes[alias.asname or alias.name] = PROMETHEUS_CLIENT_TYPES[alias.name]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "prometheus_client":
                    modules.add(alias.asname or alias.name)
    return classes, modules


def _metric_kind(func: ast.expr, classes: dict[str, str], modules: set[str]) -> str | None:
    """The metric type a call constructs (`Counter(...)`, `prometheus_client.Gauge(...)`), or None."""
    if isinstance(func, ast.Name) and func.id in classes:
        return classes[func.id]
    if (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id in modules
        and func.attr in PROMETHEUS_CLIENT_TYPES
    ):
        return PROMETHEUS_CLIENT_TYPES[func.attr]
    return None


def _name_prefix(kw: dict[str, ast.expr], at: str, metric: str) -> tuple[list[str], list[str]]:
    """(the literal namespace and subsystem a declaration gives, in that order; what cannot
    be read: the first that is not a literal, which ends the reading)."""
    parts = []
    for key in ("namespace", "subsystem"):
        value = kw.get(key)
        if value is not None:
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                return parts, [f"{at}: {metric} has a {key} that is not a literal"]
            if value.value:
                parts.append(value.value)
    return parts, []


def _declaration(node: ast.Call, kind: str, where: str) -> tuple[Declared | None, list[str]]:
    """The metric one constructor call declares (None when its name or labels cannot be
    read), and what of it cannot be read."""
    kw = {k.arg: k.value for k in node.keywords if k.arg}
    at = f"{where}:{node.lineno}"
    name_node = node.args[0] if node.args else kw.get("name")
    if not (isinstance(name_node, ast.Constant) and isinstance(name_node.value, str)):
        return None, [f"{at}: a {kind} whose name is not a literal string"]
    labels = _literal_strings(node.args[2] if len(node.args) > 2 else kw.get("labelnames"))
    if labels is None:
        return None, [f"{at}: {name_node.value} has labels that are not a literal list"]
    parts, unreadable = _name_prefix(kw, at, name_node.value)
    name = "_".join([*parts, name_node.value])
    if kind == "counter":
        name = name.removesuffix("_total") + "_total"
    elif kind == "info":
        name += "_info"
    return Declared(name=name, type=kind, labels=labels, where=at), unreadable


def declared_in_source(source: str, where: str) -> tuple[list[Declared], list[str]]:
    """prometheus_client metrics a module declares, and the declarations it cannot read
    (a name or labels that are not literals)."""
    tree = ast.parse(source)
    classes, modules = _imported_names(tree)
    found: list[Declared] = []
    unreadable: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        kind = _metric_kind(node.func, classes, modules)
        if kind is None:
            continue
        declared, problems = _declaration(node, kind, where)
        unreadable += problems
        if declared is not None:
            found.append(declared)
    return found, unreadable


def declared_in_code(files: Iterable[Path]) -> tuple[list[Declared], list[str]]:
    found: list[Declared] = []
    unreadable: list[str] = []
    for path in files:
        text = path.read_text()
        if "prometheus_client" not in text:
            continue
        f, u = declared_in_source(text, str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path))
        found += f
        unreadable += u
    return found, unreadable


def code_vs_catalogue(declared: list[Declared], cat: Catalogue, *, sources: Iterable[str] | None = None) -> list[str]:
    """Every declared metric is catalogued alike; every metric of ``sources`` (default: the
    scraped ones, cat.scraped_sources()) is still declared."""
    problems = []
    for d in declared:
        m = cat.metrics.get(d.name)
        if m is None:
            problems.append(f"{d.where}: {d.name} ({d.type}) is not in monitoring/metrics.yaml")
            continue
        if m.type != d.type:
            problems.append(f"{d.where}: {d.name} is a {d.type} in the code, a {m.type} in the catalogue")
        if set(m.labels) != set(d.labels):
            problems.append(
                f"{d.where}: {d.name} has labels {sorted(d.labels)} in the code, {sorted(m.labels)} in the catalogue"
            )
    in_code = {d.name for d in declared}
    for source in cat.scraped_sources() if sources is None else sources:
        for m in cat.source(source):
            if m.name not in in_code:
                problems.append(f"{m.name} is catalogued under {source} but no code declares it any more")
    return problems


# ---- a /metrics page --------------------------------------------------------------------
@dataclass(frozen=True)
class Exposed:
    name: str  # as queried
    type: str
    labels: frozenset[str]


def exposed_metrics(text: str) -> dict[str, Exposed]:
    """The metrics of a Prometheus text exposition, by the names queries use. A family is
    listed even without samples (a labelled metric before its first observation). The
    `<family>_created` gauges prometheus_client adds go with their counter or histogram."""
    families = list(text_string_to_metric_families(text))
    bases = {f.name for f in families if f.type in ("counter", "histogram", "summary")}
    out: dict[str, Exposed] = {}
    for f in families:
        if f.type == "gauge" and f.name.endswith("_created") and f.name.removesuffix("_created") in bases:
            continue
        name = f.name + "_total" if f.type == "counter" else f.name
        labels = frozenset(k for s in f.samples for k in s.labels if k not in ("le", "quantile"))
        out[name] = Exposed(name=name, type=f.type, labels=labels)
    return out


def scrape_vs_catalogue(pages: dict[str, dict[str, Exposed]], cat: Catalogue, sources: Iterable[str]) -> list[str]:
    """pages: service -> its exposed metrics. Every exposed metric must be catalogued with
    its type and (a subset of) its labels; every metric of `sources` must be exposed by
    some service."""
    problems = []
    for service, exposed in sorted(pages.items()):
        for e in exposed.values():
            m = cat.metrics.get(e.name)
            if m is None:
                problems.append(f"{service} exposes {e.name} ({e.type}), which is not in monitoring/metrics.yaml")
                continue
            if e.type != m.type and not (e.type == "gauge" and m.type in ("info", "stateset")):
                problems.append(f"{service} exposes {e.name} as a {e.type}; the catalogue says {m.type}")
            extra = e.labels - set(m.labels)
            if extra:
                problems.append(f"{service} exposes {e.name} with labels {sorted(extra)} the catalogue does not list")
    everywhere = set().union(*(p.keys() for p in pages.values())) if pages else set()
    for source in sources:
        for m in cat.source(source):
            if m.name not in everywhere:
                problems.append(f"{m.name} ({source}) is catalogued but no running service exposes it")
    return problems


def exposure_problems(pages: dict[str, dict[str, Exposed]], cat: Catalogue) -> list[str]:
    """Every metric of a source with `exposed_by` is on the /metrics page of each of those
    jobs (a job not scraped is reported too)."""
    problems = []
    for source, jobs in cat.exposed_by.items():
        for job in jobs:
            if job not in pages:
                problems.append(f"{source}: no /metrics page of {job}")
                continue
            for m in cat.source(source):
                if m.name not in pages[job]:
                    problems.append(f"{job} does not expose {m.name} ({source})")
    return problems


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a Prometheus text exposition: (series name, labels, value)."""
    return [(s.name, dict(s.labels), s.value) for f in text_string_to_metric_families(text) for s in f.samples]


# ---- PromQL -----------------------------------------------------------------------------
KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_TOKEN = re.compile(r"[0-9.][A-Za-z0-9_.]*|([A-Za-z_:][A-Za-z0-9_:]*)(?:@@(\d+))?")
NAMELESS = "{}"


@dataclass(frozen=True)
class Ref:
    name: str
    labels: tuple[str, ...]  # label names in its matchers


def metric_refs(expr: str) -> list[Ref]:
    """The series names a PromQL expression selects, crudely: an identifier that is not a
    keyword, not a number or a duration, and not followed by `(` (a function or an
    aggregation), with the label names of its matchers. String literals, `by (...)`-style
    label lists and range brackets are dropped first. A selector without a metric name
    (`{__name__=~"..."}`) comes back as the name ``{}``."""
    s = _STRING.sub('""', expr)
    s = _LABEL_LIST.sub(" ", s)  # `sum by (a) (x)` -> `sum (x)`
    s = _RANGE.sub("", s)
    matchers: list[tuple[str, ...]] = []

    def mark(m: re.Match) -> str:
        matchers.append(tuple(_MATCHER_LABEL.findall(m.group(2))))
        name = m.group(1) or ""
        if not name or name.lower() in KEYWORDS:  # `or {__name__=...}`
            return f" {name} __nameless__@@{len(matchers) - 1} "
        return f" {name}@@{len(matchers) - 1} "

    s = _SELECTOR.sub(mark, s)
    refs = []
    for tok in _TOKEN.finditer(s):
        word, index = tok.group(1), tok.group(2)
        if word is None or word.lower() in KEYWORDS:
            continue
        if s[tok.end() :].lstrip().startswith("("):
            continue
        labels = matchers[int(index)] if index is not None else ()
        refs.append(Ref(NAMELESS if word == "__nameless__" else word, labels))
    return refs


def expr_problems(expr: str, cat: Catalogue, recorded: set[str]) -> list[str]:
    problems = []
    known = cat.queryable()
    for ref in metric_refs(expr):
        if ref.name == NAMELESS:
            problems.append("a selector without a metric name cannot be checked against the catalogue")
            continue
        if ref.name in recorded:
            continue
        m = known.get(ref.name)
        if m is None:
            hint = " (listed as missing: the code does not expose it yet)" if ref.name in cat.missing else ""
            problems.append(f"{ref.name} is not in monitoring/metrics.yaml{hint}")
            continue
        allowed = set(m.labels) | set(cat.target_labels) | ({"le"} if ref.name.endswith("_bucket") else set())
        for label in ref.labels:
            if label not in allowed:
                problems.append(f"{ref.name} has no label {label!r} (catalogue: {sorted(m.labels)})")
    return problems


# ---- rule files -------------------------------------------------------------------------
def rule_files() -> list[Path]:
    return sorted(RULES.glob("*.rules.yaml"))


def rule_test_files() -> list[Path]:
    return sorted(RULES.glob("*.test.yaml"))


def rules_of(path: Path) -> Iterator[dict]:
    for group in yaml.safe_load(path.read_text())["groups"]:
        yield from group["rules"]


def recorded_names() -> set[str]:
    return {r["record"] for p in rule_files() for r in rules_of(p) if "record" in r}


# ---- promtool ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    ok: bool
    output: str


def promtool(*args: str | Path, cwd: Path | None = None) -> Run:
    proc = subprocess.run(
        [str(PROMTOOL), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    return Run(proc.returncode == 0, proc.stdout + proc.stderr)


def check_rules(path: Path) -> Run:
    return promtool("check", "rules", path)


def run_rule_tests(path: Path) -> Run:
    # promtool resolves rule_files relative to the working folder
    return promtool("test", "rules", path.name, cwd=path.parent)
