"""The configuration of GKE Managed Prometheus's managed Alertmanager, filled at deploy time.

    python -m k8s.alertmanager secret-ids
                        print the Secret Manager secret IDs the configuration needs, one a line
    python -m k8s.alertmanager secret --from-secret-manager [--project PROJECT]
                        print the Secret `alertmanager` (namespace gmp-public, key
                        alertmanager.yaml) holding monitoring/alertmanager/alertmanager.yaml
                        with each "${secret:ID}" replaced by the latest version of Secret
                        Manager's secret ID, read with `gcloud secrets versions access` into
                        memory (no file is written); apply, never commit (k8s/README.md, step 8)
    python -m k8s.alertmanager secret --secrets-dir DIR
                        the same, each value read from the file DIR/ID (the tests' way)

Nothing is printed unless every value was read and passed the checks below, so
`... secret --from-secret-manager | kubectl apply --server-side -f -` applies either the whole
configuration or nothing (kubectl refuses an empty input).

Where the managed Alertmanager reads its configuration (GoogleCloudPlatform/prometheus-engine,
pkg/operator: AlertmanagerPublicSecretName, AlertmanagerPublicSecretKey, DefaultPublicNamespace):
the operator copies ONE key of one Secret in `gmp-public`, by default `alertmanager` /
`alertmanager.yaml` (the OperatorConfig's `managedAlertmanager.configSecret` may name
another; left unset, these defaults apply), into the Alertmanager's own Secret in
`gmp-system`, and mounts nothing else. So the receivers' keys and URLs cannot be files beside
the configuration (Alertmanager's `routing_key_file`, `api_url_file`, `url_file` would name
files that are not there): they are written into it here, from Secret Manager, and the
repository holds only the template with its placeholders.

Each value replaces a whole YAML string (the template is parsed, the placeholder found as a
value, the document dumped again), so a value cannot change the YAML around it. A missing or
empty file, a value with whitespace or a URL field that is not https:// is refused.
"""

from __future__ import annotations

import argparse
import base64
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "monitoring" / "alertmanager" / "alertmanager.yaml"
# the Kubernetes Secret's name, namespace and key: names, not secrets
SECRET_NAME = "alertmanager"  # noqa: S105
SECRET_NAMESPACE = "gmp-public"  # noqa: S105
SECRET_KEY = "alertmanager.yaml"  # noqa: S105
PLACEHOLDER = re.compile(r"\$\{secret:([a-z][a-z0-9-]*)\}")
# fields whose value Alertmanager parses as a URL (and refuses without a scheme and host)
URL_FIELDS = {"api_url", "url", "webhook_url", "api_url_file", "url_file"}


def template(path: Path = SOURCE) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a YAML mapping")
    return doc


def _strings(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(field name, string) for every string value in the document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, str(k))
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item, key)
    elif isinstance(node, str):
        yield key, node


def secret_ids(doc: Mapping[str, Any]) -> list[str]:
    """The Secret Manager IDs the template's placeholders name, sorted, each once."""
    return sorted({m.group(1) for _, text in _strings(doc) for m in PLACEHOLDER.finditer(text)})


def placeholder_problems(doc: Mapping[str, Any]) -> list[str]:
    """A placeholder must be a whole value: one inside a longer string would be filled
    without the checks below (and would show where the secret goes within it)."""
    return [
        f"{key}: {text!r} holds a placeholder inside a longer string"
        for key, text in _strings(doc)
        if PLACEHOLDER.search(text) and not PLACEHOLDER.fullmatch(text)
    ]


def _value_problems(secret_id: str, value: str, fields: set[str]) -> list[str]:
    if not value:
        return [f"{secret_id}: no value (an empty or missing file)"]
    problems = []
    if any(c.isspace() for c in value):
        problems.append(f"{secret_id}: the value holds whitespace")
    if fields & URL_FIELDS and not re.fullmatch(r"https://[^/\s]+(/\S*)?", value):
        problems.append(f"{secret_id}: {', '.join(sorted(fields))} needs an https:// URL")
    return problems


