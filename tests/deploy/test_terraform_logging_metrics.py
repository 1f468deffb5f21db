"""The functions' log-based metrics (terraform/modules/logging_metrics) count exactly the
log lines the code writes (fjordbank/runtime/log_metrics.py): one google_logging_metric per
metric name, a DELTA INT64 counter whose filter is the line's fixed `metric` field and whose
labels are extracted from the line's other fields; both environments compose the module.
Plain checks over the parsed HCL; the companion test feeds a broken copy."""

from __future__ import annotations

import copy

from fjordbank.runtime import log_metrics
from tests.deploy.test_terraform_names import ENVS, module_call
from tests.deploy.tfschema import labelled, unquote

MODULE_TF = "terraform/modules/logging_metrics/main.tf"


def _text(value) -> str:
    """An HCL string literal as Terraform reads it (python-hcl2 keeps quotes and escapes)."""
    return str(unquote(value)).replace('\\"', '"')


def _first(body: dict, key: str) -> dict:
    value = body.get(key)
    return value[0] if isinstance(value, list) and value else {}


def _metric_problems(name: str, body: dict) -> list[str]:
    """One google_logging_metric: its filter, a DELTA INT64 counter, a label per field the
    line carries, each extracted from that field."""
    problems: list[str] = []
    fields = log_metrics.FIELDS.get(name, ())
    want_filter = f'jsonPayload.metric="{name}"'
    if _text(body.get("filter")) != want_filter:
        problems.append(f"{name}: filter {_text(body.get('filter'))!r}, expected {want_filter!r}")
    descriptor = _first(body, "metric_descriptor")
    kind = (_text(descriptor.get("metric_kind")), _text(descriptor.get("value_type")))
    if kind != ("DELTA", "INT64"):
        problems.append(f"{name}: {kind[0]} {kind[1]}, expected a DELTA INT64 counter")
    label_keys = [_text(label.get("key")) for label in descriptor.get("labels", [])]
    if sorted(label_keys) != sorted(fields):
        problems.append(f"{name}: labels {sorted(label_keys)}, the lines carry {sorted(fields)}")
    extractors = {_text(k): _text(v) for k, v in (body.get("label_extractors") or {}).items()}
    for field in fields:
        if extractors.get(field) != f"EXTRACT(jsonPayload.{field})":
            problems.append(f"{name}: label {field} is not extracted from jsonPayload.{field}")
    if set(extractors) - set(fields):
        problems.append(f"{name}: extractors for {sorted(set(extractors) - set(fields))}, which no line carries")
    return problems


def _composition_problems(docs: dict, env: str) -> list[str]:
    """Environment ``env`` composes modules/logging_metrics in its project."""
    try:
        call = module_call(docs, env, "logging_metrics")
    except AssertionError:
        return [f"envs/{env} does not compose modules/logging_metrics"]
    problems: list[str] = []
    if _text(call.get("source")) != "../../modules/logging_metrics":
        problems.append(f"envs/{env} module.logging_metrics has source {call.get('source')}")
    if call.get("project_id") != "${module.project.project_id}":
        problems.append(f"envs/{env} module.logging_metrics.project_id is {call.get('project_id')}")
    return problems


def logging_metric_problems(docs: dict) -> list[str]:
    problems: list[str] = []
    metrics = {
        _text(body.get("name")): body
        for rtype, _name, body in labelled(docs.get(MODULE_TF, {}), "resource")
        if rtype == "google_logging_metric"
    }
    if set(metrics) != set(log_metrics.FIELDS):
        problems.append(f"log-based metrics {sorted(metrics)}, the code writes {sorted(log_metrics.FIELDS)}")
    for name, body in sorted(metrics.items()):
        problems += _metric_problems(name, body)
    for env in ENVS:
        problems += _composition_problems(docs, env)
    return problems


def test_the_log_based_metrics_count_the_lines_the_functions_write(tf_docs):
    problems = logging_metric_problems(tf_docs)
    assert not problems, "\n".join(problems)


def test_the_check_reports_a_wrong_filter_kind_label_and_a_missing_environment(tf_docs):
    docs = copy.deepcopy(tf_docs)
    for rtype, name, body in labelled(docs[MODULE_TF], "resource"):
        if rtype == "google_logging_metric" and name == "edge_requests":
            body["filter"] = '"jsonPayload.message:\\"fjb_edge_requests\\""'
            body["metric_descriptor"][0]["metric_kind"] = '"GAUGE"'
            body["metric_descriptor"][0]["labels"] = body["metric_descriptor"][0]["labels"][:-1]
            body["label_extractors"] = {**body["label_extractors"], '"reason"': '"EXTRACT(jsonPayload.why)"'}
    env_main = docs[f"terraform/envs/{ENVS[0]}/main.tf"]
    env_main["module"] = [m for m in env_main["module"] if '"logging_metrics"' not in m]
    problems = "\n".join(logging_metric_problems(docs))
    for expected in [
        "fjb_edge_requests: filter 'jsonPayload.message:\"fjb_edge_requests\"'",
        "fjb_edge_requests: GAUGE INT64, expected a DELTA INT64 counter",
        "fjb_edge_requests: labels ['function', 'outcome'], the lines carry ['function', 'outcome', 'reason']",
        "fjb_edge_requests: label reason is not extracted from jsonPayload.reason",
        f"envs/{ENVS[0]} does not compose modules/logging_metrics",
    ]:
        assert expected in problems, f"not reported: {expected}\n{problems}"
