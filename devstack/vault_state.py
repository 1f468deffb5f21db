"""The card vault across `make down` and `make up`.

The vault is a Firestore database of its own (fjordbank/adapters/vault.py), and
firebase-tools' ``--export-on-exit`` exports the ``(default)`` database only (its hub asks
the emulator for ``databases/(default)``). So the stack keeps the vault itself: before the
emulators stop, every vault document goes to ``.stack/vault/export.jsonl`` (the PANs in it
sealed, as in the database; the file readable by its owner only); a start that brings the
bank's state back (devstack/state.py, RESUME) writes them into the emulator again before
the services start. A stop whose vault could not be kept is recorded as lost, so the next
start empties the bank as a whole rather than bring back cards without their numbers.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fjordbank.adapters.vault import CARDS, DEFAULT_DATABASE, PANS

COLLECTIONS = (CARDS, PANS)


def export_file(state_dir: Path) -> Path:
    return state_dir / "vault" / "export.jsonl"


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, dt.datetime):
        return {"$time": value.isoformat()}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        if set(value) == {"$time"}:
            return dt.datetime.fromisoformat(value["$time"])
        return {k: _decode(v) for k, v in value.items()}
    return value


@contextmanager
def _environ(overrides: dict[str, str]) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _client(project_id: str, database: str):
    from google.cloud import firestore

    return firestore.Client(project=project_id, database=database)


def export(hosts: dict[str, str], project_id: str, path: Path, database: str = DEFAULT_DATABASE) -> int:
    """Every vault document into ``path`` (written whole, then renamed); returns how many."""
    with _environ(hosts):
        db = _client(project_id, database)
        lines = [
            json.dumps({"collection": name, "id": snap.id, "data": _encode(snap.to_dict())})
            for name in COLLECTIONS
            for snap in db.collection(name).stream(timeout=60)
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(line + "\n" for line in lines))
    tmp.replace(path)
    return len(lines)


def restore(hosts: dict[str, str], project_id: str, path: Path, database: str = DEFAULT_DATABASE) -> int:
    """The documents of ``path`` written into the vault's database; returns how many (0
    when there is no export)."""
    if not path.is_file():
        return 0
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    with _environ(hosts):
        db = _client(project_id, database)
        for start in range(0, len(rows), 400):
            batch = db.batch()
            for row in rows[start : start + 400]:
                batch.set(db.collection(row["collection"]).document(row["id"]), _decode(row["data"]))
            batch.commit(timeout=60)
    return len(rows)
