"""The messaging contracts, generated from the code: ``python -m fjordbank.contracts``.

Writes ``contracts/events/<name>.v<version>.schema.json`` (JSON Schema 2020-12) for every
event and command on NATS, from the dataclasses (`fjordbank.domain.payments.PaymentEvent`
and `fjordbank.domain.events`), and ``contracts/asyncapi.json`` (AsyncAPI 3.0) of every
subject, stream, consumer and message, from `fjordbank.topology`. The files are committed
so that the app, other teams and reviewers read the contracts without running the code;
tests/unit/test_contracts.py fails when they and the code disagree.

The generator refuses to overwrite a version's schema with a breaking change (see
`fjordbank.contracts.compat`): that change needs the next version of its contract. An
older version's file stays as it is.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fjordbank import topology
from fjordbank.contracts import asyncapi, catalog, compat
from fjordbank.contracts.schema import event_schema

ROOT = Path(__file__).resolve().parents[2] / "contracts"
ASYNCAPI = "asyncapi.json"
REGENERATE = "python -m fjordbank.contracts"
VERSIONED_FILE = re.compile(r"(?P<name>[a-z_]+)\.v(?P<version>[0-9]+)\.schema\.json")


def generate() -> dict[str, dict[str, Any]]:
    """Every generated file (its path under contracts/) and its content."""
    files = {entry.path: event_schema(entry) for entry in catalog.ENTRIES}
    files[ASYNCAPI] = asyncapi.document()
    return files


def render(content: dict[str, Any]) -> str:
    """A file's text: stable, so the committed file changes only when the contract does."""
    return json.dumps(content, indent=2, ensure_ascii=False) + "\n"


def stale(root: Path | None = None) -> list[str]:
    """The generated files that are missing under ``root`` (contracts/) or differ from the code."""
    root = root or ROOT
    return [
        path
        for path, content in generate().items()
        if not (root / path).exists() or (root / path).read_text(encoding="utf-8") != render(content)
    ]


def retired(root: Path | None = None) -> list[str]:
    """Schema files under ``root`` that are no contract version the code has or had: a
    version above the current one, or a contract that no longer exists."""
    root = root or ROOT
    current = {entry.name: entry.version for entry in catalog.ENTRIES}
    found = []
    for path in sorted((root / "events").glob("*.json")):
        match = VERSIONED_FILE.fullmatch(path.name)
        if match is None or int(match["version"]) > current.get(match["name"], 0):
            found.append(f"events/{path.name}")
    return found


def breaking(root: Path | None = None) -> dict[str, list[str]]:
    """For each committed schema the code changes in a breaking way: why. For the AsyncAPI
    document: each subject it had that the topology no longer has (`removed_subjects`)."""
    root = root or ROOT
    found = {}
    for path, content in generate().items():
        committed = root / path
        if not committed.exists():
            continue
        old = json.loads(committed.read_text(encoding="utf-8"))
        problems = removed_subjects(old, content) if path == ASYNCAPI else compat.breaking_changes(old, content)
        if problems:
            found[path] = problems
    return found


def _subjects(document: dict[str, Any]) -> set[str]:
    return {str(c.get("address")) for c in document.get("channels", {}).values() if isinstance(c, dict)}


def removed_subjects(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The subjects of ``old`` (an AsyncAPI document) ``new`` has no channel for, unless the
    topology retired them (`topology.RETIRED_SUBJECTS`). A subject renamed passed the check
    (found in review, 2026-12-07): the streams still hold its messages and the last
    release's producers still publish there, and no consumer of the new release reads it."""
    gone = _subjects(old) - _subjects(new) - set(topology.RETIRED_SUBJECTS)
    return [
        f"{subject}: no longer a subject of the topology, but the streams may hold its messages and the last"
        " release publishes there; keep it consumed for a release, then list it in topology.RETIRED_SUBJECTS"
        for subject in sorted(gone)
    ]


def write(root: Path | None = None) -> list[str]:
    """Write the generated files that changed; returns their paths. Raises ValueError,
    writing nothing, when a version's schema would change in a breaking way."""
    root = root or ROOT
    refused = breaking(root)
    if refused:
        reasons = "; ".join(f"{path}: {', '.join(problems)}" for path, problems in refused.items())
        raise ValueError(f"breaking change(s), give the contract its next VERSION instead: {reasons}")
    changed = stale(root)
    files = generate()
    for path in changed:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(files[path]), encoding="utf-8")
    return changed