def fill(doc: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """The template with every placeholder replaced by its value (ValueError naming every
    problem: a missing, empty or malformed value, a placeholder inside a longer string)."""
    problems = placeholder_problems(doc)
    fields: dict[str, set[str]] = {}
    for key, text in _strings(doc):
        if m := PLACEHOLDER.fullmatch(text):
            fields.setdefault(m.group(1), set()).add(key)
    for secret_id in sorted(fields):
        problems += _value_problems(secret_id, values.get(secret_id, ""), fields[secret_id])
    if problems:
        raise ValueError("; ".join(problems))

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str) and (m := PLACEHOLDER.fullmatch(node)):
            return values[m.group(1)]
        return node

    out: dict[str, Any] = walk(doc)
    return out


def config_text(doc: Mapping[str, Any]) -> str:
    return str(yaml.safe_dump(dict(doc), sort_keys=False, default_flow_style=False, width=120, allow_unicode=True))


def read_values(directory: Path, ids: list[str]) -> dict[str, str]:
    """DIR/ID for each ID (its trailing newline dropped); a missing file is an empty value."""
    out = {}
    for secret_id in ids:
        path = directory / secret_id
        out[secret_id] = path.read_text().rstrip("\n") if path.is_file() else ""
    return out


def gcloud_values(ids: list[str], project: str | None = None) -> dict[str, str]:
    """The latest version of each Secret Manager secret ID, read with gcloud into memory (its
    trailing newline dropped). ValueError naming each ID gcloud could not read, with gcloud's
    last error line (it never holds the value), or saying that gcloud is missing."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise ValueError("gcloud is not on PATH (the Google Cloud CLI reads the secrets)")
    values, problems = {}, []
    for secret_id in ids:
        argv = [gcloud, "secrets", "versions", "access", "latest", f"--secret={secret_id}"]
        if project:
            argv.append(f"--project={project}")
        try:
            run = subprocess.run(argv, capture_output=True, timeout=120, check=False)  # noqa: S603 - fixed argv, no shell
        except subprocess.TimeoutExpired:
            problems.append(f"{secret_id}: gcloud secrets versions access timed out")
            continue
        if run.returncode != 0:
            why = (run.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
            problems.append(f"{secret_id}: gcloud secrets versions access failed ({why})")
            continue
        try:
            values[secret_id] = run.stdout.decode().rstrip("\n")
        except UnicodeDecodeError:
            problems.append(f"{secret_id}: the value is not UTF-8 text")
    if problems:
        raise ValueError("; ".join(problems))
    return values


def secret_manifest(config: str) -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": SECRET_NAME,
            "namespace": SECRET_NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "fjordbank"},
        },
        "type": "Opaque",
        "data": {SECRET_KEY: base64.b64encode(config.encode()).decode()},
    }
    return (
        "# The managed Alertmanager's configuration with its receivers' keys (k8s/alertmanager.py);\n"
        "# apply, never commit.\n" + str(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m k8s.alertmanager", description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=Path, default=SOURCE, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("secret-ids", help="print the Secret Manager secret IDs the configuration needs")
    secret = sub.add_parser("secret", help="print the Secret `alertmanager` for gmp-public, filled with the secrets")
    source = secret.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--from-secret-manager",
        action="store_true",
        help="read each secret's latest version with `gcloud secrets versions access`, into memory",
    )
    source.add_argument("--secrets-dir", type=Path, help="one file per secret ID, named after it")
    secret.add_argument("--project", help="the Google Cloud project of the secrets (else gcloud's default)")
    args = parser.parse_args(argv)

    doc = template(args.template)
    ids = secret_ids(doc)
    if args.command == "secret-ids":
        print("\n".join(ids))
        return 0
    try:
        if args.from_secret_manager:
            values = gcloud_values(ids, args.project)
        else:
            values = read_values(args.secrets_dir, ids)
        filled = fill(doc, values)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(secret_manifest(config_text(filled)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
