"""Fresh ids for what a client makes (users, request ids, references): never shared between
runs, so nothing has to be wiped between them."""

from __future__ import annotations

import uuid


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"
